//! Cast between f32, integers (i32 on the device) and bool: `cast.wgsl`.

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::{Binding, Build, Kernel, Shader};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};
use crate::onnx::pb::tensor_proto::DataType as T;

const SHADER: Shader = Shader { name: "cast", source: include_str!("cast.wgsl") };

params! {
    /// `cast.wgsl`'s params; element kinds as [`kind`] numbers them.
    struct CastParams {
        n: u32,
        from: u32,
        to: u32,
    }
}

/// Cast.
pub(crate) struct Cast;

/// Device kind code of an element type (0 f32, 1 integer, 2 bool).
fn kind(dt: DatumType) -> Option<u32> {
    match dt {
        DatumType::F32 => Some(0),
        DatumType::I64 | DatumType::I32 => Some(1),
        DatumType::Bool => Some(2),
        _ => None,
    }
}

fn target(node: &Attrs<'_>) -> Result<DatumType, NodeError> {
    let to = node.int("to", 0) as i32;
    // Opset 19's `saturate` concerns float8 targets only, which are refused below.
    let _ = node.int("saturate", 1);
    match T::try_from(to) {
        Ok(T::Float) => Ok(DatumType::F32),
        Ok(T::Int64) => Ok(DatumType::I64),
        Ok(T::Int32) => Ok(DatumType::I32),
        Ok(T::Bool) => Ok(DatumType::Bool),
        _ => Err(format!("cast to type {to} is not supported (float, int64, int32, bool)").into()),
    }
}

impl Kernel for Cast {
    fn ops(&self) -> &'static [&'static str] {
        &["Cast"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        kind(x.dtype).ok_or_else(|| format!("input `{}` is {:?}", x.name, x.dtype))?;
        Ok(vec![OutputType::new(target(node)?, x.shape.clone())])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let from = kind(b.input(0).dtype).expect("checked at load");
        let to = kind(b.output(0).dtype).expect("checked at load");
        let n = b.output(0).len();
        b.dispatch_1d(
            &SHADER,
            "main",
            &CastParams { n: n as u32, from, to },
            &[Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))],
            n,
        )
    }
}
