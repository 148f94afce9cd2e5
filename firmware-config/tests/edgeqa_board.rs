//! `edgeqa-board` as a user runs it: what it says when the zig toolchain that links the boards'
//! glibc-2.27 and static builds is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_edgeqa-board");

/// The full path of `name` on the test's PATH.
fn which(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH"))
}

/// A PATH of one directory holding links to `tools` and the given scripts.
fn path_with(dir: &Path, tools: &[&str], scripts: &[(&str, &str)]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for t in tools {
        std::os::unix::fs::symlink(which(t), bin.join(t)).unwrap();
    }
    for (name, body) in scripts {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut perms = std::fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&p, perms).unwrap();
    }
    bin
}

/// Runs `edgeqa-board build --board generic-x86_64` (glibc 2.27, so linked with zig) with `path`
/// as PATH; returns (success, stderr).
fn build_with_path(path: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["build", "--board", "generic-x86_64"])
        .env("PATH", path)
        .env_remove("CARGO_ZIGBUILD_ZIG_PATH")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_missing_cargo_zigbuild_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, err) = build_with_path(&path_with(dir.path(), &["rustc"], &[]));
    assert!(!ok);
    assert!(err.contains("glibc 2.27") && err.contains("cargo install --locked cargo-zigbuild"), "{err}");
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
}

#[test]
fn a_missing_zig_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    // cargo-zigbuild is there, zig is not, and python3 has no ziglang module.
    let path =
        path_with(dir.path(), &["rustc"], &[("cargo-zigbuild", "exit 0"), ("python3", "exit 1"), ("zig", "exit 127")]);
    let (ok, err) = build_with_path(&path);
    assert!(!ok);
    assert!(err.contains("pip install ziglang"), "{err}");
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
}
