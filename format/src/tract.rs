//! tract as edgeqa's reference engine: its ONNX front end as edgeqa configures it, the maps
//! between edgeqa's and tract's element types, and tract tensors written back as ONNX
//! initializers. Shared by the tract backend, the wgpu backend's load-time constant folding and
//! the converter.

use std::sync::OnceLock;

use tract_onnx::prelude::*;

use crate::manifest::DType;
use crate::onnx::pb;
use pb::tensor_proto::DataType as T;

/// tract's ONNX front end as edgeqa configures it, built once per process: intermediate
/// `value_info` is ignored (shapes are inferred from the fixed inputs; exporters often leave
/// symbolic dims there that contradict the fixed ones).
pub fn framework() -> &'static tract_onnx::Onnx {
    static ONNX: OnceLock<tract_onnx::Onnx> = OnceLock::new();
    ONNX.get_or_init(|| tract_onnx::onnx().with_ignore_value_info(true))
}

/// tract's element type for an edgeqa dtype.
pub fn datum_type(d: DType) -> DatumType {
    match d {
        DType::F32 => f32::datum_type(),
        DType::I64 => i64::datum_type(),
        DType::I32 => i32::datum_type(),
        DType::U8 => u8::datum_type(),
        DType::I8 => i8::datum_type(),
        DType::Bool => bool::datum_type(),
    }
}

/// edgeqa's dtype for a tract element type, if edgeqa can carry it.
pub fn dtype_of(d: DatumType) -> Option<DType> {
    Some(match d {
        DatumType::F32 => DType::F32,
        DatumType::I64 => DType::I64,
        DatumType::I32 => DType::I32,
        DatumType::U8 => DType::U8,
        DatumType::I8 => DType::I8,
        DatumType::Bool => DType::Bool,
        _ => return None,
    })
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

/// A panic caught by [`catch_panic`]: its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Panicked(pub String);

/// Runs `f`, turning a panic inside it (tract panics on some graphs and inputs instead of
/// returning an error) into `Err` with the panic's message.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        Panicked(
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into()),
        )
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
    fn element_types_map_both_ways() {
        for d in [DType::F32, DType::I64, DType::I32, DType::U8, DType::I8, DType::Bool] {
            assert_eq!(dtype_of(datum_type(d)), Some(d));
        }
        assert_eq!(dtype_of(DatumType::F16), None);
    }
}
