//! Checks an ONNX model the way `onnx.checker.check_model` does, before the converter touches it.
//!
//! What is checked: the IR version and the opset imports (every node's domain imported), graph
//! well-formedness (graph, value and node names present, graph inputs and initializers unique,
//! initializers listed as inputs for IR ≤ 3, single static assignment: no tensor produced twice
//! or produced under the name of an input, initializer or outer-scope value, every node input
//! and graph output defined), and every node of an ONNX domain against the schema of its op at the
//! model's opset ([`schemas`], generated from `onnx.defs`): the op exists and is not deprecated,
//! input and output counts, no empty name for a required input, attributes that exist at that
//! opset, with the declared type, required ones present, none repeated. Subgraphs (`If`, `Loop`,
//! `Scan` bodies) are checked the same way, seeing the names of the graphs around them.
//!
//! Two deliberate differences from ONNX's checker: nodes need not be in topological order (the
//! converter sorts them; an input that nothing defines is still an error), and graph inputs and
//! outputs need not declare a type and shape (the converter fixes input shapes and infers output
//! shapes itself).

pub mod schemas;

use std::collections::{HashMap, HashSet};
use std::fmt;

use edgeqa_format::onnx::pb;
use pb::attribute_proto::AttributeType;
use thiserror::Error;

use schemas::{Formal, Schemas};

/// Most problems listed in one error.
const SHOWN: usize = 8;

/// A model that `onnx.checker.check_model` would refuse: every problem found, in graph order.
#[derive(Debug, Error)]
#[error(
    "{origin}: not a valid ONNX model ({n} problem{s}): {list}{more}",
    n = problems.len(),
    s = if problems.len() == 1 { "" } else { "s" },
    list = problems.iter().take(SHOWN).map(|p| p.to_string()).collect::<Vec<_>>().join("; "),
    more = if problems.len() > SHOWN { format!("; and {} more", problems.len() - SHOWN) } else { String::new() }
)]
pub struct InvalidOnnx {
    pub origin: String,
    pub problems: Vec<Problem>,
}

/// Where a node stands: its name (or position when unnamed), op, and the subgraph it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// `If `cond`.then_branch/` style prefix for nodes of subgraphs; empty in the main graph.
    pub scope: String,
    pub name: String,
    pub index: usize,
    pub op: String,
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}node #{} ({})", self.scope, self.index, self.op)
        } else {
            write!(f, "{}node `{}` ({})", self.scope, self.name, self.op)
        }
    }
}

fn opset_hint(op: &str, opset: i64, from: Option<i64>) -> String {
    match from {
        Some(v) if v > opset => format!("re-export the model with opset ≥ {v}, or without it"),
        _ => format!("see the {op} operator at opset {opset} in the ONNX operator docs"),
    }
}

/// One thing wrong with a model.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    #[error("the model has no ir_version: save it with onnx.save (which sets it)")]
    NoIrVersion,
    #[error("IR version {found} is newer than ONNX {max} knows: save the model with an older onnx package")]
    IrTooNew { found: i64, max: i64 },
    #[error("the model imports no opset: set opset_import (export with an explicit opset, e.g. 17)")]
    NoOpsetImport,
    #[error("IR version {ir} predates opset imports, yet the model has some: re-export it with a current exporter")]
    OldIrWithOpsets { ir: i64 },
    #[error("{what} has an empty name: give it one (re-export the model)")]
    EmptyName { what: String },
    #[error("{node}: no op type: re-export the model")]
    NoOpType { node: NodeRef },
    #[error("{node}: no inputs and no outputs: remove it")]
    NoInputsOrOutputs { node: NodeRef },
    #[error("{node}: domain `{domain}` is not imported: add it to the model's opset_import")]
    DomainNotImported { node: NodeRef, domain: String },
    #[error("{node}: ONNX has no operator {op} at opset {opset}{}: {}",
        from.map_or(String::new(), |v| format!(" (it exists from opset {v})")),
        if from.is_some() { opset_hint(op, *opset, *from) } else { "use a standard operator, or put a custom one in its own domain".into() })]
    UnknownOp { node: NodeRef, op: String, opset: i64, from: Option<i64> },
    #[error("{node}: {op} is deprecated at opset {opset}: replace it (e.g. Upsample by Resize) and re-export")]
    Deprecated { node: NodeRef, op: String, opset: i64 },
    #[error("{node}: {got} input(s), {op} at opset {opset} takes {}: fix the node's inputs", range(*min, *max))]
    InputCount { node: NodeRef, op: String, opset: i64, got: usize, min: usize, max: usize },
    #[error("{node}: {got} output(s), {op} at opset {opset} gives {}: fix the node's outputs", range(*min, *max))]
    OutputCount { node: NodeRef, op: String, opset: i64, got: usize, min: usize, max: usize },
    #[error("{node}: input {index} is required by {op} but given as the empty name: give it a tensor")]
    EmptyRequiredInput { node: NodeRef, op: String, index: usize },
    #[error("{node}: attribute `{attr}` does not exist for {op} at opset {opset}{}: {}",
        from.map_or(String::new(), |v| format!(" (it exists from opset {v})")),
        if from.is_some() { opset_hint(op, *opset, *from) } else { "remove it".into() })]
    UnknownAttribute { node: NodeRef, op: String, attr: String, opset: i64, from: Option<i64> },
    #[error("{node}: attribute `{attr}` of {op} must be {expected}, found {found}: fix its type")]
    AttributeType { node: NodeRef, op: String, attr: String, expected: String, found: String },
    #[error("{node}: required attribute `{attr}` of {op} at opset {opset} is missing: set it")]
    MissingAttribute { node: NodeRef, op: String, attr: String, opset: i64 },
    #[error("{node}: attribute `{attr}` {reason}: re-export the model")]
    MalformedAttribute { node: NodeRef, attr: String, reason: String },
    #[error("{scope}graph input `{name}` is declared more than once: keep one")]
    DuplicateGraphInput { scope: String, name: String },
    #[error("{scope}initializer `{name}` appears more than once: keep one")]
    DuplicateInitializer { scope: String, name: String },
    #[error(
        "{scope}initializer `{name}` is not a graph input, which IR version {ir} requires: list it as an input or save with IR ≥ 4"
    )]
    InitializerNotInput { scope: String, name: String, ir: i64 },
    #[error("{scope}initializer `{name}` has no element type: re-export the model")]
    UntypedInitializer { scope: String, name: String },
    #[error("{node}: output `{name}` is already {first}: every tensor must have one producer (rename one)")]
    DuplicateOutput { node: NodeRef, name: String, first: String },
    #[error("{node}: input `{name}` is not a graph input, an initializer or any node's output: fix the graph")]
    UndefinedInput { node: NodeRef, name: String },
    #[error("{scope}graph output `{name}` is not produced by any node, input or initializer: fix the graph")]
    UndefinedGraphOutput { scope: String, name: String },
}

fn range(min: usize, max: usize) -> String {
    match (min, max) {
        (a, b) if a == b => a.to_string(),
        (a, usize::MAX) => format!("{a} or more"),
        (a, b) => format!("{a} to {b}"),
    }
}

/// Checks `model` (see the module docs); `origin` names the file in the error.
pub fn check_model(model: &pb::ModelProto, origin: &str) -> Result<(), InvalidOnnx> {
    let problems = problems(model);
    if problems.is_empty() { Ok(()) } else { Err(InvalidOnnx { origin: origin.to_string(), problems }) }
}

/// Every problem of `model`, in graph order (empty when it is valid).
pub fn problems(model: &pb::ModelProto) -> Vec<Problem> {
    let schemas = Schemas::get();
    let mut c = Checker { schemas, ir: model.ir_version, imports: HashMap::new(), problems: Vec::new() };
    if model.ir_version <= 0 {
        c.problems.push(Problem::NoIrVersion);
    } else if model.ir_version > schemas.ir_version {
        c.problems.push(Problem::IrTooNew { found: model.ir_version, max: schemas.ir_version });
    }
    for o in &model.opset_import {
        c.imports.insert(o.domain.clone(), o.version);
    }
    if model.ir_version >= 3 && c.imports.is_empty() {
        c.problems.push(Problem::NoOpsetImport);
    } else if (1..3).contains(&model.ir_version) {
        if c.imports.is_empty() {
            c.imports.insert(String::new(), 1);
        } else {
            c.problems.push(Problem::OldIrWithOpsets { ir: model.ir_version });
        }
    }
    if let Some(g) = &model.graph {
        c.graph(g, "", &HashSet::new());
    }
    c.problems
}

struct Checker<'a> {
    schemas: &'a Schemas,
    ir: i64,
    imports: HashMap<String, i64>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn graph(&mut self, g: &pb::GraphProto, scope: &str, outer: &HashSet<String>) {
        let scope_s = scope.to_string();
        if g.name.is_empty() {
            self.problems.push(Problem::EmptyName { what: format!("{scope}graph") });
        }
        let mut inputs = HashSet::new();
        for (k, v) in g.input.iter().enumerate() {
            if v.name.is_empty() {
                self.problems.push(Problem::EmptyName { what: format!("{scope}graph input #{k}") });
            } else if !inputs.insert(v.name.clone()) {
                self.problems.push(Problem::DuplicateGraphInput { scope: scope_s.clone(), name: v.name.clone() });
            }
        }
        for (k, v) in g.output.iter().enumerate() {
            if v.name.is_empty() {
                self.problems.push(Problem::EmptyName { what: format!("{scope}graph output #{k}") });
            }
        }
        // Names defined before any node: outer scope, graph inputs, initializers.
        let mut defined: HashMap<String, String> =
            outer.iter().map(|n| (n.clone(), "an outer-scope value".into())).collect();
        for i in &inputs {
            defined.insert(i.clone(), "a graph input".into());
        }
        let mut inits = HashSet::new();
        let init_names = g
            .initializer
            .iter()
            .map(|t| &t.name)
            .chain(g.sparse_initializer.iter().filter_map(|s| s.values.as_ref().map(|v| &v.name)));
        for name in init_names {
            if !inits.insert(name.clone()) {
                self.problems.push(Problem::DuplicateInitializer { scope: scope_s.clone(), name: name.clone() });
            } else if self.ir <= 3 && !inputs.contains(name) {
                self.problems.push(Problem::InitializerNotInput {
                    scope: scope_s.clone(),
                    name: name.clone(),
                    ir: self.ir,
                });
            }
            defined.entry(name.clone()).or_insert_with(|| "an initializer".into());
        }
        for t in &g.initializer {
            if t.data_type == 0 {
                self.problems.push(Problem::UntypedInitializer { scope: scope_s.clone(), name: t.name.clone() });
            }
        }
        // Single static assignment: every node output is new.
        let refs: Vec<NodeRef> = g
            .node
            .iter()
            .enumerate()
            .map(|(index, n)| NodeRef { scope: scope_s.clone(), name: n.name.clone(), index, op: n.op_type.clone() })
            .collect();
        for (n, node) in g.node.iter().zip(&refs) {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                if let Some(first) = defined.get(o) {
                    self.problems.push(Problem::DuplicateOutput {
                        node: node.clone(),
                        name: o.clone(),
                        first: first.clone(),
                    });
                } else {
                    defined.insert(o.clone(), format!("an output of {node}"));
                }
            }
        }
        let visible: HashSet<String> = defined.keys().cloned().collect();
        for (n, node) in g.node.iter().zip(&refs) {
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                if !visible.contains(i) {
                    self.problems.push(Problem::UndefinedInput { node: node.clone(), name: i.clone() });
                }
            }
            self.node(n, node, &visible);
        }
        for o in g.output.iter().filter(|o| !o.name.is_empty()) {
            if !visible.contains(&o.name) {
                self.problems.push(Problem::UndefinedGraphOutput { scope: scope_s.clone(), name: o.name.clone() });
            }
        }
    }

    fn node(&mut self, n: &pb::NodeProto, node: &NodeRef, visible: &HashSet<String>) {
        if n.op_type.is_empty() {
            self.problems.push(Problem::NoOpType { node: node.clone() });
            return;
        }
        if n.input.is_empty() && n.output.is_empty() {
            self.problems.push(Problem::NoInputsOrOutputs { node: node.clone() });
            return;
        }
        let Some(&opset) = self.imports.get(&n.domain) else {
            if self.imports.is_empty() {
                return; // NoOpsetImport says it once for every node.
            }
            self.problems.push(Problem::DomainNotImported { node: node.clone(), domain: n.domain.clone() });
            return;
        };
        let mut seen = HashSet::new();
        for a in &n.attribute {
            if let Some(reason) = malformed(a, self.ir) {
                self.problems.push(Problem::MalformedAttribute { node: node.clone(), attr: a.name.clone(), reason });
            } else if !seen.insert(a.name.as_str()) {
                self.problems.push(Problem::MalformedAttribute {
                    node: node.clone(),
                    attr: a.name.clone(),
                    reason: "is given more than once".into(),
                });
            }
            let sub = |field: &str, k: Option<usize>| {
                let at = k.map_or(String::new(), |k| format!("[{k}]"));
                let who = if n.name.is_empty() { format!("#{}", node.index) } else { format!("`{}`", n.name) };
                format!("{}{} {who}.{field}{at}/", node.scope, n.op_type)
            };
            if let Some(g) = &a.g {
                self.graph(g, &sub(&a.name, None), visible);
            }
            for (k, g) in a.graphs.iter().enumerate() {
                self.graph(g, &sub(&a.name, Some(k)), visible);
            }
        }
        let domain = if n.domain == "ai.onnx" { "" } else { n.domain.as_str() };
        let op = n.op_type.as_str();
        let Some(schema) = self.schemas.at(domain, op, opset) else {
            if matches!(domain, "" | "ai.onnx.ml") {
                let from = self.schemas.versions(domain, op).first().map(|s| s.since);
                self.problems.push(Problem::UnknownOp { node: node.clone(), op: op.into(), opset, from });
            }
            return;
        };
        if schema.deprecated {
            self.problems.push(Problem::Deprecated { node: node.clone(), op: op.into(), opset });
            return;
        }
        let (ins, outs) = (n.input.len(), n.output.len());
        if ins < schema.min_inputs || ins > schema.max_inputs {
            let (min, max) = (schema.min_inputs, schema.max_inputs);
            self.problems.push(Problem::InputCount { node: node.clone(), op: op.into(), opset, got: ins, min, max });
        }
        if outs < schema.min_outputs || outs > schema.max_outputs {
            let (min, max) = (schema.min_outputs, schema.max_outputs);
            self.problems.push(Problem::OutputCount { node: node.clone(), op: op.into(), opset, got: outs, min, max });
        }
        for (index, i) in n.input.iter().enumerate() {
            if i.is_empty() && schema.formal(index) == Some(Formal::Single) {
                self.problems.push(Problem::EmptyRequiredInput { node: node.clone(), op: op.into(), index });
            }
        }
        for a in n.attribute.iter().filter(|a| !a.name.is_empty()) {
            match schema.attribute(&a.name) {
                None => {
                    let from = self
                        .schemas
                        .versions(domain, op)
                        .iter()
                        .find(|s| s.attribute(&a.name).is_some())
                        .map(|s| s.since);
                    self.problems.push(Problem::UnknownAttribute {
                        node: node.clone(),
                        op: op.into(),
                        attr: a.name.clone(),
                        opset,
                        from,
                    });
                }
                Some(spec) if a.r#type != 0 && a.r#type != spec.ty as i32 => {
                    self.problems.push(Problem::AttributeType {
                        node: node.clone(),
                        op: op.into(),
                        attr: a.name.clone(),
                        expected: spec.ty.as_str_name().to_string(),
                        found: type_name(a.r#type),
                    });
                }
                Some(_) => {}
            }
        }
        for spec in schema.attributes.iter().filter(|s| s.required) {
            if !n.attribute.iter().any(|a| a.name == spec.name) {
                self.problems.push(Problem::MissingAttribute {
                    node: node.clone(),
                    op: op.into(),
                    attr: spec.name.clone(),
                    opset,
                });
            }
        }
    }
}

fn type_name(t: i32) -> String {
    AttributeType::try_from(t).map_or_else(|_| format!("type {t}"), |t| t.as_str_name().to_string())
}

/// Why an attribute is not well formed on its own (no schema needed), if it is not.
fn malformed(a: &pb::AttributeProto, ir: i64) -> Option<String> {
    if a.name.is_empty() {
        return Some("has an empty name".into());
    }
    if a.r#type == 0 {
        return (ir >= 2).then(|| "has no type".into());
    }
    // The value fields that hold something (a scalar 0 cannot be told from an absent one).
    let used = [
        (a.f != 0.0, AttributeType::Float),
        (a.i != 0, AttributeType::Int),
        (!a.s.is_empty(), AttributeType::String),
        (a.t.is_some(), AttributeType::Tensor),
        (a.g.is_some(), AttributeType::Graph),
        (a.sparse_tensor.is_some(), AttributeType::SparseTensor),
        (!a.floats.is_empty(), AttributeType::Floats),
        (!a.ints.is_empty(), AttributeType::Ints),
        (!a.strings.is_empty(), AttributeType::Strings),
        (!a.tensors.is_empty(), AttributeType::Tensors),
        (!a.graphs.is_empty(), AttributeType::Graphs),
        (!a.sparse_tensors.is_empty(), AttributeType::SparseTensors),
        (!a.type_protos.is_empty(), AttributeType::TypeProtos),
    ];
    used.iter()
        .find(|(set, ty)| *set && *ty as i32 != a.r#type)
        .map(|(_, ty)| format!("is declared {} but holds a {} value", type_name(a.r#type), ty.as_str_name()))
}

#[cfg(test)]
mod tests;
