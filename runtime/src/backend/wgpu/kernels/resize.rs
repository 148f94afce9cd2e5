//! Resize (opset 10–19) of the last two axes with constant scales or sizes: `nearest` with its
//! four rounding modes and `linear`, under the half_pixel, pytorch_half_pixel, asymmetric and
//! align_corners coordinate modes (`resize.wgsl`). Other modes, cubic, antialias, ROI crops and
//! scaling of the batch or channel axes are load errors.

use tract_onnx::prelude::DatumType;

use super::params::params;
use super::{Binding, Build, Kernel, Shader, const_floats, const_ints, want_f32};
use crate::graph::ReadAttrs;
use crate::graph::{Attrs, NodeError, OutputType, Value};

const SHADER: Shader = Shader { name: "resize", source: include_str!("resize.wgsl") };

params! {
    /// `resize.wgsl`'s params: one thread per output element.
    struct ResizeParams {
        total: u32,
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
        /// 0 nearest, 1 linear.
        mode: u32,
        /// Per output row, then per output column: the first and second source index and the
        /// second's weight (f32 bits).
        tables: Vec<u32>,
    }
}

/// Resize (and Upsample, its opset < 10 form).
pub(crate) struct Resize;

struct Plan {
    /// Output shape.
    out: Vec<usize>,
    /// Scales of the last two axes (f64: from sizes, the exact ratio, as ONNX's reference).
    scales: [f64; 2],
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
    let mut scales: Vec<f64> = vec![1.0; rank];
    let out: Vec<usize> = if let Some(v) = sizes_at.and_then(given) {
        let sizes = const_ints(v).ok_or_else(|| NodeError::NotConstant { what: "sizes", name: v.name.clone() })?;
        if sizes.len() != rank {
            return Err(format!("{} sizes for rank {rank}", sizes.len()).into());
        }
        for d in 0..rank {
            scales[d] = sizes[d] as f64 / x.shape[d] as f64;
        }
        sizes.iter().map(|&s| s as usize).collect()
    } else if let Some(v) = given(scales_at) {
        let given = const_floats(v).ok_or_else(|| NodeError::NotConstant { what: "scales", name: v.name.clone() })?;
        if given.len() != rank {
            return Err(format!("{} scales for rank {rank}", given.len()).into());
        }
        scales = given.iter().map(|&s| s as f64).collect();
        x.shape.iter().zip(&scales).map(|(&d, &s)| (d as f64 * s).floor() as usize).collect()
    } else if node.op == "Upsample" {
        let s = node.ints("scales").map(|v| v.iter().map(|&x| x as f64).collect::<Vec<_>>());
        scales = s.ok_or("Upsample without scales")?;
        x.shape.iter().zip(&scales).map(|(&d, &s)| (d as f64 * s).floor() as usize).collect()
    } else {
        return Err("neither scales nor sizes is given".into());
    };
    if out[..rank - 2] != x.shape[..rank - 2] {
        return Err(format!("only the last two axes can be resized ({:?} → {out:?})", x.shape).into());
    }
    if out.contains(&0) {
        return Err(format!("empty output {out:?}").into());
    }
    if scales[rank - 2..].iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(format!("scales {:?} of the resized axes must be finite and positive", &scales[rank - 2..]).into());
    }
    Ok(Plan { out, scales: [scales[rank - 2], scales[rank - 1]], mode, coordinates, rounding })
}

impl Plan {
    /// Where output coordinate `o` of an axis reads from: (i0, i1, weight of i1), i0 alone for
    /// nearest. Computed in f64 like ONNX's reference implementation, once at load.
    fn source(&self, o: usize, len_in: usize, len_out: usize, scale: f64) -> (u32, u32, f32) {
        let fo = o as f64;
        let s = match self.coordinates {
            0 => (fo + 0.5) / scale - 0.5,
            1 if len_out > 1 => (fo + 0.5) / scale - 0.5,
            2 => fo / scale,
            // The resized length is len_in · scale, unrounded, as in ONNX's reference.
            3 if len_out > 1 => fo * (len_in as f64 - 1.0) / (len_in as f64 * scale - 1.0),
            _ => 0.0,
        };
        let last = (len_in - 1) as f64;
        if self.mode == 0 {
            let half = s - s.floor() == 0.5;
            let r = match self.rounding {
                0 if half => s.floor(),
                1 if half => s.ceil(),
                0 | 1 => s.round(),
                2 => s.floor(),
                _ => s.ceil(),
            };
            return (r.clamp(0.0, last) as u32, 0, 0.0);
        }
        let c = s.clamp(0.0, last);
        let i0 = c.floor();
        let i1 = (i0 + 1.0).min(last);
        (i0 as u32, i1 as u32, (c - i0) as f32)
    }
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
        let (oh, ow) = (p.out[r - 2], p.out[r - 1]);
        let mut tables = Vec::with_capacity(3 * (oh + ow));
        for (len_in, len_out, scale) in [(h, oh, p.scales[0]), (w, ow, p.scales[1])] {
            for o in 0..len_out {
                let (i0, i1, weight) = p.source(o, len_in, len_out, scale);
                tables.extend([i0, i1, weight.to_bits()]);
            }
        }
        let u = |x: usize| x as u32;
        let params = ResizeParams { total: u(total), h: u(h), w: u(w), oh: u(oh), ow: u(ow), mode: p.mode, tables };
        b.dispatch_1d(&SHADER, "main", &params, &[Binding::Value(b.input_id(0)), Binding::Value(b.output_id(0))], total)
    }
}

#[cfg(test)]
mod tests {
    use super::Plan;

    fn plan(mode: u32, coordinates: u32, rounding: u32) -> Plan {
        Plan { out: vec![], scales: [1.0; 2], mode, coordinates, rounding }
    }

    /// ONNX's `test_resize_upsample_sizes_nearest` (2 rows to 7, half_pixel, round_prefer_floor):
    /// row 3 sits at exactly 0.5 and must round down to row 0. The shader computed this in f32
    /// and read row 1 on an NVIDIA H200 (its division is not exact).
    #[test]
    fn a_half_rounds_as_the_mode_says() {
        let rows: Vec<u32> = (0..7).map(|o| plan(0, 0, 0).source(o, 2, 7, 3.5).0).collect();
        assert_eq!(rows, [0, 0, 0, 0, 1, 1, 1]);
        let ceil: Vec<u32> = (0..7).map(|o| plan(0, 0, 1).source(o, 2, 7, 3.5).0).collect();
        assert_eq!(ceil, [0, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn linear_weights_and_edges() {
        let p = plan(1, 2, 0);
        // asymmetric, 2 → 4: sources 0, 0.5, 1, 1.5 (clamped to 1).
        let got: Vec<_> = (0..4).map(|o| p.source(o, 2, 4, 2.0)).collect();
        assert_eq!(got, [(0, 1, 0.0), (0, 1, 0.5), (1, 1, 0.0), (1, 1, 0.0)]);
        // align_corners, 3 → 5: 0, 0.5, 1, 1.5, 2.
        let p = plan(1, 3, 0);
        let got: Vec<_> = (0..5).map(|o| p.source(o, 3, 5, 5.0 / 3.0)).collect();
        assert_eq!(got, [(0, 1, 0.0), (0, 1, 0.5), (1, 2, 0.0), (1, 2, 0.5), (2, 2, 0.0)]);
        // pytorch_half_pixel with one output reads the first row.
        assert_eq!(plan(1, 1, 0).source(0, 4, 1, 0.25), (0, 1, 0.0));
    }
}
