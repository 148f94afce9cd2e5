//! The ONNX operator-schema table (`onnx_schemas.txt`, written by `scripts/gen_onnx_schemas.py`
//! from `onnx.defs`): what each version of each operator accepts.

use std::collections::HashMap;
use std::sync::LazyLock;

use edgeqa_format::onnx::pb::attribute_proto::AttributeType;

/// The committed table, as `scripts/gen_onnx_schemas.py` prints it.
pub const TABLE: &str = include_str!("onnx_schemas.txt");

/// How a formal input may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formal {
    /// Required: may not be the empty name.
    Single,
    /// May be the empty name or left off.
    Optional,
    /// Any number, from here on.
    Variadic,
}

/// An attribute an operator version declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrSpec {
    pub name: String,
    pub ty: AttributeType,
    pub required: bool,
}

/// One version of one operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// The opset version this schema applies from.
    pub since: i64,
    pub deprecated: bool,
    pub min_inputs: usize,
    /// `usize::MAX` when unbounded.
    pub max_inputs: usize,
    pub formal_inputs: Vec<Formal>,
    pub min_outputs: usize,
    pub max_outputs: usize,
    pub attributes: Vec<AttrSpec>,
}

impl Schema {
    /// The declared attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&AttrSpec> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// How input `index` may be given (the last formal repeats when variadic).
    pub fn formal(&self, index: usize) -> Option<Formal> {
        self.formal_inputs.get(index).or_else(|| self.formal_inputs.last().filter(|f| **f == Formal::Variadic)).copied()
    }
}

/// Every version of every operator ONNX defines, by (domain, op), oldest first.
pub struct Schemas {
    /// The newest IR version the table's ONNX release knows.
    pub ir_version: i64,
    ops: HashMap<(String, String), Vec<Schema>>,
}

impl Schemas {
    /// The parsed committed table.
    pub fn get() -> &'static Schemas {
        static PARSED: LazyLock<Schemas> =
            LazyLock::new(|| Schemas::parse(TABLE).unwrap_or_else(|e| panic!("committed onnx_schemas.txt: {e}")));
        &PARSED
    }

    /// Every version of `op` in `domain` (`""` for ai.onnx), oldest first; empty when ONNX has
    /// no such operator.
    pub fn versions(&self, domain: &str, op: &str) -> &[Schema] {
        self.ops.get(&(domain.to_string(), op.to_string())).map_or(&[], |v| v.as_slice())
    }

    /// The schema of `op` that applies at `opset` (the newest with `since ≤ opset`).
    pub fn at(&self, domain: &str, op: &str, opset: i64) -> Option<&Schema> {
        self.versions(domain, op).iter().rev().find(|s| s.since <= opset)
    }

    /// True when ONNX defines operators in `domain`.
    pub fn knows_domain(&self, domain: &str) -> bool {
        self.ops.keys().any(|(d, _)| d == domain)
    }

    /// Parses the table's text.
    pub fn parse(text: &str) -> Result<Schemas, TableError> {
        let mut ops: HashMap<(String, String), Vec<Schema>> = HashMap::new();
        let mut ir_version = None;
        for (k, line) in text.lines().enumerate() {
            let bad = |what: &'static str| TableError::Line { line: k + 1, what, text: line.to_string() };
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(' ').collect();
            if let ["ir_version", v] = f.as_slice() {
                ir_version = Some(v.parse().map_err(|_| bad("ir_version"))?);
                continue;
            }
            let [domain, op, since, deprecated, inputs, formal, outputs, attrs] = f.as_slice() else {
                return Err(bad("expected 8 fields"));
            };
            let range = |s: &str| -> Result<(usize, usize), TableError> {
                let (lo, hi) = s.split_once('-').ok_or_else(|| bad("count range"))?;
                let hi = if hi == "*" { usize::MAX } else { hi.parse().map_err(|_| bad("count"))? };
                Ok((lo.parse().map_err(|_| bad("count"))?, hi))
            };
            let (min_inputs, max_inputs) = range(inputs)?;
            let (min_outputs, max_outputs) = range(outputs)?;
            let formal_inputs = formal
                .chars()
                .filter(|&c| c != '-')
                .map(|c| match c {
                    's' => Ok(Formal::Single),
                    'o' => Ok(Formal::Optional),
                    'v' => Ok(Formal::Variadic),
                    _ => Err(bad("input option")),
                })
                .collect::<Result<_, _>>()?;
            let attributes = attrs
                .split(',')
                .filter(|a| *a != "-")
                .map(|a| {
                    let (name, ty) = a.split_once('=').ok_or_else(|| bad("attribute"))?;
                    let required = ty.ends_with('!');
                    let ty = attribute_type(ty.trim_end_matches('!')).ok_or_else(|| bad("attribute type"))?;
                    Ok(AttrSpec { name: name.to_string(), ty, required })
                })
                .collect::<Result<_, TableError>>()?;
            let domain = if *domain == "-" { String::new() } else { domain.to_string() };
            ops.entry((domain, op.to_string())).or_default().push(Schema {
                since: since.parse().map_err(|_| bad("since version"))?,
                deprecated: *deprecated == "D",
                min_inputs,
                max_inputs,
                formal_inputs,
                min_outputs,
                max_outputs,
                attributes,
            });
        }
        for v in ops.values_mut() {
            v.sort_by_key(|s| s.since);
        }
        Ok(Schemas { ir_version: ir_version.ok_or(TableError::NoIrVersion)?, ops })
    }
}

/// A malformed line of the schema table (`scripts/gen_onnx_schemas.py` writes it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("line {line}: {what}: {text}")]
    Line { line: usize, what: &'static str, text: String },
    #[error("no ir_version line")]
    NoIrVersion,
}

/// The attribute type called `name` in ONNX's proto (`INT`, `FLOATS`, …).
fn attribute_type(name: &str) -> Option<AttributeType> {
    (1..=14).filter_map(|v| AttributeType::try_from(v).ok()).find(|t| t.as_str_name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_table_parses_and_knows_dequantize_linear() {
        let s = Schemas::get();
        assert!(s.ir_version >= 10);
        assert!(s.at("", "DequantizeLinear", 11).unwrap().attribute("axis").is_none());
        let v13 = s.at("", "DequantizeLinear", 13).unwrap();
        assert_eq!((v13.since, v13.min_inputs, v13.max_inputs), (13, 2, 3));
        assert_eq!(v13.attribute("axis").map(|a| (a.ty, a.required)), Some((AttributeType::Int, false)));
        assert_eq!(v13.formal(2), Some(Formal::Optional));
        let concat = s.at("", "Concat", 13).unwrap();
        assert_eq!((concat.max_inputs, concat.formal(7)), (usize::MAX, Some(Formal::Variadic)));
        assert!(concat.attribute("axis").unwrap().required);
        assert!(s.at("", "Upsample", 13).unwrap().deprecated);
        assert!(s.at("", "Relu", 0).is_none());
        assert!(s.knows_domain("ai.onnx.ml") && !s.knows_domain("com.microsoft"));
    }

    #[test]
    fn a_malformed_table_is_an_error_naming_the_line() {
        let err = Schemas::parse("ir_version 9\n- Relu 1 - 1-x s 1-1 -\n").err().unwrap().to_string();
        assert!(err.starts_with("line 2: count"), "{err}");
        assert!(Schemas::parse("- Relu 1 - 1-1 s 1-1 -\n").is_err(), "no ir_version");
    }
}
