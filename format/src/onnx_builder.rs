//! Building ONNX protos by code: initializers, nodes, attributes, value infos, whole models, and
//! [`GraphBuilder`] to grow a graph node by node. Used by the converter's passes and by every
//! test and reference student that needs an ONNX graph; it needs nothing but [`crate::onnx::pb`].

use prost::Message;

use crate::onnx::{Dim, pb};
use pb::attribute_proto::AttributeType as A;
use pb::tensor_proto::DataType as T;

fn tensor(name: &str, shape: &[usize], data_type: T, raw_data: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: data_type as i32,
        raw_data,
        ..Default::default()
    }
}

/// An f32 tensor (stored raw, little-endian).
pub fn make_f32(name: &str, shape: &[usize], data: &[f32]) -> pb::TensorProto {
    tensor(name, shape, T::Float, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// An f16 tensor from raw f16 bits.
pub fn make_f16_bits(name: &str, shape: &[usize], bits: &[u16]) -> pb::TensorProto {
    tensor(name, shape, T::Float16, bits.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// An i8 tensor.
pub fn make_i8(name: &str, shape: &[usize], data: &[i8]) -> pb::TensorProto {
    tensor(name, shape, T::Int8, data.iter().map(|&v| v as u8).collect())
}

/// A u8 tensor.
pub fn make_u8(name: &str, shape: &[usize], data: &[u8]) -> pb::TensorProto {
    tensor(name, shape, T::Uint8, data.to_vec())
}

/// An i32 tensor.
pub fn make_i32(name: &str, shape: &[usize], data: &[i32]) -> pb::TensorProto {
    tensor(name, shape, T::Int32, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// An i64 tensor.
pub fn make_i64(name: &str, shape: &[usize], data: &[i64]) -> pb::TensorProto {
    tensor(name, shape, T::Int64, data.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// A node of the default domain.
pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn attr(name: &str, ty: A) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: ty as i32, ..Default::default() }
}

/// An integer attribute.
pub fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { i: v, ..attr(name, A::Int) }
}

/// An integer-list attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { ints: v.to_vec(), ..attr(name, A::Ints) }
}

/// A float attribute.
pub fn attr_float(name: &str, v: f32) -> pb::AttributeProto {
    pb::AttributeProto { f: v, ..attr(name, A::Float) }
}

/// A float-list attribute.
pub fn attr_floats(name: &str, v: &[f32]) -> pb::AttributeProto {
    pb::AttributeProto { floats: v.to_vec(), ..attr(name, A::Floats) }
}

/// A string attribute.
pub fn attr_str(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto { s: v.as_bytes().to_vec(), ..attr(name, A::String) }
}

/// A tensor attribute (e.g. `Constant`'s `value`).
pub fn attr_tensor(name: &str, t: pb::TensorProto) -> pb::AttributeProto {
    pb::AttributeProto { t: Some(t), ..attr(name, A::Tensor) }
}

/// A graph attribute (e.g. `If`'s branches).
pub fn attr_graph(name: &str, g: pb::GraphProto) -> pb::AttributeProto {
    pb::AttributeProto { g: Some(g), ..attr(name, A::Graph) }
}

/// A tensor value (graph input, output or value info) of an element type; `dims: None` declares
/// no shape.
pub fn value_info(name: &str, elem_type: T, dims: Option<&[Dim]>) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let shape = dims.map(|dims| pb::TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Dim::Fixed(v) => Value::DimValue(*v as i64),
                    Dim::Symbolic(s) => Value::DimParam(s.clone()),
                }),
                ..Default::default()
            })
            .collect(),
    });
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem_type as i32,
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Fixed dimensions.
pub fn fixed(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::Fixed(d)).collect()
}

/// An f32 tensor value with a fixed shape.
pub fn value_f32(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
    value_info(name, T::Float, Some(&fixed(shape)))
}

/// A value with only a name (no declared type), as exporters write for outputs left to inference.
pub fn value_untyped(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto { name: name.to_string(), ..Default::default() }
}

/// A model of the default domain at `opset` (IR version 7) with these nodes, initializers, f32
/// inputs (name, fixed shape) and outputs (names, no declared type).
pub fn model(
    opset: i64,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    inputs: &[(&str, &[usize])],
    outputs: &[&str],
) -> pb::ModelProto {
    let mut b = GraphBuilder::new("test", opset).ir_version(7);
    b.nodes = nodes;
    b.inits = inits;
    b.inputs = inputs.iter().map(|(n, s)| value_f32(n, s)).collect();
    b.outputs = outputs.iter().map(|n| value_untyped(n)).collect();
    b.into_model()
}

/// An attribute value for [`GraphBuilder::node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Floats(Vec<f32>),
    Str(&'static str),
}

impl Attr {
    /// The attribute proto called `name`.
    pub fn to_proto(&self, name: &str) -> pb::AttributeProto {
        match self {
            Attr::Int(v) => attr_int(name, *v),
            Attr::Ints(v) => attr_ints(name, v),
            Attr::Float(v) => attr_float(name, *v),
            Attr::Floats(v) => attr_floats(name, v),
            Attr::Str(v) => attr_str(name, v),
        }
    }
}

/// Grows one ONNX model node by node: declared inputs and outputs, initializers, nodes named
/// and wired automatically ([`GraphBuilder::node`]) or given whole ([`GraphBuilder::push`]).
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    name: String,
    ir_version: i64,
    opsets: Vec<pb::OperatorSetIdProto>,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    counter: usize,
}

impl GraphBuilder {
    /// An empty graph importing the default domain at `opset`, IR version 8.
    pub fn new(name: &str, opset: i64) -> GraphBuilder {
        GraphBuilder {
            name: name.into(),
            ir_version: 8,
            opsets: vec![pb::OperatorSetIdProto { domain: String::new(), version: opset }],
            nodes: vec![],
            inits: vec![],
            inputs: vec![],
            outputs: vec![],
            counter: 0,
        }
    }

    /// Sets the model's IR version.
    pub fn ir_version(mut self, v: i64) -> GraphBuilder {
        self.ir_version = v;
        self
    }

    /// Imports another domain at `version`.
    pub fn import(mut self, domain: &str, version: i64) -> GraphBuilder {
        self.opsets.push(pb::OperatorSetIdProto { domain: domain.into(), version });
        self
    }

    /// Declares a graph input of any element type; returns its name.
    pub fn input(&mut self, name: &str, elem_type: T, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, elem_type, Some(dims)));
        name.to_string()
    }

    /// Declares an f32 graph input; returns its name.
    pub fn input_f32(&mut self, name: &str, dims: &[Dim]) -> String {
        self.input(name, T::Float, dims)
    }

    /// Declares an i64 graph input; returns its name.
    pub fn input_i64(&mut self, name: &str, dims: &[Dim]) -> String {
        self.input(name, T::Int64, dims)
    }

    /// Makes `tensor` the graph output `name` through an Identity node (type f32, shape left to
    /// inference).
    pub fn output(&mut self, tensor: &str, name: &str) {
        self.counter += 1;
        self.nodes.push(node("Identity", &format!("n{}_Identity", self.counter), &[tensor], &[name], vec![]));
        self.outputs.push(value_info(name, T::Float, None));
    }

    /// Declares an existing tensor as a graph output with this type and shape (`None`: no shape).
    pub fn declare_output(&mut self, name: &str, elem_type: T, dims: Option<&[Dim]>) {
        self.outputs.push(value_info(name, elem_type, dims));
    }

    /// Adds an initializer as given; returns its name.
    pub fn initializer(&mut self, t: pb::TensorProto) -> String {
        let name = t.name.clone();
        self.inits.push(t);
        name
    }

    /// Adds an f32 initializer named `name_<k>` (k counts initializers); returns the name.
    pub fn const_f32(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        assert_eq!(dims.iter().product::<usize>(), data.len(), "initializer {name}: data does not fill its dims");
        let name = format!("{name}_{}", self.inits.len());
        self.initializer(make_f32(&name, dims, &data))
    }

    /// Adds an i64 initializer named `name_<k>`; returns the name.
    pub fn const_i64(&mut self, name: &str, dims: &[usize], data: Vec<i64>) -> String {
        assert_eq!(dims.iter().product::<usize>(), data.len(), "initializer {name}: data does not fill its dims");
        let name = format!("{name}_{}", self.inits.len());
        self.initializer(make_i64(&name, dims, &data))
    }

    /// Adds a default-domain node with one fresh output; returns the output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.counter += 1;
        let out = format!("{}_{}", op.to_lowercase(), self.counter);
        let attrs = attrs.iter().map(|(name, a)| a.to_proto(name)).collect();
        self.nodes.push(node(op, &format!("n{}_{op}", self.counter), inputs, &[&out], attrs));
        out
    }

    /// Adds a node of another domain with one fresh output; the domain is imported at version 1
    /// unless it already is.
    pub fn custom_node(&mut self, domain: &str, op: &str, inputs: &[&str]) -> String {
        if !self.opsets.iter().any(|o| o.domain == domain) {
            self.opsets.push(pb::OperatorSetIdProto { domain: domain.into(), version: 1 });
        }
        let out = self.node(op, inputs, vec![]);
        self.nodes.last_mut().expect("just added").domain = domain.to_string();
        out
    }

    /// Adds a node as given.
    pub fn push(&mut self, n: pb::NodeProto) {
        self.nodes.push(n);
    }

    /// The model.
    pub fn into_model(self) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: self.ir_version,
            opset_import: self.opsets,
            producer_name: "edgeqa".into(),
            graph: Some(pb::GraphProto {
                node: self.nodes,
                name: self.name,
                initializer: self.inits,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The serialised model.
    pub fn build(self) -> Vec<u8> {
        self.into_model().encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_model_decodes_with_its_inputs_nodes_and_attributes() {
        let mut b = GraphBuilder::new("g", 13);
        let x = b.input_f32("x", &[Dim::Fixed(1), Dim::Symbolic("n".into())]);
        let w = b.const_f32("w", &[2], vec![1.0, 2.0]);
        let y = b.node("Concat", &[&x, &w], vec![("axis", Attr::Int(1))]);
        b.output(&y, "y");
        let m = crate::onnx::decode(&b.build(), "built").unwrap();
        assert_eq!((m.ir_version, crate::onnx::opset(&m)), (8, Some(13)));
        let ins = crate::onnx::graph_inputs(&m);
        assert_eq!(ins[0].dims, Some(vec![Dim::Fixed(1), Dim::Symbolic("n".into())]));
        let g = m.graph.unwrap();
        assert_eq!(g.initializer[0].name, "w_0");
        assert_eq!(g.node[0].input, ["x", "w_0"]);
        assert_eq!(g.node[0].attribute[0], attr_int("axis", 1));
        assert_eq!((g.node[1].op_type.as_str(), g.node[1].output[0].as_str()), ("Identity", "y"));
    }

    #[test]
    fn initializers_hold_their_values_little_endian() {
        assert_eq!(make_i64("a", &[1], &[-2]).raw_data, (-2i64).to_le_bytes());
        assert_eq!(make_f32("b", &[1], &[1.5]).raw_data, 1.5f32.to_le_bytes());
        assert_eq!(make_i8("c", &[2], &[-1, 3]).raw_data, [255, 3]);
    }
}
