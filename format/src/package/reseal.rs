//! Recomputing what a package's integrity checks compare against, for tests and fuzzing.

use super::format::{
    E_LEN, E_OFFSET, E_SHA, ENTRY_LEN, H_COUNT, H_DIGEST, H_FILE_LEN, HEADER_LEN, header_digest, sha256, u32_at, u64_at,
};

/// Makes the bytes as they are now pass a package's integrity checks: writes the real length
/// into `file_len`, each section's SHA-256 (for the entries whose range lies inside the bytes)
/// and the header digest (when the whole table does), and changes nothing else.
///
/// Crafted packages need it to reach the checks behind the digests: the table's layout rules,
/// the manifest and the stages. A reader never calls it; a resealed file is still verified in
/// full by [`Package::from_bytes`](super::Package::from_bytes). Bytes shorter than the header
/// are left as they are.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    let len = bytes.len();
    bytes[H_FILE_LEN..H_FILE_LEN + 8].copy_from_slice(&(len as u64).to_le_bytes());
    let count = u32_at(bytes, H_COUNT);
    let table_end = (count as usize).checked_mul(ENTRY_LEN).and_then(|t| t.checked_add(HEADER_LEN));
    let fits = (len - HEADER_LEN) / ENTRY_LEN;
    for i in 0..fits.min(count as usize) {
        let e = HEADER_LEN + i * ENTRY_LEN;
        let (offset, length) = (u64_at(bytes, e + E_OFFSET), u64_at(bytes, e + E_LEN));
        if let Some(end) = offset.checked_add(length).filter(|&end| end <= len as u64) {
            let digest = sha256(&bytes[offset as usize..end as usize]);
            bytes[e + E_SHA..e + E_SHA + 32].copy_from_slice(&digest);
        }
    }
    if let Some(end) = table_end.filter(|&end| end <= len) {
        let digest = header_digest(bytes, &bytes[HEADER_LEN..end]);
        bytes[H_DIGEST..HEADER_LEN].copy_from_slice(&digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{DType, Manifest, TensorInfo};
    use crate::package::{Package, PackageError, PackageWriter};

    fn valid() -> Vec<u8> {
        let t = |name: &str| TensorInfo { name: name.into(), dtype: DType::F32, shape: vec![1, 4] };
        let mut w = PackageWriter::new(Manifest::model("edgeqa tests", "tiny", vec![t("x")], vec![t("y")]));
        w.add_onnx("model", b"graph bytes".to_vec()).unwrap();
        w.to_bytes().unwrap()
    }

    #[test]
    fn a_valid_package_is_unchanged() {
        let bytes = valid();
        let mut resealed = bytes.clone();
        reseal(&mut resealed);
        assert_eq!(resealed, bytes);
    }

    #[test]
    fn a_changed_section_passes_the_digests_and_meets_the_checks_behind_them() {
        let bytes = valid();
        let p = Package::from_bytes(bytes.clone(), "a.eqa").unwrap();
        let model = p.section_info("model").unwrap().offset as usize;
        // A byte of the graph: only the digests stood between it and the reader.
        let mut graph = bytes.clone();
        graph[model] ^= 1;
        assert!(Package::from_bytes(graph.clone(), "a.eqa").is_err());
        reseal(&mut graph);
        assert_eq!(Package::from_bytes(graph, "a.eqa").unwrap().section("model").unwrap()[0], b'g' ^ 1);
        // Appended bytes: the length and digests now agree, the padding rule does not.
        let mut longer = bytes.clone();
        longer.extend([0u8; 64]);
        reseal(&mut longer);
        let e = Package::from_bytes(longer, "a.eqa").unwrap_err();
        assert!(
            !matches!(
                e,
                PackageError::SizeMismatch { .. }
                    | PackageError::HeaderChecksum { .. }
                    | PackageError::SectionChecksum { .. }
            ),
            "{e}"
        );
    }

    #[test]
    fn tables_past_the_end_and_short_bytes_do_not_panic() {
        let mut bytes = valid();
        bytes[H_COUNT..H_COUNT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut bytes);
        let mut short = bytes[..HEADER_LEN + 10].to_vec();
        reseal(&mut short);
        let mut tiny = vec![0u8; 10];
        reseal(&mut tiny);
        assert_eq!(tiny, vec![0u8; 10]);
    }
}
