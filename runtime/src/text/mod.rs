//! Question text → token ids for the question encoder.

pub mod tokenizer;

pub use tokenizer::{Tokenized, Tokenizer, TokenizerError};
