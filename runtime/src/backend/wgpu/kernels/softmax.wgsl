// Softmax / LogSoftmax along one axis, one thread per row. Element k of row r sits at
// (r / inner) * len * inner + r % inner + k * inner.
// Params: `SoftmaxParams` (norm.rs).

@group(0) @binding(0) var<storage, read> p: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_index(gid, nwg);
    if r >= p[P_ROWS] { return; }
    let len = p[P_LEN];
    let inner = p[P_INNER];
    let base = (r / inner) * len * inner + r % inner;
    var peak = -3.4028235e38;
    for (var k = 0u; k < len; k++) {
        peak = max(peak, x[base + k * inner]);
    }
    var sum = 0.0;
    for (var k = 0u; k < len; k++) {
        sum += exp(x[base + k * inner] - peak);
    }
    if p[P_LOG] == 0u {
        for (var k = 0u; k < len; k++) {
            y[base + k * inner] = exp(x[base + k * inner] - peak) / sum;
        }
    } else {
        let l = log(sum);
        for (var k = 0u; k < len; k++) {
            y[base + k * inner] = x[base + k * inner] - peak - l;
        }
    }
}

// The same, one workgroup per row (`Build::dispatch_rows`), for long rows: the 256 threads
// stride over the row and combine their maxima and sums with `row_combine` (`row_reduce.wgsl`).
// One thread per row walked a 6625-class row three times alone (PP-OCRv4 rec's last softmax
// took 4.7 ms of its 8.6 ms on an H200).
@compute @workgroup_size(256)
fn wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
    // No early return: every thread of the workgroup reaches every barrier. A workgroup past
    // the last row (the y split) walks an empty row.
    let r = wid.x + wid.y * nwg.x;
    let len = select(0u, p[P_LEN], r < p[P_ROWS]);
    let inner = p[P_INNER];
    let base = (r / inner) * len * inner + r % inner;
    var m = -3.4028235e38;
    for (var k = t; k < len; k += 256u) {
        m = max(m, x[base + k * inner]);
    }
    let peak = row_combine(t, m, true);
    var s = 0.0;
    for (var k = t; k < len; k += 256u) {
        s += exp(x[base + k * inner] - peak);
    }
    let sum = row_combine(t, s, false);
    if p[P_LOG] == 0u {
        for (var k = t; k < len; k += 256u) {
            y[base + k * inner] = exp(x[base + k * inner] - peak) / sum;
        }
    } else {
        let l = log(sum);
        for (var k = t; k < len; k += 256u) {
            y[base + k * inner] = x[base + k * inner] - peak - l;
        }
    }
}
