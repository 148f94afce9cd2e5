//! Comparisons, logic and selection with boolean tensors (0/1 words on the device):
//! Equal/Less/Greater/LessOrEqual/GreaterOrEqual and And/Or/Xor (`compare.wgsl`), Not, IsNaN and
//! IsInf (`test_bits.wgsl`), Where (`where.wgsl`).

use std::sync::LazyLock;

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::{Binding, Build, Kernel, MAX_RANK, Shader, broadcast, broadcast_strides, padded, with_codes};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

static COMPARE: LazyLock<String> = LazyLock::new(|| with_codes("OP_", COMPARE_OPS, include_str!("compare.wgsl")));
static TEST_BITS: LazyLock<String> = LazyLock::new(|| with_codes("OP_", TEST_BITS_OPS, include_str!("test_bits.wgsl")));
const WHERE: Shader = Shader { name: "where", source: include_str!("where.wgsl") };

/// Ops in code order (`compare.wgsl` switches on their `OP_` names).
pub(crate) const COMPARE_OPS: &[&str] =
    &["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"];

/// Element kind code: 0 f32, 1 integer, 2 bool.
fn kind(v: &Value) -> Result<u32, NodeError> {
    match v.dtype {
        DatumType::F32 => Ok(0),
        DatumType::I64 | DatumType::I32 => Ok(1),
        DatumType::Bool => Ok(2),
        dt => Err(format!("`{}` is {dt:?}", v.name).into()),
    }
}

/// Comparisons and binary logic.
pub(crate) struct Compare;

impl Kernel for Compare {
    fn ops(&self) -> &'static [&'static str] {
        COMPARE_OPS
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let [Some(a), Some(b)] = inputs else { return Err("needs two inputs".into()) };
        let (ka, kb) = (kind(a)?, kind(b)?);
        if ka != kb {
            return Err(format!("inputs differ in type ({:?} vs {:?})", a.dtype, b.dtype).into());
        }
        let logic = ["And", "Or", "Xor"].contains(&node.op.as_str());
        if logic != (ka == 2) {
            return Err(format!("{:?} inputs are not valid for {}", a.dtype, node.op).into());
        }
        Ok(vec![OutputType::new(DatumType::Bool, broadcast(&a.shape, &b.shape)?)])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let op = COMPARE_OPS.iter().position(|o| *o == b.node.op).expect("claimed op") as u32;
        let out = b.output(0).shape.clone();
        let (shape, sa) = padded(&out, &broadcast_strides(&b.input(0).shape, &out))?;
        let (_, sb) = padded(&out, &broadcast_strides(&b.input(1).shape, &out))?;
        let n = b.output(0).len();
        let p = CompareParams { n: n as u32, op, kind: kind(b.input(0))?, shape, a_strides: sa, b_strides: sb };
        let bindings = [Binding::Value(b.input_id(0)), Binding::Value(b.input_id(1)), Binding::Value(b.output_id(0))];
        b.dispatch_1d(&Shader { name: "compare", source: &COMPARE }, "main", &p, &bindings, n)
    }
}

params! {
    /// `compare.wgsl`'s params: the output shape and each input's broadcast strides.
    struct CompareParams {
        n: u32,
        /// Position in [`COMPARE_OPS`].
        op: u32,
        /// Element kind of the inputs: 0 f32, 1 i32, 2 bool.
        kind: u32,
        shape: [u32; MAX_RANK],
        a_strides: [u32; MAX_RANK],
        b_strides: [u32; MAX_RANK],
    }
}

/// Not, IsNaN, IsInf.
pub(crate) struct TestBits;

params! {
    /// `test_bits.wgsl`'s params.
    struct TestBitsParams {
        n: u32,
        /// Position in [`TEST_BITS_OPS`].
        op: u32,
        /// IsInf: detect negative infinity.
        negative: bool,
        /// IsInf: detect positive infinity.
        positive: bool,
    }
}

params! {
    /// `where.wgsl`'s params: the output shape and each input's broadcast strides.
    struct WhereParams {
        n: u32,
        shape: [u32; MAX_RANK],
        cond_strides: [u32; MAX_RANK],
        x_strides: [u32; MAX_RANK],
        y_strides: [u32; MAX_RANK],
    }
}

/// Op types in code order (`test_bits.wgsl` switches on their `OP_` names).
pub(crate) const TEST_BITS_OPS: &[&str] = &["Not", "IsNaN", "IsInf"];

/// What a TestBits node runs: its code and IsInf's signs.
struct TestBitsAttrs {
    op: u32,
    negative: bool,
    positive: bool,
}

impl TestBitsAttrs {
    fn new(node: &Attrs<'_>) -> Result<TestBitsAttrs, NodeError> {
        let op = TEST_BITS_OPS.iter().position(|o| *o == node.op).ok_or_else(|| NodeError::Internal(node.label()))?;
        let (negative, positive) = if node.op == "IsInf" {
            (node.int("detect_negative", 1) != 0, node.int("detect_positive", 1) != 0)
        } else {
            (false, false)
        };
        Ok(TestBitsAttrs { op: op as u32, negative, positive })
    }
}

impl Kernel for TestBits {
    fn ops(&self) -> &'static [&'static str] {
        TEST_BITS_OPS
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        let want = if node.op == "Not" { DatumType::Bool } else { DatumType::F32 };
        if x.dtype != want {
            return Err(format!("`{}` is {:?} ({want:?} expected)", x.name, x.dtype).into());
        }
        TestBitsAttrs::new(node)?;
        Ok(vec![OutputType::new(DatumType::Bool, x.shape.clone())])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let TestBitsAttrs { op, negative, positive } = TestBitsAttrs::new(&b.attrs())?;
        let n = b.output(0).len();
        let bindings = [Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))];
        b.dispatch_1d(
            &Shader { name: "test_bits", source: &TEST_BITS },
            "main",
            &TestBitsParams { n: n as u32, op, negative, positive },
            &bindings,
            n,
        )
    }
}

/// Where.
pub(crate) struct Where;

impl Kernel for Where {
    fn ops(&self) -> &'static [&'static str] {
        &["Where"]
    }

    fn infer(&self, _node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let [Some(c), Some(x), Some(y)] = inputs else { return Err("needs three inputs".into()) };
        if c.dtype != DatumType::Bool {
            return Err(format!("condition `{}` is {:?}", c.name, c.dtype).into());
        }
        kind(x)?;
        if x.dtype != y.dtype {
            return Err(format!("`{}` and `{}` differ in type", x.name, y.name).into());
        }
        let shape = broadcast(&broadcast(&c.shape, &x.shape)?, &y.shape)?;
        Ok(vec![OutputType::new(x.dtype, shape)])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let out = b.output(0).shape.clone();
        let n = b.output(0).len();
        let (shape, _) = padded(&out, &vec![0; out.len()])?;
        let strides = |i: usize| Ok::<_, NodeError>(padded(&out, &broadcast_strides(&b.input(i).shape, &out))?.1);
        let p = WhereParams {
            n: n as u32,
            shape,
            cond_strides: strides(0)?,
            x_strides: strides(1)?,
            y_strides: strides(2)?,
        };
        let bindings = [
            Binding::Value(b.input_id(0)),
            Binding::Value(b.input_id(1)),
            Binding::Value(b.input_id(2)),
            Binding::Value(b.output_id(0)),
        ];
        b.dispatch_1d(&WHERE, "main", &p, &bindings, n)
    }
}
