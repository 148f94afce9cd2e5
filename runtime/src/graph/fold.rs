//! Evaluating constant nodes with tract at load, and turning tract tensors into ONNX
//! initializers (shared with the converter's constant folding).

use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::backend::tract::framework;
use crate::onnx::pb;
use pb::tensor_proto::DataType as T;

/// Runs one node whose inputs are all constants (`inputs` by ONNX name) at `opset` and returns
/// its outputs in order.
pub fn evaluate_node(opset: i64, node: &pb::NodeProto, inputs: &[(String, Arc<Tensor>)]) -> TractResult<Vec<Tensor>> {
    let mut inits = Vec::with_capacity(inputs.len());
    for (name, t) in inputs {
        inits.push(to_proto(name, t).ok_or_else(|| anyhow::anyhow!("input `{name}` of type {:?}", t.datum_type()))?);
    }
    let outputs: Vec<String> = node.output.iter().filter(|o| !o.is_empty()).cloned().collect();
    let proto = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: opset }],
        graph: Some(pb::GraphProto {
            name: "constant_node".into(),
            node: vec![node.clone()],
            initializer: inits,
            output: outputs.iter().map(|n| pb::ValueInfoProto { name: n.clone(), ..Default::default() }).collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // A node from a file can make tract panic (say, a Transpose `perm` that does not fit the
    // input's rank): that is an error here, and the node is left to the backend to judge.
    let run = || -> TractResult<TVec<TValue>> {
        framework().model_for_proto_model(&proto)?.into_optimized()?.into_runnable()?.run(tvec![])
    };
    let values = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        anyhow::anyhow!("tract panicked evaluating the node: {what}")
    })??;
    anyhow::ensure!(
        values.len() == outputs.len(),
        "tract returned {} tensors for {} outputs",
        values.len(),
        outputs.len()
    );
    Ok(values.into_iter().map(|v| v.into_tensor()).collect())
}

/// An initializer holding a tract tensor, at the same element type (shape values come back as
/// int64). `None` for element types an initializer here does not carry, or symbolic values.
pub fn to_proto(name: &str, t: &Tensor) -> Option<pb::TensorProto> {
    let (data_type, raw_data) = match t.datum_type() {
        DatumType::F32 => (T::Float, bytes::<f32, 4>(t, f32::to_le_bytes)?),
        DatumType::F64 => (T::Double, bytes::<f64, 8>(t, f64::to_le_bytes)?),
        DatumType::F16 => (T::Float16, bytes::<f16, 2>(t, f16::to_le_bytes)?),
        DatumType::I64 => (T::Int64, bytes::<i64, 8>(t, i64::to_le_bytes)?),
        DatumType::I32 => (T::Int32, bytes::<i32, 4>(t, i32::to_le_bytes)?),
        DatumType::I16 => (T::Int16, bytes::<i16, 2>(t, i16::to_le_bytes)?),
        DatumType::I8 => (T::Int8, bytes::<i8, 1>(t, i8::to_le_bytes)?),
        DatumType::U64 => (T::Uint64, bytes::<u64, 8>(t, u64::to_le_bytes)?),
        DatumType::U32 => (T::Uint32, bytes::<u32, 4>(t, u32::to_le_bytes)?),
        DatumType::U16 => (T::Uint16, bytes::<u16, 2>(t, u16::to_le_bytes)?),
        DatumType::U8 => (T::Uint8, bytes::<u8, 1>(t, u8::to_le_bytes)?),
        DatumType::Bool => (T::Bool, bytes::<bool, 1>(t, |b| [b as u8])?),
        DatumType::TDim => (T::Int64, bytes::<i64, 8>(t.cast_to::<i64>().ok()?.as_ref(), i64::to_le_bytes)?),
        _ => return None,
    };
    Some(pb::TensorProto {
        name: name.to_string(),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: data_type as i32,
        raw_data,
        ..Default::default()
    })
}

/// Little-endian bytes of every element, in logical (row-major) order.
fn bytes<D: Datum + Copy, const N: usize>(t: &Tensor, le: impl Fn(D) -> [u8; N]) -> Option<Vec<u8>> {
    let view = t.to_plain_array_view::<D>().ok()?;
    Some(view.iter().flat_map(|&v| le(v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: op.to_lowercase(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn tensors_keep_their_element_type() {
        let p = to_proto("b", &tensor1(&[true, false])).unwrap();
        assert_eq!((p.data_type, p.raw_data.clone()), (T::Bool as i32, vec![1, 0]));
        let p = to_proto("c", &tensor0(-3i8)).unwrap();
        assert_eq!((p.data_type, p.dims.len(), p.raw_data.clone()), (T::Int8 as i32, 0, vec![253]));
        let p = to_proto("d", &tensor1(&[TDim::from(3), TDim::from(5)])).unwrap();
        assert_eq!((p.data_type, p.raw_data.len()), (T::Int64 as i32, 16));
        assert!(to_proto("e", &tensor1(&[TDim::Sym(SymbolScope::default().sym("n"))])).is_none());
    }

    #[test]
    fn a_constant_node_is_evaluated() {
        let a = Arc::new(tensor1(&[1.0f32, 2.0, 3.0, 4.0]));
        let s = Arc::new(tensor1(&[2i64, 2]));
        let out =
            evaluate_node(13, &node("Reshape", &["a", "s"], &["r"]), &[("a".into(), a), ("s".into(), s)]).unwrap();
        assert_eq!(out[0], tract_ndarray::arr2(&[[1.0f32, 2.0], [3.0, 4.0]]).into_tensor());
    }
}
