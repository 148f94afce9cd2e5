//! edgeqa runtime: everything that ships on the device.
//!
//! Data path: [`package`] (read and verify a `.eqa` file) → [`capture`] (clip files that behave
//! like devices) → [`preprocess`] (colour conversion, resize, normalise, log-mel) and [`text`]
//! (tokenizer) → [`backend`] (runs each stage graph) → [`pipeline`] (the question-answering engine).

pub mod backend;
pub mod budget;
pub mod capture;
pub mod eval;
pub mod graph;
pub mod manifest;
pub mod onnx;
pub mod onnx_builder;
pub mod package;
pub mod pipeline;
pub mod preprocess;
pub mod synthetic;
pub mod tensor;
pub mod text;

/// Joins an error chain into one line for a binary's `error: ...` message, skipping links whose
/// text the previous link already contains.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if parts.last().is_none_or(|p| !p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}
