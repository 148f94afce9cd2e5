//! Kernel families: each file implements [`Kernel`] for the ops it runs, with its WGSL beside
//! it; [`REGISTRY`] lists them. A new op family is one new file plus one line there.
//!
//! On the device every tensor element is 32 bits: `f32` for floats, `i32` for integers (int64
//! graph values are narrowed at upload, out-of-range values are an error), `u32` 0/1 for
//! booleans. Layout kernels move 32-bit words and so serve every element type.

mod batchnorm;
mod cast;
pub(crate) mod chain;
pub(crate) mod conv;
mod conv_transpose;
pub(crate) mod elementwise;
mod gather;
mod layout;
mod logic;
mod lstm;
pub(crate) mod matmul;
mod norm;
mod pad;
pub(crate) mod params;
mod pool;
mod qdq;
mod reduce;
mod resize;
mod shape;
mod weights;

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::{DatumType, Tensor};

use crate::graph::{Attrs, Graph, Node, NodeError, OpSet, OutputType, ReadAttrs, Value, ValueId};
use params::{Layout, Params};

/// One op family.
pub(crate) trait Kernel: Sync {
    /// ONNX op types it runs.
    fn ops(&self) -> &'static [&'static str];
    /// Output types, or why this node cannot run (unsupported attribute value, type or shape).
    /// Attributes are read through `node` (an [`Attrs`]): any attribute it never reads is refused
    /// after it returns (see [`Kernels`]), so parse every attribute the kernel honours here,
    /// through the same attribute struct `build` uses (docs/adding-an-op.md).
    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError>;
    /// `Some(i)` when the output is input `i`'s buffer under a new shape: no dispatch.
    fn alias(&self, _node: &Node) -> Option<usize> {
        None
    }
    /// Records the node's dispatches.
    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError>;
    /// Index-checking dispatches (sites, see [`Build::index_check`]) the node records at most.
    fn index_sites(&self, _node: &Node) -> usize {
        0
    }
}

/// Every kernel family this build runs.
pub(crate) const REGISTRY: &[&dyn Kernel] = &[
    &elementwise::Binary,
    &elementwise::Unary,
    &chain::Chain,
    &matmul::MatMul,
    &conv::Conv,
    &conv_transpose::ConvTranspose,
    &resize::Resize,
    &pool::Pool,
    &reduce::Reduce,
    &norm::Softmax,
    &norm::LayerNorm,
    &lstm::Lstm,
    &batchnorm::BatchNorm,
    &layout::Transpose,
    &layout::Slice,
    &layout::Concat,
    &layout::Expand,
    &layout::Split,
    &pad::Pad,
    &cast::Cast,
    &qdq::Qdq,
    &gather::Gather,
    &gather::GatherNd,
    &logic::Compare,
    &logic::TestBits,
    &logic::Where,
    &shape::Reshape,
];

/// The kernel for an op type.
pub(crate) fn kernel(op: &str) -> Option<&'static dyn Kernel> {
    REGISTRY.iter().copied().find(|k| k.ops().contains(&op))
}

/// The registry as the graph loader's [`OpSet`].
pub(crate) struct Kernels;

impl OpSet for Kernels {
    fn knows(&self, op: &str) -> bool {
        kernel(op).is_some()
    }

    /// The kernel's `infer`, then the generic refusal of every attribute it did not read: a
    /// node is never run with an attribute silently ignored.
    fn infer(&self, node: &Node, inputs: &[Option<&Value>]) -> Option<Result<Vec<OutputType>, NodeError>> {
        let kernel = kernel(&node.op)?;
        let attrs = Attrs::new(node);
        Some(kernel.infer(&attrs, inputs).and_then(|types| attrs.refuse_unread().map(|()| types)))
    }
}

/// Every ONNX op type the backend claims (not the internal nodes fusion makes).
pub fn claimed_ops() -> Vec<&'static str> {
    let mut ops: Vec<&'static str> =
        REGISTRY.iter().flat_map(|k| k.ops().iter().copied()).filter(|op| !op.starts_with("edgeqa.")).collect();
    ops.sort_unstable();
    ops
}

/// A WGSL module: its name (for messages and the pipeline cache: one name, one source) and
/// source. Kernels' modules are `Shader<'static>` constants; a fused chain generates its own.
pub(crate) struct Shader<'s> {
    pub name: &'s str,
    pub source: &'s str,
}

/// A buffer bound to a dispatch.
#[derive(Clone)]
pub(crate) enum Binding {
    /// The device buffer of a graph value (constant or planned).
    Value(ValueId),
    /// A buffer the kernel made at load (packed weights, tables).
    Buffer(Arc<wgpu::Buffer>),
}

/// One compute dispatch, fixed at load.
pub(crate) struct Dispatch {
    /// Index of the graph node that recorded it.
    pub node: usize,
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
}

impl Dispatch {
    /// Records the dispatch into `pass`.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Pipelines compiled so far, by shader and entry point.
#[derive(Default)]
pub(crate) struct PipelineCache {
    /// With the params layout each was compiled for.
    pipelines: HashMap<(String, String), (Arc<wgpu::ComputePipeline>, Layout)>,
}

/// What a kernel builds its dispatches with.
pub(crate) struct Build<'a> {
    pub graph: &'a Graph,
    pub node: &'a Node,
    /// `node`'s index in `graph.nodes`.
    pub(crate) node_index: usize,
    pub device: &'a wgpu::Device,
    pub(crate) cache: &'a mut PipelineCache,
    /// The device buffer of each value: planned ones from the start, constants uploaded when a
    /// dispatch first binds them (constants read only as parameters never reach the device).
    pub(crate) buffers: &'a mut Vec<Option<Arc<wgpu::Buffer>>>,
    /// Bytes of constants uploaded so far.
    pub(crate) weight_bytes: &'a mut u64,
    /// The adapter's largest storage binding.
    pub(crate) max_binding: u64,
    /// Whether the device has `shader-f16` (f16 weights are read natively).
    pub(crate) shader_f16: bool,
    pub(crate) dispatches: &'a mut Vec<Dispatch>,
    /// Where index-taking kernels report out-of-range indices.
    pub(crate) index_checks: &'a mut IndexChecks,
}

/// The stage's buffer of index-check sites (`index_check.wgsl`): 4 words per site, cleared
/// before every run and read back with the outputs.
pub(crate) struct IndexChecks {
    /// `None` when no node checks indices.
    pub buffer: Option<Arc<wgpu::Buffer>>,
    /// The node (index in the graph) of each site handed out so far.
    pub sites: Vec<usize>,
    capacity: usize,
}

/// Words per index-check site: flag, index, axis, axis length.
pub(crate) const SITE_WORDS: usize = 4;

impl IndexChecks {
    /// Room for `capacity` sites (no buffer when 0).
    pub fn new(device: &wgpu::Device, capacity: usize) -> IndexChecks {
        let buffer = (capacity > 0).then(|| {
            Arc::new(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("index checks"),
                size: (capacity * SITE_WORDS * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }))
        });
        IndexChecks { buffer, sites: Vec::new(), capacity }
    }

    /// Bytes of the buffer (0 without one).
    pub fn bytes(&self) -> u64 {
        (self.capacity * SITE_WORDS * 4) as u64
    }
}

/// Workgroup size of the one-thread-per-element kernels.
pub(crate) const WG: u32 = 256;
/// The most workgroups along one dispatch dimension.
const MAX_GROUPS: u32 = 65535;

/// `groups` workgroups (at least one) as x × y, x up to the per-dimension limit; `None` when
/// y would pass it too.
fn split_groups(groups: u64) -> Option<[u32; 3]> {
    let groups = groups.max(1);
    let x = groups.min(MAX_GROUPS as u64);
    let y = groups.div_ceil(x);
    (y <= MAX_GROUPS as u64).then_some([x as u32, y as u32, 1])
}

impl<'a> Build<'a> {
    /// The node's attributes, for the kernel's params constructor.
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs::new(self.node)
    }

    /// Input `i`'s value (the loader checked it is present).
    pub fn input(&self, i: usize) -> &Value {
        &self.graph.values[self.node.inputs[i].expect("present input")]
    }

    /// Input `i`'s id.
    pub fn input_id(&self, i: usize) -> ValueId {
        self.node.inputs[i].expect("present input")
    }

    /// Whether optional input `i` is given.
    pub fn has_input(&self, i: usize) -> bool {
        self.node.inputs.get(i).is_some_and(|v| v.is_some())
    }

    /// Output `i`'s value.
    pub fn output(&self, i: usize) -> &Value {
        &self.graph.values[self.node.outputs[i]]
    }

    /// Output `i`'s id.
    pub fn output_id(&self, i: usize) -> ValueId {
        self.node.outputs[i]
    }

    /// Uploads a kernel-made buffer (packed weights, tables) at load.
    pub fn upload(&self, label: &str, words: &[u32]) -> Binding {
        use wgpu::util::DeviceExt;
        let contents: &[u8] = if words.is_empty() { &[0; 4] } else { bytemuck::cast_slice(words) };
        Binding::Buffer(Arc::new(self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE,
        })))
    }

    /// A new index-check site for the node: the error buffer to bind at 4 (after three others,
    /// as `index_check.wgsl` declares it) and the site number for the params.
    pub fn index_check(&mut self) -> Result<(Binding, u32), NodeError> {
        let checks = &mut *self.index_checks;
        let buffer = checks.buffer.clone().filter(|_| checks.sites.len() < checks.capacity);
        let Some(buffer) = buffer else {
            return Err(NodeError::Internal(format!("more index checks than the {} counted at load", checks.capacity)));
        };
        checks.sites.push(self.node_index);
        Ok((Binding::Buffer(buffer), (checks.sites.len() - 1) as u32))
    }

    /// Records a dispatch of `shader`'s `entry` with `params` (binding 0, read-only storage of
    /// u32 words, named in the shader by [`params::wgsl`]) and `bindings` at 1, 2, …: the last
    /// is written, the others read.
    pub fn dispatch<P: Params>(
        &mut self,
        shader: &Shader<'_>,
        entry: &str,
        params: &P,
        bindings: &[Binding],
        workgroups: [u32; 3],
    ) -> Result<(), NodeError> {
        let pipeline = self.pipeline(shader, entry, P::LAYOUT)?;
        let params = self.upload(&format!("{} params", self.node.name), &params.words());
        let mut buffers: Vec<Arc<wgpu::Buffer>> = Vec::with_capacity(bindings.len() + 1);
        for b in std::iter::once(&params).chain(bindings) {
            buffers.push(match b {
                Binding::Buffer(buf) => buf.clone(),
                Binding::Value(v) => self.value_buffer(*v)?,
            });
        }
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&self.node.name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.dispatches.push(Dispatch { node: self.node_index, pipeline, bind_group, workgroups });
        Ok(())
    }

    /// A dispatch over `n` threads in workgroups of [`WG`] (split over y past the x limit; the
    /// shader recovers the index with the prelude's `linear_index`).
    pub fn dispatch_1d<P: Params>(
        &mut self,
        shader: &Shader<'_>,
        entry: &str,
        params: &P,
        bindings: &[Binding],
        n: usize,
    ) -> Result<(), NodeError> {
        let groups = (n as u64).div_ceil(WG as u64);
        let workgroups = split_groups(groups)
            .ok_or_else(|| NodeError::TooLarge(format!("{n} elements is more than one dispatch can cover")))?;
        self.dispatch(shader, entry, params, bindings, workgroups)
    }

    /// A dispatch of one workgroup per row, `rows` of them (split over y past the x limit; the
    /// shader's row is `wid.x + wid.y * nwg.x`), for kernels that reduce a long row together.
    pub fn dispatch_rows<P: Params>(
        &mut self,
        shader: &Shader<'_>,
        entry: &str,
        params: &P,
        bindings: &[Binding],
        rows: usize,
    ) -> Result<(), NodeError> {
        let workgroups = split_groups(rows as u64)
            .ok_or_else(|| NodeError::TooLarge(format!("{rows} rows is more than one dispatch can cover")))?;
        self.dispatch(shader, entry, params, bindings, workgroups)
    }

    /// The buffer of value `v`, uploading a constant on first use.
    fn value_buffer(&mut self, v: ValueId) -> Result<Arc<wgpu::Buffer>, NodeError> {
        if let Some(b) = &self.buffers[v] {
            return Ok(b.clone());
        }
        let value = &self.graph.values[v];
        // A stored quantized weight read as f32 (not packed) is dequantized for the upload.
        let t = value
            .constant_tensor()
            .ok_or_else(|| NodeError::Internal(format!("value `{}` has no device buffer", value.name)))?;
        let words = words(&t).map_err(|e| NodeError::Unsupported(format!("constant `{}`: {e}", value.name)))?;
        let bytes = (words.len().max(1) * 4) as u64;
        if bytes > self.max_binding {
            return Err(NodeError::TooLarge(format!(
                "constant `{}` ({bytes} bytes) exceeds the adapter's storage binding limit",
                value.name
            )));
        }
        let Binding::Buffer(b) = self.upload(&value.name, &words) else { unreachable!("upload makes a buffer") };
        *self.weight_bytes += bytes;
        self.buffers[v] = Some(b.clone());
        Ok(b)
    }

    /// The pipeline of `shader`'s `entry`, compiled with the WGSL names of `layout`'s words.
    fn pipeline(
        &mut self,
        shader: &Shader<'_>,
        entry: &str,
        layout: Layout,
    ) -> Result<Arc<wgpu::ComputePipeline>, NodeError> {
        let key = (shader.name.to_string(), entry.to_string());
        if let Some((p, compiled)) = self.cache.pipelines.get(&key) {
            if *compiled != layout {
                return Err(NodeError::Internal(format!(
                    "shader `{}` ({entry}) dispatched with two params layouts: {compiled:?} and {layout:?}",
                    shader.name
                )));
            }
            return Ok(p.clone());
        }
        if let Some(why) = params::malformed(layout) {
            return Err(NodeError::Internal(format!("params of shader `{}`: {why}", shader.name)));
        }
        // `enable` directives go before every declaration.
        let (enables, body): (Vec<&str>, Vec<&str>) = shader.source.lines().partition(|l| l.starts_with("enable "));
        let activation = &*elementwise::ACTIVATION_WGSL;
        let names = params::wgsl(layout);
        let source = format!("{}\n{names}{PRELUDE}\n{activation}\n{}", enables.join("\n"), body.join("\n"));
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(NodeError::Shader {
                shader: shader.name.to_string(),
                entry: entry.to_string(),
                message: e.to_string(),
            });
        }
        let p = Arc::new(pipeline);
        self.cache.pipelines.insert(key, (p.clone(), layout));
        Ok(p)
    }
}

/// WGSL shared by every shader (each declares its params `p: array<u32>` at binding 0): the
/// flat thread index of a [`Build::dispatch_1d`] dispatch, and the index math of the strided
/// and broadcasting kernels (binary, compare, where, copy, reduce, chains).
const PRELUDE: &str = r#"
fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// Offsets of element `i` of a row-major rank-6 shape (at p[shape .. shape + 6], dims left-padded
// with 1; see `padded`) in up to four tensors walked with the element strides at p[strides.x ..],
// p[strides.y ..], p[strides.z ..], p[strides.w ..] (0 where broadcast; see `broadcast_strides`).
// Dims before `first` are 1 and skipped. Negative strides (i32 bits) work: u32 arithmetic wraps.
fn broadcast_offsets(i: u32, shape: u32, strides: vec4<u32>, first: i32) -> vec4<u32> {
    var rem = i;
    var off = vec4<u32>(0u);
    for (var d = 5i; d >= first; d--) {
        let k = u32(d);
        let idx = rem % p[shape + k];
        rem = rem / p[shape + k];
        off += idx * vec4<u32>(p[strides.x + k], p[strides.y + k], p[strides.z + k], p[strides.w + k]);
    }
    return off;
}
"#;

// ---- helpers shared by kernel families ----

/// WGSL `const` declarations naming each entry of an op table by its position,
/// `const {prefix}{name}: u32 = {k}u;`. A shader that switches on codes a kernel hands out by
/// position in a Rust table uses these names (the declarations prepended to its source), so
/// the table is the one source of the numbering: a case for an entry that is not in the table
/// does not compile, and `every_entry_has_a_case` tests catch an entry without one.
pub(crate) fn code_constants(prefix: &str, names: &[&str]) -> String {
    names.iter().enumerate().map(|(k, n)| format!("const {prefix}{n}: u32 = {k}u;\n")).collect()
}

/// A shader whose source is [`code_constants`] of `names` followed by `wgsl`.
pub(crate) fn with_codes(prefix: &str, names: &[&str], wgsl: &str) -> String {
    format!("{}{wgsl}", code_constants(prefix, names))
}

/// Most dims the strided kernels iterate over.
pub(crate) const MAX_RANK: usize = 6;

/// Row-major strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// `shape` and `strides` left-padded to [`MAX_RANK`] (size 1, stride 0) as u32 words, or an error
/// past that rank.
pub(crate) fn padded(shape: &[usize], strides: &[usize]) -> Result<([u32; MAX_RANK], [u32; MAX_RANK]), NodeError> {
    if shape.len() > MAX_RANK {
        return Err(NodeError::Rank { rank: shape.len(), max: MAX_RANK });
    }
    let mut s = [1u32; MAX_RANK];
    let mut t = [0u32; MAX_RANK];
    let off = MAX_RANK - shape.len();
    for i in 0..shape.len() {
        s[off + i] = u32::try_from(shape[i]).map_err(|_| NodeError::TooLarge("dimension too large".into()))?;
        t[off + i] = u32::try_from(strides[i]).map_err(|_| NodeError::TooLarge("stride too large".into()))?;
    }
    Ok((s, t))
}

/// Strides of `shape` broadcast to `out` (numpy rules): 0 where a dim is broadcast.
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len()).map(|i| if i < off || shape[i - off] == 1 { 0 } else { s[i - off] }).collect()
}

/// Numpy broadcast of two shapes.
pub(crate) fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, NodeError> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() < rank { 1 } else { s[i + s.len() - rank] };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            (x, y) => Err(NodeError::Broadcast { a: a.to_vec(), b: b.to_vec(), x, y }),
        })
        .collect()
}

/// Normalises a possibly negative axis for `rank`.
pub(crate) fn axis(a: i64, rank: usize) -> Result<usize, NodeError> {
    let r = rank as i64;
    // A scalar has no axis: every op that takes one needs rank 1 or more.
    if a < -r || a >= r {
        return Err(NodeError::Axis { axis: a, rank });
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

/// The integer values of a constant input (`None` when the input is not a constant).
pub(crate) fn const_ints(v: &Value) -> Option<Vec<i64>> {
    let t = v.constant.as_ref()?;
    let t = t.cast_to::<i64>().ok()?;
    Some(t.to_plain_array_view::<i64>().ok()?.iter().copied().collect())
}

/// The float values of a constant input.
pub(crate) fn const_floats(v: &Value) -> Option<Vec<f32>> {
    let t = v.constant.as_ref()?;
    let t = t.cast_to::<f32>().ok()?;
    Some(t.to_plain_array_view::<f32>().ok()?.iter().copied().collect())
}

/// Whether `dt` is carried on the device (as 32-bit words).
pub(crate) fn device_type(dt: DatumType) -> bool {
    matches!(dt, DatumType::F32 | DatumType::I64 | DatumType::I32 | DatumType::Bool | DatumType::U8 | DatumType::I8)
}

/// Requires the input to be f32.
pub(crate) fn want_f32(v: &Value, what: &'static str) -> Result<(), NodeError> {
    if v.dtype != DatumType::F32 {
        return Err(NodeError::NotF32 { what, name: v.name.clone(), dtype: v.dtype });
    }
    Ok(())
}

/// The device words of a constant: f32 bits, integers narrowed to i32, booleans 0/1.
pub(crate) fn words(t: &Tensor) -> Result<Vec<u32>, NodeError> {
    Ok(match t.datum_type() {
        DatumType::F32 => t.to_plain_array_view::<f32>().map_err(internal)?.iter().map(|x| x.to_bits()).collect(),
        DatumType::Bool => t.to_plain_array_view::<bool>().map_err(internal)?.iter().map(|&b| b as u32).collect(),
        dt if dt.is_integer() => {
            let v = t.cast_to::<i64>().map_err(internal)?;
            let v = v.to_plain_array_view::<i64>().map_err(internal)?;
            let mut out = Vec::with_capacity(v.len());
            for &x in v.iter() {
                out.push(
                    i32::try_from(x)
                        .map_err(|_| NodeError::Unsupported(format!("integer {x} does not fit the device's i32")))?
                        as u32,
                );
            }
            out
        }
        dt if dt.is_float() => {
            let v = t.cast_to::<f32>().map_err(internal)?;
            v.to_plain_array_view::<f32>().map_err(internal)?.iter().map(|x| x.to_bits()).collect()
        }
        dt => return Err(NodeError::Unsupported(format!("element type {dt:?} is not carried on the device"))),
    })
}

/// A tract error where none can happen (a view of a tensor of the type just checked).
fn internal(e: impl std::fmt::Display) -> NodeError {
    NodeError::Internal(e.to_string())
}

/// Activation fused into a producer's epilogue (Conv, MatMul, Gemm), with its parameters: the
/// code of `apply_activation` (generated from [`elementwise::UNARY`]: its index + 1, 0 none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Activation {
    pub code: u32,
    pub alpha: f32,
    pub beta: f32,
}

impl Activation {
    /// The activation a node carries from fusion (see `fuse.rs`).
    pub fn of(node: &Node) -> Activation {
        Activation {
            code: node.int(FUSED_ACTIVATION, 0) as u32,
            alpha: node.float(FUSED_ALPHA, 0.0),
            beta: node.float(FUSED_BETA, 0.0),
        }
    }
}

/// Attribute names fusion adds to a producer node.
pub(crate) const FUSED_ACTIVATION: &str = "edgeqa.activation";
pub(crate) const FUSED_ALPHA: &str = "edgeqa.alpha";
pub(crate) const FUSED_BETA: &str = "edgeqa.beta";

/// The activation a unary node runs in a producer's epilogue, with its parameters (`None` when
/// the op is not fusable or its parameters are not constants).
pub(crate) fn activation_of(node: &Node, graph: &Graph) -> Option<Activation> {
    let code = elementwise::UNARY.iter().position(|u| u.fusable && u.op == node.op)?;
    let inputs: Vec<Option<&Value>> = node.inputs.iter().map(|i| i.map(|i| &graph.values[i])).collect();
    let (alpha, beta) = elementwise::parameters(&Attrs::new(node), &inputs).ok()?;
    Some(Activation { code: code as u32 + 1, alpha, beta })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry of a table whose codes a shader switches on has its case there (a case
    /// without an entry does not compile: the name is undeclared).
    #[test]
    fn every_entry_has_a_case() {
        let tables: [(&str, &[&str], &str); 4] = [
            ("OP_", logic::COMPARE_OPS, include_str!("compare.wgsl")),
            ("OP_", logic::TEST_BITS_OPS, include_str!("test_bits.wgsl")),
            ("OP_", reduce::OPS, include_str!("reduce.wgsl")),
            ("MODE_", pad::MODES, include_str!("pad.wgsl")),
        ];
        for (prefix, names, wgsl) in tables {
            for name in names {
                assert!(wgsl.contains(&format!("{prefix}{name}")), "no case for {prefix}{name}");
            }
        }
        assert_eq!(code_constants("OP_", &["A", "B"]), "const OP_A: u32 = 0u;\nconst OP_B: u32 = 1u;\n");
    }
}
