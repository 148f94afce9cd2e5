//! Errors of reading, verifying and writing packages.

use thiserror::Error;

use super::format::{FORMAT_VERSION, HEADER_LEN, LATEST_FORMAT_VERSION};
use crate::manifest::ManifestError;

/// Advice for damaged files.
const RECOPY: &str = "re-copy the package or rebuild it with edgeqa-convert";

/// Why a package cannot be read or written. Every message is one line that starts with the
/// file (or the package being built) it is about.
#[derive(Debug, Error)]
pub enum PackageError {
    #[error("{origin}: cannot read or write the package: {error}")]
    Io { origin: String, error: std::io::Error },
    #[error(
        "{origin}: {len} bytes is too short for an .eqa package (the header alone is {HEADER_LEN} bytes); the file is truncated or not a package: {RECOPY}"
    )]
    TooSmall { origin: String, len: u64 },
    #[error("{origin}: not an .eqa package (it does not start with `EDGEQAPK`); check the path, or {RECOPY}")]
    BadMagic { origin: String },
    #[error(
        "{origin}: package format version {version} is not supported (this runtime reads versions {FORMAT_VERSION} to {LATEST_FORMAT_VERSION}); rebuild the package with a matching edgeqa-convert or update the runtime"
    )]
    UnsupportedVersion { origin: String, version: u32 },
    #[error(
        "{origin}: the file is {actual} bytes but its header says {expected}: it was truncated, has bytes appended or its header is corrupt; {RECOPY}"
    )]
    SizeMismatch { origin: String, expected: u64, actual: u64 },
    #[error("{origin}: malformed header: {reason}; {RECOPY}")]
    BadHeader { origin: String, reason: String },
    #[error("{origin}: header checksum mismatch, the header or section table is corrupt; {RECOPY}")]
    HeaderChecksum { origin: String },
    #[error("{origin}: section {index} `{name}`: {reason}")]
    BadSection { origin: String, index: usize, name: String, reason: String },
    #[error("{origin}: section `{name}` fails its SHA-256 check, its bytes are corrupt; {RECOPY}")]
    SectionChecksum { origin: String, name: String },
    #[error("{origin}: padding byte at offset {offset} is not zero, the file is corrupt; {RECOPY}")]
    NonZeroPadding { origin: String, offset: u64 },
    #[error(
        "{origin}: the manifest is not valid manifest JSON: {error}; rebuild the package with an edgeqa-convert that matches this runtime"
    )]
    Manifest { origin: String, error: serde_json::Error },
    #[error("{origin}: invalid manifest: {error}")]
    ManifestInvalid { origin: String, error: ManifestError },
    #[error(
        "{origin}: stage `{stage}` names section `{section}`, but the package has no ONNX section of that name; rebuild the package with edgeqa-convert"
    )]
    MissingStageSection { origin: String, stage: String, section: String },
}

impl PackageError {
    /// The file (or package being built) the error is about.
    pub fn origin(&self) -> &str {
        match self {
            PackageError::Io { origin, .. }
            | PackageError::TooSmall { origin, .. }
            | PackageError::BadMagic { origin }
            | PackageError::UnsupportedVersion { origin, .. }
            | PackageError::SizeMismatch { origin, .. }
            | PackageError::BadHeader { origin, .. }
            | PackageError::HeaderChecksum { origin }
            | PackageError::BadSection { origin, .. }
            | PackageError::SectionChecksum { origin, .. }
            | PackageError::NonZeroPadding { origin, .. }
            | PackageError::Manifest { origin, .. }
            | PackageError::ManifestInvalid { origin, .. }
            | PackageError::MissingStageSection { origin, .. } => origin,
        }
    }
}
