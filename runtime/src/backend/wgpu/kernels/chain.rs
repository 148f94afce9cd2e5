//! A chain of f32 elementwise ops fused into one dispatch (`chain.wgsl`): made by `fuse.rs` from
//! runs like `Div → Erf → Add → Mul → Mul` (an exported GELU) or `Add → Clip → Mul → Div` (an
//! exported hard-swish), it reads each input once per element and writes only the last value:
//! no intermediate buffers, one dispatch instead of one per op. Never read from ONNX.

use super::elementwise::{BINARY_WGSL, UNARY_WGSL};
use super::params::params;
use super::{Binding, Build, Kernel, MAX_RANK, Shader, broadcast_strides, padded};
use crate::graph::{Attrs, NodeError, OutputType, ReadAttrs, Value};

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

params! {
    /// `chain.wgsl`'s params.
    struct ChainParams {
        n: u32,
        /// Steps.
        count: u32,
        /// The output shape, collapsed ([`collapse`]) and left-padded to rank [`MAX_RANK`].
        shape: [u32; MAX_RANK],
        /// Each slot's strides over that shape (0 for slots the chain does not use).
        slot_strides: [[u32; MAX_RANK]; SLOTS],
        /// Four words a step (`chain.wgsl`).
        steps: Vec<u32>,
    }
}

impl Kernel for Chain {
    fn ops(&self) -> &'static [&'static str] {
        &[CHAIN_OP]
    }

    fn infer(&self, _node: &Attrs<'_>, _inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        Err("an internal node of the wgpu backend, not an ONNX op".into())
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let steps = b.node.ints(STEPS).unwrap_or_default();
        let params = b.node.floats(PARAMS);
        let count = steps.len() / 2;
        let slots = b.node.inputs.len();
        if count == 0 || count > MAX_STEPS || params.len() != 2 * count || slots == 0 || slots > SLOTS {
            return Err(format!("malformed chain: {count} steps, {slots} inputs").into());
        }
        let out = b.output(0).shape.clone();
        let n = b.output(0).len();
        let slot_strides: Vec<Vec<usize>> = (0..slots).map(|s| broadcast_strides(&b.input(s).shape, &out)).collect();
        let (dims, strides) = collapse(&out, &slot_strides);
        let rank = dims.len();
        let (shape, _) = padded(&dims, &vec![0; rank])?;
        // Unused slots: zero strides.
        let mut slot_strides = [[0; MAX_RANK]; SLOTS];
        for (to, s) in slot_strides.iter_mut().zip(&strides) {
            *to = padded(&dims, s)?.1;
        }
        let mut words = Vec::with_capacity(4 * count);
        for (step, ab) in steps.chunks(2).zip(params.chunks(2)) {
            words.extend([step[0] as u32, step[1] as u32, ab[0].to_bits(), ab[1].to_bits()]);
        }
        let p = ChainParams { n: n as u32, count: count as u32, shape, slot_strides, steps: words };
        // Unused slots repeat slot 0 (never read).
        let mut bindings: Vec<Binding> =
            (0..SLOTS).map(|s| Binding::Value(b.input_id(if s < slots { s } else { 0 }))).collect();
        bindings.push(Binding::Value(b.output_id(0)));
        let (name, main) = entry_point(&steps, rank)?;
        // The shared part of every chain shader, then the steps.
        let source = format!("{}\n{}\n{}\n{main}", *UNARY_WGSL, *BINARY_WGSL, include_str!("chain.wgsl"));
        b.dispatch_1d(&Shader { name: &name, source: &source }, "main", &p, &bindings, n)
    }
}

/// Merges the output's dims wherever every slot's strides run on contiguously across them
/// and drops dims of size 1: the shader then indexes as few dims as the broadcasting needs
/// (`[1, 240, 12, 80]` with a per-channel slot becomes `[240, 960]`). Returns the dims and each
/// slot's strides over them.
fn collapse(out: &[usize], slots: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut dims: Vec<usize> = Vec::new();
    let mut strides: Vec<Vec<usize>> = vec![Vec::new(); slots.len()];
    for (d, &size) in out.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let mergeable =
            !dims.is_empty() && slots.iter().zip(&strides).all(|(s, kept)| kept.last() == Some(&(s[d] * size)));
        if mergeable {
            *dims.last_mut().expect("not empty") *= size;
            for (s, kept) in slots.iter().zip(strides.iter_mut()) {
                *kept.last_mut().expect("not empty") = s[d];
            }
        } else {
            dims.push(size);
            for (s, kept) in slots.iter().zip(strides.iter_mut()) {
                kept.push(s[d]);
            }
        }
    }
    (dims, strides)
}

/// The entry point of a chain with `steps` (code, operand word pairs) over `rank` dims as
/// straight-line WGSL with literal codes and operands, and a shader name that identifies it
/// (chains with the same steps and rank share one pipeline; shapes and constants stay in the
/// parameters).
fn entry_point(steps: &[i64], rank: usize) -> Result<(String, String), NodeError> {
    let mut name = format!("chain_r{rank}");
    let mut body = String::new();
    for (s, step) in steps.chunks(2).enumerate() {
        let (code, operand) = (step[0], step[1]);
        let (Ok(code), Ok(operand)) = (u32::try_from(code), u32::try_from(operand)) else {
            return Err(format!("malformed chain step {s}: code {code}, operand {operand}").into());
        };
        if code < 100 {
            name.push_str(&format!("_u{code}"));
            body.push_str(&format!("    v = unary_step({code}u, {s}u, v);\n"));
        } else {
            let slot = operand & 255;
            let swapped = operand & SWAPPED != 0;
            name.push_str(&format!("_b{}.{slot}{}", code - 100, if swapped { "s" } else { "" }));
            body.push_str(&format!("    v = binary_step({}u, {slot}u, {swapped}, {s}u, v, off);\n", code - 100));
        }
    }
    let main = format!(
        "@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    let i = linear_index(gid, nwg);
    if i >= p[P_N] {{ return; }}
    let off = broadcast_offsets(i, P_SHAPE, P_SLOT_STRIDES + vec4<u32>(0u, 1u, 2u, 3u) * {rank_max}u, {first}i);
    var v = slot(0u, off);
{body}    y[i] = v;
}}
",
        first = MAX_RANK - rank,
        rank_max = MAX_RANK
    );
    Ok((name, main))
}

#[cfg(test)]
mod tests {
    use super::{collapse, entry_point};

    #[test]
    fn collapse_merges_what_every_slot_walks_contiguously() {
        // A per-channel operand: the spatial dims merge, the channel dim stays apart.
        let out = [1, 240, 12, 80];
        let (dims, strides) = collapse(&out, &[vec![230400, 960, 80, 1], vec![0, 1, 0, 0]]);
        assert_eq!(dims, [240, 960]);
        assert_eq!(strides, [vec![960, 1], vec![1, 0]]);
        // Same-shaped operands: one flat dim.
        let (dims, strides) = collapse(&[2, 3, 4], &[vec![12, 4, 1], vec![12, 4, 1]]);
        assert_eq!((dims, strides), (vec![24], vec![vec![1], vec![1]]));
        // A scalar (all strides 0) merges everywhere; a transposed walk does not.
        let (dims, _) = collapse(&[2, 3], &[vec![3, 1], vec![0, 0]]);
        assert_eq!(dims, [6]);
        let (dims, _) = collapse(&[2, 3], &[vec![3, 1], vec![1, 2]]);
        assert_eq!(dims, [2, 3]);
        // All ones: no dims (one element).
        assert_eq!(collapse(&[1, 1], &[vec![0, 0]]).0, Vec::<usize>::new());
    }

    #[test]
    fn entry_points_are_named_by_what_they_run() {
        let (a, src) = entry_point(&[4, 0, 102, 1 | 256], 2).unwrap();
        assert_eq!(a, "chain_r2_u4_b2.1s");
        assert!(src.contains("unary_step(4u, 0u, v)") && src.contains("binary_step(2u, 1u, true, 1u, v, off)"));
        assert!(src.contains("broadcast_offsets(i, P_SHAPE, P_SLOT_STRIDES + vec4<u32>(0u, 1u, 2u, 3u) * 6u, 4i)"));
        let (b, _) = entry_point(&[4, 0, 102, 1], 2).unwrap();
        assert_ne!(a, b);
        assert!(entry_point(&[-1, 0], 1).is_err());
    }
}
