//! MatMul (numpy batching and broadcasting) and Gemm (transA/transB, alpha, beta, broadcast C),
//! with a fused bias and activation: one tiled shader, `matmul.wgsl`; and the int8×int8 product
//! of a full-int8 package (`matmul_int8.wgsl`) when fusion hands the node its quantized A.

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::weights::{self, Form, WeightShaders, weight_shaders};
use super::{Activation, Binding, Build, Kernel, Shader, broadcast, broadcast_strides, want_f32};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, Graph, Node, NodeError, OutputType, Value, ValueId};

const SHADERS: WeightShaders = weight_shaders!("matmul", "matmul.wgsl");
const INT8: Shader = Shader { name: "matmul_int8", source: include_str!("matmul_int8.wgsl") };

/// Attributes fusion (`fuse.rs`) sets on a MatMul, Gemm or 1×1 Conv whose input 0 it replaced by
/// the quantized values a DequantizeLinear read: that node's scale and zero point.
pub(crate) const A_SCALE: &str = "edgeqa.a_scale";
pub(crate) const A_ZERO: &str = "edgeqa.a_zero_point";

/// Batch dims the shader walks.
const BATCH_RANK: usize = 4;

/// MatMul and Gemm.
pub(crate) struct MatMul;

/// A MatMul/Gemm node's params, parsed once from its attributes and input shapes: output shape,
/// M, N, K, the operands' strides, and Gemm's alpha and beta.
struct Geometry {
    alpha: f32,
    beta: f32,
    out: Vec<usize>,
    m: usize,
    n: usize,
    k: usize,
    batch: Vec<usize>,
    a_batch: Vec<usize>,
    b_batch: Vec<usize>,
    /// A's row and k strides, B's k and column strides.
    a_sm: usize,
    a_sk: usize,
    b_sk: usize,
    b_sn: usize,
}

fn geometry(node: &Attrs<'_>, a: &[usize], b: &[usize]) -> Result<Geometry, NodeError> {
    if node.op == "Gemm" {
        if a.len() != 2 || b.len() != 2 {
            return Err(format!("Gemm needs 2-D A and B, got {a:?} and {b:?}").into());
        }
        let (ta, tb) = (node.int("transA", 0) != 0, node.int("transB", 0) != 0);
        let (m, ka) = if ta { (a[1], a[0]) } else { (a[0], a[1]) };
        let (kb, n) = if tb { (b[1], b[0]) } else { (b[0], b[1]) };
        if ka != kb {
            return Err(format!("inner dimensions differ: A {a:?} (transA={ta}), B {b:?} (transB={tb})").into());
        }
        let (a_sm, a_sk) = if ta { (1, a[1]) } else { (a[1], 1) };
        let (b_sk, b_sn) = if tb { (1, b[1]) } else { (b[1], 1) };
        return Ok(Geometry {
            alpha: node.float("alpha", 1.0),
            beta: node.float("beta", 1.0),
            out: vec![m, n],
            m,
            n,
            k: ka,
            batch: vec![],
            a_batch: vec![],
            b_batch: vec![],
            a_sm,
            a_sk,
            b_sk,
            b_sn,
        });
    }
    if a.is_empty() || b.is_empty() {
        return Err("scalar operands are not valid for MatMul".into());
    }
    // 1-D operands: A [K] is [1, K], B [K] is [K, 1]; the added dim is dropped from the output.
    let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != kb {
        return Err(format!("inner dimensions differ: {a:?} · {b:?}").into());
    }
    let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
    let batch = broadcast(ab, bb)?;
    if batch.len() > BATCH_RANK {
        return Err(format!("{} batch dims (at most {BATCH_RANK})", batch.len()).into());
    }
    let bstride = |s: &[usize], full: &[usize]| -> Vec<usize> {
        let per = full[full.len() - 2] * full[full.len() - 1];
        broadcast_strides(s, &batch).iter().map(|x| x * per).collect()
    };
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(Geometry {
        alpha: 1.0,
        beta: 1.0,
        a_batch: bstride(ab, &a2),
        b_batch: bstride(bb, &b2),
        out,
        m,
        n,
        k,
        batch,
        a_sm: k,
        a_sk: 1,
        b_sk: n,
        b_sn: 1,
    })
}

impl Kernel for MatMul {
    fn ops(&self) -> &'static [&'static str] {
        &["MatMul", "Gemm"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let (Some(Some(a)), Some(Some(b))) = (inputs.first(), inputs.get(1)) else {
            return Err("needs two inputs".into());
        };
        want_f32(a, "input A")?;
        want_f32(b, "input B")?;
        let g = geometry(node, &a.shape, &b.shape)?;
        if let Some(Some(c)) = inputs.get(2) {
            want_f32(c, "input C")?;
            let s = broadcast(&c.shape, &g.out)?;
            if s != g.out {
                return Err(format!("C {:?} does not broadcast to {:?}", c.shape, g.out).into());
            }
        }
        Ok(vec![OutputType::new(DatumType::F32, g.out)])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let g = geometry(&b.attrs(), &b.input(0).shape, &b.input(1).shape)?;
        if b.node.attribute_names().any(|a| a == A_SCALE) {
            let w = int8_weights(b.node, b.graph).ok_or("B is not per-channel int8 (fusion checked it)")?;
            return dispatch_gemm_int8(b, &gemm_of(b, g), Binding::Value(b.input_id(0)), &w);
        }
        // A constant 2-D B (a layer's weights) may be packed: row = output column n, col = k.
        let weight = if b.input(1).shape.len() == 2 {
            let (sk, sn) = (g.b_sk, g.b_sn);
            weights::bind(b, b.input_id(1), g.n, g.k, &|n, k| k * sk + n * sn)
        } else {
            (Binding::Value(b.input_id(1)), Form::F32)
        };
        dispatch_gemm(b, &gemm_of(b, g), Binding::Value(b.input_id(0)), weight)
    }
}

/// The product a MatMul/Gemm node runs.
fn gemm_of(b: &Build<'_>, g: Geometry) -> Gemm {
    let (bias_sm, bias_sn) = if b.has_input(2) {
        let s = broadcast_strides(&b.input(2).shape, &g.out);
        (s[s.len() - 2], s[s.len() - 1])
    } else {
        (0, 0)
    };
    let (m, n) = (g.m, g.n);
    Gemm {
        m,
        n,
        k: g.k,
        batch: g.batch,
        a_batch: g.a_batch,
        b_batch: g.b_batch,
        a: [g.a_sm, g.a_sk],
        b: [g.b_sk, g.b_sn],
        bias: b.has_input(2).then(|| (b.input_id(2), [bias_sm, bias_sn])),
        alpha: g.alpha,
        beta: g.beta,
        y: [m * n, n, 1],
    }
}

/// A MatMul/Gemm's constant 2-D B packed per channel as int8 (row = output column), when its
/// values are exactly that: the condition for the int8×int8 product.
pub(crate) fn int8_weights(node: &Node, graph: &Graph) -> Option<weights::Packed> {
    let (a, w) = (node.inputs.first().copied()??, node.inputs.get(1).copied()??);
    let shape = &graph.values[w].shape;
    if shape.len() != 2 {
        return None;
    }
    let g = geometry(&Attrs::new(node), &graph.values[a].shape, shape).ok()?;
    let (sk, sn) = (g.b_sk, g.b_sn);
    weights::int8_matrix(graph, w, g.n, g.k, &|n, k| k * sk + n * sn)
}

/// One batched product for [`dispatch_gemm`]: `Y = act(alpha · A·B + beta · bias)`.
pub(crate) struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Batch shape and A's and B's element strides over it (0 where broadcast).
    pub batch: Vec<usize>,
    pub a_batch: Vec<usize>,
    pub b_batch: Vec<usize>,
    /// A's row and k strides; B's k and column strides.
    pub a: [usize; 2],
    pub b: [usize; 2],
    /// The bias value and its row and column strides.
    pub bias: Option<(ValueId, [usize; 2])>,
    pub alpha: f32,
    pub beta: f32,
    /// Y's batch, row and column strides.
    pub y: [usize; 3],
}

params! {
    /// `matmul.wgsl`'s params, the first words of `matmul_int8.wgsl`'s.
    struct GemmParams {
        m: u32,
        n: u32,
        k: u32,
        /// Batch items (the product of `batch_shape`).
        batch: u32,
        /// Batch shape, left-padded with 1 to [`BATCH_RANK`] dims.
        batch_shape: [u32; BATCH_RANK],
        /// A's and B's element strides over the batch (0 where broadcast).
        a_batch: [u32; BATCH_RANK],
        b_batch: [u32; BATCH_RANK],
        a_sm: u32,
        a_sk: u32,
        b_sk: u32,
        b_sn: u32,
        has_bias: bool,
        bias_sm: u32,
        bias_sn: u32,
        alpha: f32,
        beta: f32,
        /// The fused activation ([`Activation`]).
        activation: u32,
        act_alpha: f32,
        act_beta: f32,
        y_batch: u32,
        y_sm: u32,
        y_sn: u32,
    }
}

params! {
    /// `matmul_int8.wgsl`'s params.
    struct GemmInt8Params {
        gemm: GemmParams,
        /// A's scale.
        a_scale: f32,
        /// The shift `o` into int8: 128 for uint8 A, 0 for int8.
        offset: i32,
        /// `o` − A's zero point.
        zero_shift: i32,
    }
}

/// The words `matmul.wgsl` and `matmul_int8.wgsl` share.
fn params(b: &Build<'_>, g: &Gemm) -> GemmParams {
    let u = |x: usize| x as u32;
    let pad = |v: &[usize], fill: usize| -> [u32; BATCH_RANK] {
        let mut out = [u(fill); BATCH_RANK];
        out[BATCH_RANK - v.len()..].iter_mut().zip(v).for_each(|(o, &x)| *o = u(x));
        out
    };
    let [bias_sm, bias_sn] = g.bias.map_or([0, 0], |(_, s)| s);
    let Activation { code, alpha: act_alpha, beta: act_beta } = Activation::of(b.node);
    GemmParams {
        m: u(g.m),
        n: u(g.n),
        k: u(g.k),
        batch: u(g.batch.iter().product()),
        batch_shape: pad(&g.batch, 1),
        a_batch: pad(&g.a_batch, 0),
        b_batch: pad(&g.b_batch, 0),
        a_sm: u(g.a[0]),
        a_sk: u(g.a[1]),
        b_sk: u(g.b[0]),
        b_sn: u(g.b[1]),
        has_bias: g.bias.is_some(),
        bias_sm: u(bias_sm),
        bias_sn: u(bias_sn),
        alpha: g.alpha,
        beta: g.beta,
        activation: code,
        act_alpha,
        act_beta,
        y_batch: u(g.y[0]),
        y_sm: u(g.y[1]),
        y_sn: u(g.y[2]),
    }
}

/// Output tile of one `matmul.wgsl` workgroup (64×64; each of its 256 threads holds 4×4).
const TILE: usize = 64;
/// Output tile of one `matmul_int8.wgsl` workgroup.
const TILE_INT8: usize = 16;

/// Workgroups of a product: `tile`×`tile` output tiles per batch item.
fn groups(g: &Gemm, tile: usize) -> Result<[u32; 3], NodeError> {
    let batch: usize = g.batch.iter().product();
    let groups = [g.n.div_ceil(tile) as u32, g.m.div_ceil(tile) as u32, batch.max(1) as u32];
    if groups.iter().any(|&x| x > 65535) {
        return Err(format!("a {}×{} product needs more workgroups than one dispatch allows", g.m, g.n).into());
    }
    Ok(groups)
}

/// Dispatches `matmul.wgsl` for `g` with the node's fused activation; `weight` is B, stored
/// as `.1` (`weights.rs`).
pub(crate) fn dispatch_gemm(b: &mut Build<'_>, g: &Gemm, a: Binding, weight: (Binding, Form)) -> Result<(), NodeError> {
    let p = params(b, g);
    let (weight, form) = weight;
    // Without a bias the binding is a placeholder the shader never reads (not the output:
    // one buffer cannot be bound read-only and writable in one dispatch).
    let bias = g.bias.map_or_else(|| a.clone(), |(v, _)| Binding::Value(v));
    let bindings = [a, weight, bias, Binding::Value(b.output_id(0))];
    b.dispatch(SHADERS.pick(form, b.shader_f16), "main", &p, &bindings, groups(g, TILE)?)
}

/// Dispatches `matmul_int8.wgsl` for `g`: A is the node's quantized input 0 (scale and zero
/// point in its [`A_SCALE`] / [`A_ZERO`] attributes), `w` its per-channel int8 B. The weights
/// and their row sums are counted in the stage's weight bytes.
pub(crate) fn dispatch_gemm_int8(
    b: &mut Build<'_>,
    g: &Gemm,
    a: Binding,
    w: &weights::Packed,
) -> Result<(), NodeError> {
    let offset: i32 = match b.input(0).dtype {
        DatumType::U8 => 128,
        DatumType::I8 => 0,
        dt => return Err(format!("quantized input `{}` is {dt:?} (int8 or uint8 expected)", b.input(0).name).into()),
    };
    if g.b_batch.iter().any(|&s| s != 0) {
        return Err("the int8 product needs one B for every batch item".into());
    }
    let zero = b.node.int(A_ZERO, 0) as i32;
    let p =
        GemmInt8Params { gemm: params(b, g), a_scale: b.node.float(A_SCALE, 1.0), offset, zero_shift: offset - zero };
    let sums: Vec<u32> = w.row_sums().iter().map(|&s| s as u32).collect();
    *b.weight_bytes += ((w.words.len() + sums.len()) * 4) as u64;
    let weight = b.upload(&format!("{} int8 weights", b.node.name), &w.words);
    let sums = b.upload(&format!("{} weight row sums", b.node.name), &sums);
    let bias = g.bias.map_or_else(|| a.clone(), |(v, _)| Binding::Value(v));
    let bindings = [a, weight, sums, bias, Binding::Value(b.output_id(0))];
    log::debug!("{}: int8×int8 product (dot4I8Packed)", b.node.label());
    b.dispatch(&INT8, "main", &p, &bindings, groups(g, TILE_INT8)?)
}
