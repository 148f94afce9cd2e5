//! Per-node times of a loaded stage (`edgeqa run --profile`): with the device's timestamp
//! queries each dispatch runs in its own compute pass with a timestamp at both ends (device
//! time, no submission cost); without them each dispatch is submitted alone and waited for
//! (wall clock, so every node also pays a submission and a wait). Either way the numbers rank
//! the nodes; the stage's own time is what `run` takes (one submission).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{DeviceError, WgpuStage};
use crate::backend::{BackendError, NodeProfile, NodeTime, StageSession, median};
use crate::tensor::Tensor;

/// Dispatches timed per submission (two timestamps each; a query set holds at most 4096).
const CHUNK: usize = 1024;

/// Times every node of `stage` over `runs` runs of `inputs`, after one untimed run.
pub(super) fn profile(stage: &WgpuStage, inputs: Vec<Tensor>, runs: usize) -> Result<NodeProfile, BackendError> {
    let runs = runs.max(1);
    stage.run(inputs.clone())?;
    let _guard = stage.lock.lock().map_err(|_| stage.internal("a previous run panicked".into()))?;
    let nodes = stage.graph.nodes.len();
    let mut per_node: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); nodes];
    for _ in 0..runs {
        stage.write_inputs(&inputs)?;
        let times = if stage.gpu.timestamps { device_times(stage)? } else { wall_times(stage)? };
        let mut sums = vec![0.0; nodes];
        for (d, t) in stage.dispatches.iter().zip(times) {
            sums[d.node] += t;
        }
        for (n, s) in sums.into_iter().enumerate() {
            per_node[n].push(s);
        }
        if stage.gpu.lost.load(Ordering::SeqCst) {
            return Err(stage.device_err(DeviceError::LostWhileProfiling));
        }
    }
    let mut counts = vec![0usize; nodes];
    for d in &stage.dispatches {
        counts[d.node] += 1;
    }
    let nodes = stage
        .graph
        .nodes
        .iter()
        .zip(per_node)
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|((node, times), dispatches)| NodeTime {
            op: node.op.clone(),
            name: node.name.clone(),
            dispatches,
            median_us: median(times),
        })
        .collect();
    let clock = if stage.gpu.timestamps { "gpu timestamps" } else { "wall clock per submission" };
    Ok(NodeProfile { clock, runs, nodes })
}

/// Microseconds of each dispatch from timestamps written before and after its own pass.
fn device_times(stage: &WgpuStage) -> Result<Vec<f64>, BackendError> {
    let device = &stage.gpu.device;
    let queue = &stage.gpu.queue;
    let us_per_tick = f64::from(queue.get_timestamp_period()) / 1000.0;
    let mut out = Vec::with_capacity(stage.dispatches.len());
    for chunk in stage.dispatches.chunks(CHUNK) {
        let queries = 2 * chunk.len() as u32;
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count: queries,
        });
        let bytes = 8 * u64::from(queries);
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
        for (i, d) in chunk.iter().enumerate() {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            d.record(&mut pass);
        }
        encoder.resolve_query_set(&set, 0..queries, &resolved, 0);
        encoder.copy_buffer_to_buffer(&resolved, 0, &read, 0, bytes);
        let index = queue.submit(Some(encoder.finish()));
        stage.gpu.map_read(&read, index).map_err(|e| stage.device_err(e))?;
        {
            let data = read
                .slice(..)
                .get_mapped_range()
                .map_err(|e| stage.device_err(DeviceError::Readback(format!("timestamps: {e}"))))?;
            let ticks: &[u64] = bytemuck::cast_slice(&data);
            out.extend(ticks.chunks_exact(2).map(|t| t[1].saturating_sub(t[0]) as f64 * us_per_tick));
        }
        read.unmap();
    }
    Ok(out)
}

/// Microseconds of each dispatch submitted alone and waited for.
fn wall_times(stage: &WgpuStage) -> Result<Vec<f64>, BackendError> {
    let device = &stage.gpu.device;
    let queue = &stage.gpu.queue;
    let mut out = Vec::with_capacity(stage.dispatches.len());
    for d in &stage.dispatches {
        let start = Instant::now();
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
        {
            let mut pass =
                encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            d.record(&mut pass);
        }
        let index = queue.submit(Some(encoder.finish()));
        stage.gpu.wait(index).map_err(|e| stage.device_err(e))?;
        out.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
