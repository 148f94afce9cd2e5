//! edgeqa runtime: everything that ships on the device.
//!
//! Data path: [`package`] (read and verify a `.eqa` file) → [`capture`] (clip files that behave
//! like devices) → [`preprocess`] (colour conversion, resize, normalise, log-mel) and [`text`]
//! (tokenizer) → [`backend`] (runs each stage graph) → [`pipeline`] (the per-clip
//! question-answering engine); [`stream`] runs it continuously on live sources and [`voice`] hears
//! spoken questions. The student [`contract`], the [`manifest`], [`package`]s,
//! [`tensor`]s and [`onnx`] protos come from the `edgeqa-format` crate, shared with the converter.
//!
//! Cargo features choose the backends a build carries: `tract` (the CPU) and `wgpu` (our WGSL
//! kernels through Vulkan), both on by default; a board build names its own (see
//! `firmware-config/boards/*.toml`).

#[cfg(not(any(feature = "tract", feature = "wgpu")))]
compile_error!("edgeqa needs at least one backend: enable the `tract` or the `wgpu` feature");

pub use edgeqa_format::{contract, manifest, onnx, onnx_builder, package, synthetic, tensor, tflite};

pub mod backend;
pub mod budget;
pub mod capture;
pub mod eval;
#[cfg(feature = "wgpu")]
pub mod graph;
pub mod pipeline;
pub mod preprocess;
pub mod stream;
pub mod text;
pub mod voice;

/// Joins an error and its sources into one line for a binary's `error: ...` message, skipping
/// links whose text the previous link already contains.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let s = cause.to_string();
        if parts.last().is_none_or(|p| !p.contains(&s)) {
            parts.push(s);
        }
        next = cause.source();
    }
    parts.join(": ")
}
