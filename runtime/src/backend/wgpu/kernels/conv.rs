//! Conv (1-D and 2-D; stride, padding incl. auto_pad, dilation, groups) with a fused bias and
//! activation: `conv.wgsl`, and 1×1 convolutions as tiled products on `matmul.wgsl`.

use tract_onnx::prelude::DatumType;

use super::matmul::{A_SCALE, Gemm, dispatch_gemm, dispatch_gemm_int8};
use super::params::params;
use super::weights::{self, WeightShaders, weight_shaders};
use super::{Activation, Binding, Build, Kernel, Shader, want_f32};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, Graph, Node, NodeError, OutputType, Value};

const SHADERS: WeightShaders = weight_shaders!("conv", "conv.wgsl");

/// Conv.
pub(crate) struct Conv;

/// Spatial geometry of one convolution, 1-D convs as 2-D with height 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub n: usize,
    pub c: usize,
    pub input: [usize; 2],
    pub m: usize,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// Padding before (top, left).
    pub pad_begin: [usize; 2],
    pub output: [usize; 2],
    pub group: usize,
}

/// Output size and padding of one spatial axis (`auto_pad` as ONNX defines it).
pub(crate) fn axis_geometry(
    auto_pad: &str,
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: (usize, usize),
    ceil_mode: bool,
) -> Result<(usize, usize), NodeError> {
    let span = dilation * (kernel - 1) + 1;
    match auto_pad {
        "NOTSET" => {
            let padded = input + pads.0 + pads.1;
            if padded < span {
                return Err(format!("kernel span {span} is larger than the padded input {padded}").into());
            }
            let out = if ceil_mode { (padded - span).div_ceil(stride) + 1 } else { (padded - span) / stride + 1 };
            Ok((out, pads.0))
        }
        "VALID" => {
            if input < span {
                return Err(format!("kernel span {span} is larger than the input {input}").into());
            }
            Ok(((input - span) / stride + 1, 0))
        }
        "SAME_UPPER" | "SAME_LOWER" => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + span).saturating_sub(input);
            let begin = if auto_pad == "SAME_UPPER" { total / 2 } else { total - total / 2 };
            Ok((out, begin))
        }
        other => Err(format!("auto_pad `{other}` is not valid").into()),
    }
}

/// Geometry from the node's attributes for input `x` and weight `w`.
pub(crate) fn conv_geometry(node: &Attrs<'_>, x: &[usize], w: &[usize]) -> Result<ConvGeometry, NodeError> {
    if x.len() != w.len() || !(3..=4).contains(&x.len()) {
        return Err(format!("input {x:?} and weight {w:?}: only 1-D and 2-D convolutions are supported").into());
    }
    let spatial = x.len() - 2;
    let group = node.int("group", 1).max(1) as usize;
    let (n, c, m) = (x[0], x[1], w[0]);
    if c % group != 0 || m % group != 0 || w[1] * group != c {
        return Err(format!("input channels {c}, weight {w:?} and group {group} do not match").into());
    }
    let list = |name: &str, default: usize| -> Result<Vec<usize>, NodeError> {
        match node.ints(name) {
            None => Ok(vec![default; spatial]),
            Some(v) if v.len() == spatial && v.iter().all(|&x| x >= 1) => Ok(v.iter().map(|&x| x as usize).collect()),
            Some(v) => Err(format!("`{name}` {v:?} is not valid for {spatial} spatial dims").into()),
        }
    };
    let strides = list("strides", 1)?;
    let dilations = list("dilations", 1)?;
    if let Some(k) = node.ints("kernel_shape")
        && k.iter().map(|&x| x as usize).collect::<Vec<_>>() != w[2..]
    {
        return Err(format!("kernel_shape {k:?} disagrees with the weight {w:?}").into());
    }
    let pads = match node.ints("pads") {
        None => vec![0; 2 * spatial],
        Some(p) if p.len() == 2 * spatial && p.iter().all(|&x| x >= 0) => p.iter().map(|&x| x as usize).collect(),
        Some(p) => return Err(format!("`pads` {p:?} is not valid").into()),
    };
    let auto_pad = node.string("auto_pad", "NOTSET");
    let mut g = ConvGeometry {
        n,
        c,
        input: [1, 1],
        m,
        kernel: [1, 1],
        strides: [1, 1],
        dilations: [1, 1],
        pad_begin: [0, 0],
        output: [1, 1],
        group,
    };
    let off = 2 - spatial;
    for d in 0..spatial {
        let (out, begin) = axis_geometry(
            &auto_pad,
            x[2 + d],
            w[2 + d],
            strides[d],
            dilations[d],
            (pads[d], pads[d + spatial]),
            false,
        )?;
        g.input[off + d] = x[2 + d];
        g.kernel[off + d] = w[2 + d];
        g.strides[off + d] = strides[d];
        g.dilations[off + d] = dilations[d];
        g.pad_begin[off + d] = begin;
        g.output[off + d] = out;
    }
    Ok(g)
}

impl ConvGeometry {
    /// The output shape in the input's rank.
    pub fn output_shape(&self, rank: usize) -> Vec<usize> {
        let mut s = vec![self.n, self.m];
        s.extend(&self.output[4 - rank..]);
        s
    }
}

impl Kernel for Conv {
    fn ops(&self) -> &'static [&'static str] {
        &["Conv"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let (Some(Some(x)), Some(Some(w))) = (inputs.first(), inputs.get(1)) else {
            return Err("needs an input and a weight".into());
        };
        want_f32(x, "input")?;
        want_f32(w, "weight")?;
        let g = conv_geometry(node, &x.shape, &w.shape)?;
        if let Some(Some(b)) = inputs.get(2) {
            want_f32(b, "bias")?;
            if b.shape != [g.m] {
                return Err(format!("bias {:?} is not [{}]", b.shape, g.m).into());
            }
        }
        Ok(vec![OutputType::new(DatumType::F32, g.output_shape(x.shape.len()))])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let g = conv_geometry(&b.attrs(), &b.input(0).shape, &b.input(1).shape)?;
        if b.node.attribute_names().any(|a| a == A_SCALE) {
            let w = int8_weights(b.node, b.graph).ok_or("W is not per-channel int8 (fusion checked it)")?;
            let gemm = pointwise_gemm(b, &g);
            return dispatch_gemm_int8(b, &gemm, Binding::Value(b.input_id(0)), &w);
        }
        // Constant weights [M, C/group, KH, KW] may be packed: row = output channel.
        let cols = b.input(1).len() / g.m.max(1);
        let (weight, form) = weights::bind(b, b.input_id(1), g.m, cols, &|r, c| r * cols + c);
        if is_pointwise(&g) {
            let gemm = pointwise_gemm(b, &g);
            return dispatch_gemm(b, &gemm, Binding::Value(b.input_id(0)), (weight, form));
        }
        let shader = SHADERS.pick(form, b.shader_f16);
        dispatch_conv(b, shader, &g, weight)
    }
}

/// Whether a convolution is 1×1 with stride 1, no padding and one group: a product.
fn is_pointwise(g: &ConvGeometry) -> bool {
    g.kernel == [1, 1] && g.strides == [1, 1] && g.pad_begin == [0, 0] && g.group == 1
}

/// A pointwise Conv's constant W packed per channel as int8, when its values are exactly that:
/// the condition for the int8×int8 product.
pub(crate) fn int8_weights(node: &Node, graph: &Graph) -> Option<weights::Packed> {
    let (x, w) = (node.inputs.first().copied()??, node.inputs.get(1).copied()??);
    let g = conv_geometry(&Attrs::new(node), &graph.values[x].shape, &graph.values[w].shape).ok()?;
    let cols = graph.values[w].len() / g.m.max(1);
    is_pointwise(&g).then(|| weights::int8_matrix(graph, w, g.m, cols, &|r, c| r * cols + c))?
}

/// A 1×1 convolution as a tiled product per batch item: `Yᵀ[HW, M] = Xᵀ[HW, C] · Wᵀ[C, M]`,
/// written back in NCHW through Y strides. W is the B operand, so packed weights serve it as
/// they serve MatMul.
fn pointwise_gemm(b: &Build<'_>, g: &ConvGeometry) -> Gemm {
    let hw = g.output[0] * g.output[1];
    Gemm {
        m: hw,
        n: g.m,
        k: g.c,
        batch: vec![g.n],
        a_batch: vec![g.c * hw],
        b_batch: vec![0],
        a: [1, hw],
        b: [1, g.c],
        bias: b.has_input(2).then(|| (b.input_id(2), [0, 1])),
        alpha: 1.0,
        beta: 1.0,
        y: [g.m * hw, 1, hw],
    }
}

params! {
    /// `conv.wgsl`'s and `conv_transpose.wgsl`'s params: one thread per output element.
    struct ConvParams {
        total: u32,
        /// Input channels.
        c: u32,
        /// Output channels.
        m: u32,
        window: WindowParams,
        group: u32,
        has_bias: bool,
        /// The fused activation ([`Activation`]).
        activation: u32,
        alpha: f32,
        beta: f32,
    }
}

params! {
    /// The geometry of a 2-D window sliding over an image (H, W) to (OH, OW): the part of
    /// [`ConvParams`] and `pool.rs`'s `PoolParams` they share.
    pub(crate) struct WindowParams {
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
        kh: u32,
        kw: u32,
        stride_h: u32,
        stride_w: u32,
        pad_top: u32,
        pad_left: u32,
        dilation_h: u32,
        dilation_w: u32,
    }
}

impl WindowParams {
    /// From (height, width) pairs: input, output, kernel, strides, padding before, dilations.
    pub(crate) fn new(
        input: [usize; 2],
        output: [usize; 2],
        kernel: [usize; 2],
        strides: [usize; 2],
        pad_begin: [usize; 2],
        dilations: [usize; 2],
    ) -> WindowParams {
        let u = |x: usize| x as u32;
        WindowParams {
            h: u(input[0]),
            w: u(input[1]),
            oh: u(output[0]),
            ow: u(output[1]),
            kh: u(kernel[0]),
            kw: u(kernel[1]),
            stride_h: u(strides[0]),
            stride_w: u(strides[1]),
            pad_top: u(pad_begin[0]),
            pad_left: u(pad_begin[1]),
            dilation_h: u(dilations[0]),
            dilation_w: u(dilations[1]),
        }
    }
}

/// Dispatches a convolution-shaped kernel (`conv.wgsl`, `conv_transpose.wgsl`: the same
/// parameter layout) over every output element, with the node's bias and fused activation.
pub(crate) fn dispatch_conv(
    b: &mut Build<'_>,
    shader: &Shader<'_>,
    g: &ConvGeometry,
    weight: Binding,
) -> Result<(), NodeError> {
    let total = b.output(0).len();
    let has_bias = b.has_input(2);
    let Activation { code, alpha, beta } = Activation::of(b.node);
    let u = |x: usize| x as u32;
    let p = ConvParams {
        total: u(total),
        c: u(g.c),
        m: u(g.m),
        window: WindowParams::new(g.input, g.output, g.kernel, g.strides, g.pad_begin, g.dilations),
        group: u(g.group),
        has_bias,
        activation: code,
        alpha,
        beta,
    };
    // Without a bias the binding is a placeholder the shader never reads: the input, which is
    // on the device anyway (the weight value could be packed and its f32 copy never uploaded).
    let bias = if has_bias { b.input_id(2) } else { b.input_id(0) };
    let bindings = [Binding::Value(b.input_id(0)), weight, Binding::Value(bias), Binding::Value(b.output_id(0))];
    b.dispatch_1d(shader, "main", &p, &bindings, total)
}
