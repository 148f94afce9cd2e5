//! edgeqa runtime: everything that ships on the device.
//!
//! Data path: [`package`] (read and verify a `.eqa` file) → [`capture`] (clip files that behave
//! like devices) → [`preprocess`] (colour conversion, resize, normalise, log-mel) and [`text`]
//! (tokenizer) → [`backend`] (runs each stage graph) → [`pipeline`] (the question-answering engine).

pub mod backend;
pub mod capture;
pub mod eval;
pub mod manifest;
pub mod onnx;
pub mod package;
pub mod pipeline;
pub mod preprocess;
pub mod tensor;
pub mod text;
