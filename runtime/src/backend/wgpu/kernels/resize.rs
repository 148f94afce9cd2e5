//! Resize (opset 10–19) of the last two axes with constant scales or sizes: `nearest` with its
//! four rounding modes and `linear`, under the half_pixel, pytorch_half_pixel, asymmetric and
//! align_corners coordinate modes (`resize.wgsl`). Other modes, cubic, antialias, ROI crops and
//! scaling of the batch or channel axes are load errors.

use tract_onnx::prelude::DatumType;

use super::{Binding, Build, Kernel, Shader, const_floats, const_ints, want_f32};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

const SHADER: Shader = Shader { name: "resize", source: include_str!("resize.wgsl") };

/// Resize (and Upsample, its opset < 10 form).
pub(crate) struct Resize;

struct Plan {
    /// Output shape.
    out: Vec<usize>,
    /// Scales of the last two axes.
    scales: [f32; 2],
    mode: u32,
    coordinates: u32,
    rounding: u32,
}

fn plan(node: &Attrs<'_>, inputs: &[Option<&Value>], opset: i64) -> Result<Plan, NodeError> {
    let x = inputs.first().copied().flatten().ok_or("missing input")?;
    let rank = x.shape.len();
    if rank < 2 {
        return Err(format!("input {:?} has fewer than 2 axes", x.shape).into());
    }
    for a in ["antialias", "exclude_outside"] {
        if node.int(a, 0) != 0 {
            return Err(format!("`{a}` is not supported").into());
        }
    }
    // Only `cubic` reads `cubic_coeff_a` and only `tf_crop_and_resize` `extrapolation_value`:
    // both modes are refused below.
    let _ = (node.float("cubic_coeff_a", -0.75), node.float("extrapolation_value", 0.0));
    let policy = node.string("keep_aspect_ratio_policy", "stretch");
    if policy != "stretch" {
        return Err(format!("keep_aspect_ratio_policy `{policy}` is not supported").into());
    }
    if node.ints("axes").is_some() {
        return Err("`axes` is not supported".into());
    }
    let mode = match node.string("mode", "nearest").as_str() {
        "nearest" => 0,
        "linear" | "bilinear" => 1,
        other => return Err(format!("mode `{other}` is not supported (nearest, linear)").into()),
    };
    let default_coordinates = if opset < 11 { "asymmetric" } else { "half_pixel" };
    let coordinates = match node.string("coordinate_transformation_mode", default_coordinates).as_str() {
        "half_pixel" => 0,
        "pytorch_half_pixel" => 1,
        "asymmetric" => 2,
        "align_corners" => 3,
        other => return Err(format!("coordinate_transformation_mode `{other}` is not supported").into()),
    };
    let default_rounding = if opset < 11 { "floor" } else { "round_prefer_floor" };
    let rounding = match node.string("nearest_mode", default_rounding).as_str() {
        "round_prefer_floor" => 0,
        "round_prefer_ceil" => 1,
        "floor" => 2,
        "ceil" => 3,
        other => return Err(format!("nearest_mode `{other}` is not supported").into()),
    };
    // Inputs: opset 10 and Upsample (X, scales); opset 11+ (X, roi, scales, sizes).
    // Two inputs: opset 10's (X, scales); more: opset 11+'s (X, roi, scales, sizes).
    let (scales_at, sizes_at) = if node.inputs.len() <= 2 || node.op == "Upsample" { (1, None) } else { (2, Some(3)) };
    let given = |i: usize| inputs.get(i).copied().flatten().filter(|v| !v.is_empty());
    let mut scales: Vec<f32> = vec![1.0; rank];
    let out: Vec<usize> = if let Some(v) = sizes_at.and_then(given) {
        let sizes = const_ints(v).ok_or_else(|| NodeError::NotConstant { what: "sizes", name: v.name.clone() })?;
        if sizes.len() != rank {
            return Err(format!("{} sizes for rank {rank}", sizes.len()).into());
        }
        for d in 0..rank {
            scales[d] = sizes[d] as f32 / x.shape[d] as f32;
        }
        sizes.iter().map(|&s| s as usize).collect()
    } else if let Some(v) = given(scales_at) {
        scales = const_floats(v).ok_or_else(|| NodeError::NotConstant { what: "scales", name: v.name.clone() })?;
        if scales.len() != rank {
            return Err(format!("{} scales for rank {rank}", scales.len()).into());
        }
        x.shape.iter().zip(&scales).map(|(&d, &s)| (d as f32 * s).floor() as usize).collect()
    } else if node.op == "Upsample" {
        let s = node.ints("scales").map(|v| v.iter().map(|&x| x as f32).collect::<Vec<_>>());
        scales = s.ok_or("Upsample without scales")?;
        x.shape.iter().zip(&scales).map(|(&d, &s)| (d as f32 * s).floor() as usize).collect()
    } else {
        return Err("neither scales nor sizes is given".into());
    };
    if out[..rank - 2] != x.shape[..rank - 2] {
        return Err(format!("only the last two axes can be resized ({:?} → {out:?})", x.shape).into());
    }
    if out.contains(&0) {
        return Err(format!("empty output {out:?}").into());
    }
    Ok(Plan { out, scales: [scales[rank - 2], scales[rank - 1]], mode, coordinates, rounding })
}

impl Kernel for Resize {
    fn ops(&self) -> &'static [&'static str] {
        &["Resize", "Upsample"]
    }

    fn infer(&self, node: &Attrs<'_>, inputs: &[Option<&Value>]) -> Result<Vec<OutputType>, NodeError> {
        let Some(Some(x)) = inputs.first() else { return Err("missing input".into()) };
        want_f32(x, "input")?;
        // Shapes only: the opset-dependent defaults matter at build time, not for the shape.
        let p = plan(node, inputs, 13)?;
        Ok(vec![OutputType::new(DatumType::F32, p.out)])
    }

    fn build(&self, b: &mut Build<'_>) -> Result<(), NodeError> {
        let inputs: Vec<Option<&Value>> = b.node.inputs.iter().map(|i| i.map(|i| &b.graph.values[i])).collect();
        let p = plan(&b.attrs(), &inputs, b.graph.opset)?;
        let x = &b.input(0).shape;
        let r = x.len();
        let (h, w) = (x[r - 2], x[r - 1]);
        let total = b.output(0).len();
        let params = [
            total as u32,
            h as u32,
            w as u32,
            p.out[r - 2] as u32,
            p.out[r - 1] as u32,
            p.scales[0].to_bits(),
            p.scales[1].to_bits(),
            p.mode,
            p.coordinates,
            p.rounding,
        ];
        b.dispatch_1d(&SHADER, "main", &params, &[Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))], total)
    }
}
