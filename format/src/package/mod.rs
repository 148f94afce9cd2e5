//! Reading, verifying and writing `.eqa` packages (format: `docs/package-format.md`).
//!
//! A package is one file: a 64-byte header, a table of 96-byte section entries, then the
//! sections, each 64-byte aligned. Section 0 is the JSON [`Manifest`](crate::manifest::Manifest);
//! the others are ONNX graphs, one per stage. [`Package::open`] reads a file and verifies every
//! byte of it before returning; [`PackageWriter`] builds one deterministically.

mod error;
mod format;
mod read;
mod reseal;
mod write;

pub use error::PackageError;
pub use format::{
    ALIGN, ENTRY_LEN, FORMAT_VERSION, HEADER_LEN, LATEST_FORMAT_VERSION, MAGIC, MANIFEST_SECTION, MAX_MANIFEST_LEN,
    MAX_SECTIONS, NAME_LEN, SectionInfo, SectionKind,
};
pub use read::Package;
pub use reseal::reseal;
pub use write::PackageWriter;

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::format::{E_KIND, E_LEN, E_NAME, E_OFFSET, H_COUNT, H_DIGEST, header_digest};
    use super::write::layout;
    use super::*;
    use crate::manifest::{DType, Manifest, PackageKind, TensorInfo};

    const ORIGIN: &str = "tests/tiny.eqa";
    const GRAPH: &[u8] = b"not really onnx, the package layer does not parse it";

    fn manifest() -> Manifest {
        let t = |name: &str| TensorInfo { name: name.into(), dtype: DType::F32, shape: vec![1, 4] };
        Manifest::model("edgeqa tests", "tiny", vec![t("x")], vec![t("y")])
    }

    fn writer() -> PackageWriter {
        let mut w = PackageWriter::new(manifest());
        w.add_onnx("model", GRAPH.to_vec()).unwrap();
        w.add_onnx("extra", vec![7; 3]).unwrap();
        w
    }

    fn valid() -> Vec<u8> {
        writer().to_bytes().unwrap()
    }

    fn err(bytes: Vec<u8>) -> PackageError {
        let e = Package::from_bytes(bytes, ORIGIN).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(ORIGIN), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert_eq!(e.origin(), ORIGIN);
        e
    }

    fn resign(bytes: &mut [u8]) {
        let count = u32::from_le_bytes(bytes[H_COUNT..H_COUNT + 4].try_into().unwrap()) as usize;
        let table_end = HEADER_LEN + count * ENTRY_LEN;
        let digest = header_digest(bytes, &bytes[HEADER_LEN..table_end]);
        bytes[H_DIGEST..HEADER_LEN].copy_from_slice(&digest);
    }

    /// Overwrites field `at` of table entry `entry` and re-signs the header.
    fn patch_entry(bytes: &mut [u8], entry: usize, at: usize, value: &[u8]) {
        let start = HEADER_LEN + entry * ENTRY_LEN + at;
        bytes[start..start + value.len()].copy_from_slice(value);
        resign(bytes);
    }

    #[test]
    fn round_trip() {
        let bytes = valid();
        let p = Package::from_bytes(bytes.clone(), ORIGIN).unwrap();
        assert_eq!(p.manifest(), &manifest());
        assert_eq!(p.stage_graph("model"), Some(GRAPH));
        assert_eq!(p.stage_graph("head"), None);
        assert_eq!(p.section("extra"), Some(&[7u8; 3][..]));
        assert_eq!(p.section("missing"), None);
        assert_eq!(p.file_len(), bytes.len() as u64);
        assert_eq!(p.file_len() % ALIGN as u64, 0);
        assert_eq!(p.origin(), ORIGIN);
        assert_eq!(p.as_bytes(), &bytes[..]);
        let names: Vec<_> = p.sections().iter().map(|s| (s.name.as_str(), s.kind)).collect();
        assert_eq!(
            names,
            [("manifest", SectionKind::Manifest), ("model", SectionKind::Onnx), ("extra", SectionKind::Onnx)]
        );
        for s in p.sections() {
            assert_eq!(s.offset % ALIGN as u64, 0);
            assert_eq!(s.sha256_hex().len(), 64);
        }
        let model = p.section_info("model").unwrap();
        assert_eq!(model.len, GRAPH.len() as u64);
        assert_eq!(model.sha256_hex(), super::format::hex(&super::format::sha256(GRAPH)));
        let json: Manifest = serde_json::from_slice(p.section(MANIFEST_SECTION).unwrap()).unwrap();
        assert_eq!(json, manifest());
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(valid(), valid());
        assert_eq!(writer().clone().to_bytes().unwrap(), valid());
    }

    #[test]
    fn write_then_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.eqa");
        writer().write(&path).unwrap();
        // Overwriting an existing package works too.
        writer().write(&path).unwrap();
        let p = Package::open(&path).unwrap();
        assert_eq!(p.as_bytes(), &valid()[..]);
        assert_eq!(p.stage_graph("model"), Some(GRAPH));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary files left behind");
    }

    #[test]
    fn file_truncated_or_rewritten_after_open_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.eqa");
        writer().write(&path).unwrap();
        let p = Package::open(&path).unwrap();
        // In place, as a careless copy would: shrink it, then fill it with other bytes.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(HEADER_LEN as u64).unwrap();
        assert_eq!(p.stage_graph("model"), Some(GRAPH));
        f.set_len(0).unwrap();
        std::fs::write(&path, vec![0xa5; valid().len()]).unwrap();
        assert_eq!(p.stage_graph("model"), Some(GRAPH));
        assert_eq!(p.section("extra"), Some(&[7u8; 3][..]));
        assert_eq!(p.as_bytes(), &valid()[..]);
        // Reopening sees the damage.
        assert!(matches!(Package::open(&path).unwrap_err(), PackageError::BadMagic { .. }));
    }

    #[test]
    fn open_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.eqa");
        let e = Package::open(&path).unwrap_err();
        assert!(matches!(e, PackageError::Io { .. }));
        assert!(e.to_string().starts_with(&path.display().to_string()), "{e}");

        let e = Package::open(dir.path()).unwrap_err();
        assert!(e.to_string().starts_with(&dir.path().display().to_string()), "{e}");

        let short = dir.path().join("short.eqa");
        std::fs::write(&short, b"EDGEQAPK").unwrap();
        let e = Package::open(&short).unwrap_err();
        assert!(matches!(e, PackageError::TooSmall { len: 8, .. }), "{e}");
        assert!(e.to_string().starts_with(&short.display().to_string()), "{e}");

        let mut bytes = valid();
        bytes[HEADER_LEN + 3] ^= 1;
        let bad = dir.path().join("bad.eqa");
        std::fs::write(&bad, &bytes).unwrap();
        let e = Package::open(&bad).unwrap_err();
        assert!(matches!(e, PackageError::HeaderChecksum { .. }), "{e}");
        assert!(e.to_string().contains("bad.eqa: header checksum"), "{e}");
    }

    #[test]
    fn every_single_byte_flip_is_rejected() {
        let bytes = valid();
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= mask;
                let r = Package::from_bytes(b, ORIGIN);
                assert!(r.is_err(), "flipping byte {i} with {mask:#x} went unnoticed");
                err_checks(r.unwrap_err());
            }
        }
    }

    fn err_checks(e: PackageError) {
        let msg = e.to_string();
        assert!(msg.starts_with(ORIGIN) && !msg.contains('\n'), "{msg}");
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = valid();
        for n in 0..bytes.len() {
            let e = err(bytes[..n].to_vec());
            if n < HEADER_LEN {
                assert!(matches!(e, PackageError::TooSmall { .. }), "{n}: {e}");
            } else {
                assert!(matches!(e, PackageError::SizeMismatch { .. }), "{n}: {e}");
            }
        }
    }

    #[test]
    fn appended_bytes_are_rejected() {
        for extra in [1usize, 63, 64, 128] {
            let mut b = valid();
            b.resize(b.len() + extra, 0);
            assert!(matches!(err(b), PackageError::SizeMismatch { .. }));
        }
    }

    #[test]
    fn specific_corruptions() {
        let mut b = valid();
        b[0] = b'X';
        assert!(matches!(err(b), PackageError::BadMagic { .. }));

        let mut b = valid();
        b[8] = 3;
        let e = err(b);
        assert!(matches!(e, PackageError::UnsupportedVersion { version: 3, .. }), "{e}");

        let mut b = valid();
        let last = b.len() - 1;
        b[last] = 1;
        assert!(matches!(err(b), PackageError::NonZeroPadding { offset, .. } if offset == last as u64));

        let mut b = valid();
        let p = Package::from_bytes(b.clone(), ORIGIN).unwrap();
        let model = p.section_info("model").unwrap().offset as usize;
        b[model] ^= 0xff;
        let e = err(b);
        assert!(matches!(&e, PackageError::SectionChecksum { name, .. } if name == "model"), "{e}");
        assert!(e.to_string().contains("re-copy the package or rebuild it with edgeqa-convert"));
    }

    #[test]
    fn malformed_tables_with_valid_checksums() {
        let bad_section = |b: Vec<u8>, idx: usize, needle: &str| match err(b) {
            PackageError::BadSection { index, reason, .. } => {
                assert_eq!(index, idx);
                assert!(reason.contains(needle), "{reason}");
            }
            e => panic!("{e}"),
        };
        let mut b = valid();
        patch_entry(&mut b, 1, E_KIND, &9u32.to_le_bytes());
        bad_section(b, 1, "unknown section kind 9");

        let mut b = valid();
        patch_entry(&mut b, 2, 4, &1u32.to_le_bytes());
        bad_section(b, 2, "flags");

        let mut b = valid();
        patch_entry(&mut b, 2, 24, &[1]);
        bad_section(b, 2, "reserved");

        let mut b = valid();
        patch_entry(&mut b, 2, E_NAME, b"model\0");
        bad_section(b, 2, "earlier section");

        let mut b = valid();
        patch_entry(&mut b, 2, E_NAME, &[0; 32]);
        bad_section(b, 2, "empty");

        let mut b = valid();
        patch_entry(&mut b, 2, E_NAME + 10, b"x");
        bad_section(b, 2, "after the name");

        let mut b = valid();
        patch_entry(&mut b, 2, E_NAME, &[0xff, b'\n']);
        match err(b) {
            PackageError::BadSection { name, reason, .. } => {
                assert!(reason.contains("UTF-8"), "{reason}");
                assert!(!name.contains('\n'));
            }
            e => panic!("{e}"),
        }

        let mut b = valid();
        patch_entry(&mut b, 1, E_LEN, &u64::MAX.to_le_bytes());
        bad_section(b, 1, "past the end");

        let mut b = valid();
        patch_entry(&mut b, 2, E_OFFSET, &u64::MAX.to_le_bytes());
        bad_section(b, 2, "multiple of 64");

        let mut b = valid();
        patch_entry(&mut b, 2, E_OFFSET, &(u64::MAX - 63).to_le_bytes());
        bad_section(b, 2, "past the end");

        let mut b = valid();
        patch_entry(&mut b, 1, E_OFFSET, &64u64.to_le_bytes());
        bad_section(b, 1, "overlaps");

        let mut b = valid();
        patch_entry(&mut b, 0, E_KIND, &2u32.to_le_bytes());
        bad_section(b, 0, "must be the manifest");

        let mut b = valid();
        patch_entry(&mut b, 2, E_KIND, &1u32.to_le_bytes());
        bad_section(b, 2, "second manifest");

        // Shrinking the last section leaves a longer file than its end rounds up to.
        let mut b = valid();
        patch_entry(&mut b, 2, E_LEN, &0u64.to_le_bytes());
        let e = err(b);
        assert!(matches!(e, PackageError::BadHeader { .. } | PackageError::NonZeroPadding { .. }), "{e}");

        for count in [0u32, 65, 64, u32::MAX] {
            let mut b = valid();
            b[H_COUNT..H_COUNT + 4].copy_from_slice(&count.to_le_bytes());
            assert!(matches!(err(b), PackageError::BadHeader { .. }), "{count}");
        }

        let mut b = valid();
        b[24] = 1;
        resign(&mut b);
        assert!(matches!(err(b), PackageError::BadHeader { .. }));
    }

    /// A TFLite stage lives in a kind-3 section of a version-2 package; ONNX packages stay at
    /// version 1, a kind-3 section in a version-1 file is refused, and so is a stage whose
    /// section has the other format's kind.
    #[test]
    fn tflite_sections_need_version_2() {
        assert_eq!(u32::from_le_bytes(valid()[8..12].try_into().unwrap()), FORMAT_VERSION);
        let mut m = manifest();
        m.stages[0].format = crate::manifest::StageFormat::Tflite;
        let mut w = PackageWriter::new(m.clone());
        w.add_tflite("model", GRAPH.to_vec()).unwrap();
        let bytes = w.to_bytes().unwrap();
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), LATEST_FORMAT_VERSION);
        let p = Package::from_bytes(bytes.clone(), ORIGIN).unwrap();
        assert_eq!(p.manifest(), &m);
        assert_eq!(p.stage_graph("model"), Some(GRAPH));
        assert_eq!(p.sections()[1].kind, SectionKind::Tflite);

        let mut old = bytes;
        old[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        resign(&mut old);
        let e = err(old);
        assert!(e.to_string().contains("a tflite section needs format version 2"), "{e}");

        let mut w = PackageWriter::new(m);
        w.add_onnx("model", GRAPH.to_vec()).unwrap();
        assert!(matches!(w.to_bytes().unwrap_err(), PackageError::MissingStageSection { .. }));
    }

    #[test]
    fn manifest_problems() {
        let json = serde_json::to_vec_pretty(&manifest()).unwrap();
        let onnx = (SectionKind::Onnx, "model", GRAPH);

        let b = layout(&[(SectionKind::Manifest, MANIFEST_SECTION, b"{\n  \"contract_version\": 1,\n oops"), onnx]);
        let e = err(b);
        assert!(matches!(e, PackageError::Manifest { .. }), "{e}");
        assert!(e.to_string().contains("line 3 column"), "{e}");

        let mut m = manifest();
        m.contract_version = 99;
        let b = layout(&[(SectionKind::Manifest, MANIFEST_SECTION, &serde_json::to_vec(&m).unwrap()), onnx]);
        assert!(matches!(err(b), PackageError::ManifestInvalid { .. }));

        let b = layout(&[(SectionKind::Manifest, MANIFEST_SECTION, &json)]);
        let e = err(b);
        assert!(
            matches!(&e, PackageError::MissingStageSection { stage, section, .. } if stage == "model" && section == "model"),
            "{e}"
        );

        let mut m = manifest();
        m.stages[0].section = MANIFEST_SECTION.into();
        let b = layout(&[(SectionKind::Manifest, MANIFEST_SECTION, &serde_json::to_vec(&m).unwrap()), onnx]);
        assert!(matches!(err(b), PackageError::MissingStageSection { .. }));

        let big = vec![b' '; MAX_MANIFEST_LEN + 1];
        let b = layout(&[(SectionKind::Manifest, MANIFEST_SECTION, &big), onnx]);
        assert!(matches!(err(b), PackageError::BadSection { index: 0, .. }));

        // A correct hand-made layout is accepted, so the cases above fail for their stated reason.
        let b = layout(&[(SectionKind::Manifest, MANIFEST_SECTION, &json), onnx]);
        Package::from_bytes(b, ORIGIN).unwrap();
    }

    #[test]
    fn writer_rejects_bad_input() {
        let mut w = PackageWriter::new(manifest());
        for name in ["", "manifest", "a\0b", &"x".repeat(33)] {
            let e = w.add_onnx(name, vec![1]).unwrap_err();
            assert!(matches!(e, PackageError::BadSection { .. }), "{e}");
            assert!(e.to_string().starts_with("package `tiny` being built: "), "{e}");
        }
        w.add_onnx(&"y".repeat(32), vec![]).unwrap();
        assert!(w.add_onnx(&"y".repeat(32), vec![]).is_err());
        // The stage's section is still missing.
        assert!(matches!(w.to_bytes().unwrap_err(), PackageError::MissingStageSection { .. }));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("never.eqa");
        let e = w.write(&path).unwrap_err();
        assert!(e.to_string().starts_with(&path.display().to_string()), "{e}");
        assert!(!path.exists());
        w.add_onnx("model", GRAPH.to_vec()).unwrap();
        let p = Package::from_bytes(w.to_bytes().unwrap(), ORIGIN).unwrap();
        assert_eq!(p.section(&"y".repeat(32)), Some(&[][..]));

        let mut m = manifest();
        m.stages[0].name = "head".into();
        let mut w = PackageWriter::new(m);
        w.add_onnx("model", GRAPH.to_vec()).unwrap();
        assert!(matches!(w.to_bytes().unwrap_err(), PackageError::ManifestInvalid { .. }));

        let mut w = PackageWriter::new(manifest());
        for i in 0..MAX_SECTIONS - 1 {
            w.add_onnx(&format!("s{i}"), vec![]).unwrap();
        }
        assert!(w.add_onnx("one_too_many", vec![]).is_err());
    }

    #[test]
    fn package_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Package>();
        check::<PackageError>();
    }

    #[test]
    fn documented_manifest_example_is_valid() {
        let doc = include_str!("../../../docs/package-format.md");
        let start = doc.find("```json\n").unwrap() + "```json\n".len();
        let end = start + doc[start..].find("```").unwrap();
        let m: Manifest = serde_json::from_str(&doc[start..end]).unwrap();
        m.validate().unwrap();
        assert_eq!(m.kind, PackageKind::Student);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048), header in any::<bool>()) {
            if header && bytes.len() >= 16 {
                bytes[..8].copy_from_slice(&MAGIC);
                bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
                bytes[12..16].copy_from_slice(&3u32.to_le_bytes());
            }
            if bytes.len() >= HEADER_LEN {
                let len = bytes.len() as u64;
                bytes[16..24].copy_from_slice(&len.to_le_bytes());
            }
            prop_assert!(Package::from_bytes(bytes, ORIGIN).is_err());
        }

        #[test]
        fn random_mutations_are_rejected(edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..8)) {
            let original = valid();
            let mut b = original.clone();
            for (at, x) in edits {
                let n = b.len();
                b[at % n] ^= x;
            }
            prop_assume!(b != original);
            prop_assert!(Package::from_bytes(b, ORIGIN).is_err());
        }

        #[test]
        fn resigned_table_mutations_never_panic(edits in proptest::collection::vec((0usize..3 * ENTRY_LEN, any::<u8>()), 1..6)) {
            let mut b = valid();
            for (at, v) in edits {
                b[HEADER_LEN + at] = v;
            }
            resign(&mut b);
            // Some edits (say, renaming the unused section) keep the package valid.
            let _ = Package::from_bytes(b, ORIGIN);
        }
    }
}
