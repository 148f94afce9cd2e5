//! Turning captured pixels and samples into the tensors a student expects.

pub mod image;
pub mod mel;
