//! A chain of f32 elementwise ops fused into one dispatch (`chain.wgsl`): made by `fuse.rs` from
//! runs like `Div → Erf → Add → Mul → Mul` (an exported GELU) or `Add → Clip → Mul → Div` (an
//! exported hard-swish), it reads each input once per element and writes only the last value:
//! no intermediate buffers, one dispatch instead of one per op. Never read from ONNX.

use super::{Binding, Build, Kernel, MAX_RANK, Shader, broadcast_strides, padded};
use crate::graph::{Node, OutputType, Value};

const SHADER: Shader = Shader {
    name: "chain",
    source: concat!(include_str!("unary_ops.wgsl"), include_str!("binary_ops.wgsl"), include_str!("chain.wgsl")),
};

/// The op type of a fused chain node.
pub(crate) const CHAIN_OP: &str = "edgeqa.ElementwiseChain";
/// Ints attribute: per step its code (`elementwise::chain_step`) and operand word.
pub(crate) const STEPS: &str = "edgeqa.steps";
/// Floats attribute: per step its alpha and beta.
pub(crate) const PARAMS: &str = "edgeqa.params";
/// Most steps in one chain.
pub(crate) const MAX_STEPS: usize = 8;
/// Most tensor inputs of one chain (the chain value starts as slot 0).
pub(crate) const SLOTS: usize = 4;
/// Operand words: a slot index, or the chain value itself (`x · x`), or the scalar in alpha;
/// [`SWAPPED`] set when the chain value is the right operand.
pub(crate) const OPERAND_SELF: u32 = 254;
pub(crate) const OPERAND_SCALAR: u32 = 255;
pub(crate) const SWAPPED: u32 = 1 << 8;

/// The fused chain.
pub(crate) struct Chain;

impl Kernel for Chain {
    fn ops(&self) -> &'static [&'static str] {
        &[CHAIN_OP]
    }

    fn infer(&self, _node: &Node, _inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, String> {
        Err("an internal node of the wgpu backend, not an ONNX op".into())
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), String> {
        let steps = b.node.ints(STEPS).unwrap_or_default();
        let params = b.node.floats(PARAMS);
        let count = steps.len() / 2;
        let slots = b.node.inputs.len();
        if count == 0 || count > MAX_STEPS || params.len() != 2 * count || slots == 0 || slots > SLOTS {
            return Err(format!("malformed chain: {count} steps, {slots} inputs"));
        }
        let out = b.output(0).shape.clone();
        let n = b.output(0).len();
        let (shape, _) = padded(&out, &vec![0; out.len()])?;
        let mut p = vec![n as u32, count as u32];
        p.extend(shape);
        for s in 0..SLOTS {
            if s < slots {
                p.extend(padded(&out, &broadcast_strides(&b.input(s).shape, &out))?.1);
            } else {
                p.extend([0; MAX_RANK]);
            }
        }
        for (step, ab) in steps.chunks(2).zip(params.chunks(2)) {
            p.extend([step[0] as u32, step[1] as u32, ab[0].to_bits(), ab[1].to_bits()]);
        }
        // Unused slots repeat slot 0 (never read).
        let mut bindings: Vec<Binding> =
            (0..SLOTS).map(|s| Binding::Value(b.input_id(if s < slots { s } else { 0 }))).collect();
        bindings.push(Binding::Value(b.output_id(0)));
        b.dispatch_1d(&SHADER, "main", &p, &bindings, n)
    }
}
