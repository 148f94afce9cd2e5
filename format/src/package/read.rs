//! Opening and verifying a package.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::error::PackageError;
use super::format::{
    ALIGN, E_FLAGS, E_KIND, E_LEN, E_NAME, E_OFFSET, E_RESERVED, E_SHA, ENTRY_LEN, FORMAT_VERSION, H_COUNT, H_DIGEST,
    H_FILE_LEN, H_RESERVED, H_VERSION, HEADER_LEN, LATEST_FORMAT_VERSION, MAGIC, MANIFEST_SECTION, MAX_MANIFEST_LEN,
    MAX_SECTIONS, SectionInfo, SectionKind, align_up, decode_name, header_digest, printable, sha256, u32_at, u64_at,
};
use crate::manifest::Manifest;

/// Advice appended to structural errors that a valid header checksum vouches for (so the
/// writer, not the copy, is at fault).
const REBUILD: &str = "the package is malformed; rebuild it with edgeqa-convert";

/// A verified package: its manifest, its section table and its bytes, held in memory so that
/// the bytes used are exactly the bytes verified (stage graphs are used in place).
pub struct Package {
    origin: String,
    bytes: Vec<u8>,
    manifest: Manifest,
    sections: Vec<SectionInfo>,
}

impl fmt::Debug for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Package")
            .field("origin", &self.origin)
            .field("file_len", &self.file_len())
            .field("manifest", &self.manifest)
            .field("sections", &self.sections)
            .finish()
    }
}

impl Package {
    /// Reads the file and verifies all of it: header, section table, every section checksum,
    /// padding, the manifest JSON and contract, and that each stage's section is an ONNX
    /// section.
    ///
    /// The file is read once, not memory-mapped: what is used later is what was verified, and a
    /// file that is truncated or rewritten while the package is open changes nothing (a mapped
    /// file that shrinks kills the process with `SIGBUS` on the next access instead).
    pub fn open(path: &Path) -> Result<Package, PackageError> {
        let origin = path.display().to_string();
        let io = |error| PackageError::Io { origin: origin.clone(), error };
        let mut file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(io(std::io::Error::other("not a regular file")));
        }
        if meta.len() < HEADER_LEN as u64 {
            return Err(PackageError::TooSmall { origin, len: meta.len() });
        }
        // The length is the file's, not yet the header's: refuse what cannot be held rather
        // than abort on the allocation. A file that changes size while it is read gives a
        // length that its header does not match.
        let mut bytes = Vec::new();
        let len = usize::try_from(meta.len()).ok().filter(|&n| bytes.try_reserve_exact(n).is_ok());
        if len.is_none() {
            let why = format!("the file is {} bytes, more than this machine can hold in memory", meta.len());
            return Err(io(std::io::Error::other(why)));
        }
        file.read_to_end(&mut bytes).map_err(io)?;
        Package::from_bytes(bytes, &origin)
    }

    /// Verifies a package held in memory, with the same checks as [`Package::open`].
    /// `origin` names it in error messages.
    pub fn from_bytes(bytes: Vec<u8>, origin: &str) -> Result<Package, PackageError> {
        let (manifest, sections) = verify(&bytes, origin)?;
        Ok(Package { origin: origin.to_owned(), bytes, manifest, sections })
    }

    /// The parsed and validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The section table, in file order (the manifest first).
    pub fn sections(&self) -> &[SectionInfo] {
        &self.sections
    }

    /// Table entry of a section by name.
    pub fn section_info(&self, name: &str) -> Option<&SectionInfo> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Bytes of a section by name (without padding).
    pub fn section(&self, name: &str) -> Option<&[u8]> {
        self.section_info(name).map(|s| &self.bytes()[s.range()])
    }

    /// ONNX bytes of a stage's graph; `None` when the manifest has no such stage.
    pub fn stage_graph(&self, stage: &str) -> Option<&[u8]> {
        self.section(&self.manifest.stage(stage)?.section)
    }

    /// Length of the whole file in bytes.
    pub fn file_len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// The path or name the package was opened from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The whole file.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes()
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Checks that every byte of `bytes[from..to]` is zero.
fn check_zero(bytes: &[u8], from: usize, to: usize, origin: &str) -> Result<(), PackageError> {
    match bytes[from..to].iter().position(|&b| b != 0) {
        Some(i) => Err(PackageError::NonZeroPadding { origin: origin.to_owned(), offset: (from + i) as u64 }),
        None => Ok(()),
    }
}

/// Verifies a whole package; returns its manifest and section table.
///
/// Every count, offset and length read from the file is checked against the real length
/// before it is used to index or size anything.
fn verify(bytes: &[u8], origin: &str) -> Result<(Manifest, Vec<SectionInfo>), PackageError> {
    let o = || origin.to_owned();
    let len = bytes.len() as u64;
    if bytes.len() < HEADER_LEN {
        return Err(PackageError::TooSmall { origin: o(), len });
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(PackageError::BadMagic { origin: o() });
    }
    let version = u32_at(bytes, H_VERSION);
    if !(FORMAT_VERSION..=LATEST_FORMAT_VERSION).contains(&version) {
        return Err(PackageError::UnsupportedVersion { origin: o(), version });
    }
    let file_len = u64_at(bytes, H_FILE_LEN);
    if file_len != len {
        return Err(PackageError::SizeMismatch { origin: o(), expected: file_len, actual: len });
    }
    let count = u32_at(bytes, H_COUNT) as usize;
    if count == 0 || count > MAX_SECTIONS {
        let reason = format!("section count {count} is outside 1..={MAX_SECTIONS}");
        return Err(PackageError::BadHeader { origin: o(), reason });
    }
    let table_end = HEADER_LEN + count * ENTRY_LEN;
    if table_end > bytes.len() {
        let reason = format!("the table of {count} sections ends at byte {table_end}, past the end of the file");
        return Err(PackageError::BadHeader { origin: o(), reason });
    }
    let table = &bytes[HEADER_LEN..table_end];
    if header_digest(bytes, table)[..] != bytes[H_DIGEST..HEADER_LEN] {
        return Err(PackageError::HeaderChecksum { origin: o() });
    }
    if bytes[H_RESERVED..H_DIGEST].iter().any(|&b| b != 0) {
        let reason = format!("reserved bytes {H_RESERVED}..{H_DIGEST} are not zero");
        return Err(PackageError::BadHeader { origin: o(), reason });
    }

    let mut sections: Vec<SectionInfo> = Vec::with_capacity(count);
    // End of what precedes the next section: the table, then each section in turn.
    let mut cursor = table_end as u64;
    for (index, e) in table.chunks_exact(ENTRY_LEN).enumerate() {
        let bad = |name: &str, reason: String| PackageError::BadSection {
            origin: o(),
            index,
            name: printable(name),
            reason: format!("{reason}; {REBUILD}"),
        };
        let name = decode_name(&e[E_NAME..E_NAME + 32]).map_err(|(shown, why)| bad(&shown, why))?;
        let code = u32_at(e, E_KIND);
        let kind = SectionKind::from_code(code).ok_or_else(|| {
            bad(&name, format!("unknown section kind {code} (this runtime knows 1 = manifest, 2 = onnx, 3 = tflite)"))
        })?;
        if kind.min_version() > version {
            return Err(bad(
                &name,
                format!(
                    "a {} section needs format version {} or later; the file says {version}",
                    kind.name(),
                    kind.min_version()
                ),
            ));
        }
        let flags = u32_at(e, E_FLAGS);
        if flags != 0 {
            return Err(bad(&name, format!("flags are {flags:#x}, must be 0")));
        }
        if e[E_RESERVED..E_NAME].iter().any(|&b| b != 0) {
            return Err(bad(&name, "reserved entry bytes are not zero".into()));
        }
        if sections.iter().any(|s| s.name == name) {
            return Err(bad(&name, "the name is used by an earlier section".into()));
        }
        let offset = u64_at(e, E_OFFSET);
        let slen = u64_at(e, E_LEN);
        if !offset.is_multiple_of(ALIGN as u64) {
            return Err(bad(&name, format!("offset {offset} is not a multiple of {ALIGN}")));
        }
        if offset < cursor {
            return Err(bad(&name, format!("offset {offset} overlaps what precedes it (which ends at {cursor})")));
        }
        let end = match offset.checked_add(slen) {
            Some(end) if end <= len => end,
            _ => {
                return Err(bad(
                    &name,
                    format!("{slen} bytes at offset {offset} run past the end of the file ({len} bytes)"),
                ));
            }
        };
        check_zero(bytes, cursor as usize, offset as usize, origin)?;
        cursor = end;
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&e[E_SHA..E_SHA + 32]);
        sections.push(SectionInfo { name, kind, offset, len: slen, sha256: sha });
    }
    // `cursor <= len`, so rounding it up cannot overflow.
    let want_len = align_up(cursor).unwrap_or(u64::MAX);
    if want_len != len {
        let reason =
            format!("the file is {len} bytes, but its last section ends at {cursor}, which rounds up to {want_len}");
        return Err(PackageError::BadHeader { origin: o(), reason });
    }
    check_zero(bytes, cursor as usize, bytes.len(), origin)?;

    let first = &sections[0];
    if first.kind != SectionKind::Manifest || first.name != MANIFEST_SECTION {
        return Err(PackageError::BadSection {
            origin: o(),
            index: 0,
            name: printable(&first.name),
            reason: format!("section 0 must be the manifest (kind 1, name `{MANIFEST_SECTION}`); {REBUILD}"),
        });
    }
    if let Some((index, s)) = sections.iter().enumerate().skip(1).find(|(_, s)| s.kind == SectionKind::Manifest) {
        return Err(PackageError::BadSection {
            origin: o(),
            index,
            name: printable(&s.name),
            reason: format!("a second manifest section (a package holds exactly one); {REBUILD}"),
        });
    }
    if first.len > MAX_MANIFEST_LEN as u64 {
        return Err(PackageError::BadSection {
            origin: o(),
            index: 0,
            name: MANIFEST_SECTION.into(),
            reason: format!("the manifest is {} bytes, the limit is {MAX_MANIFEST_LEN}; {REBUILD}", first.len),
        });
    }
    for s in &sections {
        if sha256(&bytes[s.range()]) != s.sha256 {
            return Err(PackageError::SectionChecksum { origin: o(), name: printable(&s.name) });
        }
    }

    let manifest: Manifest = serde_json::from_slice(&bytes[sections[0].range()])
        .map_err(|error| PackageError::Manifest { origin: o(), error })?;
    manifest.validate().map_err(|error| PackageError::ManifestInvalid { origin: o(), error })?;
    let vad = manifest.voice.as_ref().and_then(|v| v.vad.as_ref()).map(|v| &v.stage);
    for stage in manifest.stages.iter().chain(vad) {
        if !sections.iter().any(|s| s.name == stage.section && s.kind == SectionKind::of_stage(stage.format)) {
            return Err(PackageError::MissingStageSection {
                origin: o(),
                stage: printable(&stage.name),
                section: printable(&stage.section),
            });
        }
    }
    Ok((manifest, sections))
}
