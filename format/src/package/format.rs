//! Byte layout of package format v1: constants, section kinds, names and the header digest.
//!
//! The authoritative description is `docs/package-format.md`; keep the two in sync.

use std::fmt;

use sha2::{Digest, Sha256};

/// First 8 bytes of every package.
pub const MAGIC: [u8; 8] = *b"EDGEQAPK";
/// The format version of a package whose sections are the manifest and ONNX graphs.
pub const FORMAT_VERSION: u32 = 1;
/// The newest format version this runtime reads and writes: version 1 plus TFLite sections
/// (kind 3). A package is written at the lowest version its sections need
/// ([`SectionKind::min_version`]), so ONNX packages stay readable by version-1 readers.
pub const LATEST_FORMAT_VERSION: u32 = 2;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Length of one section-table entry.
pub const ENTRY_LEN: usize = 96;
/// Every section starts at a multiple of this, and the file length is a multiple of it.
pub const ALIGN: usize = 64;
/// Size of the NUL-padded name field of a table entry (the longest name, in bytes).
pub const NAME_LEN: usize = 32;
/// Most sections one package may hold (manifest included).
pub const MAX_SECTIONS: usize = 64;
/// Largest manifest section in bytes (4 MiB).
pub const MAX_MANIFEST_LEN: usize = 4 << 20;
/// Name of section 0, the manifest.
pub const MANIFEST_SECTION: &str = "manifest";

// Header field offsets.
pub(crate) const H_VERSION: usize = 8;
pub(crate) const H_COUNT: usize = 12;
pub(crate) const H_FILE_LEN: usize = 16;
pub(crate) const H_RESERVED: usize = 24;
/// Bytes `0..H_DIGEST` of the header are hashed (with the table) into `H_DIGEST..HEADER_LEN`.
pub(crate) const H_DIGEST: usize = 32;

// Table entry field offsets.
pub(crate) const E_KIND: usize = 0;
pub(crate) const E_FLAGS: usize = 4;
pub(crate) const E_OFFSET: usize = 8;
pub(crate) const E_LEN: usize = 16;
pub(crate) const E_RESERVED: usize = 24;
pub(crate) const E_NAME: usize = 32;
pub(crate) const E_SHA: usize = 64;

/// What a section holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// The JSON manifest (kind code 1); always section 0.
    Manifest,
    /// One ONNX graph (kind code 2).
    Onnx,
    /// One TensorFlow Lite model (kind code 3).
    Tflite,
}

impl SectionKind {
    /// The section kind that holds a stage of this format.
    pub fn of_stage(format: crate::manifest::StageFormat) -> SectionKind {
        match format {
            crate::manifest::StageFormat::Onnx => SectionKind::Onnx,
            crate::manifest::StageFormat::Tflite => SectionKind::Tflite,
        }
    }

    /// Numeric code stored in the section table.
    pub fn code(self) -> u32 {
        match self {
            SectionKind::Manifest => 1,
            SectionKind::Onnx => 2,
            SectionKind::Tflite => 3,
        }
    }

    /// Kind of a table code; `None` for reserved codes.
    pub fn from_code(code: u32) -> Option<SectionKind> {
        match code {
            1 => Some(SectionKind::Manifest),
            2 => Some(SectionKind::Onnx),
            3 => Some(SectionKind::Tflite),
            _ => None,
        }
    }

    /// The lowest format version whose packages may hold a section of this kind.
    pub fn min_version(self) -> u32 {
        match self {
            SectionKind::Manifest | SectionKind::Onnx => FORMAT_VERSION,
            SectionKind::Tflite => 2,
        }
    }

    /// Lower-case name for tools and messages.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Manifest => "manifest",
            SectionKind::Onnx => "onnx",
            SectionKind::Tflite => "tflite",
        }
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One verified entry of the section table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    pub name: String,
    pub kind: SectionKind,
    /// Byte offset of the section in the file (a multiple of [`ALIGN`]).
    pub offset: u64,
    /// Length of the section in bytes (without padding).
    pub len: u64,
    /// SHA-256 of the section bytes.
    pub sha256: [u8; 32],
}

impl SectionInfo {
    /// The SHA-256 as 64 lower-case hex digits.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }

    /// Byte range in the file; valid once the package is verified.
    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..(self.offset + self.len) as usize
    }
}

/// Lower-case hex of some bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// `n` rounded up to a multiple of [`ALIGN`]; `None` on overflow.
pub(crate) fn align_up(n: u64) -> Option<u64> {
    n.checked_add(ALIGN as u64 - 1).map(|v| v & !(ALIGN as u64 - 1))
}

/// The header digest: SHA-256 of header bytes `0..32` followed by the whole section table.
pub(crate) fn header_digest(header_start: &[u8], table: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&header_start[..H_DIGEST]);
    h.update(table);
    h.finalize().into()
}

/// SHA-256 of some bytes.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Why a section name cannot be written ([`check_name`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    #[error("the section name is empty")]
    Empty,
    #[error("the section name is {0} bytes, the limit is {NAME_LEN}")]
    TooLong(usize),
    #[error("the section name contains a NUL byte")]
    Nul,
}

/// Checks a section name given to the writer: non-empty, at most [`NAME_LEN`] bytes, no NUL.
pub(crate) fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    if name.contains('\0') {
        return Err(NameError::Nul);
    }
    Ok(())
}

/// Encodes a checked name into the NUL-padded table field.
pub(crate) fn encode_name(name: &str) -> [u8; NAME_LEN] {
    let mut field = [0u8; NAME_LEN];
    field[..name.len()].copy_from_slice(name.as_bytes());
    field
}

/// Decodes the NUL-padded name field. On error returns a printable form of the name and why.
pub(crate) fn decode_name(field: &[u8]) -> Result<String, (String, String)> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let raw = &field[..end];
    let shown = printable(&String::from_utf8_lossy(raw));
    if raw.is_empty() {
        return Err((shown, "the name is empty".into()));
    }
    if field[end..].iter().any(|&b| b != 0) {
        return Err((shown, "the name field has non-NUL bytes after the name".into()));
    }
    match std::str::from_utf8(raw) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err((shown, "the name is not valid UTF-8".into())),
    }
}

/// A name with control characters escaped, so that messages stay on one line.
pub(crate) fn printable(s: &str) -> String {
    if s.chars().any(char::is_control) { s.escape_debug().to_string() } else { s.to_owned() }
}

/// Little-endian u32 at `at` (the caller checked the bounds).
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Little-endian u64 at `at` (the caller checked the bounds).
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}
