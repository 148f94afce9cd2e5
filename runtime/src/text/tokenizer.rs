//! Word-level tokenizer described by the manifest's [`TokenizerSpec`].
//!
//! Algorithm (the training recipe must do exactly the same):
//! 1. lower-case the question when `lowercase` is set;
//! 2. split into words: maximal runs of alphanumeric characters or `'`; everything else separates;
//! 3. prepend `bos` when the spec names one;
//! 4. map each word to its vocabulary index; unknown words map to `unknown` when the spec names
//!    one, otherwise they are an error that lists every unknown word;
//! 5. pad with id 0 to `max_len`; the mask is 1 for real tokens and 0 for padding.

use std::collections::HashMap;

use thiserror::Error;

use crate::manifest::TokenizerSpec;

/// Why a question cannot be tokenized.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenizerError {
    #[error("the question is empty: ask something, e.g. \"what colour is the square?\"")]
    Empty,
    #[error("unknown word(s) {}: the student only knows the words of its package's vocabulary", .0.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", "))]
    UnknownWords(Vec<String>),
    #[error("the question has {got} tokens but the student reads at most {max}: ask a shorter question")]
    TooLong { got: usize, max: usize },
    #[error("tokenizer spec: {0}")]
    BadSpec(String),
}

/// Token ids and mask, both of length `max_len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    /// Number of real (non-padding) tokens.
    pub len: usize,
}

/// A ready tokenizer (vocabulary indexed once at load).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    spec: TokenizerSpec,
    index: HashMap<String, i64>,
    bos: Option<i64>,
    unknown: Option<i64>,
}

impl Tokenizer {
    /// Indexes the vocabulary; duplicate words or a `bos`/`unknown` token missing from it are errors.
    pub fn new(spec: &TokenizerSpec) -> Result<Tokenizer, TokenizerError> {
        let mut index = HashMap::with_capacity(spec.vocab.len());
        for (i, w) in spec.vocab.iter().enumerate() {
            if index.insert(w.clone(), i as i64).is_some() {
                return Err(TokenizerError::BadSpec(format!("word `{w}` appears twice in the vocabulary")));
            }
        }
        let lookup = |name: &str, tok: &Option<String>| -> Result<Option<i64>, TokenizerError> {
            match tok {
                None => Ok(None),
                Some(t) => index
                    .get(t)
                    .copied()
                    .map(Some)
                    .ok_or_else(|| TokenizerError::BadSpec(format!("{name} token `{t}` is not in the vocabulary"))),
            }
        };
        let bos = lookup("bos", &spec.bos)?;
        let unknown = lookup("unknown", &spec.unknown)?;
        if spec.max_len == 0 {
            return Err(TokenizerError::BadSpec("max_len is 0".into()));
        }
        Ok(Tokenizer { spec: spec.clone(), index, bos, unknown })
    }

    /// Splits a question into words (steps 1–2 of the module doc).
    pub fn words(&self, question: &str) -> Vec<String> {
        let text = if self.spec.lowercase { question.to_lowercase() } else { question.to_string() };
        text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
            .map(|w| w.trim_matches('\''))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Tokenizes a question into ids and mask of length `max_len`.
    pub fn encode(&self, question: &str) -> Result<Tokenized, TokenizerError> {
        let words = self.words(question);
        if words.is_empty() {
            return Err(TokenizerError::Empty);
        }
        let mut ids: Vec<i64> = self.bos.into_iter().collect();
        let mut unknown = Vec::new();
        for w in &words {
            match self.index.get(w).copied().or(self.unknown) {
                Some(id) => ids.push(id),
                None => {
                    if !unknown.contains(w) {
                        unknown.push(w.clone())
                    }
                }
            }
        }
        if !unknown.is_empty() {
            return Err(TokenizerError::UnknownWords(unknown));
        }
        let len = ids.len();
        if len > self.spec.max_len {
            return Err(TokenizerError::TooLong { got: len, max: self.spec.max_len });
        }
        let mut mask = vec![1i64; len];
        ids.resize(self.spec.max_len, 0);
        mask.resize(self.spec.max_len, 0);
        Ok(Tokenized { ids, mask, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec() -> TokenizerSpec {
        TokenizerSpec {
            vocab: ["[PAD]", "[CLS]", "what", "colour", "is", "the", "square", "isn't"].map(String::from).to_vec(),
            lowercase: true,
            max_len: 6,
            bos: Some("[CLS]".into()),
            unknown: None,
        }
    }

    #[test]
    fn encodes_pads_and_masks() {
        let t = Tokenizer::new(&spec()).unwrap();
        let out = t.encode("What colour is the SQUARE?").unwrap();
        assert_eq!(out.ids, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(out.mask, vec![1; 6]);
        let out = t.encode("  square  ").unwrap();
        assert_eq!(out.ids, vec![1, 6, 0, 0, 0, 0]);
        assert_eq!(out.mask, vec![1, 1, 0, 0, 0, 0]);
        assert_eq!(t.encode("'isn't'").unwrap().ids[1], 7);
    }

    #[test]
    fn errors_are_specific() {
        let t = Tokenizer::new(&spec()).unwrap();
        assert_eq!(t.encode(" ?! ").unwrap_err(), TokenizerError::Empty);
        assert_eq!(
            t.encode("what colour is the zebra or the giraffe zebra").unwrap_err(),
            TokenizerError::UnknownWords(vec!["zebra".into(), "or".into(), "giraffe".into()])
        );
        assert_eq!(t.encode("what what what what what what").unwrap_err(), TokenizerError::TooLong { got: 7, max: 6 });
        let mut bad = spec();
        bad.vocab.push("what".into());
        assert!(matches!(Tokenizer::new(&bad), Err(TokenizerError::BadSpec(_))));
    }

    #[test]
    fn unknown_token_maps_when_present() {
        let mut s = spec();
        s.vocab.push("[UNK]".into());
        s.unknown = Some("[UNK]".into());
        let t = Tokenizer::new(&s).unwrap();
        assert_eq!(t.encode("zebra square").unwrap().ids[..3], [1, 8, 6]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn never_panics_and_respects_max_len(q in ".{0,80}") {
            let t = Tokenizer::new(&spec()).unwrap();
            if let Ok(out) = t.encode(&q) {
                prop_assert_eq!(out.ids.len(), 6);
                prop_assert_eq!(out.mask.iter().sum::<i64>() as usize, out.len);
            }
        }
    }
}
