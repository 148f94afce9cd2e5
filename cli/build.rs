//! A binary built with LiteRT (feature `litert`) looks for `libLiteRt.so` beside itself before
//! the system's paths, so a board runs it without `LD_LIBRARY_PATH`: `edgeqa-board bundle` puts
//! the library there (docs/tflite.md).
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_LITERT").is_some() {
        println!("cargo::rustc-link-arg-bins=-Wl,-rpath,$ORIGIN");
    }
}
