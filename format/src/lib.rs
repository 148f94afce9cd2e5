//! edgeqa's shared data layer, below both the device runtime (`edgeqa`) and the host converter
//! (`edgeqa-convert`): the student [`contract`] spelled once, the package [`manifest`], reading
//! and writing `.eqa` [`package`]s, the [`tensor`] type that crosses the backend boundary (with
//! NumPy `.npy` I/O) and deterministic [`synthetic`] inputs, ONNX protos and helpers ([`onnx`], and
//! [`onnx_builder`] for graphs made by code), and tract as the reference engine's
//! front end and element-type maps ([`tract`]).

pub mod contract;
pub mod manifest;
pub mod onnx;
pub mod onnx_builder;
pub mod package;
pub mod synthetic;
pub mod tensor;
/// TensorFlow Lite model files (`.tflite`): a bounds-checked reader of their operators, tensors and signatures.
pub mod tflite;
pub mod tract;
