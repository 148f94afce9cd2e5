use edgeqa_format::onnx::pb;
use edgeqa_format::onnx_builder::{
    GraphBuilder, attr_float, attr_graph, attr_int, fixed, make_f32, model, node, value_f32, value_untyped,
};

use super::*;

/// `x` [2, 3] → `op` → `y` at `opset`, with a scale initializer `s`.
fn one_node(opset: i64, n: pb::NodeProto) -> pb::ModelProto {
    model(opset, vec![n], vec![make_f32("s", &[], &[0.5])], &[("x", &[2, 3])], &["y"])
}

fn only(m: &pb::ModelProto) -> Problem {
    let p = problems(m);
    assert_eq!(p.len(), 1, "{p:?}");
    p.into_iter().next().unwrap()
}

#[test]
fn dequantize_linear_with_axis_at_opset_11_names_node_attribute_and_fix() {
    let dq = node("DequantizeLinear", "dq", &["x", "s"], &["y"], vec![attr_int("axis", 1)]);
    let err = check_model(&one_node(11, dq.clone()), "m.onnx").unwrap_err();
    assert_eq!(
        err.problems,
        [Problem::UnknownAttribute {
            node: NodeRef { scope: String::new(), name: "dq".into(), index: 0, op: "DequantizeLinear".into() },
            op: "DequantizeLinear".into(),
            attr: "axis".into(),
            opset: 11,
            from: Some(13),
        }]
    );
    assert_eq!(
        err.to_string(),
        "m.onnx: not a valid ONNX model (1 problem): node `dq` (DequantizeLinear): attribute `axis` does not exist \
         for DequantizeLinear at opset 11 (it exists from opset 13): re-export the model with opset ≥ 13, or without it"
    );
    assert!(check_model(&one_node(13, dq), "m.onnx").is_ok());
}

#[test]
fn schema_violations_each_give_one_problem() {
    let relu = |attrs| node("Relu", "r", &["x"], &["y"], attrs);
    assert!(matches!(
        only(&one_node(13, relu(vec![attr_float("alpha", 1.0)]))),
        Problem::UnknownAttribute { from: None, .. }
    ));
    let concat = node("Concat", "c", &["x", "x"], &["y"], vec![]);
    assert!(matches!(only(&one_node(13, concat)), Problem::MissingAttribute { ref attr, .. } if attr == "axis"));
    let concat = node("Concat", "c", &["x", "x"], &["y"], vec![attr_float("axis", 1.0)]);
    assert!(matches!(only(&one_node(13, concat)), Problem::AttributeType { ref expected, .. } if expected == "INT"));
    let add = node("Add", "a", &["x"], &["y"], vec![]);
    assert!(matches!(only(&one_node(13, add)), Problem::InputCount { got: 1, min: 2, max: 2, .. }));
    let add = node("Add", "a", &["x", ""], &["y"], vec![]);
    assert!(matches!(only(&one_node(13, add)), Problem::EmptyRequiredInput { index: 1, .. }));
    let relu2 = node("Relu", "r", &["x"], &["y", "z"], vec![]);
    assert!(matches!(only(&one_node(13, relu2)), Problem::OutputCount { got: 2, .. }));
    let up = node("Upsample", "u", &["x", "s"], &["y"], vec![]);
    assert!(matches!(only(&one_node(13, up)), Problem::Deprecated { .. }));
    let gelu = node("Gelu", "g", &["x"], &["y"], vec![]);
    assert!(matches!(only(&one_node(13, gelu)), Problem::UnknownOp { from: Some(20), .. }));
    let foo = node("Foo", "f", &["x"], &["y"], vec![]);
    assert!(matches!(only(&one_node(13, foo)), Problem::UnknownOp { from: None, .. }));
    // Optional inputs may be empty; the newest schema at or below the opset applies.
    assert_eq!(problems(&one_node(13, node("Clip", "c", &["x", "", ""], &["y"], vec![]))), []);
    assert_eq!(problems(&one_node(40, relu(vec![]))), []);
}

#[test]
fn graph_violations_each_give_one_problem() {
    let relu = |i: &str, o: &str| node("Relu", "", &[i], &[o], vec![]);
    let m = model(13, vec![relu("x", "y"), relu("x", "y")], vec![], &[("x", &[1])], &["y"]);
    assert!(matches!(only(&m), Problem::DuplicateOutput { ref first, .. } if first == "an output of node #0 (Relu)"));
    let m = model(13, vec![relu("x", "x")], vec![], &[("x", &[1])], &["x"]);
    assert!(matches!(only(&m), Problem::DuplicateOutput { ref first, .. } if first == "a graph input"));
    let m = model(13, vec![relu("z", "y")], vec![], &[("x", &[1])], &["y"]);
    assert!(matches!(only(&m), Problem::UndefinedInput { ref name, .. } if name == "z"));
    let m = model(13, vec![relu("x", "y")], vec![], &[("x", &[1])], &["q"]);
    assert!(matches!(only(&m), Problem::UndefinedGraphOutput { .. }));
    let m = model(13, vec![relu("x", "y")], vec![], &[("x", &[1]), ("x", &[1])], &["y"]);
    assert!(matches!(only(&m), Problem::DuplicateGraphInput { .. }));
    let w = || make_f32("w", &[1], &[1.0]);
    let m = model(13, vec![relu("x", "y")], vec![w(), w()], &[("x", &[1])], &["y"]);
    assert!(matches!(only(&m), Problem::DuplicateInitializer { .. }));
    let mut m = model(13, vec![relu("w", "y")], vec![w()], &[("x", &[1])], &["y"]);
    m.ir_version = 3;
    assert!(matches!(only(&m), Problem::InitializerNotInput { ir: 3, .. }));
    let mut m = model(13, vec![relu("x", "y")], vec![], &[("x", &[1])], &["y"]);
    m.opset_import.clear();
    assert_eq!(only(&m), Problem::NoOpsetImport);
    let mut m = model(13, vec![relu("x", "y")], vec![], &[("x", &[1])], &["y"]);
    m.graph.as_mut().unwrap().node[0].domain = "com.example".into();
    assert!(matches!(only(&m), Problem::DomainNotImported { .. }));
    // Custom domains that are imported are not checked against ONNX's schemas.
    m.opset_import.push(pb::OperatorSetIdProto { domain: "com.example".into(), version: 1 });
    assert_eq!(problems(&m), []);
}

#[test]
fn order_is_free_but_a_cycle_still_needs_a_defined_input() {
    let relu = |i: &str, o: &str| node("Relu", "", &[i], &[o], vec![]);
    let m = model(13, vec![relu("h", "y"), relu("x", "h")], vec![], &[("x", &[1])], &["y"]);
    assert_eq!(problems(&m), []);
}

#[test]
fn subgraphs_see_outer_names_and_are_checked() {
    let branch = |n: pb::NodeProto, out: &str| pb::GraphProto {
        name: "branch".into(),
        node: vec![n],
        output: vec![value_untyped(out)],
        ..Default::default()
    };
    let iff = |then: pb::GraphProto| {
        let mut b = GraphBuilder::new("g", 13);
        b.input("c", pb::tensor_proto::DataType::Bool, &fixed(&[]));
        b.input_f32("x", &fixed(&[1]));
        b.push(node(
            "If",
            "if",
            &["c"],
            &["y"],
            vec![
                attr_graph("then_branch", then),
                attr_graph("else_branch", branch(node("Relu", "e", &["x"], &["e"], vec![]), "e")),
            ],
        ));
        b.declare_output("y", pb::tensor_proto::DataType::Float, Some(&fixed(&[1])));
        b.into_model()
    };
    assert_eq!(problems(&iff(branch(node("Relu", "t", &["x"], &["t"], vec![]), "t"))), []);
    let bad = iff(branch(node("Relu", "t", &["x"], &["t"], vec![attr_float("alpha", 1.0)]), "t"));
    let p = only(&bad);
    assert!(p.to_string().starts_with("If `if`.then_branch/node `t` (Relu): attribute `alpha`"), "{p}");
    let shadow = iff(branch(node("Relu", "t", &["x"], &["x"], vec![]), "x"));
    assert!(matches!(only(&shadow), Problem::DuplicateOutput { ref first, .. } if first == "an outer-scope value"));
}

#[test]
fn malformed_attributes_and_many_problems_in_one_error() {
    let mut a = attr_int("axis", 1);
    a.r#type = 0;
    let m = one_node(13, node("Concat", "c", &["x", "x"], &["y"], vec![a]));
    assert!(matches!(only(&m), Problem::MalformedAttribute { ref reason, .. } if reason == "has no type"));
    let mut a = attr_int("axis", 1);
    a.f = 2.0;
    let m = one_node(13, node("Concat", "c", &["x", "x"], &["y"], vec![a]));
    assert!(matches!(only(&m), Problem::MalformedAttribute { ref reason, .. } if reason.contains("FLOAT value")));
    let m = one_node(13, node("Concat", "c", &["x", "x"], &["y"], vec![attr_int("axis", 0), attr_int("axis", 1)]));
    assert!(matches!(only(&m), Problem::MalformedAttribute { ref reason, .. } if reason == "is given more than once"));
    let nodes = (0..10).map(|k| node("Relu", &format!("r{k}"), &["x"], &[&format!("y{k}")], vec![attr_int("bad", 1)]));
    let mut m = model(13, nodes.collect(), vec![], &[("x", &[1])], &[]);
    m.graph.as_mut().unwrap().output.push(value_f32("y0", &[1]));
    let err = check_model(&m, "many.onnx").unwrap_err().to_string();
    assert!(err.starts_with("many.onnx: not a valid ONNX model (10 problems): node `r0` (Relu)"), "{err}");
    assert!(err.ends_with("; and 2 more"), "{err}");
}
