//! A small owned tensor type that crosses the backend boundary, plus NumPy `.npy` I/O.

use std::path::Path;

use thiserror::Error;

use crate::manifest::{DType, TensorInfo};

/// Deepest bracket nesting accepted in a `.npy` header. NumPy's headers nest at most three deep
/// (a structured dtype's list of tuples); the header parser npyz uses takes time exponential in
/// the depth of unclosed brackets, so a 300-byte file could stall it for minutes.
const MAX_NPY_HEADER_NESTING: usize = 8;

/// The header text of a `.npy` file: the bytes after the magic, version and length fields, as
/// many as the length field says and the file holds (empty when there is none to find).
fn npy_header(bytes: &[u8]) -> &[u8] {
    let (start, len): (usize, _) = match bytes.get(6) {
        Some(1) => (10, bytes.get(8..10).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))),
        Some(2 | 3) => (12, bytes.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)),
        _ => return &[],
    };
    let end = start.saturating_add(len.unwrap_or(0)).min(bytes.len());
    bytes.get(start..end).unwrap_or_default()
}

/// Deepest nesting of `(`, `[` and `{` in a `.npy` header (0 when there is none to find).
fn npy_header_nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for &b in npy_header(bytes) {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Checks the `shape` of a `.npy` header before npyz sees it: npyz multiplies the dimensions
/// unchecked (a crafted shape overflows, which panics in a debug build and wraps silently in a
/// release one), and a shape must not promise more elements than the file's bytes can hold.
/// A header that does not parse is left to npyz, which says what is wrong with it.
fn check_npy_shape(bytes: &[u8]) -> Result<(), String> {
    let header = npy_header(bytes);
    let header = header.strip_suffix(b"\n").unwrap_or(header);
    let Some(py_literal::Value::Dict(entries)) =
        std::str::from_utf8(header).ok().and_then(|text| text.parse::<py_literal::Value>().ok())
    else {
        return Ok(());
    };
    for (key, value) in &entries {
        if !matches!(key, py_literal::Value::String(k) if k == "shape") {
            continue;
        }
        let (py_literal::Value::Tuple(dims) | py_literal::Value::List(dims)) = value else {
            continue;
        };
        let mut nonzero: u64 = 1;
        let mut empty = false;
        for dim in dims {
            let py_literal::Value::Integer(dim) = dim else { continue };
            // Negative dimensions and ones past u64 are npyz's to refuse.
            let Ok(dim) = dim.to_string().parse::<u64>() else { continue };
            if dim == 0 {
                empty = true;
                continue;
            }
            nonzero = nonzero
                .checked_mul(dim)
                .filter(|&n| n <= (usize::MAX / 16) as u64)
                .ok_or_else(|| format!("the shape {value} has more elements than memory can hold"))?;
        }
        if !empty && nonzero > bytes.len() as u64 {
            return Err(format!(
                "the shape {value} has {nonzero} elements, more than the file's {} bytes can hold",
                bytes.len()
            ));
        }
    }
    Ok(())
}

/// Element storage of a [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    Bool(Vec<bool>),
}

/// A dense row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

/// Tensor construction and `.npy` errors.
#[derive(Debug, Error)]
pub enum TensorError {
    #[error("{origin}: shape {shape:?} needs {expected} elements, got {got}")]
    ElementCount { origin: String, shape: Vec<usize>, expected: usize, got: usize },
    #[error("{origin}: cannot read .npy: {reason}")]
    NpyRead { origin: String, reason: String },
    #[error("{origin}: .npy dtype `{dtype}` is not supported (use float32, int64, int32, uint8, int8 or bool)")]
    NpyDType { origin: String, dtype: String },
    #[error("{origin}: cannot write .npy: {reason}")]
    NpyWrite { origin: String, reason: String },
    #[error("{origin}: expected {expected} {want_shape:?}, got {got} {got_shape:?}")]
    Mismatch {
        origin: String,
        expected: &'static str,
        want_shape: Vec<usize>,
        got: &'static str,
        got_shape: Vec<usize>,
    },
}

impl Tensor {
    /// An f32 tensor; the element count must match the shape.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, TensorData::F32(data))
    }

    /// An i64 tensor; the element count must match the shape.
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, TensorData::I64(data))
    }

    /// Any tensor; the element count must match the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, TensorError> {
        let expected: usize = shape.iter().product();
        let t = Tensor { shape, data };
        let got = t.len();
        if got != expected {
            return Err(TensorError::ElementCount { origin: "tensor".into(), shape: t.shape, expected, got });
        }
        Ok(t)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match &self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
            TensorData::U8(_) => DType::U8,
            TensorData::I8(_) => DType::I8,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    /// The f32 elements, if this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Every element as f64 (booleans as 0 and 1), for statistics and comparisons.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// Checks dtype and shape against a manifest entry; `origin` names the tensor in the error.
    pub fn check(&self, info: &TensorInfo, origin: &str) -> Result<(), TensorError> {
        if self.dtype() != info.dtype || self.shape != info.shape {
            return Err(TensorError::Mismatch {
                origin: origin.to_string(),
                expected: info.dtype.name(),
                want_shape: info.shape.clone(),
                got: self.dtype().name(),
                got_shape: self.shape.clone(),
            });
        }
        Ok(())
    }

    /// Reads a C-order `.npy` file.
    pub fn read_npy(path: &Path) -> Result<Tensor, TensorError> {
        let origin = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|e| TensorError::NpyRead { origin: origin.clone(), reason: e.to_string() })?;
        Tensor::from_npy_bytes(&bytes, &origin)
    }

    /// Parses the bytes of a C-order `.npy` file; `origin` names it in errors.
    pub fn from_npy_bytes(bytes: &[u8], origin: &str) -> Result<Tensor, TensorError> {
        let origin = origin.to_string();
        let err = |reason: String| TensorError::NpyRead { origin: origin.clone(), reason };
        if npy_header_nesting(bytes) > MAX_NPY_HEADER_NESTING {
            return Err(err(format!(
                "the header nests brackets more than {MAX_NPY_HEADER_NESTING} deep; it is not a header NumPy writes"
            )));
        }
        check_npy_shape(bytes).map_err(err)?;
        let npy = npyz::NpyFile::new(bytes).map_err(|e| err(e.to_string()))?;
        if npy.order() != npyz::Order::C {
            return Err(err("Fortran-order arrays are not supported; save with np.ascontiguousarray".into()));
        }
        let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
        let descr = npy.dtype().descr();
        let data = match descr.as_str() {
            "'<f4'" => TensorData::F32(npy.into_vec().map_err(|e| err(e.to_string()))?),
            "'<i8'" => TensorData::I64(npy.into_vec().map_err(|e| err(e.to_string()))?),
            "'<i4'" => TensorData::I32(npy.into_vec().map_err(|e| err(e.to_string()))?),
            "'|u1'" => TensorData::U8(npy.into_vec().map_err(|e| err(e.to_string()))?),
            "'|i1'" => TensorData::I8(npy.into_vec().map_err(|e| err(e.to_string()))?),
            "'|b1'" => TensorData::Bool(npy.into_vec().map_err(|e| err(e.to_string()))?),
            other => return Err(TensorError::NpyDType { origin, dtype: other.trim_matches('\'').to_string() }),
        };
        let t = Tensor { shape, data };
        let expected: usize = t.shape.iter().product();
        let got = t.len();
        if got != expected {
            return Err(TensorError::ElementCount { origin, shape: t.shape, expected, got });
        }
        Ok(t)
    }

    /// Writes a C-order `.npy` file.
    pub fn write_npy(&self, path: &Path) -> Result<(), TensorError> {
        let origin = path.display().to_string();
        let err = |e: std::io::Error| TensorError::NpyWrite { origin: origin.clone(), reason: e.to_string() };
        let shape: Vec<u64> = self.shape.iter().map(|&d| d as u64).collect();
        let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
        fn put<T: npyz::Serialize + npyz::AutoSerialize + Copy, W: std::io::Write>(
            w: W,
            shape: &[u64],
            data: &[T],
        ) -> std::io::Result<()> {
            use npyz::WriterBuilder;
            let mut writer = npyz::WriteOptions::new().default_dtype().shape(shape).writer(w).begin_nd()?;
            writer.extend(data.iter().copied())?;
            writer.finish()
        }
        match &self.data {
            TensorData::F32(v) => put(file, &shape, v),
            TensorData::I64(v) => put(file, &shape, v),
            TensorData::I32(v) => put(file, &shape, v),
            TensorData::U8(v) => put(file, &shape, v),
            TensorData::I8(v) => put(file, &shape, v),
            TensorData::Bool(v) => put(file, &shape, v),
        }
        .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_every_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            Tensor::new(vec![2, 3], TensorData::F32(vec![0.5, -1.0, 2.0, 3.0, 4.0, f32::MAX])).unwrap(),
            Tensor::new(vec![3], TensorData::I64(vec![1, -2, i64::MAX])).unwrap(),
            Tensor::new(vec![1, 2], TensorData::I32(vec![7, -7])).unwrap(),
            Tensor::new(vec![2], TensorData::U8(vec![0, 255])).unwrap(),
            Tensor::new(vec![2], TensorData::I8(vec![-128, 127])).unwrap(),
            Tensor::new(vec![2], TensorData::Bool(vec![true, false])).unwrap(),
        ];
        for (i, t) in cases.iter().enumerate() {
            let p = dir.path().join(format!("{i}.npy"));
            t.write_npy(&p).unwrap();
            assert_eq!(&Tensor::read_npy(&p).unwrap(), t);
        }
    }

    #[test]
    fn element_count_is_checked() {
        assert!(Tensor::f32(vec![2, 2], vec![1.0; 3]).is_err());
    }

    #[test]
    fn deeply_nested_npy_header_is_refused_at_once() {
        // Found by the `npy` fuzz target: npyz's header parser took over 15 s on this 300-byte file.
        let mut header = b"{".to_vec();
        header.extend([b'['; 70]);
        header.extend_from_slice(b"'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }");
        header.resize(118, b' ');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend((0..12u32).flat_map(|v| v.to_le_bytes()));
        let t = std::time::Instant::now();
        let e = Tensor::from_npy_bytes(&bytes, "deep.npy").unwrap_err().to_string();
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert!(e.starts_with("deep.npy: cannot read .npy: the header nests brackets more than 8 deep"), "{e}");
        // What NumPy writes, structured dtypes included, stays well within the limit.
        let ok = b"{'descr': [('a', '<f4', (2,)), ('b', [('c', '<i4')])], 'fortran_order': False, 'shape': (3,), }";
        assert_eq!(npy_header_nesting(&[&b"\x93NUMPY\x01\x00"[..], &[ok.len() as u8, 0], ok].concat()), 5);
    }

    /// A version 1.0 `.npy` file with `dict` as its header, padded as NumPy pads it, then `data`.
    fn npy_with_header(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut header = dict.as_bytes().to_vec();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn npy_shapes_past_memory_or_the_file_are_refused() {
        // Found by the `npy` fuzz target: npyz multiplied these dimensions unchecked and panicked
        // on the overflow (a release build wraps it and goes on with a wrong element count).
        let cases = [
            (
                "{'descr': '<i8', 'fortran_order': False, 'shape': (6, 466666666, 6666666666666666), }",
                "the shape (6, 466666666, 6666666666666666) has more elements than memory can hold",
            ),
            // A zero dimension empties the array, but npyz still multiplies the others.
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296, 16), }",
                "the shape (0, 4294967296, 4294967296, 16) has more elements than memory can hold",
            ),
            // Python literals other than decimal ones are integers too.
            (
                "{'descr': '|u1', 'fortran_order': False, 'shape': [0x100000000, 0x100000000], }",
                "the shape [4294967296, 4294967296] has more elements than memory can hold",
            ),
            (
                "{'descr': '|b1', 'fortran_order': False, 'shape': (1000, 1000), }",
                "the shape (1000, 1000) has 1000000 elements, more than the file's 136 bytes can hold",
            ),
        ];
        for (dict, want) in cases {
            let bytes = npy_with_header(dict, &[1u8; 8]);
            let e = Tensor::from_npy_bytes(&bytes, "crafted.npy").unwrap_err().to_string();
            assert_eq!(e, format!("crafted.npy: cannot read .npy: {want}"), "{dict}");
        }
        // A short file whose shape fits in its bytes is still refused, by npyz, for missing data.
        let short = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", &[0u8; 8]);
        let e = Tensor::from_npy_bytes(&short, "short.npy").unwrap_err().to_string();
        assert!(e.starts_with("short.npy: cannot read .npy: "), "{e}");
    }

    #[test]
    fn empty_and_scalar_npy_arrays_still_read() {
        let empty = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1000), }", &[]);
        let t = Tensor::from_npy_bytes(&empty, "empty.npy").unwrap();
        assert_eq!((t.shape.as_slice(), t.len()), (&[0, 1000][..], 0));
        let scalar = npy_with_header("{'descr': '<i4', 'fortran_order': False, 'shape': (), }", &7i32.to_le_bytes());
        let t = Tensor::from_npy_bytes(&scalar, "scalar.npy").unwrap();
        assert_eq!(t, Tensor::new(vec![], TensorData::I32(vec![7])).unwrap());
    }

    #[test]
    fn garbage_npy_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, b"not numpy at all").unwrap();
        let e = Tensor::read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("bad.npy"), "{e}");
    }
}
