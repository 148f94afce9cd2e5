//! Building a package.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::PackageError;
use super::format::{
    ALIGN, E_FLAGS, E_KIND, E_LEN, E_NAME, E_OFFSET, E_SHA, ENTRY_LEN, FORMAT_VERSION, H_COUNT, H_DIGEST, H_FILE_LEN,
    H_VERSION, HEADER_LEN, MAGIC, MANIFEST_SECTION, MAX_MANIFEST_LEN, MAX_SECTIONS, SectionKind, check_name,
    encode_name, header_digest, printable, sha256,
};
use crate::manifest::Manifest;

/// Builds a package from a manifest and the ONNX graph of each stage.
///
/// The output depends only on the manifest and the sections added, in the order added: the
/// same input always gives the same bytes.
#[derive(Debug, Clone)]
pub struct PackageWriter {
    manifest: Manifest,
    sections: Vec<(SectionKind, String, Vec<u8>)>,
}

impl PackageWriter {
    /// A writer for this manifest, with no ONNX section yet.
    pub fn new(manifest: Manifest) -> PackageWriter {
        PackageWriter { manifest, sections: Vec::new() }
    }

    /// Adds an ONNX graph section. The name must be non-empty, at most 32 bytes, without NUL,
    /// not `manifest` and not already used; a package holds at most 64 sections.
    pub fn add_onnx(&mut self, section_name: &str, bytes: Vec<u8>) -> Result<(), PackageError> {
        self.add_section(SectionKind::Onnx, section_name, bytes)
    }

    /// Adds a TFLite model section (same rules as [`PackageWriter::add_onnx`]).
    pub fn add_tflite(&mut self, section_name: &str, bytes: Vec<u8>) -> Result<(), PackageError> {
        self.add_section(SectionKind::Tflite, section_name, bytes)
    }

    fn add_section(&mut self, kind: SectionKind, section_name: &str, bytes: Vec<u8>) -> Result<(), PackageError> {
        let index = self.sections.len() + 1;
        let bad = |reason: String| PackageError::BadSection {
            origin: self.origin(),
            index,
            name: printable(section_name),
            reason,
        };
        check_name(section_name).map_err(|e| bad(e.to_string()))?;
        if section_name == MANIFEST_SECTION {
            return Err(bad(format!("the name `{MANIFEST_SECTION}` is reserved for the manifest section")));
        }
        if self.sections.iter().any(|(_, n, _)| n == section_name) {
            return Err(bad("a section of that name was already added".into()));
        }
        if index >= MAX_SECTIONS {
            return Err(bad(format!("a package holds at most {MAX_SECTIONS} sections, manifest included")));
        }
        self.sections.push((kind, section_name.to_owned(), bytes));
        Ok(())
    }

    /// The whole package file. Validates the manifest and checks that every stage's section
    /// was added.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PackageError> {
        self.build(&self.origin())
    }

    /// Writes the package to `path`: to a temporary file in the same directory first, then
    /// renamed over `path`, so readers never see a half-written package.
    pub fn write(&self, path: &Path) -> Result<(), PackageError> {
        let origin = path.display().to_string();
        let bytes = self.build(&origin)?;
        let io = |error| PackageError::Io { origin: origin.clone(), error };
        let tmp = temp_path(path).map_err(io)?;
        let result = write_then_rename(&tmp, path, &bytes);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    fn origin(&self) -> String {
        format!("package `{}` being built", printable(&self.manifest.name))
    }

    fn build(&self, origin: &str) -> Result<Vec<u8>, PackageError> {
        let o = || origin.to_owned();
        self.manifest.validate().map_err(|error| PackageError::ManifestInvalid { origin: o(), error })?;
        for stage in &self.manifest.stages {
            if !self.sections.iter().any(|(k, n, _)| *n == stage.section && *k == SectionKind::of_stage(stage.format)) {
                return Err(PackageError::MissingStageSection {
                    origin: o(),
                    stage: printable(&stage.name),
                    section: printable(&stage.section),
                });
            }
        }
        let json =
            serde_json::to_vec_pretty(&self.manifest).map_err(|error| PackageError::Manifest { origin: o(), error })?;
        // Non-finite floats serialise as `null`, which no reader accepts: catch that here.
        serde_json::from_slice::<Manifest>(&json).map_err(|error| PackageError::Manifest { origin: o(), error })?;
        if json.len() > MAX_MANIFEST_LEN {
            return Err(PackageError::BadSection {
                origin: o(),
                index: 0,
                name: MANIFEST_SECTION.into(),
                reason: format!("the manifest is {} bytes, the limit is {MAX_MANIFEST_LEN}", json.len()),
            });
        }
        let mut all: Vec<(SectionKind, &str, &[u8])> = vec![(SectionKind::Manifest, MANIFEST_SECTION, &json)];
        all.extend(self.sections.iter().map(|(k, n, b)| (*k, n.as_str(), b.as_slice())));
        Ok(layout(&all))
    }
}

/// `n` rounded up to a multiple of [`ALIGN`].
fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Lays out a package from sections in order, without checking them (names must be at most
/// 32 bytes, at most 64 sections). Each section starts at the first aligned offset after the
/// previous one and the file is padded with zeros to a multiple of 64.
pub(crate) fn layout(sections: &[(SectionKind, &str, &[u8])]) -> Vec<u8> {
    let table_end = HEADER_LEN + sections.len() * ENTRY_LEN;
    let mut offsets = Vec::with_capacity(sections.len());
    let mut end = align(table_end);
    for (_, _, bytes) in sections {
        offsets.push(end);
        end = align(end + bytes.len());
    }
    let mut out = vec![0u8; end];
    out[..MAGIC.len()].copy_from_slice(&MAGIC);
    let version = sections.iter().map(|(kind, _, _)| kind.min_version()).max().unwrap_or(FORMAT_VERSION);
    out[H_VERSION..H_VERSION + 4].copy_from_slice(&version.to_le_bytes());
    out[H_COUNT..H_COUNT + 4].copy_from_slice(&(sections.len() as u32).to_le_bytes());
    out[H_FILE_LEN..H_FILE_LEN + 8].copy_from_slice(&(end as u64).to_le_bytes());
    for (i, ((kind, name, bytes), &offset)) in sections.iter().zip(&offsets).enumerate() {
        let e = &mut out[HEADER_LEN + i * ENTRY_LEN..HEADER_LEN + (i + 1) * ENTRY_LEN];
        e[E_KIND..E_KIND + 4].copy_from_slice(&kind.code().to_le_bytes());
        e[E_FLAGS..E_FLAGS + 4].copy_from_slice(&0u32.to_le_bytes());
        e[E_OFFSET..E_OFFSET + 8].copy_from_slice(&(offset as u64).to_le_bytes());
        e[E_LEN..E_LEN + 8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        e[E_NAME..E_NAME + 32].copy_from_slice(&encode_name(name));
        e[E_SHA..E_SHA + 32].copy_from_slice(&sha256(bytes));
        out[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
    let digest = header_digest(&out, &out[HEADER_LEN..table_end]);
    out[H_DIGEST..HEADER_LEN].copy_from_slice(&digest);
    out
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(tmp, path)
}

/// A fresh temporary path next to `path`.
fn temp_path(path: &Path) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().ok_or_else(|| std::io::Error::other("the path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    Ok(path.with_file_name(tmp_name))
}
