// Index checks for kernels that take indices from a tensor (Gather, GatherND): ONNX allows
// [-len, len - 1], negative counting from the end. An index outside is recorded in the stage's
// error buffer, 4 words per checking dispatch (its site): [flag, index, axis, axis length], the
// first offender only; the run reads the buffer back with the outputs and fails naming the node.

@group(0) @binding(4) var<storage, read_write> index_errors: array<atomic<u32>>;

// Records index `k` of `axis` (length `len`) at `site`, unless an offender is recorded already.
fn report_index(site: u32, k: i32, axis: u32, len: u32) {
    let at = 4u * site;
    loop {
        let r = atomicCompareExchangeWeak(&index_errors[at], 0u, 1u);
        if r.exchanged {
            atomicStore(&index_errors[at + 1u], bitcast<u32>(k));
            atomicStore(&index_errors[at + 2u], axis);
            atomicStore(&index_errors[at + 3u], len);
            return;
        }
        if r.old_value != 0u { return; }
    }
}

// Index `k` into an axis of length `len` as a position in [0, len), or, out of range, 0 after
// reporting it (the run fails, so what is read with it is never seen).
fn checked_index(site: u32, k: i32, axis: u32, len: u32) -> u32 {
    let n = i32(len);
    if k >= -n && k < n {
        return u32(select(k, k + n, k < 0));
    }
    report_index(site, k, axis, len);
    return 0u;
}
