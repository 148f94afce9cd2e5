//! The CPU backend: the stage's ONNX, shapes fixed from the manifest, optimised by tract.

pub use edgeqa_format::tract::{datum_type, dtype_of, framework};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::tract_data::internal::bail;

use super::{Backend, BackendError, NodeProfile, NodeTime, StageMemory, StageSession, checked, median, tract_fixes};
use crate::manifest::{DType, StageInfo};
use crate::onnx::{self as onnx_pb, pb};
use crate::tensor::{Tensor as EqTensor, TensorData};

const NAME: &str = "tract";

/// Every node (including those in subgraphs) whose op tract's ONNX front end does not know,
/// as `Op (node name)`.
pub fn unsupported_nodes(model: &pb::ModelProto) -> Vec<String> {
    fn walk(g: &pb::GraphProto, known: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
        for n in &g.node {
            let default_domain = n.domain.is_empty() || n.domain == "ai.onnx" || n.domain == "ai.onnx.ml";
            if !default_domain || !known(&n.op_type) {
                let name =
                    if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() };
                out.push(format!("{} ({name})", onnx_pb::op_key(n)));
            }
            for a in &n.attribute {
                for sub in a.g.iter().chain(&a.graphs) {
                    walk(sub, known, out);
                }
            }
        }
    }
    let reg = &framework().op_register.0;
    let mut out = Vec::new();
    if let Some(g) = &model.graph {
        walk(g, &|op| reg.contains_key(op), &mut out);
    }
    out
}

/// The ONNX ops edgeqa vouches for on tract: exactly the ops of the node tests listed in
/// `tests/onnx-conformance/tract/claimed.txt`, each of which passes on this backend (the
/// conformance test checks both). Derived from a discovery run (`cargo test -p edgeqa --test
/// onnx_conformance -- --ignored --nocapture discover_tract`, which prints the ops of the
/// passing tests). tract's front end knows more ops; those run but edgeqa does not vouch for them.
pub fn claimed_ops() -> &'static [&'static str] {
    CLAIMED_OPS
}

#[rustfmt::skip]
const CLAIMED_OPS: &[&str] = &[
    "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "ArrayFeatureExtractor", "Asin", "Asinh",
    "Atan", "Atanh", "Attention", "AveragePool", "BatchNormalization", "BitShift", "BitwiseAnd",
    "BitwiseNot", "BitwiseOr", "BitwiseXor", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Concat",
    "Constant", "ConstantOfShape", "Conv", "ConvInteger", "ConvTranspose", "Cos", "Cosh", "CumSum", "DFT",
    "DepthToSpace", "DequantizeLinear", "Div", "Dropout", "DynamicQuantizeLinear", "Elu", "Equal", "Erf",
    "Exp", "Expand", "EyeLike", "Flatten", "Floor", "GRU", "Gather", "GatherElements", "GatherND", "Gelu",
    "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "GridSample",
    "GroupNormalization", "HardSigmoid", "HardSwish", "Hardmax", "Identity", "If", "InstanceNormalization",
    "IsInf", "IsNaN", "LRN", "LSTM", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log",
    "LogSoftmax", "LpNormalization", "MatMul", "MatMulInteger", "Max", "MaxPool", "Mean",
    "MeanVarianceNormalization", "Min", "Mish", "Mod", "Mul", "Neg", "NonMaxSuppression", "NonZero", "Not",
    "OneHot", "Or", "PRelu", "Pad", "Pow", "QLinearConv", "QLinearMatMul", "QuantizeLinear",
    "RMSNormalization", "RNN", "Range", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare",
    "Relu", "Reshape", "Resize", "RotaryEmbedding", "Round", "STFT", "Scan", "Scatter", "ScatterElements",
    "ScatterND", "Selu", "Shape", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Slice", "Softmax",
    "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Swish", "Tan", "Tanh",
    "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze", "Where", "Xor",
];

/// Most threads [`with_threads`] and [`set_threads`] accept.
pub const MAX_THREADS: usize = 64;

/// Whether this build has tract's thread pool (the `threads` feature). Without it tract runs
/// on one thread and [`with_threads`] / [`set_threads`] refuse any other count.
pub const THREAD_POOL: bool = cfg!(feature = "threads");

/// tract's executors with `n` threads, built once per `n` (a rayon pool each).
fn executor(threads: usize) -> Result<tract_linalg::multithread::Executor, BackendError> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use tract_linalg::multithread::Executor;
    static POOLS: Mutex<Option<HashMap<usize, Executor>>> = Mutex::new(None);
    let fail = |reason: String| BackendError::Load { origin: format!("{threads} threads"), backend: NAME, reason };
    if !(1..=MAX_THREADS).contains(&threads) {
        return Err(fail(format!("the thread count must be 1 to {MAX_THREADS}")));
    }
    if threads == 1 {
        return Ok(Executor::SingleThread);
    }
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = pools.get_or_insert_with(HashMap::new).get(&threads) {
        return Ok(e.clone());
    }
    let e = pool(threads).map_err(fail)?;
    pools.get_or_insert_with(HashMap::new).insert(threads, e.clone());
    Ok(e)
}

/// A new pool of `threads` threads for tract.
#[cfg(feature = "threads")]
fn pool(threads: usize) -> Result<tract_linalg::multithread::Executor, String> {
    use tract_linalg::multithread::Executor;
    // tract panics when the pool cannot be built (no threads to be had).
    tract_fixes::catch_panic(|| Executor::multithread_with_name(threads, "edgeqa-tract"))
        .map_err(|panic| format!("cannot start a pool of {threads} threads: {panic}"))
}

/// Without the `threads` feature there is no pool to build.
#[cfg(not(feature = "threads"))]
fn pool(_threads: usize) -> Result<tract_linalg::multithread::Executor, String> {
    Err("this build has no thread pool (it was built without the `threads` feature): tract runs on 1 thread".into())
}

/// Runs `f` with tract's matrix products (convolutions, MatMul, Gemm) on the calling thread
/// spread over `threads` threads (1: the calling thread alone). Other threads keep their setting.
pub fn with_threads<R>(threads: usize, f: impl FnOnce() -> R) -> Result<R, BackendError> {
    let e = executor(threads)?;
    Ok(tract_linalg::multithread::multithread_tract_scope(e, f))
}

/// Sets how many threads tract's matrix products use, on every thread of the process that has
/// no [`with_threads`] of its own (the default is 1).
pub fn set_threads(threads: usize) -> Result<(), BackendError> {
    tract_linalg::multithread::set_default_executor(executor(threads)?);
    Ok(())
}

/// The tract CPU backend.
#[derive(Debug, Default)]
pub struct TractBackend;

impl TractBackend {
    /// A new backend (tract's op registry is shared process-wide).
    pub fn new() -> TractBackend {
        TractBackend
    }
}

/// A stage on tract; always handed out inside a [`checked::CheckedSession`], which checks the
/// inputs and outputs against the manifest.
struct TractStage {
    origin: String,
    memory: StageMemory,
    plan: std::sync::Arc<TypedRunnableModel>,
    /// For each model input (tract order), the index into the manifest's inputs.
    input_order: Vec<usize>,
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn load_stage(&self, stage: &StageInfo, onnx: &[u8], origin: &str) -> Result<Box<dyn StageSession>, BackendError> {
        super::require_onnx(stage, origin, NAME)?;
        let (live_before, _) = crate::budget::heap();
        let load_err = |reason: String| BackendError::Load { origin: origin.to_string(), backend: NAME, reason };
        let mut proto = onnx_pb::decode(onnx, origin).map_err(|e| load_err(e.to_string()))?;
        onnx_pb::check_wiring(&proto).map_err(|e| load_err(e.to_string()))?;
        let unsupported = unsupported_nodes(&proto);
        if !unsupported.is_empty() {
            return Err(BackendError::Unsupported { origin: origin.to_string(), backend: NAME, nodes: unsupported });
        }
        // The rewrites keep the graph's inputs, outputs and Gathers: `proto` still describes the
        // stage for the checked session.
        tract_fixes::apply(&mut proto, origin).map_err(|e| load_err(e.to_string()))?;
        super::tract_speed::apply(&mut proto, origin);
        let (plan, input_order) = tract_fixes::catch_panic(|| plan(&proto, stage, origin))
            .map_err(|panic| load_err(format!("tract panicked while loading the graph: {panic}")))??;
        log::debug!("{origin}: tract plan ready ({} nodes)", plan.model().nodes().len());
        let model = plan.model();
        if model.outputs.len() != stage.outputs.len() {
            return Err(load_err(format!(
                "the graph has {} outputs, the manifest lists {}",
                model.outputs.len(),
                stage.outputs.len()
            )));
        }
        for (outlet, info) in model.outputs.iter().zip(&stage.outputs) {
            let dt = model.outlet_fact(*outlet).map_err(|e| load_err(format!("{e:#}")))?.datum_type;
            checked::check_output_type(origin, NAME, info, &format!("{dt:?}"), output_dtype(dt))?;
        }
        let mut memory = plan_memory(&plan);
        let (live_after, _) = crate::budget::heap();
        // Weights kept: what the load retained on the heap when allocations are counted (packed
        // weights live inside tract's ops), else at least the graph's initializers.
        memory.weights = if live_before > 0 {
            memory.weights.max(live_after.saturating_sub(live_before))
        } else {
            memory.weights.max(onnx_pb::initializer_bytes(&proto))
        };
        log::debug!("{origin}: {memory:?}");
        let session = TractStage { origin: origin.to_string(), memory, plan, input_order };
        checked::wrap(stage, &proto, origin, Box::new(session))
    }
}

/// Parses, types and optimises a stage graph with its inputs fixed from the manifest; also
/// returns, for each model input (tract order), its index in the manifest's inputs.
fn plan(
    proto: &pb::ModelProto,
    stage: &StageInfo,
    origin: &str,
) -> Result<(std::sync::Arc<TypedRunnableModel>, Vec<usize>), BackendError> {
    let load_err = |reason: String| BackendError::Load { origin: origin.to_string(), backend: NAME, reason };
    let mut model = framework().parse(proto, None).map_err(|e| load_err(format!("{e:#}")))?.model;
    let mut input_order = Vec::new();
    for ix in 0..model.inputs.len() {
        let outlet = model.inputs[ix];
        let name = model.node(outlet.node).name.clone();
        let pos = stage.inputs.iter().position(|t| t.name == name).ok_or_else(|| {
            load_err(format!("graph input `{name}` is not in the manifest (was the package built from this graph?)"))
        })?;
        let info = &stage.inputs[pos];
        model
            .set_input_fact(ix, InferenceFact::dt_shape(datum_type(info.dtype), &info.shape))
            .map_err(|e| load_err(format!("{e:#}")))?;
        input_order.push(pos);
    }
    if input_order.len() != stage.inputs.len() {
        return Err(load_err(format!(
            "the manifest lists {} inputs but the graph has {}",
            stage.inputs.len(),
            input_order.len()
        )));
    }
    let plan = model.into_optimized().and_then(|m| m.into_runnable()).map_err(|e| load_err(format!("{e:#}")))?;
    Ok((plan, input_order))
}

/// Bytes of a tensor held by tract (exotic layouts are estimated from element count and type).
fn tensor_bytes(t: &Tensor) -> u64 {
    if t.is_plain_ram() { t.as_bytes().len() as u64 } else { (t.len() * t.datum_type().size_of()) as u64 }
}

/// Weights held by the optimised plan and the peak of intermediate tensors alive at once when
/// nodes run in the plan's order (a tensor lives from its producer to its last consumer).
fn plan_memory(plan: &TypedSimplePlan) -> StageMemory {
    let model = plan.model();
    let mut weights = 0u64;
    for node in model.nodes() {
        for out in &node.outputs {
            if let Some(k) = &out.fact.konst {
                weights += tensor_bytes(k);
            }
        }
    }
    let order = plan.order_without_consts();
    let position: std::collections::HashMap<usize, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let outputs: std::collections::HashSet<OutletId> = model.outputs.iter().copied().collect();
    // For each step, bytes produced there and the step at which they can be freed.
    let mut frees: Vec<u64> = vec![0; order.len() + 1];
    let (mut live, mut peak) = (0u64, 0u64);
    for (step, &n) in order.iter().enumerate() {
        let node = model.node(n);
        for (slot, out) in node.outputs.iter().enumerate() {
            if out.fact.konst.is_some() {
                continue;
            }
            let bytes = out
                .fact
                .shape
                .as_concrete()
                .map_or(0, |s| s.iter().product::<usize>() as u64 * out.fact.datum_type.size_of() as u64);
            let last_use = out.successors.iter().filter_map(|s| position.get(&s.node).copied()).max().unwrap_or(step);
            let until = if outputs.contains(&OutletId::new(n, slot)) { order.len() } else { last_use };
            live += bytes;
            frees[until] += bytes;
        }
        peak = peak.max(live);
        live -= frees[step];
    }
    StageMemory { weights, activations: peak }
}

fn to_tract(t: &EqTensor) -> TractResult<TValue> {
    let tensor = match &t.data {
        TensorData::F32(v) => tract_ndarray::ArrayD::from_shape_vec(t.shape.clone(), v.clone())?.into_tensor(),
        TensorData::I64(v) => tract_ndarray::ArrayD::from_shape_vec(t.shape.clone(), v.clone())?.into_tensor(),
        TensorData::I32(v) => tract_ndarray::ArrayD::from_shape_vec(t.shape.clone(), v.clone())?.into_tensor(),
        TensorData::U8(v) => tract_ndarray::ArrayD::from_shape_vec(t.shape.clone(), v.clone())?.into_tensor(),
        TensorData::I8(v) => tract_ndarray::ArrayD::from_shape_vec(t.shape.clone(), v.clone())?.into_tensor(),
        TensorData::Bool(v) => tract_ndarray::ArrayD::from_shape_vec(t.shape.clone(), v.clone())?.into_tensor(),
    };
    Ok(tensor.into_tvalue())
}

/// edgeqa's dtype for what tract computes for a graph output: [`dtype_of`], plus ONNX int64
/// dimensions (`Shape`, `Size`), which tract keeps as `TDim`.
fn output_dtype(d: DatumType) -> Option<DType> {
    if d == DatumType::TDim { Some(DType::I64) } else { dtype_of(d) }
}

fn from_tract(t: &Tensor) -> TractResult<EqTensor> {
    let shape = t.shape().to_vec();
    let data = match t.datum_type() {
        DatumType::F32 => TensorData::F32(t.to_plain_array_view::<f32>()?.iter().copied().collect()),
        DatumType::I64 => TensorData::I64(t.to_plain_array_view::<i64>()?.iter().copied().collect()),
        DatumType::I32 => TensorData::I32(t.to_plain_array_view::<i32>()?.iter().copied().collect()),
        DatumType::U8 => TensorData::U8(t.to_plain_array_view::<u8>()?.iter().copied().collect()),
        DatumType::I8 => TensorData::I8(t.to_plain_array_view::<i8>()?.iter().copied().collect()),
        DatumType::Bool => TensorData::Bool(t.to_plain_array_view::<bool>()?.iter().copied().collect()),
        DatumType::TDim => TensorData::I64(t.cast_to::<i64>()?.to_plain_array_view::<i64>()?.iter().copied().collect()),
        // Refused at load (checked::check_output_type); never converted.
        other => bail!("element type {other:?} is not carried by edgeqa tensors"),
    };
    Ok(EqTensor { shape, data })
}

impl TractStage {
    fn run_err(&self, reason: String) -> BackendError {
        BackendError::Run { origin: self.origin.clone(), backend: NAME, reason }
    }

    /// The inputs in tract's order, as tract values.
    fn tract_inputs(&self, inputs: &[EqTensor]) -> Result<TVec<TValue>, BackendError> {
        let mut values = TVec::new();
        for &pos in &self.input_order {
            let t = inputs.get(pos).ok_or_else(|| self.run_err(format!("{} inputs given", inputs.len())))?;
            values.push(to_tract(t).map_err(|e| self.run_err(format!("input {pos}: {e:#}")))?);
        }
        Ok(values)
    }
}

impl StageSession for TractStage {
    fn memory(&self) -> StageMemory {
        self.memory
    }

    fn backend(&self) -> &'static str {
        NAME
    }

    fn run(&self, inputs: Vec<EqTensor>) -> Result<Vec<EqTensor>, BackendError> {
        let values = self.tract_inputs(&inputs)?;
        let outputs = tract_fixes::catch_panic(|| self.plan.run(values))
            .map_err(|panic| self.run_err(format!("tract panicked: {panic}")))?
            .map_err(|e| self.run_err(format!("{e:#}")))?;
        outputs.iter().map(|t| from_tract(t).map_err(|e| self.run_err(format!("{e:#}")))).collect()
    }

    /// Times each node of tract's optimised plan by evaluating the plan node by node (as
    /// `tract`'s own profiler does), over `runs` runs after one untimed run; wall clock.
    fn profile(&self, inputs: Vec<EqTensor>, runs: usize) -> Result<Option<NodeProfile>, BackendError> {
        let runs = runs.max(1);
        let values = self.tract_inputs(&inputs)?;
        let model = self.plan.model();
        let n = model.nodes().len();
        let mut per_node: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); n];
        let mut state =
            tract_onnx::tract_core::plan::SimpleState::new(&self.plan).map_err(|e| self.run_err(format!("{e:#}")))?;
        for run in 0..=runs {
            let mut sums = vec![0.0f64; n];
            let mut ran = vec![false; n];
            tract_fixes::catch_panic(|| {
                state.run_plan_with_eval(values.clone(), |ctx, op_state, node, input| {
                    let t = std::time::Instant::now();
                    let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
                    sums[node.id] += t.elapsed().as_secs_f64() * 1e6;
                    ran[node.id] = true;
                    out
                })
            })
            .map_err(|panic| self.run_err(format!("tract panicked: {panic}")))?
            .map_err(|e| self.run_err(format!("{e:#}")))?;
            if run > 0 {
                for (i, s) in sums.into_iter().enumerate() {
                    if ran[i] {
                        per_node[i].push(s);
                    }
                }
            }
        }
        let nodes = model
            .nodes()
            .iter()
            .zip(per_node)
            .filter(|(node, times)| !times.is_empty() && node.op().name() != "Const" && node.op().name() != "Source")
            .map(|(node, times)| NodeTime {
                op: node.op().name().to_string(),
                name: node.name.clone(),
                dispatches: 1,
                median_us: median(times),
            })
            .collect();
        Ok(Some(NodeProfile { clock: "wall clock per node (tract's plan, after its optimisations)", runs, nodes }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::Dim;
    use crate::onnx_builder::GraphBuilder;

    /// A product big enough for tract to split over threads: `[M,K] · [K,N]`.
    fn matmul_stage(m: usize, k: usize, n: usize) -> (StageInfo, Vec<u8>, Vec<f32>) {
        let w = crate::synthetic::f32s(k * n, 11);
        let mut g = GraphBuilder::new("mm", 13);
        let x = g.input_f32("x", &[Dim::Fixed(m), Dim::Fixed(k)]);
        let c = g.const_f32("w", &[k, n], w.clone());
        let y = g.node("MatMul", &[&x, &c], vec![]);
        g.output(&y, "y");
        let info =
            |name: &str, shape: Vec<usize>| crate::manifest::TensorInfo { name: name.into(), dtype: DType::F32, shape };
        let stage = StageInfo {
            name: "model".into(),
            section: "model".into(),
            inputs: vec![info("x", vec![m, k])],
            outputs: vec![info("y", vec![m, n])],
            format: Default::default(),
        };
        (stage, g.build(), w)
    }

    #[test]
    fn threads_give_the_same_numbers_and_bad_counts_are_refused() {
        let (m, k, n) = (192, 256, 384);
        let (stage, onnx, w) = matmul_stage(m, k, n);
        let session = TractBackend::new().load_stage(&stage, &onnx, "mm").unwrap();
        let x = crate::synthetic::inputs(&stage.inputs, 5);
        let one = with_threads(1, || session.run(x.clone())).unwrap().unwrap();
        for threads in [2, 3] {
            let many = with_threads(threads, || session.run(x.clone())).unwrap().unwrap();
            assert_eq!(one, many, "{threads} threads");
        }
        let (xs, ys) = (x[0].as_f32().unwrap(), one[0].as_f32().unwrap());
        for (i, j) in [(0, 0), (m - 1, n - 1), (77, 201)] {
            let want: f32 = (0..k).map(|t| xs[i * k + t] * w[t * n + j]).sum();
            assert!((ys[i * n + j] - want).abs() < 1e-3, "y[{i},{j}] {} vs {want}", ys[i * n + j]);
        }
        for bad in [0, MAX_THREADS + 1] {
            let e = with_threads(bad, || ()).unwrap_err();
            assert!(e.to_string().contains("1 to 64"), "{e}");
        }
    }
}
