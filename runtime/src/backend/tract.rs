//! The CPU backend: the stage's ONNX, shapes fixed from the manifest, optimised by tract.

pub use edgeqa_format::tract::{datum_type, dtype_of, framework};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::tract_data::internal::anyhow;

use super::{Backend, BackendError, StageMemory, StageSession};
use crate::manifest::StageInfo;
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

/// The tract CPU backend.
#[derive(Debug, Default)]
pub struct TractBackend;

impl TractBackend {
    /// A new backend (tract's op registry is shared process-wide).
    pub fn new() -> TractBackend {
        TractBackend
    }
}

struct TractStage {
    origin: String,
    memory: StageMemory,
    plan: std::sync::Arc<TypedRunnableModel>,
    /// For each model input (tract order), the index into the manifest's inputs.
    input_order: Vec<usize>,
    stage: StageInfo,
}

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn load_stage(&self, stage: &StageInfo, onnx: &[u8], origin: &str) -> Result<Box<dyn StageSession>, BackendError> {
        let (live_before, _) = crate::budget::heap();
        let load_err = |reason: String| BackendError::Load { origin: origin.to_string(), backend: NAME, reason };
        let proto = onnx_pb::decode(onnx, origin).map_err(|e| load_err(e.to_string()))?;
        crate::graph::check_wiring(&proto).map_err(load_err)?;
        let unsupported = unsupported_nodes(&proto);
        if !unsupported.is_empty() {
            return Err(BackendError::Unsupported { origin: origin.to_string(), backend: NAME, nodes: unsupported });
        }
        let mut model = guarded(|| framework().parse(&proto, None)).map_err(load_err)?.model;
        let mut input_order = Vec::new();
        for ix in 0..model.inputs.len() {
            let outlet = model.inputs[ix];
            let name = model.node(outlet.node).name.clone();
            let pos = stage.inputs.iter().position(|t| t.name == name).ok_or_else(|| {
                load_err(format!(
                    "graph input `{name}` is not in the manifest (was the package built from this graph?)"
                ))
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
        let plan = guarded(|| model.into_optimized().and_then(|m| m.into_runnable())).map_err(load_err)?;
        log::debug!("{origin}: tract plan ready ({} nodes)", plan.model().nodes().len());
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
        Ok(Box::new(TractStage { origin: origin.to_string(), memory, plan, input_order, stage: stage.clone() }))
    }
}

/// Runs tract's front end or optimiser on a graph from a file: its error as one line, and a panic
/// inside tract (a malformed graph it does not expect) as an error instead of a crash.
fn guarded<T>(f: impl FnOnce() -> TractResult<T>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| format!("{e:#}")),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("tract failed on this graph ({what}); the graph is malformed or not one tract handles"))
        }
    }
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

fn from_tract(t: &Tensor) -> TractResult<EqTensor> {
    let shape = t.shape().to_vec();
    let data = match t.datum_type() {
        DatumType::F32 => TensorData::F32(t.to_plain_array_view::<f32>()?.iter().copied().collect()),
        DatumType::I64 => TensorData::I64(t.to_plain_array_view::<i64>()?.iter().copied().collect()),
        DatumType::I32 => TensorData::I32(t.to_plain_array_view::<i32>()?.iter().copied().collect()),
        DatumType::U8 => TensorData::U8(t.to_plain_array_view::<u8>()?.iter().copied().collect()),
        DatumType::I8 => TensorData::I8(t.to_plain_array_view::<i8>()?.iter().copied().collect()),
        DatumType::Bool => TensorData::Bool(t.to_plain_array_view::<bool>()?.iter().copied().collect()),
        other => {
            let f = t.cast_to::<f32>().map_err(|_| anyhow!("output type {other:?} is not supported"))?;
            TensorData::F32(f.to_plain_array_view::<f32>()?.iter().copied().collect())
        }
    };
    Ok(EqTensor { shape, data })
}

impl StageSession for TractStage {
    fn memory(&self) -> StageMemory {
        self.memory
    }

    fn backend(&self) -> &'static str {
        NAME
    }

    fn run(&self, inputs: Vec<EqTensor>) -> Result<Vec<EqTensor>, BackendError> {
        if inputs.len() != self.stage.inputs.len() {
            return Err(BackendError::Run {
                origin: self.origin.clone(),
                backend: NAME,
                reason: format!("{} inputs given, {} expected", inputs.len(), self.stage.inputs.len()),
            });
        }
        let mut values = TVec::new();
        for &pos in &self.input_order {
            let info = &self.stage.inputs[pos];
            inputs[pos].check(info, &info.name).map_err(|e| BackendError::Input {
                origin: self.origin.clone(),
                name: info.name.clone(),
                reason: e.to_string(),
            })?;
            values.push(to_tract(&inputs[pos]).map_err(|e| BackendError::Input {
                origin: self.origin.clone(),
                name: info.name.clone(),
                reason: format!("{e:#}"),
            })?);
        }
        let run_err =
            |e: TractError| BackendError::Run { origin: self.origin.clone(), backend: NAME, reason: format!("{e:#}") };
        let outputs = self.plan.run(values).map_err(run_err)?;
        if outputs.len() != self.stage.outputs.len() {
            return Err(run_err(anyhow!(
                "graph produced {} outputs, manifest lists {}",
                outputs.len(),
                self.stage.outputs.len()
            )));
        }
        outputs.iter().map(|t| from_tract(t).map_err(run_err)).collect()
    }
}
