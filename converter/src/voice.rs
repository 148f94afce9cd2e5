//! `[voice]` of `student.toml`: the questions a student answers, as templates, turned into the
//! JSGF grammar and the pronunciation dictionary that the runtime's recognizer searches.
//!
//! ```toml
//! [voice]
//! templates = ["what colour is the {shape}", "how many objects are there"]
//! dictionary = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"   # the default
//! vad = "silero_vad_openvino_16k.onnx"     # optional, relative to the student directory
//!
//! [voice.slots]
//! shape = ["circle", "square", "{colour} object"]   # a slot may use other slots
//! colour = ["red", "green"]
//!
//! [voice.pronunciations]                   # optional: words the dictionary lacks or says wrong
//! colour = "K AH L ER"
//! ```
//!
//! Every word must be in the tokenizer's vocabulary (a word the student cannot read is never
//! recognised) and have a pronunciation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use edgeqa_format::manifest::{TokenizerSpec, VoiceSpec};
use serde::Deserialize;

/// Debian's CMU dictionary for the `pocketsphinx-en-us` acoustic model.
pub const DEFAULT_DICTIONARY: &str = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict";
/// Name recorded for the phone set of [`DEFAULT_DICTIONARY`] and the model it belongs to.
pub const ACOUSTIC_MODEL: &str = "cmusphinx-en-us";
/// Slot nesting deeper than this is refused (it is almost certainly a cycle).
const MAX_DEPTH: usize = 8;

/// What is wrong with `[voice]` templates and slots; `at` is the place (`templates[0]`,
/// `slots.colour[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    #[error("`templates` is empty")]
    NoTemplates,
    #[error("{at}: is empty")]
    Empty { at: String },
    #[error("{at}: `{token}` is not a `{{slot}}`")]
    NotSlot { at: String, token: String },
    #[error("{at}: `{token}` is not a word (letters, digits and ' only)")]
    NotWord { at: String, token: String },
    #[error("slot name `{0}`: use letters, digits and _")]
    SlotName(String),
    #[error("slots.{0} is empty")]
    EmptySlot(String),
    #[error("{at}: no slot named `{slot}`")]
    NoSlot { at: String, slot: String },
    #[error("{at}: slots nest deeper than {MAX_DEPTH} (does a slot use itself?)")]
    TooDeep { at: String },
}

/// Why `[voice]` cannot be built into the manifest's [`VoiceSpec`].
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("[voice] needs a [tokenizer]: a transcript is read by the question encoder")]
    NoTokenizer,
    #[error("[voice] {0}")]
    Grammar(#[from] GrammarError),
    #[error("[voice] uses words the tokenizer does not know, which the student could never read: {}", quoted(.0))]
    UnknownWords(Vec<String>),
    #[error("dictionary {}: {error} (install Debian's pocketsphinx-en-us, or set [voice] dictionary)", path.display())]
    Dictionary { path: PathBuf, error: std::io::Error },
    #[error("[voice.pronunciations] `{0}` is not a word of the templates")]
    StrayPronunciation(String),
    #[error("[voice] no pronunciation for {} in {}: add them under [voice.pronunciations]", quoted(words), path.display())]
    NoPronunciation { words: Vec<String>, path: PathBuf },
}

/// `` `a`, `b` ``.
fn quoted(words: &[String]) -> String {
    words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
}

/// The `[voice]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceToml {
    /// Question templates; `{name}` stands for any value of `slots.name`.
    pub templates: Vec<String>,
    #[serde(default)]
    pub slots: BTreeMap<String, Vec<String>>,
    /// Pronunciation dictionary (CMU format: `word PH PH ...`, alternates as `word(2)`).
    pub dictionary: Option<PathBuf>,
    /// Pronunciations that override or add to the dictionary.
    #[serde(default)]
    pub pronunciations: BTreeMap<String, String>,
    /// Silero-style voice activity model (ONNX) to package, relative to the student directory.
    pub vad: Option<PathBuf>,
}

/// The question language of a student: templates with their slots, checked.
#[derive(Debug, Clone)]
pub struct Grammar {
    templates: Vec<Vec<Token>>,
    slots: BTreeMap<String, Vec<Vec<Token>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Slot(String),
}

fn parse(text: &str, where_: &str) -> Result<Vec<Token>, GrammarError> {
    let mut out = Vec::new();
    for raw in text.split_whitespace() {
        let raw = raw.trim_end_matches(['?', '.', ',', '!']);
        if raw.is_empty() {
            continue;
        }
        if let Some(inner) = raw.strip_prefix('{') {
            let name = inner
                .strip_suffix('}')
                .ok_or_else(|| GrammarError::NotSlot { at: where_.into(), token: raw.into() })?;
            out.push(Token::Slot(name.to_string()));
        } else if raw.chars().all(|c| c.is_alphanumeric() || c == '\'') {
            out.push(Token::Word(raw.to_lowercase()));
        } else {
            return Err(GrammarError::NotWord { at: where_.into(), token: raw.into() });
        }
    }
    if out.is_empty() {
        return Err(GrammarError::Empty { at: where_.into() });
    }
    Ok(out)
}

impl Grammar {
    /// Parses and checks templates and slots: every `{slot}` is defined, no slot uses itself.
    pub fn new(templates: &[String], slots: &BTreeMap<String, Vec<String>>) -> Result<Grammar, GrammarError> {
        if templates.is_empty() {
            return Err(GrammarError::NoTemplates);
        }
        let templates = templates
            .iter()
            .enumerate()
            .map(|(i, t)| parse(t, &format!("templates[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut parsed = BTreeMap::new();
        for (name, values) in slots {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(GrammarError::SlotName(name.clone()));
            }
            if values.is_empty() {
                return Err(GrammarError::EmptySlot(name.clone()));
            }
            let v = values
                .iter()
                .enumerate()
                .map(|(i, t)| parse(t, &format!("slots.{name}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            parsed.insert(name.clone(), v);
        }
        let g = Grammar { templates, slots: parsed };
        for (i, t) in g.templates.iter().enumerate() {
            g.check(t, &format!("templates[{i}]"), 0)?;
        }
        for (name, values) in &g.slots {
            for v in values {
                g.check(v, &format!("slots.{name}"), 1)?;
            }
        }
        Ok(g)
    }

    fn check(&self, tokens: &[Token], where_: &str, depth: usize) -> Result<(), GrammarError> {
        if depth > MAX_DEPTH {
            return Err(GrammarError::TooDeep { at: where_.into() });
        }
        for t in tokens {
            if let Token::Slot(s) = t {
                let values =
                    self.slots.get(s).ok_or_else(|| GrammarError::NoSlot { at: where_.into(), slot: s.clone() })?;
                for v in values {
                    self.check(v, &format!("slots.{s}"), depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// Every word the grammar can produce, sorted.
    pub fn words(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let all = self.templates.iter().chain(self.slots.values().flatten());
        for t in all.flatten() {
            if let Token::Word(w) = t {
                out.insert(w.clone());
            }
        }
        out
    }

    /// Every sentence of the grammar, at most `limit` of them (`None` when there are more).
    pub fn sentences(&self, limit: usize) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for t in &self.templates {
            for s in self.expand(t, limit)? {
                out.push(s.join(" "));
                if out.len() > limit {
                    return None;
                }
            }
        }
        out.sort();
        out.dedup();
        Some(out)
    }

    fn expand(&self, tokens: &[Token], limit: usize) -> Option<Vec<Vec<String>>> {
        let mut acc: Vec<Vec<String>> = vec![vec![]];
        for t in tokens {
            let options: Vec<Vec<String>> = match t {
                Token::Word(w) => vec![vec![w.clone()]],
                Token::Slot(s) => {
                    let mut o = Vec::new();
                    for v in &self.slots[s] {
                        o.extend(self.expand(v, limit)?);
                    }
                    o
                }
            };
            let mut next = Vec::with_capacity(acc.len() * options.len());
            for a in &acc {
                for o in &options {
                    next.push(a.iter().chain(o).cloned().collect());
                    if next.len() > limit {
                        return None;
                    }
                }
            }
            acc = next;
        }
        Some(acc)
    }

    /// The grammar in JSGF: public rule `<question>`, one rule `<slot_NAME>` per slot.
    pub fn jsgf(&self) -> String {
        let show = |tokens: &[Token]| -> String {
            tokens
                .iter()
                .map(|t| match t {
                    Token::Word(w) => w.clone(),
                    Token::Slot(s) => format!("<slot_{s}>"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut out = String::from("#JSGF V1.0;\ngrammar student;\n\npublic <question> =\n");
        let alts: Vec<String> = self.templates.iter().map(|t| format!("    {}", show(t))).collect();
        out.push_str(&alts.join("\n  |\n"));
        out.push_str(";\n");
        for (name, values) in &self.slots {
            let alts: Vec<String> = values.iter().map(|v| show(v)).collect();
            out.push_str(&format!("\n<slot_{name}> = {};\n", alts.join(" | ")));
        }
        out
    }
}

/// Reads a CMU-format pronunciation dictionary, keeping only `wanted` words (and their
/// alternates `word(2)`).
pub fn read_dictionary(path: &Path, wanted: &BTreeSet<String>) -> Result<BTreeMap<String, String>, VoiceError> {
    let text =
        std::fs::read_to_string(path).map_err(|error| VoiceError::Dictionary { path: path.to_path_buf(), error })?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some(key) = parts.next() else { continue };
        let base = key.split('(').next().unwrap_or(key);
        if wanted.contains(base) {
            let phones: Vec<&str> = parts.collect();
            if !phones.is_empty() {
                out.insert(key.to_string(), phones.join(" "));
            }
        }
    }
    Ok(out)
}

/// Builds the manifest's [`VoiceSpec`] (without the voice activity model, which the converter
/// adds with its section) from `[voice]`, checking every word against the tokenizer.
pub fn build(dir: &Path, v: &VoiceToml, tokenizer: Option<&TokenizerSpec>) -> Result<VoiceSpec, VoiceError> {
    let t = tokenizer.ok_or(VoiceError::NoTokenizer)?;
    let grammar = Grammar::new(&v.templates, &v.slots)?;
    let words = grammar.words();
    let vocab: BTreeSet<String> =
        t.vocab.iter().map(|w| if t.lowercase { w.to_lowercase() } else { w.clone() }).collect();
    let unknown: Vec<String> = words.iter().filter(|w| !vocab.contains(*w)).cloned().collect();
    if !unknown.is_empty() {
        return Err(VoiceError::UnknownWords(unknown));
    }
    let path = match &v.dictionary {
        Some(p) => dir.join(p),
        None => PathBuf::from(DEFAULT_DICTIONARY),
    };
    let mut dictionary = read_dictionary(&path, &words)?;
    for (word, phones) in &v.pronunciations {
        if !words.contains(word) {
            return Err(VoiceError::StrayPronunciation(word.clone()));
        }
        dictionary.retain(|k, _| k.split('(').next() != Some(word.as_str()));
        dictionary.insert(word.clone(), phones.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let missing: Vec<String> =
        words.iter().filter(|w| !dictionary.keys().any(|k| k.split('(').next() == Some(w.as_str()))).cloned().collect();
    if !missing.is_empty() {
        return Err(VoiceError::NoPronunciation { words: missing, path });
    }
    Ok(VoiceSpec { acoustic_model: ACOUSTIC_MODEL.into(), grammar: grammar.jsgf(), dictionary, vad: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
    }

    #[test]
    fn templates_expand_through_nested_slots() {
        let s = slots(&[("shape", &["circle", "square"]), ("ref", &["{shape}", "red {shape}"])]);
        let g = Grammar::new(&["where is the {ref} going?".into(), "count the objects.".into()], &s).unwrap();
        let all = g.sentences(100).unwrap();
        assert_eq!(all.len(), 5, "{all:?}");
        assert!(all.contains(&"where is the red square going".to_string()));
        assert_eq!(g.sentences(3), None);
        let jsgf = g.jsgf();
        assert!(jsgf.contains("public <question> =") && jsgf.contains("<slot_ref> = <slot_shape> | red <slot_shape>;"));
        assert_eq!(g.words().len(), 9);
    }

    #[test]
    fn bad_templates_are_refused_with_the_place() {
        let err = |t: &str, s| Grammar::new(&[t.to_string()], &s).unwrap_err().to_string();
        assert!(err("what is {thing}", slots(&[])).contains("no slot named `thing`"));
        assert!(err("what is {a}", slots(&[("a", &["{a}"])])).contains("deeper"));
        assert!(err("what <is> it", slots(&[])).contains("`<is>` is not a word"));
        assert!(err("{a", slots(&[])).contains("not a `{slot}`"));
        assert!(Grammar::new(&[], &slots(&[])).unwrap_err().to_string().contains("empty"));
    }

    proptest::proptest! {
        /// Any text as templates and slots: a grammar or an error, never a panic or a hang.
        #[test]
        fn arbitrary_templates_never_panic(
            t in proptest::collection::vec("[a-z{}? ]{0,24}", 0..4),
            v in proptest::collection::vec("[a-z{}]{0,12}", 0..4),
        ) {
            let slots: BTreeMap<String, Vec<String>> = [("a".to_string(), v.clone()), ("b".to_string(), v)].into();
            if let Ok(g) = Grammar::new(&t, &slots) {
                let _ = g.sentences(1000);
                proptest::prop_assert!(g.jsgf().contains("public <question>"));
            }
        }
    }

    #[test]
    fn words_outside_the_vocabulary_or_dictionary_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.dict"), "what W AH T\nis IH Z\nit IH T\nit(2) IH\n").unwrap();
        let tok = TokenizerSpec {
            vocab: vec!["[PAD]".into(), "what".into(), "is".into(), "it".into(), "this".into()],
            lowercase: true,
            max_len: 4,
            bos: None,
            unknown: None,
        };
        let voice = |t: &str| VoiceToml {
            templates: vec![t.into()],
            slots: BTreeMap::new(),
            dictionary: Some("d.dict".into()),
            pronunciations: BTreeMap::new(),
            vad: None,
        };
        let ok = build(dir.path(), &voice("what is it?"), Some(&tok)).unwrap();
        assert_eq!(ok.dictionary.len(), 4);
        let e = build(dir.path(), &voice("what is that"), Some(&tok)).unwrap_err().to_string();
        assert!(e.contains("`that`") && e.contains("tokenizer"), "{e}");
        let e = build(dir.path(), &voice("what is this"), Some(&tok)).unwrap_err().to_string();
        assert!(e.contains("no pronunciation for `this`"), "{e}");
        let mut fixed = voice("what is this");
        fixed.pronunciations.insert("this".into(), "DH IH S".into());
        assert_eq!(build(dir.path(), &fixed, Some(&tok)).unwrap().dictionary["this"], "DH IH S");
        assert!(build(dir.path(), &voice("what is it"), None).is_err());
    }
}
