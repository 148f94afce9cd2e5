//! A damaged package is always rejected by the `edgeqa` binary with one clear error line.
//! (The package unit tests flip every byte of a small package exhaustively; this checks the
//! real demo package through the binary, at positions spread over every region of the file.)

use std::ffi::OsStr;
use std::path::Path;

use edgeqa_tests::{assert_clean_error, run_bin};

const EDGEQA: &str = env!("CARGO_BIN_EXE_edgeqa");

fn inspect(path: &Path) -> (bool, String, String) {
    run_bin(EDGEQA, &[OsStr::new("inspect"), path.as_os_str()], &[])
}

#[test]
fn flipped_truncated_and_extended_packages_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    edgeqa_tests::write_probe_bundle(dir.path(), 1, 1).unwrap();
    let good = std::fs::read(dir.path().join("demo.eqa")).unwrap();
    assert!(inspect(&dir.path().join("demo.eqa")).0, "the intact package must load");
    let bad = dir.path().join("bad.eqa");

    // Every byte of the header and section table, then positions spread over the sections.
    let mut positions: Vec<usize> = (0..64 + 96 * 5).collect();
    positions.extend((0..97).map(|i| 544 + i * (good.len() - 545) / 96));
    for &pos in &positions {
        let mut bytes = good.clone();
        bytes[pos] ^= 0x10;
        std::fs::write(&bad, &bytes).unwrap();
        let r = inspect(&bad);
        assert_clean_error(&r, &["bad.eqa"]);
    }
    for len in [0, 7, 63, 64, 200, good.len() / 2, good.len() - 1] {
        std::fs::write(&bad, &good[..len]).unwrap();
        assert_clean_error(&inspect(&bad), &["bad.eqa"]);
    }
    let mut longer = good.clone();
    longer.push(0);
    std::fs::write(&bad, &longer).unwrap();
    assert_clean_error(&inspect(&bad), &["bad.eqa"]);
}
