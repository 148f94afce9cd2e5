//! A reader of TensorFlow Lite models (`.tflite`: a FlatBuffer with the TFLite schema,
//! `tensorflow/compiler/mlir/lite/schema/schema.fbs`), written by hand: no generated code.
//!
//! Every read is bounds-checked and decoded little-endian byte by byte (no alignment assumed);
//! a malformed file is a [`TfliteError`] naming the broken field, never a panic. Vector lengths
//! are checked against the bytes left in the file, and all that is decoded is charged to a budget
//! proportional to the file's size, so offsets that alias the same data many times cannot make
//! the reader allocate or loop beyond a small multiple of the file. Nothing read here recurses.
//! Constant data (`buffers`) and metadata are not read, so models over 2 GB (whose buffers lie
//! after the FlatBuffer) read fine.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use thiserror::Error;

/// The FlatBuffer file identifier of TFLite models, at bytes 4..8.
pub const FILE_IDENTIFIER: &[u8; 4] = b"TFL3";

/// Builtin operator names indexed by code: the schema's `BuiltinOperator` enum, codes 0..=206.
pub const BUILTIN_OPS: &[&str] = &[
    "ADD",                              // 0
    "AVERAGE_POOL_2D",                  // 1
    "CONCATENATION",                    // 2
    "CONV_2D",                          // 3
    "DEPTHWISE_CONV_2D",                // 4
    "DEPTH_TO_SPACE",                   // 5
    "DEQUANTIZE",                       // 6
    "EMBEDDING_LOOKUP",                 // 7
    "FLOOR",                            // 8
    "FULLY_CONNECTED",                  // 9
    "HASHTABLE_LOOKUP",                 // 10
    "L2_NORMALIZATION",                 // 11
    "L2_POOL_2D",                       // 12
    "LOCAL_RESPONSE_NORMALIZATION",     // 13
    "LOGISTIC",                         // 14
    "LSH_PROJECTION",                   // 15
    "LSTM",                             // 16
    "MAX_POOL_2D",                      // 17
    "MUL",                              // 18
    "RELU",                             // 19
    "RELU_N1_TO_1",                     // 20
    "RELU6",                            // 21
    "RESHAPE",                          // 22
    "RESIZE_BILINEAR",                  // 23
    "RNN",                              // 24
    "SOFTMAX",                          // 25
    "SPACE_TO_DEPTH",                   // 26
    "SVDF",                             // 27
    "TANH",                             // 28
    "CONCAT_EMBEDDINGS",                // 29
    "SKIP_GRAM",                        // 30
    "CALL",                             // 31
    "CUSTOM",                           // 32
    "EMBEDDING_LOOKUP_SPARSE",          // 33
    "PAD",                              // 34
    "UNIDIRECTIONAL_SEQUENCE_RNN",      // 35
    "GATHER",                           // 36
    "BATCH_TO_SPACE_ND",                // 37
    "SPACE_TO_BATCH_ND",                // 38
    "TRANSPOSE",                        // 39
    "MEAN",                             // 40
    "SUB",                              // 41
    "DIV",                              // 42
    "SQUEEZE",                          // 43
    "UNIDIRECTIONAL_SEQUENCE_LSTM",     // 44
    "STRIDED_SLICE",                    // 45
    "BIDIRECTIONAL_SEQUENCE_RNN",       // 46
    "EXP",                              // 47
    "TOPK_V2",                          // 48
    "SPLIT",                            // 49
    "LOG_SOFTMAX",                      // 50
    "DELEGATE",                         // 51
    "BIDIRECTIONAL_SEQUENCE_LSTM",      // 52
    "CAST",                             // 53
    "PRELU",                            // 54
    "MAXIMUM",                          // 55
    "ARG_MAX",                          // 56
    "MINIMUM",                          // 57
    "LESS",                             // 58
    "NEG",                              // 59
    "PADV2",                            // 60
    "GREATER",                          // 61
    "GREATER_EQUAL",                    // 62
    "LESS_EQUAL",                       // 63
    "SELECT",                           // 64
    "SLICE",                            // 65
    "SIN",                              // 66
    "TRANSPOSE_CONV",                   // 67
    "SPARSE_TO_DENSE",                  // 68
    "TILE",                             // 69
    "EXPAND_DIMS",                      // 70
    "EQUAL",                            // 71
    "NOT_EQUAL",                        // 72
    "LOG",                              // 73
    "SUM",                              // 74
    "SQRT",                             // 75
    "RSQRT",                            // 76
    "SHAPE",                            // 77
    "POW",                              // 78
    "ARG_MIN",                          // 79
    "FAKE_QUANT",                       // 80
    "REDUCE_PROD",                      // 81
    "REDUCE_MAX",                       // 82
    "PACK",                             // 83
    "LOGICAL_OR",                       // 84
    "ONE_HOT",                          // 85
    "LOGICAL_AND",                      // 86
    "LOGICAL_NOT",                      // 87
    "UNPACK",                           // 88
    "REDUCE_MIN",                       // 89
    "FLOOR_DIV",                        // 90
    "REDUCE_ANY",                       // 91
    "SQUARE",                           // 92
    "ZEROS_LIKE",                       // 93
    "FILL",                             // 94
    "FLOOR_MOD",                        // 95
    "RANGE",                            // 96
    "RESIZE_NEAREST_NEIGHBOR",          // 97
    "LEAKY_RELU",                       // 98
    "SQUARED_DIFFERENCE",               // 99
    "MIRROR_PAD",                       // 100
    "ABS",                              // 101
    "SPLIT_V",                          // 102
    "UNIQUE",                           // 103
    "CEIL",                             // 104
    "REVERSE_V2",                       // 105
    "ADD_N",                            // 106
    "GATHER_ND",                        // 107
    "COS",                              // 108
    "WHERE",                            // 109
    "RANK",                             // 110
    "ELU",                              // 111
    "REVERSE_SEQUENCE",                 // 112
    "MATRIX_DIAG",                      // 113
    "QUANTIZE",                         // 114
    "MATRIX_SET_DIAG",                  // 115
    "ROUND",                            // 116
    "HARD_SWISH",                       // 117
    "IF",                               // 118
    "WHILE",                            // 119
    "NON_MAX_SUPPRESSION_V4",           // 120
    "NON_MAX_SUPPRESSION_V5",           // 121
    "SCATTER_ND",                       // 122
    "SELECT_V2",                        // 123
    "DENSIFY",                          // 124
    "SEGMENT_SUM",                      // 125
    "BATCH_MATMUL",                     // 126
    "PLACEHOLDER_FOR_GREATER_OP_CODES", // 127
    "CUMSUM",                           // 128
    "CALL_ONCE",                        // 129
    "BROADCAST_TO",                     // 130
    "RFFT2D",                           // 131
    "CONV_3D",                          // 132
    "IMAG",                             // 133
    "REAL",                             // 134
    "COMPLEX_ABS",                      // 135
    "HASHTABLE",                        // 136
    "HASHTABLE_FIND",                   // 137
    "HASHTABLE_IMPORT",                 // 138
    "HASHTABLE_SIZE",                   // 139
    "REDUCE_ALL",                       // 140
    "CONV_3D_TRANSPOSE",                // 141
    "VAR_HANDLE",                       // 142
    "READ_VARIABLE",                    // 143
    "ASSIGN_VARIABLE",                  // 144
    "BROADCAST_ARGS",                   // 145
    "RANDOM_STANDARD_NORMAL",           // 146
    "BUCKETIZE",                        // 147
    "RANDOM_UNIFORM",                   // 148
    "MULTINOMIAL",                      // 149
    "GELU",                             // 150
    "DYNAMIC_UPDATE_SLICE",             // 151
    "RELU_0_TO_1",                      // 152
    "UNSORTED_SEGMENT_PROD",            // 153
    "UNSORTED_SEGMENT_MAX",             // 154
    "UNSORTED_SEGMENT_SUM",             // 155
    "ATAN2",                            // 156
    "UNSORTED_SEGMENT_MIN",             // 157
    "SIGN",                             // 158
    "BITCAST",                          // 159
    "BITWISE_XOR",                      // 160
    "RIGHT_SHIFT",                      // 161
    "STABLEHLO_LOGISTIC",               // 162
    "STABLEHLO_ADD",                    // 163
    "STABLEHLO_DIVIDE",                 // 164
    "STABLEHLO_MULTIPLY",               // 165
    "STABLEHLO_MAXIMUM",                // 166
    "STABLEHLO_RESHAPE",                // 167
    "STABLEHLO_CLAMP",                  // 168
    "STABLEHLO_CONCATENATE",            // 169
    "STABLEHLO_BROADCAST_IN_DIM",       // 170
    "STABLEHLO_CONVOLUTION",            // 171
    "STABLEHLO_SLICE",                  // 172
    "STABLEHLO_CUSTOM_CALL",            // 173
    "STABLEHLO_REDUCE",                 // 174
    "STABLEHLO_ABS",                    // 175
    "STABLEHLO_AND",                    // 176
    "STABLEHLO_COSINE",                 // 177
    "STABLEHLO_EXPONENTIAL",            // 178
    "STABLEHLO_FLOOR",                  // 179
    "STABLEHLO_LOG",                    // 180
    "STABLEHLO_MINIMUM",                // 181
    "STABLEHLO_NEGATE",                 // 182
    "STABLEHLO_OR",                     // 183
    "STABLEHLO_POWER",                  // 184
    "STABLEHLO_REMAINDER",              // 185
    "STABLEHLO_RSQRT",                  // 186
    "STABLEHLO_SELECT",                 // 187
    "STABLEHLO_SUBTRACT",               // 188
    "STABLEHLO_TANH",                   // 189
    "STABLEHLO_SCATTER",                // 190
    "STABLEHLO_COMPARE",                // 191
    "STABLEHLO_CONVERT",                // 192
    "STABLEHLO_DYNAMIC_SLICE",          // 193
    "STABLEHLO_DYNAMIC_UPDATE_SLICE",   // 194
    "STABLEHLO_PAD",                    // 195
    "STABLEHLO_IOTA",                   // 196
    "STABLEHLO_DOT_GENERAL",            // 197
    "STABLEHLO_REDUCE_WINDOW",          // 198
    "STABLEHLO_SORT",                   // 199
    "STABLEHLO_WHILE",                  // 200
    "STABLEHLO_GATHER",                 // 201
    "STABLEHLO_TRANSPOSE",              // 202
    "DILATE",                           // 203
    "STABLEHLO_RNG_BIT_GENERATOR",      // 204
    "REDUCE_WINDOW",                    // 205
    "STABLEHLO_COMPOSITE",              // 206
];

/// The builtin code of custom operators (`BuiltinOperator.CUSTOM`).
const CUSTOM_CODE: i32 = 32;

/// What a malformed or foreign file is refused with. `field` is the path of the broken field,
/// e.g. `subgraphs[0].tensors[3].shape`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TfliteError {
    /// Shorter than a FlatBuffer's root offset and file identifier.
    #[error("not a TFLite model: {len} bytes, shorter than the 8-byte FlatBuffer header")]
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// Bytes 4..8 are not `TFL3`.
    #[error("not a TFLite model: file identifier \"{found}\" at bytes 4..8, expected \"TFL3\"")]
    NotTflite {
        /// The four bytes found, escaped.
        found: String,
    },
    /// An offset or a read leads outside the file.
    #[error("malformed TFLite model: {field}: {what} at offset {offset} lies outside the {len}-byte file")]
    OutOfBounds {
        /// The broken field.
        field: String,
        /// What was being read there.
        what: &'static str,
        /// Where.
        offset: u64,
        /// The file's length.
        len: usize,
    },
    /// A vector announces more elements than the rest of the file holds.
    #[error(
        "malformed TFLite model: {field}: {count} elements of {elem_bytes} bytes do not fit in the {available} bytes left"
    )]
    VectorTooLong {
        /// The broken field.
        field: String,
        /// The announced length.
        count: u32,
        /// Bytes per element.
        elem_bytes: usize,
        /// Bytes from the first element to the end of the file.
        available: usize,
    },
    /// A string is not UTF-8.
    #[error("malformed TFLite model: {field}: the string is not UTF-8")]
    NotUtf8 {
        /// The broken field.
        field: String,
    },
    /// An index into another list is out of range.
    #[error("malformed TFLite model: {field}: index {index} is out of range ({count} entries)")]
    IndexOutOfRange {
        /// The broken field.
        field: String,
        /// The index found.
        index: i64,
        /// The length of the list it indexes.
        count: usize,
    },
    /// Any other structural fault (a bad vtable, a field outside its table, ...).
    #[error("malformed TFLite model: {field}: {reason}")]
    Malformed {
        /// The broken field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The offsets reuse the same data so often that decoding it would far exceed the file's size.
    #[error(
        "malformed TFLite model: {field}: decoding exceeds {limit} units for a {len}-byte file (its offsets reuse the same data over and over)"
    )]
    TooMuchData {
        /// The field being decoded when the budget ran out.
        field: String,
        /// The budget.
        limit: usize,
        /// The file's length.
        len: usize,
    },
    /// The model has no subgraph (subgraph 0 is the main one).
    #[error("TFLite model has no subgraph")]
    NoSubgraph,
}

/// The element type of a tensor (the schema's `TensorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TfliteType {
    /// FLOAT32 (0).
    F32,
    /// FLOAT16 (1).
    F16,
    /// INT32 (2).
    I32,
    /// UINT8 (3).
    U8,
    /// INT64 (4).
    I64,
    /// STRING (5).
    String,
    /// BOOL (6).
    Bool,
    /// INT16 (7).
    I16,
    /// COMPLEX64 (8).
    Complex64,
    /// INT8 (9).
    I8,
    /// FLOAT64 (10).
    F64,
    /// COMPLEX128 (11).
    Complex128,
    /// UINT64 (12).
    U64,
    /// RESOURCE (13).
    Resource,
    /// VARIANT (14).
    Variant,
    /// UINT32 (15).
    U32,
    /// UINT16 (16).
    U16,
    /// INT4 (17).
    I4,
    /// BFLOAT16 (18).
    BF16,
    /// A code this reader does not know (newer schemas add INT2, UINT4, FLOAT8 types, ...).
    Unknown(i8),
}

impl TfliteType {
    /// The type of a schema `TensorType` code.
    pub fn from_code(code: i8) -> TfliteType {
        use TfliteType::*;
        match code {
            0 => F32,
            1 => F16,
            2 => I32,
            3 => U8,
            4 => I64,
            5 => String,
            6 => Bool,
            7 => I16,
            8 => Complex64,
            9 => I8,
            10 => F64,
            11 => Complex128,
            12 => U64,
            13 => Resource,
            14 => Variant,
            15 => U32,
            16 => U16,
            17 => I4,
            18 => BF16,
            other => Unknown(other),
        }
    }
}

/// An entry of the model's operator code table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorCode {
    /// A builtin operator: its `BuiltinOperator` code and version.
    Builtin {
        /// The builtin code (see [`BUILTIN_OPS`]).
        code: i32,
        /// The operator version.
        version: i32,
    },
    /// A custom operator: its custom code and version.
    Custom {
        /// The custom code (the operator's name).
        name: String,
        /// The operator version.
        version: i32,
    },
}

impl OperatorCode {
    /// The schema's name: `CONV_2D`, `CUSTOM:<name>`, or `BUILTIN_<n>` for a code outside
    /// [`BUILTIN_OPS`].
    pub fn name(&self) -> String {
        match self {
            OperatorCode::Builtin { code, .. } => usize::try_from(*code)
                .ok()
                .and_then(|c| BUILTIN_OPS.get(c))
                .map_or_else(|| format!("BUILTIN_{code}"), |n| (*n).to_string()),
            OperatorCode::Custom { name, .. } => format!("CUSTOM:{name}"),
        }
    }
}

/// A tensor of a subgraph, without its data.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDesc {
    /// The tensor's name (empty when the model gives none).
    pub name: String,
    /// Its shape.
    pub shape: Vec<i32>,
    /// Its shape with dynamic dimensions as -1, when the model records it.
    pub shape_signature: Option<Vec<i32>>,
    /// Its element type.
    pub dtype: TfliteType,
    /// Index into the model's buffers (0: no data).
    pub buffer: u32,
    /// Whether it carries quantization parameters (a non-empty scale vector).
    pub quantized: bool,
}

impl TensorDesc {
    /// The tensor as an edgeqa input or output (`role`: "input" or "output"): its name, edgeqa
    /// element type and [`TensorDesc::fixed_shape`]; the error says what edgeqa cannot carry.
    pub fn info(&self, role: &str) -> Result<crate::manifest::TensorInfo, String> {
        let dtype = self.dtype.dtype().ok_or_else(|| {
            format!(
                "{role} `{}` has element type {:?}, which edgeqa tensors do not carry (f32, i64, i32, u8, i8, bool)",
                self.name, self.dtype
            )
        })?;
        let shape = self.fixed_shape().map_err(|e| format!("{role} {e}"))?;
        Ok(crate::manifest::TensorInfo { name: self.name.clone(), dtype, shape })
    }

    /// The shape the tensor runs at, every dimension positive. A dynamic first (batch)
    /// dimension runs at the size the file gives it, as TFLite interpreters do; any other
    /// dynamic dimension is refused (the error says which and what to do), as is a shape
    /// with a zero or negative dimension.
    pub fn fixed_shape(&self) -> Result<Vec<usize>, String> {
        let dynamic: Vec<usize> = self
            .shape_signature
            .iter()
            .flatten()
            .enumerate()
            .filter(|&(i, &d)| d < 0 && i > 0)
            .map(|(i, _)| i)
            .collect();
        if !dynamic.is_empty() || self.shape.iter().any(|&d| d <= 0) {
            return Err(format!(
                "`{}` has shape {:?} (signature {:?}) with dynamic dimension(s) {dynamic:?}; edgeqa runs TFLite \
                 models at fixed shapes (a dynamic batch runs at the file's size): export the model with a fixed size",
                self.name, self.shape, self.shape_signature
            ));
        }
        Ok(self.shape.iter().map(|&d| d as usize).collect())
    }
}

/// One operator of a subgraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Index into [`TfliteModel::operator_codes`] (checked by [`parse`]).
    pub opcode_index: u32,
    /// Input tensor indices (-1: an omitted optional input).
    pub inputs: Vec<i32>,
    /// Output tensor indices.
    pub outputs: Vec<i32>,
}

/// A subgraph: tensors, inputs, outputs and operators in execution order.
#[derive(Debug, Clone, PartialEq)]
pub struct Subgraph {
    /// Its name, if any.
    pub name: Option<String>,
    /// All its tensors.
    pub tensors: Vec<TensorDesc>,
    /// Indices of its input tensors.
    pub inputs: Vec<i32>,
    /// Indices of its output tensors.
    pub outputs: Vec<i32>,
    /// Its operators, in execution order.
    pub operators: Vec<Operator>,
}

/// A signature (the schema's `SignatureDef`): named inputs and outputs of one subgraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureDef {
    /// The signature key (e.g. `serving_default`; empty when absent).
    pub key: String,
    /// The subgraph it runs.
    pub subgraph_index: u32,
    /// Inputs: (name, tensor index in that subgraph).
    pub inputs: Vec<(String, u32)>,
    /// Outputs: (name, tensor index in that subgraph).
    pub outputs: Vec<(String, u32)>,
}

/// What [`parse`] reads of a TFLite model: everything but constant data and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TfliteModel {
    /// The schema version (3 for current models).
    pub version: u32,
    /// The model's description, if any.
    pub description: Option<String>,
    /// The operator code table that operators index.
    pub operator_codes: Vec<OperatorCode>,
    /// The subgraphs; subgraph 0 is the main one.
    pub subgraphs: Vec<Subgraph>,
    /// The signatures.
    pub signatures: Vec<SignatureDef>,
}

impl TfliteModel {
    /// The main subgraph (subgraph 0).
    pub fn main(&self) -> Result<&Subgraph, TfliteError> {
        self.subgraphs.first().ok_or(TfliteError::NoSubgraph)
    }

    /// Operator name → number of uses over all subgraphs, sorted by name.
    pub fn op_counts(&self) -> Vec<(String, usize)> {
        let mut counts = BTreeMap::<String, usize>::new();
        for op in self.subgraphs.iter().flat_map(|s| &s.operators) {
            let name = usize::try_from(op.opcode_index)
                .ok()
                .and_then(|i| self.operator_codes.get(i))
                .map_or_else(|| format!("OPCODE_INDEX_{}", op.opcode_index), OperatorCode::name);
            *counts.entry(name).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// The custom operators the model declares (its custom operator codes), in table order,
    /// without repeats.
    pub fn custom_ops(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for code in &self.operator_codes {
            if let OperatorCode::Custom { name, .. } = code
                && !out.contains(name)
            {
                out.push(name.clone());
            }
        }
        out
    }

    /// The main subgraph's input and output tensors, in order; an index outside its tensors is
    /// an error.
    pub fn io(&self) -> Result<(Vec<&TensorDesc>, Vec<&TensorDesc>), TfliteError> {
        let main = self.main()?;
        let pick = |list: &[i32], role: &str| -> Result<Vec<&TensorDesc>, TfliteError> {
            list.iter()
                .enumerate()
                .map(|(k, &i)| {
                    usize::try_from(i).ok().and_then(|i| main.tensors.get(i)).ok_or_else(|| {
                        TfliteError::IndexOutOfRange {
                            field: format!("subgraphs[0].{role}[{k}]"),
                            index: i64::from(i),
                            count: main.tensors.len(),
                        }
                    })
                })
                .collect()
        };
        Ok((pick(&main.inputs, "inputs")?, pick(&main.outputs, "outputs")?))
    }
}

impl Subgraph {
    /// For each tensor, whether it holds constant data (a weight): a tensor with a buffer that is
    /// neither an input of the subgraph nor written by any of its operators. (The buffers
    /// themselves are not read.)
    pub fn constants(&self) -> Vec<bool> {
        let mut written = vec![false; self.tensors.len()];
        let produced = self.operators.iter().flat_map(|op| &op.outputs).chain(&self.inputs);
        for &i in produced {
            if let Some(w) = usize::try_from(i).ok().and_then(|i| written.get_mut(i)) {
                *w = true;
            }
        }
        self.tensors.iter().zip(written).map(|(t, w)| !w && t.buffer != 0).collect()
    }
}

impl TfliteType {
    /// The edgeqa element type of this type; `None` for types edgeqa tensors do not carry.
    pub fn dtype(self) -> Option<crate::manifest::DType> {
        use crate::manifest::DType;
        Some(match self {
            TfliteType::F32 => DType::F32,
            TfliteType::I32 => DType::I32,
            TfliteType::I64 => DType::I64,
            TfliteType::U8 => DType::U8,
            TfliteType::I8 => DType::I8,
            TfliteType::Bool => DType::Bool,
            _ => return None,
        })
    }

    /// Bytes of one element (strings, resources and variants count 0; int4 counts 1).
    pub fn size(self) -> u64 {
        match self {
            TfliteType::F64 | TfliteType::I64 | TfliteType::U64 | TfliteType::Complex64 => 8,
            TfliteType::Complex128 => 16,
            TfliteType::F32 | TfliteType::I32 | TfliteType::U32 => 4,
            TfliteType::F16 | TfliteType::BF16 | TfliteType::I16 | TfliteType::U16 => 2,
            TfliteType::U8 | TfliteType::I8 | TfliteType::Bool | TfliteType::I4 => 1,
            _ => 0,
        }
    }
}

/// Reads a TFLite model's operators, tensors, subgraphs and signatures (not its buffers).
pub fn parse(bytes: &[u8]) -> Result<TfliteModel, TfliteError> {
    let Some(ident) = bytes.get(4..8) else { return Err(TfliteError::TooShort { len: bytes.len() }) };
    if ident != FILE_IDENTIFIER {
        return Err(TfliteError::NotTflite { found: ident.escape_ascii().to_string() });
    }
    let mut r = Reader::new(bytes);
    let root = r.at("root offset", |r| r.u32(0, "root offset"))?;
    let model = r.table(root as usize)?;
    let version = r.at("version", |r| r.scalar_u32(&model, 0, 0))?;
    let operator_codes = r.tables(&model, 1, "operator_codes", read_operator_code)?;
    let subgraphs = r.tables(&model, 2, "subgraphs", read_subgraph)?;
    let description = r.at("description", |r| r.string(&model, 3))?;
    // 4 (buffers), 5 (metadata_buffer) and 6 (metadata) are not read.
    let signatures = r.tables(&model, 7, "signature_defs", read_signature)?;
    for (s, sg) in subgraphs.iter().enumerate() {
        for (o, op) in sg.operators.iter().enumerate() {
            if op.opcode_index as usize >= operator_codes.len() {
                return Err(TfliteError::IndexOutOfRange {
                    field: format!("subgraphs[{s}].operators[{o}].opcode_index"),
                    index: i64::from(op.opcode_index),
                    count: operator_codes.len(),
                });
            }
        }
    }
    Ok(TfliteModel { version, description, operator_codes, subgraphs, signatures })
}

/// `OperatorCode {deprecated_builtin_code 0: byte, custom_code 1: string, version 2: int = 1,
/// builtin_code 3: int}`; the code is the larger of the two builtin codes, as TFLite takes it.
fn read_operator_code(r: &mut Reader<'_>, t: &Table) -> Result<OperatorCode, TfliteError> {
    let deprecated = r.at("deprecated_builtin_code", |r| r.scalar_i8(t, 0, 0))?;
    let builtin = r.at("builtin_code", |r| r.scalar_i32(t, 3, 0))?;
    let version = r.at("version", |r| r.scalar_i32(t, 2, 1))?;
    let code = builtin.max(i32::from(deprecated));
    if code != CUSTOM_CODE {
        return Ok(OperatorCode::Builtin { code, version });
    }
    match r.at("custom_code", |r| r.string(t, 1))? {
        Some(name) => Ok(OperatorCode::Custom { name, version }),
        None => Err(r.malformed("custom_code", "a CUSTOM operator code without its custom_code")),
    }
}

/// `SubGraph {tensors 0, inputs 1, outputs 2, operators 3, name 4}`.
fn read_subgraph(r: &mut Reader<'_>, t: &Table) -> Result<Subgraph, TfliteError> {
    Ok(Subgraph {
        tensors: r.tables(t, 0, "tensors", read_tensor)?,
        inputs: r.at("inputs", |r| r.i32s(t, 1))?.unwrap_or_default(),
        outputs: r.at("outputs", |r| r.i32s(t, 2))?.unwrap_or_default(),
        operators: r.tables(t, 3, "operators", read_operator)?,
        name: r.at("name", |r| r.string(t, 4))?,
    })
}

/// `Tensor {shape 0, type 1, buffer 2, name 3, quantization 4, .., shape_signature 7}`.
fn read_tensor(r: &mut Reader<'_>, t: &Table) -> Result<TensorDesc, TfliteError> {
    let quantized = r.at("quantization", |r| match r.offset(t, 4)? {
        // QuantizationParameters {min 0, max 1, scale 2: [float], ..}
        Some(q) => {
            let q = r.table(q)?;
            r.at("scale", |r| match r.offset(&q, 2)? {
                Some(v) => Ok(r.vector(v, 4)?.1 > 0),
                None => Ok(false),
            })
        }
        None => Ok(false),
    })?;
    Ok(TensorDesc {
        shape: r.at("shape", |r| r.i32s(t, 0))?.unwrap_or_default(),
        dtype: TfliteType::from_code(r.at("type", |r| r.scalar_i8(t, 1, 0))?),
        buffer: r.at("buffer", |r| r.scalar_u32(t, 2, 0))?,
        name: r.at("name", |r| r.string(t, 3))?.unwrap_or_default(),
        quantized,
        shape_signature: r.at("shape_signature", |r| r.i32s(t, 7))?,
    })
}

/// `Operator {opcode_index 0: uint, inputs 1: [int], outputs 2: [int], ..}`.
fn read_operator(r: &mut Reader<'_>, t: &Table) -> Result<Operator, TfliteError> {
    Ok(Operator {
        opcode_index: r.at("opcode_index", |r| r.scalar_u32(t, 0, 0))?,
        inputs: r.at("inputs", |r| r.i32s(t, 1))?.unwrap_or_default(),
        outputs: r.at("outputs", |r| r.i32s(t, 2))?.unwrap_or_default(),
    })
}

/// `SignatureDef {inputs 0: [TensorMap], outputs 1: [TensorMap], signature_key 2, ..,
/// subgraph_index 4}`.
fn read_signature(r: &mut Reader<'_>, t: &Table) -> Result<SignatureDef, TfliteError> {
    Ok(SignatureDef {
        inputs: r.tables(t, 0, "inputs", read_tensor_map)?,
        outputs: r.tables(t, 1, "outputs", read_tensor_map)?,
        key: r.at("signature_key", |r| r.string(t, 2))?.unwrap_or_default(),
        subgraph_index: r.at("subgraph_index", |r| r.scalar_u32(t, 4, 0))?,
    })
}

/// `TensorMap {name 0: string, tensor_index 1: uint}`.
fn read_tensor_map(r: &mut Reader<'_>, t: &Table) -> Result<(String, u32), TfliteError> {
    Ok((r.at("name", |r| r.string(t, 0))?.unwrap_or_default(), r.at("tensor_index", |r| r.scalar_u32(t, 1, 0))?))
}

/// Budget units one table costs: no table of a TFLite model takes fewer bytes with the offset
/// that reaches it, so a file without aliasing never runs out.
const TABLE_COST: usize = 16;

/// A step of the path to the field being read.
#[derive(Debug, Clone, Copy)]
enum Step {
    Field(&'static str),
    Index(usize),
}

/// A table: where it starts, its vtable and their sizes, all checked to lie inside the file.
#[derive(Debug, Clone, Copy)]
struct Table {
    pos: usize,
    vtable: usize,
    vtable_bytes: usize,
    table_bytes: usize,
}

/// Bounds-checked FlatBuffer reads over the file, with the path of the field being read (for
/// errors) and the decode budget.
struct Reader<'a> {
    buf: &'a [u8],
    path: Vec<Step>,
    spent: usize,
    limit: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, path: Vec::new(), spent: 0, limit: buf.len().saturating_mul(2).saturating_add(4096) }
    }

    /// Runs `f` with `step` appended to the path.
    fn with<T>(&mut self, step: Step, f: impl FnOnce(&mut Self) -> Result<T, TfliteError>) -> Result<T, TfliteError> {
        self.path.push(step);
        let out = f(self);
        self.path.pop();
        out
    }

    /// Runs `f` in field `name`.
    fn at<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, TfliteError>,
    ) -> Result<T, TfliteError> {
        self.with(Step::Field(name), f)
    }

    /// The path of the field being read, e.g. `subgraphs[0].tensors[3].shape`.
    fn field(&self) -> String {
        let mut s = String::new();
        for step in &self.path {
            match step {
                Step::Field(f) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(f);
                }
                Step::Index(i) => {
                    let _ = write!(s, "[{i}]");
                }
            }
        }
        if s.is_empty() { "model".into() } else { s }
    }

    fn malformed(&self, sub: &str, reason: impl Into<String>) -> TfliteError {
        let field = self.field();
        let field = if sub.is_empty() { field } else { format!("{field}.{sub}") };
        TfliteError::Malformed { field, reason: reason.into() }
    }

    fn out_of_bounds(&self, what: &'static str, offset: u64) -> TfliteError {
        TfliteError::OutOfBounds { field: self.field(), what, offset, len: self.buf.len() }
    }

    /// Charges `units` to the decode budget.
    fn charge(&mut self, units: usize) -> Result<(), TfliteError> {
        self.spent = self.spent.saturating_add(units);
        if self.spent > self.limit {
            return Err(TfliteError::TooMuchData { field: self.field(), limit: self.limit, len: self.buf.len() });
        }
        Ok(())
    }

    /// `n` bytes at `at`.
    fn bytes(&self, at: usize, n: usize, what: &'static str) -> Result<&'a [u8], TfliteError> {
        at.checked_add(n).and_then(|end| self.buf.get(at..end)).ok_or_else(|| self.out_of_bounds(what, at as u64))
    }

    fn array<const N: usize>(&self, at: usize, what: &'static str) -> Result<[u8; N], TfliteError> {
        <[u8; N]>::try_from(self.bytes(at, N, what)?).map_err(|_| self.out_of_bounds(what, at as u64))
    }

    fn u16(&self, at: usize, what: &'static str) -> Result<u16, TfliteError> {
        Ok(u16::from_le_bytes(self.array(at, what)?))
    }

    fn u32(&self, at: usize, what: &'static str) -> Result<u32, TfliteError> {
        Ok(u32::from_le_bytes(self.array(at, what)?))
    }

    /// The table at `pos`: its `soffset` leads to a vtable (before or after it) whose sizes are
    /// sane and which, like the table, lies inside the file.
    fn table(&mut self, pos: usize) -> Result<Table, TfliteError> {
        self.charge(TABLE_COST)?;
        let soffset = i32::from_le_bytes(self.array(pos, "table")?);
        // `pos` < file length <= isize::MAX, so neither conversion nor subtraction overflows.
        let vtable = pos as i64 - i64::from(soffset);
        let vtable = usize::try_from(vtable).ok().filter(|&v| v < self.buf.len()).ok_or_else(|| {
            self.malformed("", format!("the table at {pos} puts its vtable at {vtable}, outside the file"))
        })?;
        let vtable_bytes = usize::from(self.u16(vtable, "vtable size")?);
        let table_bytes = usize::from(self.u16(vtable + 2, "vtable's table size")?);
        if vtable_bytes < 4 || vtable_bytes % 2 != 0 {
            return Err(self.malformed("", format!("vtable at {vtable} has an invalid size of {vtable_bytes} bytes")));
        }
        if table_bytes < 4 {
            return Err(self.malformed("", format!("table at {pos} has an invalid size of {table_bytes} bytes")));
        }
        self.bytes(vtable, vtable_bytes, "vtable")?;
        self.bytes(pos, table_bytes, "table")?;
        Ok(Table { pos, vtable, vtable_bytes, table_bytes })
    }

    /// Where field `index` (`width` bytes) of `t` lies, `None` when the table omits it.
    fn slot(&self, t: &Table, index: usize, width: usize) -> Result<Option<usize>, TfliteError> {
        let entry = 4 + 2 * index;
        if entry + 2 > t.vtable_bytes {
            return Ok(None);
        }
        let off = usize::from(self.u16(t.vtable + entry, "vtable entry")?);
        if off == 0 {
            return Ok(None);
        }
        if off + width > t.table_bytes {
            return Err(self.malformed(
                "",
                format!("the field's {width} bytes at {off} run past its table's {} bytes", t.table_bytes),
            ));
        }
        Ok(Some(t.pos + off))
    }

    fn scalar_i8(&self, t: &Table, index: usize, default: i8) -> Result<i8, TfliteError> {
        match self.slot(t, index, 1)? {
            Some(at) => Ok(i8::from_le_bytes(self.array(at, "field")?)),
            None => Ok(default),
        }
    }

    fn scalar_i32(&self, t: &Table, index: usize, default: i32) -> Result<i32, TfliteError> {
        match self.slot(t, index, 4)? {
            Some(at) => Ok(i32::from_le_bytes(self.array(at, "field")?)),
            None => Ok(default),
        }
    }

    fn scalar_u32(&self, t: &Table, index: usize, default: u32) -> Result<u32, TfliteError> {
        match self.slot(t, index, 4)? {
            Some(at) => self.u32(at, "field"),
            None => Ok(default),
        }
    }

    /// Where the `uoffset` field `index` of `t` leads (inside the file), `None` when absent.
    fn offset(&self, t: &Table, index: usize) -> Result<Option<usize>, TfliteError> {
        let Some(at) = self.slot(t, index, 4)? else { return Ok(None) };
        let off = self.u32(at, "offset")?;
        let target = (at as u64).saturating_add(u64::from(off));
        match usize::try_from(target).ok().filter(|&p| p < self.buf.len()) {
            Some(p) => Ok(Some(p)),
            None => Err(self.out_of_bounds("offset target", target)),
        }
    }

    /// The vector at `at` of `elem` bytes per element: where its elements start and how many
    /// there are, checked to fit in the file and charged to the budget.
    fn vector(&mut self, at: usize, elem: usize) -> Result<(usize, usize), TfliteError> {
        let count = self.u32(at, "vector length")?;
        let start = at + 4;
        let available = self.buf.len().saturating_sub(start);
        let bytes = (count as usize).checked_mul(elem).filter(|&b| b <= available);
        let Some(bytes) = bytes else {
            return Err(TfliteError::VectorTooLong { field: self.field(), count, elem_bytes: elem, available });
        };
        self.charge(bytes)?;
        Ok((start, count as usize))
    }

    /// The string field `index` of `t` (UTF-8, NUL-terminated as FlatBuffers write it).
    fn string(&mut self, t: &Table, index: usize) -> Result<Option<String>, TfliteError> {
        let Some(at) = self.offset(t, index)? else { return Ok(None) };
        let (start, len) = self.vector(at, 1)?;
        let with_nul = self.bytes(start, len + 1, "string terminator")?;
        let (text, nul) = with_nul.split_at(len);
        if nul != [0] {
            return Err(self.malformed("", "the string lacks its NUL terminator"));
        }
        match std::str::from_utf8(text) {
            Ok(s) => Ok(Some(s.to_string())),
            Err(_) => Err(TfliteError::NotUtf8 { field: self.field() }),
        }
    }

    /// The `[int]` field `index` of `t`.
    fn i32s(&mut self, t: &Table, index: usize) -> Result<Option<Vec<i32>>, TfliteError> {
        let Some(at) = self.offset(t, index)? else { return Ok(None) };
        let (start, count) = self.vector(at, 4)?;
        let bytes = self.bytes(start, count * 4, "vector")?;
        Ok(Some(bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
    }

    /// The `[Table]` field `index` of `t` (named `name`), each element read by `read`.
    fn tables<T>(
        &mut self,
        t: &Table,
        index: usize,
        name: &'static str,
        read: fn(&mut Reader<'a>, &Table) -> Result<T, TfliteError>,
    ) -> Result<Vec<T>, TfliteError> {
        self.at(name, |r| {
            let Some(at) = r.offset(t, index)? else { return Ok(Vec::new()) };
            let (start, count) = r.vector(at, 4)?;
            let mut out = Vec::with_capacity(count);
            for i in 0..count {
                let item = r.with(Step::Index(i), |r| {
                    let elem = start + 4 * i;
                    let off = r.u32(elem, "offset")?;
                    let target = (elem as u64).saturating_add(u64::from(off));
                    let pos = usize::try_from(target)
                        .ok()
                        .filter(|&p| p < r.buf.len())
                        .ok_or_else(|| r.out_of_bounds("offset target", target))?;
                    let table = r.table(pos)?;
                    read(r, &table)
                })?;
                out.push(item);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A field of a test table.
    #[derive(Clone)]
    enum F {
        I8(i8),
        I32(i32),
        U32(u32),
        Str(&'static str),
        Ints(Vec<i32>),
        Floats(Vec<f32>),
        Table(T),
        Tables(Vec<T>),
        /// A vector of `n` offsets that all lead to one table.
        Same(T, usize),
    }

    /// A test table: (field index, value).
    #[derive(Clone)]
    struct T(Vec<(usize, F)>);

    /// A test-only FlatBuffer writer, laying objects out front to back (children after their
    /// parents, as uoffsets are unsigned). `vectors` holds the position of every offset that leads
    /// to a vector or string, `tables` of every offset that leads to a table.
    #[derive(Default)]
    struct Fb {
        buf: Vec<u8>,
        vectors: Vec<usize>,
        tables: Vec<usize>,
    }

    impl Fb {
        fn model(root: &T) -> Fb {
            let mut b = Fb { buf: vec![0, 0, 0, 0, b'T', b'F', b'L', b'3'], ..Fb::default() };
            let at = b.table(root);
            b.put(0, at as u32);
            b
        }

        fn put(&mut self, at: usize, v: u32) {
            self.buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }

        fn pad(&mut self) {
            while !self.buf.len().is_multiple_of(4) {
                self.buf.push(0);
            }
        }

        fn table(&mut self, t: &T) -> usize {
            self.pad();
            let slots = t.0.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
            let vt = self.buf.len();
            self.buf.extend(((4 + 2 * slots) as u16).to_le_bytes());
            self.buf.extend(vec![0; 2 + 2 * slots]);
            self.pad();
            let pos = self.buf.len();
            self.buf.extend(((pos - vt) as i32).to_le_bytes());
            let mut later = Vec::new();
            for (i, f) in &t.0 {
                let off = (self.buf.len() - pos) as u16;
                self.buf[vt + 4 + 2 * i..vt + 6 + 2 * i].copy_from_slice(&off.to_le_bytes());
                match f {
                    F::I8(v) => self.buf.push(*v as u8),
                    F::I32(v) => self.buf.extend(v.to_le_bytes()),
                    F::U32(v) => self.buf.extend(v.to_le_bytes()),
                    _ => {
                        later.push((self.buf.len(), f));
                        self.buf.extend([0; 4]);
                    }
                }
            }
            let size = (self.buf.len() - pos) as u16;
            self.buf[vt + 2..vt + 4].copy_from_slice(&size.to_le_bytes());
            for (slot, f) in later {
                let at = self.child(f);
                self.put(slot, (at - slot) as u32);
                let list = if matches!(f, F::Table(_)) { &mut self.tables } else { &mut self.vectors };
                list.push(slot);
            }
            pos
        }

        fn child(&mut self, f: &F) -> usize {
            self.pad();
            let at = self.buf.len();
            let tables = |b: &mut Fb, ts: &[&T]| {
                b.buf.extend((ts.len() as u32).to_le_bytes());
                let first = b.buf.len();
                b.buf.extend(vec![0; 4 * ts.len()]);
                let mut made: Vec<(*const T, usize)> = Vec::new();
                for (k, t) in ts.iter().enumerate() {
                    let pos = match made.iter().find(|(p, _)| std::ptr::eq(*p, *t)) {
                        Some(&(_, pos)) => pos,
                        None => b.table(t),
                    };
                    made.push((*t as *const T, pos));
                    let slot = first + 4 * k;
                    b.put(slot, (pos - slot) as u32);
                    b.tables.push(slot);
                }
            };
            match f {
                F::Str(s) => {
                    self.buf.extend((s.len() as u32).to_le_bytes());
                    self.buf.extend(s.as_bytes());
                    self.buf.push(0);
                }
                F::Ints(v) => {
                    self.buf.extend((v.len() as u32).to_le_bytes());
                    v.iter().for_each(|x| self.buf.extend(x.to_le_bytes()));
                }
                F::Floats(v) => {
                    self.buf.extend((v.len() as u32).to_le_bytes());
                    v.iter().for_each(|x| self.buf.extend(x.to_le_bytes()));
                }
                F::Table(t) => return self.table(t),
                F::Tables(ts) => tables(self, &ts.iter().collect::<Vec<_>>()),
                F::Same(t, n) => tables(self, &vec![t; *n]),
                F::I8(_) | F::I32(_) | F::U32(_) => unreachable!("scalars are inline"),
            }
            at
        }
    }

    fn tensor(name: &'static str, shape: Vec<i32>, dtype: i8, buffer: u32) -> T {
        T(vec![(0, F::Ints(shape)), (2, F::U32(buffer)), (3, F::Str(name)), (1, F::I8(dtype))])
    }

    fn op(opcode: u32, inputs: Vec<i32>, outputs: Vec<i32>) -> T {
        T(vec![(0, F::U32(opcode)), (1, F::Ints(inputs)), (2, F::Ints(outputs))])
    }

    fn tensor_map(name: &'static str, index: u32) -> T {
        T(vec![(0, F::Str(name)), (1, F::U32(index))])
    }

    /// One subgraph of two tensors, an ADD and a custom operator, and a signature.
    fn model_table() -> T {
        let mut input = tensor("input", vec![1, 4], 0, 0);
        input.0.push((7, F::Ints(vec![-1, 4])));
        let mut output = tensor("output", vec![1, 4], 9, 1);
        output.0.push((4, F::Table(T(vec![(2, F::Floats(vec![0.5]))]))));
        let subgraph = T(vec![
            (0, F::Tables(vec![input, output])),
            (1, F::Ints(vec![0])),
            (2, F::Ints(vec![1])),
            (3, F::Tables(vec![op(0, vec![0, 0], vec![1]), op(1, vec![1], vec![1])])),
            (4, F::Str("main")),
        ]);
        let add = T(vec![(3, F::I32(0)), (0, F::I8(0))]);
        let custom = T(vec![(1, F::Str("MyOp")), (2, F::I32(3)), (0, F::I8(32))]);
        let signature = T(vec![
            (0, F::Tables(vec![tensor_map("x", 0)])),
            (1, F::Tables(vec![tensor_map("y", 1)])),
            (2, F::Str("serving_default")),
            (4, F::U32(0)),
        ]);
        T(vec![
            (0, F::U32(3)),
            (1, F::Tables(vec![add, custom])),
            (2, F::Tables(vec![subgraph])),
            (3, F::Str("edgeqa test")),
            (7, F::Tables(vec![signature])),
        ])
    }

    fn valid() -> Vec<u8> {
        Fb::model(&model_table()).buf
    }

    #[test]
    fn reads_every_field() {
        let m = parse(&valid()).unwrap();
        assert_eq!(m.version, 3);
        assert_eq!(m.description.as_deref(), Some("edgeqa test"));
        assert_eq!(
            m.operator_codes,
            vec![
                OperatorCode::Builtin { code: 0, version: 1 },
                OperatorCode::Custom { name: "MyOp".into(), version: 3 }
            ]
        );
        let sg = m.main().unwrap();
        assert_eq!(m.subgraphs.len(), 1);
        assert_eq!(sg.name.as_deref(), Some("main"));
        assert_eq!((sg.inputs.as_slice(), sg.outputs.as_slice()), (&[0][..], &[1][..]));
        let want = |name: &str, dtype, buffer, quantized, sig: Option<Vec<i32>>| TensorDesc {
            name: name.into(),
            shape: vec![1, 4],
            shape_signature: sig,
            dtype,
            buffer,
            quantized,
        };
        assert_eq!(
            sg.tensors,
            vec![
                want("input", TfliteType::F32, 0, false, Some(vec![-1, 4])),
                want("output", TfliteType::I8, 1, true, None)
            ]
        );
        assert_eq!(
            sg.operators,
            vec![
                Operator { opcode_index: 0, inputs: vec![0, 0], outputs: vec![1] },
                Operator { opcode_index: 1, inputs: vec![1], outputs: vec![1] }
            ]
        );
        assert_eq!(
            m.signatures,
            vec![SignatureDef {
                key: "serving_default".into(),
                subgraph_index: 0,
                inputs: vec![("x".into(), 0)],
                outputs: vec![("y".into(), 1)],
            }]
        );
        assert_eq!(m.op_counts(), vec![("ADD".to_string(), 1), ("CUSTOM:MyOp".to_string(), 1)]);
        assert_eq!(m.custom_ops(), vec!["MyOp".to_string()]);
        let (ins, outs) = m.io().unwrap();
        assert_eq!((ins[0].name.as_str(), outs[0].name.as_str()), ("input", "output"));
        assert_eq!((ins.len(), outs.len()), (1, 1));
    }

    #[test]
    fn builtin_names_follow_the_schema() {
        let known = [
            (0, "ADD"),
            (3, "CONV_2D"),
            (4, "DEPTHWISE_CONV_2D"),
            (6, "DEQUANTIZE"),
            (9, "FULLY_CONNECTED"),
            (22, "RESHAPE"),
            (25, "SOFTMAX"),
            (32, "CUSTOM"),
            (40, "MEAN"),
            (54, "PRELU"),
            (114, "QUANTIZE"),
            (117, "HARD_SWISH"),
            (126, "BATCH_MATMUL"),
            (127, "PLACEHOLDER_FOR_GREATER_OP_CODES"),
            (150, "GELU"),
            (160, "BITWISE_XOR"),
            (206, "STABLEHLO_COMPOSITE"),
        ];
        for (code, name) in known {
            assert_eq!(BUILTIN_OPS[code], name);
            assert_eq!(OperatorCode::Builtin { code: code as i32, version: 1 }.name(), name);
        }
        assert_eq!(BUILTIN_OPS.len(), 207);
        let mut sorted = BUILTIN_OPS.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), BUILTIN_OPS.len(), "names are unique");
        assert_eq!(OperatorCode::Builtin { code: 999, version: 1 }.name(), "BUILTIN_999");
        assert_eq!(OperatorCode::Builtin { code: -3, version: 1 }.name(), "BUILTIN_-3");
        assert_eq!(OperatorCode::Custom { name: "X".into(), version: 1 }.name(), "CUSTOM:X");
    }

    #[test]
    fn tensor_types_follow_the_schema() {
        let all = [
            TfliteType::F32,
            TfliteType::F16,
            TfliteType::I32,
            TfliteType::U8,
            TfliteType::I64,
            TfliteType::String,
            TfliteType::Bool,
            TfliteType::I16,
            TfliteType::Complex64,
            TfliteType::I8,
            TfliteType::F64,
            TfliteType::Complex128,
            TfliteType::U64,
            TfliteType::Resource,
            TfliteType::Variant,
            TfliteType::U32,
            TfliteType::U16,
            TfliteType::I4,
            TfliteType::BF16,
        ];
        for (code, t) in all.into_iter().enumerate() {
            assert_eq!(TfliteType::from_code(code as i8), t);
        }
        assert_eq!(TfliteType::from_code(19), TfliteType::Unknown(19));
        assert_eq!(TfliteType::from_code(-1), TfliteType::Unknown(-1));
    }

    /// Only operator codes: the builtin code is the larger of the two fields.
    #[test]
    fn builtin_code_is_the_larger_of_the_two_fields() {
        let codes = vec![
            T(vec![(0, F::I8(127)), (3, F::I32(150))]), // extended code: GELU
            T(vec![(0, F::I8(4))]),                     // old writer: DEPTHWISE_CONV_2D
            T(vec![(0, F::I8(3)), (3, F::I32(3)), (2, F::I32(2))]),
            T(vec![]), // both absent: ADD
        ];
        let m = parse(&Fb::model(&T(vec![(1, F::Tables(codes))])).buf).unwrap();
        let names: Vec<_> = m.operator_codes.iter().map(OperatorCode::name).collect();
        assert_eq!(names, ["GELU", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD"]);
        assert_eq!(m.operator_codes[2], OperatorCode::Builtin { code: 3, version: 2 });
        assert_eq!(m.main(), Err(TfliteError::NoSubgraph));
        assert_eq!(m.io().unwrap_err(), TfliteError::NoSubgraph);
        assert!(m.op_counts().is_empty() && m.custom_ops().is_empty());
    }

    #[test]
    fn refuses_other_files() {
        let mut b = valid();
        b[4..8].copy_from_slice(b"ONNX");
        let e = parse(&b).unwrap_err();
        assert!(matches!(e, TfliteError::NotTflite { .. }));
        assert!(e.to_string().starts_with("not a TFLite model"), "{e}");
        assert!(e.to_string().contains("\"ONNX\""), "{e}");
        assert_eq!(parse(b"\x08\0\0\0TFL").unwrap_err(), TfliteError::TooShort { len: 7 });
        assert!(parse(&[]).is_err());
        assert!(parse(b"\x08\0\0\0\xff\x00TF").unwrap_err().to_string().contains("\\xff\\x00TF"));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = valid();
        for n in 0..b.len() {
            assert!(parse(&b[..n]).is_err(), "a prefix of {n} of {} bytes parsed", b.len());
        }
        // Trailing bytes (e.g. buffers after the FlatBuffer) are fine.
        let mut longer = b.clone();
        longer.extend([0xAB; 13]);
        assert_eq!(parse(&longer).unwrap(), parse(&b).unwrap());
    }

    #[test]
    fn offsets_outside_the_file_are_errors() {
        let fb = Fb::model(&model_table());
        let len = fb.buf.len();
        let mut b = fb.buf.clone();
        b[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        assert!(matches!(parse(&b), Err(TfliteError::Malformed { .. } | TfliteError::OutOfBounds { .. })));
        for &slot in fb.vectors.iter().chain(&fb.tables) {
            for bad in [(len - slot) as u32, u32::MAX, 0x8000_0000] {
                let mut b = fb.buf.clone();
                b[slot..slot + 4].copy_from_slice(&bad.to_le_bytes());
                let e = parse(&b).unwrap_err();
                assert!(matches!(e, TfliteError::OutOfBounds { what: "offset target", .. }), "{e}");
            }
        }
        // The error names the field.
        let key = find(&fb.buf, b"serving_default") - 4;
        let slot = *fb.vectors.iter().find(|&&s| target(&fb.buf, s) == key).unwrap();
        let mut b = fb.buf.clone();
        b[slot..slot + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&b).unwrap_err().to_string().contains("signature_defs[0].signature_key"));
    }

    #[test]
    fn vectors_longer_than_the_file_are_errors() {
        let fb = Fb::model(&model_table());
        for &slot in &fb.vectors {
            let target = target(&fb.buf, slot);
            for bad in [u32::MAX, fb.buf.len() as u32, 0x4000_0000] {
                let mut b = fb.buf.clone();
                b[target..target + 4].copy_from_slice(&bad.to_le_bytes());
                match parse(&b) {
                    Err(TfliteError::VectorTooLong { count, .. }) => assert_eq!(count, bad),
                    other => panic!("vector at {target} with {bad} elements: {other:?}"),
                }
            }
        }
        let mut b = fb.buf.clone();
        let shape = find(&b, &[2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]); // the shape signature [-1, 4]
        b[shape..shape + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
        let e = parse(&b).unwrap_err().to_string();
        assert!(e.contains("subgraphs[0].tensors[0].shape_signature: 1000000 elements of 4 bytes"), "{e}");
    }

    /// Where the offset at `slot` leads.
    fn target(b: &[u8], slot: usize) -> usize {
        slot + u32::from_le_bytes(b[slot..slot + 4].try_into().unwrap()) as usize
    }

    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).position(|w| w == needle).expect("pattern in the model")
    }

    #[test]
    fn bad_soffsets_and_vtables_are_errors() {
        let b = valid();
        let root = u32::from_le_bytes(b[0..4].try_into().unwrap()) as usize;
        let set = |soffset: i32| {
            let mut b = b.clone();
            b[root..root + 4].copy_from_slice(&soffset.to_le_bytes());
            parse(&b)
        };
        for soffset in [root as i32 + 1, i32::MAX, i32::MIN, -(b.len() as i32), 0] {
            assert!(set(soffset).is_err(), "soffset {soffset}");
        }
        assert!(set(root as i32 + 1).unwrap_err().to_string().contains("outside the file"));
        // A vtable of odd size, and one shorter than its header.
        for vt_size in [5u16, 2, 0] {
            let mut b = b.clone();
            let vt = root - i32::from_le_bytes(b[root..root + 4].try_into().unwrap()) as usize;
            b[vt..vt + 2].copy_from_slice(&vt_size.to_le_bytes());
            assert!(matches!(parse(&b), Err(TfliteError::Malformed { .. })), "vtable size {vt_size}");
        }
        // A field offset past the table's own size.
        let mut b = b.clone();
        let vt = root - i32::from_le_bytes(b[root..root + 4].try_into().unwrap()) as usize;
        b[vt + 4..vt + 6].copy_from_slice(&0x7ff0u16.to_le_bytes());
        let e = parse(&b).unwrap_err().to_string();
        assert!(e.contains("version") && e.contains("run past its table"), "{e}");
    }

    /// A vtable after its table (negative soffset), as deduplicating writers produce, is fine.
    #[test]
    fn vtables_after_their_table_are_read() {
        // Table at 8: soffset -12 → vtable at 20: 6 bytes of vtable, 8 bytes of table, field 0 at 4.
        let mut b = vec![8, 0, 0, 0, b'T', b'F', b'L', b'3'];
        b.extend((-12i32).to_le_bytes());
        b.extend(7u32.to_le_bytes());
        b.extend([0; 4]);
        b.extend([6, 0, 8, 0, 4, 0]);
        let m = parse(&b).unwrap();
        assert_eq!(m.version, 7);
        assert!(m.subgraphs.is_empty());
    }

    #[test]
    fn reads_are_alignment_independent() {
        let b = valid();
        // One byte inserted after the header and the root offset moved past it: every object
        // now lies at an odd address, every relative offset still holds.
        let mut odd = b[..8].to_vec();
        odd.push(0xEE);
        odd.extend(&b[8..]);
        let root = u32::from_le_bytes(b[0..4].try_into().unwrap()) + 1;
        odd[0..4].copy_from_slice(&root.to_le_bytes());
        assert_eq!(parse(&odd).unwrap(), parse(&b).unwrap());
        // The root offset off by one or three lands inside other data.
        for delta in [1, 3] {
            let mut b = b.clone();
            let root = u32::from_le_bytes(b[0..4].try_into().unwrap()) + delta;
            b[0..4].copy_from_slice(&root.to_le_bytes());
            assert!(parse(&b).is_err(), "root offset moved by {delta}");
        }
    }

    #[test]
    fn other_faults_name_their_field() {
        let mut t = model_table();
        // opcode_index 5 of 2 operator codes.
        let F::Tables(sgs) = &mut t.0[2].1 else { unreachable!() };
        let F::Tables(ops) = &mut sgs[0].0[3].1 else { unreachable!() };
        ops[1].0[0].1 = F::U32(5);
        let e = parse(&Fb::model(&t).buf).unwrap_err();
        assert_eq!(
            e,
            TfliteError::IndexOutOfRange { field: "subgraphs[0].operators[1].opcode_index".into(), index: 5, count: 2 }
        );
        // A custom operator code without its name.
        let codes = T(vec![(1, F::Tables(vec![T(vec![(3, F::I32(32))])]))]);
        let e = parse(&Fb::model(&codes).buf).unwrap_err().to_string();
        assert!(e.contains("operator_codes[0].custom_code"), "{e}");
        // A tensor name that is not UTF-8.
        let mut b = valid();
        let at = find(&b, b"output");
        b[at] = 0xff;
        assert_eq!(parse(&b).unwrap_err(), TfliteError::NotUtf8 { field: "subgraphs[0].tensors[1].name".into() });
        // A string without its terminator.
        let mut b = valid();
        let at = find(&b, b"main\0");
        b[at + 4] = b'!';
        assert!(parse(&b).unwrap_err().to_string().contains("subgraphs[0].name: the string lacks its NUL"));
        // Graph inputs and outputs outside the tensors.
        let mut t = model_table();
        let F::Tables(sgs) = &mut t.0[2].1 else { unreachable!() };
        sgs[0].0[2].1 = F::Ints(vec![1, 2]);
        let m = parse(&Fb::model(&t).buf).unwrap();
        assert_eq!(
            m.io().unwrap_err(),
            TfliteError::IndexOutOfRange { field: "subgraphs[0].outputs[1]".into(), index: 2, count: 2 }
        );
        let F::Tables(sgs) = &mut t.0[2].1 else { unreachable!() };
        sgs[0].0[1].1 = F::Ints(vec![-1]);
        assert!(matches!(parse(&Fb::model(&t).buf).unwrap().io(), Err(TfliteError::IndexOutOfRange { index: -1, .. })));
    }

    /// Buffers (field 4) and metadata (5, 6) are never read, whatever their offsets say.
    #[test]
    fn buffers_and_metadata_are_skipped() {
        let mut t = model_table();
        t.0.extend([(4, F::U32(0xffff_fff0)), (5, F::U32(u32::MAX)), (6, F::U32(7))]);
        assert_eq!(parse(&Fb::model(&t).buf).unwrap(), parse(&valid()).unwrap());
    }

    /// A tensors vector whose entries all lead to one tensor with a long shape decodes to far
    /// more than the file holds: refused before it is allocated.
    #[test]
    fn aliased_data_is_bounded() {
        let big = tensor("t", vec![1; 2000], 0, 0);
        let t = T(vec![(2, F::Tables(vec![T(vec![(0, F::Same(big.clone(), 400))])]))]);
        let b = Fb::model(&t).buf;
        let e = parse(&b).unwrap_err();
        assert!(matches!(e, TfliteError::TooMuchData { .. }), "{e}");
        assert!(e.to_string().contains("subgraphs[0].tensors["), "{e}");
        // A few repeats stay within the budget.
        let t = T(vec![(2, F::Tables(vec![T(vec![(0, F::Same(big, 2))])]))]);
        assert_eq!(parse(&Fb::model(&t).buf).unwrap().subgraphs[0].tensors.len(), 2);
    }

    /// What a parsed model must satisfy, however odd the bytes.
    fn check(bytes: &[u8]) {
        if let Ok(m) = parse(bytes) {
            let uses: usize = m.op_counts().iter().map(|(_, n)| n).sum();
            assert_eq!(uses, m.subgraphs.iter().map(|s| s.operators.len()).sum::<usize>());
            let _ = (m.custom_ops(), m.io());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..1024), tfl3 in any::<bool>()) {
            if tfl3 && bytes.len() >= 8 {
                bytes[4..8].copy_from_slice(FILE_IDENTIFIER);
            }
            check(&bytes);
        }

        #[test]
        fn mutations_of_a_valid_model_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
            let mut b = valid();
            for (at, v) in edits {
                let n = b.len();
                b[at % n] = v;
            }
            check(&b);
        }

        #[test]
        fn every_single_byte_mutation_is_safe(at in 0usize..4096, v in any::<u8>()) {
            let mut b = valid();
            let n = b.len();
            b[at % n] = v;
            check(&b);
        }
    }
}
