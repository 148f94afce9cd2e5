//! Board profiles for edgeqa deployments.
//!
//! A profile (`firmware-config/boards/<name>.toml`) names the target triple and the memory
//! budget edgeqa's process must stay within on that board. This crate parses and validates them.

use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

/// A board profile that cannot be used.
#[derive(Debug, Error)]
pub enum BoardError {
    #[error("{file}: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
}

/// One board.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Short name used on the command line.
    pub name: String,
    /// Rust target triple, e.g. `aarch64-unknown-linux-gnu`.
    pub target: String,
    /// Memory budget for the edgeqa process, in MiB.
    pub memory_budget_mib: u32,
}

/// Parses a profile from TOML text; `file` names it in errors (serde reports key and line).
pub fn parse(text: &str, file: &str) -> Result<Board, BoardError> {
    let board: Board = toml::from_str(text)
        .map_err(|e| BoardError::Read { file: file.to_string(), reason: e.to_string().trim().replace('\n', " ") })?;
    if board.memory_budget_mib == 0 {
        return Err(BoardError::Invalid { file: file.into(), reason: "memory_budget_mib must be positive".into() });
    }
    if board.target.split('-').count() < 3 {
        return Err(BoardError::Invalid {
            file: file.into(),
            reason: format!("`{}` is not a target triple", board.target),
        });
    }
    Ok(board)
}

/// Reads and validates a profile file.
pub fn load(path: &Path) -> Result<Board, BoardError> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| BoardError::Read { file: file.clone(), reason: e.to_string() })?;
    parse(&text, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_profiles_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            load(&entry.unwrap().path()).unwrap();
            n += 1;
        }
        assert!(n > 0);
    }

    #[test]
    fn bad_profiles_name_the_problem() {
        let e = parse(
            "name = \"x\"\ntarget = \"x86_64-unknown-linux-gnu\"\nmemory_budget_mib = 64\ncolour = 1\n",
            "b.toml",
        );
        let msg = e.unwrap_err().to_string();
        assert!(msg.starts_with("b.toml:") && msg.contains("colour"), "{msg}");
        let e = parse("name = \"x\"\ntarget = \"x86\"\nmemory_budget_mib = 64\n", "b.toml").unwrap_err();
        assert!(e.to_string().contains("target triple"));
    }
}
