//! Board profiles for edgeqa deployments.
//!
//! A profile (`firmware-config/boards/<name>.toml`) says how to build edgeqa for a board (target
//! triple, CPU, cargo features), which backend it prefers, its capture devices and the memory
//! budget edgeqa's process must stay within. This crate parses and validates them; the shipped
//! profiles are compiled in ([`builtin`], [`find`]). The schema is described in `docs/boards.md`.

use std::ops::{Range, RangeInclusive};
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The shipped profiles: (name, TOML text). Adding a board = one file in `boards/` + one line here.
const BUILTIN: &[(&str, &str)] = &[
    ("generic-aarch64", include_str!("../boards/generic-aarch64.toml")),
    ("generic-aarch64-litert", include_str!("../boards/generic-aarch64-litert.toml")),
    ("generic-aarch64-static", include_str!("../boards/generic-aarch64-static.toml")),
    ("generic-x86_64", include_str!("../boards/generic-x86_64.toml")),
    ("jetson-nano", include_str!("../boards/jetson-nano.toml")),
    ("jetson-orin-nano", include_str!("../boards/jetson-orin-nano.toml")),
    ("rpi-zero-2w", include_str!("../boards/rpi-zero-2w.toml")),
    ("rpi-zero-2w-64", include_str!("../boards/rpi-zero-2w-64.toml")),
    ("rpi4", include_str!("../boards/rpi4.toml")),
    ("rpi5", include_str!("../boards/rpi5.toml")),
];

/// Architectures (first part of a target triple) edgeqa can be built for.
pub const KNOWN_ARCHES: &[&str] = &["aarch64", "armv7", "x86_64", "riscv64gc"];

/// Allowed range of `memory_budget_mib`.
pub const MEMORY_BUDGET_MIB: RangeInclusive<u32> = 8..=65536;

/// Allowed range of `threads` (tract's own limit, `edgeqa::backend::tract::MAX_THREADS`).
pub const THREADS: RangeInclusive<u32> = 1..=64;

/// glibc releases a profile's `glibc` may name (2.MINOR): 2.17 is the oldest zig links against;
/// 2.39 the newest its symbol lists cover.
pub const GLIBC_MINOR: RangeInclusive<u32> = 17..=39;

/// Features a static musl build can carry: the Vulkan loader (wgpu), ALSA (mic) and PocketSphinx
/// (voice) are shared libraries a static binary cannot load, and the camera's V4L2 bindings are
/// generated from glibc headers.
pub const MUSL_FEATURES: &[&str] = &["tract", "threads"];

/// Allowed range of `microphone.sample_rate`, in Hz.
pub const SAMPLE_RATE_HZ: RangeInclusive<u32> = 8000..=192_000;

/// A board profile that cannot be used.
#[derive(Debug, Error)]
pub enum BoardError {
    /// The file could not be read.
    #[error("{file}: cannot read the board profile: {reason}")]
    Read { file: String, reason: String },
    /// TOML syntax error, unknown or missing key, or a value of the wrong type.
    #[error("{file}:{line}: {}{reason}", key_prefix(.key))]
    Toml { file: String, line: usize, key: Option<String>, reason: String },
    /// A value of the right type that a board cannot use.
    #[error("{file}:{line}: key `{key}`: {reason}")]
    Invalid { file: String, line: usize, key: String, reason: String },
    /// No shipped profile has this name.
    #[error("no board named `{name}`: known boards are {known} (add one in firmware-config/boards/)")]
    Unknown { name: String, known: String },
}

fn key_prefix(key: &Option<String>) -> String {
    key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default()
}

/// Preferred inference backend of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// tract on the CPU.
    Tract,
    /// wgpu on the GPU (Vulkan).
    Wgpu,
}

impl Backend {
    /// The name used in profiles and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Tract => "tract",
            Backend::Wgpu => "wgpu",
        }
    }
}

/// Pixel format the camera is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Packed YUV 4:2:2.
    Yuyv,
    /// Motion JPEG.
    Mjpeg,
}

impl PixelFormat {
    /// The name used in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Mjpeg => "mjpeg",
        }
    }
}

/// The camera a board captures from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Camera {
    /// V4L2 device, e.g. `/dev/video0`.
    pub device: String,
    /// Capture width in pixels.
    pub width: u32,
    /// Capture height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Pixel format asked of the driver.
    pub format: PixelFormat,
}

/// The microphone a board captures from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Microphone {
    /// ALSA device, e.g. `default` or `hw:1,0`.
    pub device: String,
    /// Sample rate in Hz.
    pub sample_rate: u32,
}

/// Cargo features of the `edgeqa` binary (`cli/Cargo.toml`) a board profile may list:
///
/// - `tract`: the CPU backend (tract);
/// - `threads`: tract's thread pool (rayon), needed for `threads` above 1; a board on one thread
///   leaves it out, about 3 MB less binary;
/// - `wgpu`: the GPU backend (WGSL kernels through wgpu, Vulkan);
/// - `camera`: V4L2 camera capture for `edgeqa live --camera` (building needs libclang and the
///   target's Linux headers);
/// - `mic`: ALSA microphone capture for `edgeqa live --mic` (building needs the target's
///   libasound2-dev; the board needs libasound2);
/// - `voice`: spoken questions through PocketSphinx (building needs the target's
///   libpocketsphinx-dev; the board needs libpocketsphinx3 and pocketsphinx-en-us);
/// - `litert`: TFLite models on LiteRT (building needs the target's libLiteRt.so from
///   scripts/fetch-tflite.sh in `LITERT_LIB_DIR`; the board needs it beside the binary, which
///   `edgeqa-board bundle` puts there, and glibc 2.34+ on aarch64);
/// - `tflite`: TFLite models on the TF Lite C library (x86_64 only: docs/tflite.md).
pub const FEATURES: &[&str] = &["tract", "threads", "wgpu", "camera", "mic", "voice", "tflite", "litert"];

/// One validated board profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Board {
    /// Short name used on the command line; equals the file stem.
    pub name: String,
    /// One line for people: the board, its CPU and memory.
    pub description: String,
    /// Rust target triple, e.g. `aarch64-unknown-linux-gnu`.
    pub target: String,
    /// CPU passed as `-C target-cpu`; `None` builds for the baseline of the architecture.
    pub target_cpu: Option<String>,
    /// Oldest glibc the binary must run on, e.g. `2.27` (the board's OS release): the build links
    /// against that release's symbols (through cargo-zigbuild). `None` for musl targets, and for a
    /// glibc target builds against the build machine's glibc.
    pub glibc: Option<String>,
    /// Preferred backend.
    pub backend: Backend,
    /// Cargo features of the `edgeqa` binary built for this board (one of [`FEATURES`] each;
    /// the build turns the default features off, so the board carries only these).
    pub features: Vec<String>,
    /// Memory budget for the edgeqa process (RSS), in MiB.
    pub memory_budget_mib: u32,
    /// Threads for tract's matrix products when the command line does not say (`threads`,
    /// default 1): the board's cores less those that capture, listen and decode beside it.
    pub threads: u32,
    /// Camera settings.
    pub camera: Camera,
    /// Microphone settings.
    pub microphone: Microphone,
}

/// Whether a target triple links musl (`*-linux-musl*`): a static binary.
pub fn is_musl_target(target: &str) -> bool {
    target.rsplit('-').next().is_some_and(|env| env.starts_with("musl"))
}

impl Board {
    /// Whether the board's binary is a static musl build.
    pub fn is_static(&self) -> bool {
        is_musl_target(&self.target)
    }

    /// The memory budget in bytes.
    pub fn memory_budget_bytes(&self) -> u64 {
        u64::from(self.memory_budget_mib) * 1024 * 1024
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    name: Spanned<String>,
    description: Spanned<String>,
    target: Spanned<String>,
    #[serde(default)]
    target_cpu: Option<Spanned<String>>,
    #[serde(default)]
    glibc: Option<Spanned<String>>,
    backend: Backend,
    features: Spanned<Vec<Spanned<String>>>,
    memory_budget_mib: Spanned<u32>,
    #[serde(default)]
    threads: Option<Spanned<u32>>,
    camera: RawCamera,
    microphone: RawMicrophone,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    device: Spanned<String>,
    width: Spanned<u32>,
    height: Spanned<u32>,
    fps: Spanned<u32>,
    format: PixelFormat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMicrophone {
    device: Spanned<String>,
    sample_rate: Spanned<u32>,
}

/// Parses and validates a profile from TOML text; `file` names it in errors.
///
/// Does not compare `name` with a file stem: [`load`] and [`builtin`] do.
pub fn parse(text: &str, file: &str) -> Result<Board, BoardError> {
    parse_checked(text, file, None)
}

/// Reads and validates a profile file, and checks that its `name` equals the file stem.
pub fn load(path: &Path) -> Result<Board, BoardError> {
    let file = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| BoardError::Read { file: file.clone(), reason: e.to_string() })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    parse_checked(&text, &file, Some(stem))
}

/// Every shipped board, in name order, compiled into the binary.
///
/// # Panics
///
/// If a shipped profile is invalid; the crate's unit tests make sure none is.
pub fn builtin() -> Vec<Board> {
    BUILTIN
        .iter()
        .map(|(name, text)| match parse_builtin(name, text) {
            Ok(board) => board,
            Err(e) => panic!("shipped board profile is invalid: {e}"),
        })
        .collect()
}

/// The shipped board with this name; the error lists the known names.
pub fn find(name: &str) -> Result<Board, BoardError> {
    match BUILTIN.iter().find(|(n, _)| *n == name) {
        Some((n, text)) => parse_builtin(n, text),
        None => Err(BoardError::Unknown {
            name: name.to_string(),
            known: BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Names of the shipped boards, in name order.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

fn parse_builtin(name: &str, text: &str) -> Result<Board, BoardError> {
    parse_checked(text, &format!("firmware-config/boards/{name}.toml"), Some(name))
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Dotted key whose `key = value` contains `span` (the innermost one), or the table whose header does.
fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    fn walk(table: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<String>> {
        for (k, v) in table {
            // A `[table]`'s span covers its header only: look inside every table.
            if let DeValue::Table(t) = v.get_ref()
                && let Some(mut inner) = walk(t, span)
            {
                inner.insert(0, k.get_ref().to_string());
                return Some(inner);
            }
            let (start, end) = (k.span().start.min(v.span().start), k.span().end.max(v.span().end));
            if start <= span.start && span.end <= end && span.start < end {
                return Some(vec![k.get_ref().to_string()]);
            }
        }
        None
    }
    let doc = DeTable::parse(text).ok()?;
    walk(doc.get_ref(), span).map(|path| path.join("."))
}

/// Flattens a `toml` error to one line with the line number and, where it can be found, the key.
fn toml_error(text: &str, file: &str, e: &toml::de::Error) -> BoardError {
    let span = e.span().unwrap_or(0..0);
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    // A missing key is reported at its table's header (or at 0..0 for the top level).
    let missing = message.strip_prefix("missing field `").and_then(|r| r.split('`').next()).map(str::to_string);
    let table = if span.is_empty() { None } else { key_at(text, &span) };
    let (key, reason) = match missing {
        Some(field) => (
            Some(table.map_or_else(|| field.clone(), |t| format!("{t}.{field}"))),
            "is missing: add it (the schema is in docs/boards.md)".to_string(),
        ),
        None => (table, message),
    };
    BoardError::Toml { file: file.to_string(), line: line_of(text, span.start), key, reason }
}

fn parse_checked(text: &str, file: &str, stem: Option<&str>) -> Result<Board, BoardError> {
    let raw: RawBoard = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
    let invalid = |key: &str, span: Range<usize>, reason: String| BoardError::Invalid {
        file: file.to_string(),
        line: line_of(text, span.start),
        key: key.to_string(),
        reason,
    };
    let in_range = |key: &str, v: &Spanned<u32>, range: RangeInclusive<u32>| {
        if range.contains(v.get_ref()) {
            Ok(*v.get_ref())
        } else {
            Err(invalid(
                key,
                v.span(),
                format!("{} is out of range: must be between {} and {}", v.get_ref(), range.start(), range.end()),
            ))
        }
    };
    let non_empty = |key: &str, v: &Spanned<String>| {
        if v.get_ref().trim().is_empty() {
            Err(invalid(key, v.span(), "must not be empty".to_string()))
        } else {
            Ok(v.get_ref().clone())
        }
    };

    let name = raw.name.get_ref();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c)) {
        return Err(invalid(
            "name",
            raw.name.span(),
            format!("`{name}` is not a board name: use lowercase letters, digits, `-` and `_`"),
        ));
    }
    if let Some(stem) = stem
        && name != stem
    {
        return Err(invalid(
            "name",
            raw.name.span(),
            format!("`{name}` differs from the file name: rename the file to {name}.toml or set name = \"{stem}\""),
        ));
    }
    let description = non_empty("description", &raw.description)?;
    let target = raw.target.get_ref();
    let parts: Vec<&str> = target.split('-').collect();
    if !(3..=4).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) || !KNOWN_ARCHES.contains(&parts[0]) {
        return Err(invalid(
            "target",
            raw.target.span(),
            format!(
                "`{target}` is not a supported target triple: use arch-vendor-os[-env] with arch one of {} \
                 (e.g. aarch64-unknown-linux-gnu)",
                KNOWN_ARCHES.join(", ")
            ),
        ));
    }
    let target_cpu = match &raw.target_cpu {
        None => None,
        Some(cpu) => {
            let c = cpu.get_ref();
            if c.is_empty() || !c.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) {
                return Err(invalid(
                    "target_cpu",
                    cpu.span(),
                    format!("`{c}` is not a CPU name (e.g. cortex-a72): remove the key to build for the baseline"),
                ));
            }
            Some(c.clone())
        }
    };
    let musl = is_musl_target(target);
    let glibc = match &raw.glibc {
        None => None,
        Some(g) => {
            let v = g.get_ref();
            if !parts.last().is_some_and(|env| env.starts_with("gnu")) {
                return Err(invalid(
                    "glibc",
                    g.span(),
                    format!("`{target}` does not link glibc: remove the key (it is for *-linux-gnu* targets)"),
                ));
            }
            let minor = v.strip_prefix("2.").and_then(|m| m.parse::<u32>().ok()).filter(|m| m.to_string() == v[2..]);
            match minor {
                Some(m) if GLIBC_MINOR.contains(&m) => Some(v.clone()),
                _ => {
                    return Err(invalid(
                        "glibc",
                        g.span(),
                        format!(
                            "`{v}` is not a glibc release edgeqa can build for: use 2.{} to 2.{} (e.g. \"2.27\"), \
                             or remove the key to build against the build machine's glibc",
                            GLIBC_MINOR.start(),
                            GLIBC_MINOR.end()
                        ),
                    ));
                }
            }
        }
    };
    let mut features: Vec<String> = Vec::with_capacity(raw.features.get_ref().len());
    for f in raw.features.get_ref() {
        let s = f.get_ref();
        if !FEATURES.contains(&s.as_str()) {
            return Err(invalid(
                "features",
                f.span(),
                format!("`{s}` is not a feature of the edgeqa binary (known: {})", FEATURES.join(", ")),
            ));
        }
        if features.contains(s) {
            return Err(invalid("features", f.span(), format!("`{s}` is listed twice")));
        }
        if musl && !MUSL_FEATURES.contains(&s.as_str()) {
            return Err(invalid(
                "features",
                f.span(),
                format!(
                    "`{s}` cannot be built for the static musl target {target}: it needs shared libraries of \
                     the board (use a *-linux-gnu* target), or keep only {}",
                    MUSL_FEATURES.join(", ")
                ),
            ));
        }
        features.push(s.clone());
    }
    let backend_feature = raw.backend.as_str();
    if !features.iter().any(|f| f == backend_feature) {
        return Err(invalid(
            "features",
            raw.features.span(),
            format!("the board prefers the {backend_feature} backend: add \"{backend_feature}\" to its features"),
        ));
    }
    let memory_budget_mib = in_range("memory_budget_mib", &raw.memory_budget_mib, MEMORY_BUDGET_MIB)?;
    let threads = match &raw.threads {
        Some(t) => {
            let n = in_range("threads", t, THREADS)?;
            if n > 1 && !features.iter().any(|f| f == "threads") {
                return Err(invalid(
                    "threads",
                    t.span(),
                    format!(
                        "{n} threads need tract's thread pool: add \"threads\" to its features, or set threads = 1"
                    ),
                ));
            }
            n
        }
        None => 1,
    };
    let c = &raw.camera;
    let camera = Camera {
        device: non_empty("camera.device", &c.device)?,
        width: in_range("camera.width", &c.width, 1..=8192)?,
        height: in_range("camera.height", &c.height, 1..=8192)?,
        fps: in_range("camera.fps", &c.fps, 1..=240)?,
        format: c.format,
    };
    let m = &raw.microphone;
    let microphone = Microphone {
        device: non_empty("microphone.device", &m.device)?,
        sample_rate: in_range("microphone.sample_rate", &m.sample_rate, SAMPLE_RATE_HZ)?,
    };
    Ok(Board {
        name: name.clone(),
        description,
        target: target.clone(),
        target_cpu,
        glibc,
        backend: raw.backend,
        features,
        memory_budget_mib,
        threads,
        camera,
        microphone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"name = "b"
description = "A test board"
target = "aarch64-unknown-linux-gnu"
target_cpu = "cortex-a72"
backend = "tract"
features = ["tract"]
memory_budget_mib = 96

[camera]
device = "/dev/video0"
width = 640
height = 480
fps = 15
format = "yuyv"

[microphone]
device = "default"
sample_rate = 16000
"#;

    /// GOOD with the line starting with `key` replaced (or removed when `line` is empty).
    fn with(key: &str, line: &str) -> String {
        let mut found = false;
        let out: Vec<&str> = GOOD
            .lines()
            .filter_map(|l| {
                if l.starts_with(&format!("{key} ")) && !found {
                    found = true;
                    (!line.is_empty()).then_some(line)
                } else {
                    Some(l)
                }
            })
            .collect();
        assert!(found, "{key}");
        out.join("\n") + "\n"
    }

    fn err(text: &str) -> String {
        let e = parse(text, "b.toml").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        msg
    }

    #[track_caller]
    fn assert_err(text: &str, prefix: &str, needle: &str) {
        let msg = err(text);
        assert!(msg.starts_with(prefix), "{msg:?} should start with {prefix:?}");
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }

    #[test]
    fn good_profile_parses() {
        let b = parse(GOOD, "b.toml").unwrap();
        assert_eq!(b.name, "b");
        assert_eq!(b.target_cpu.as_deref(), Some("cortex-a72"));
        assert_eq!(b.backend, Backend::Tract);
        assert_eq!(b.memory_budget_bytes(), 96 * 1024 * 1024);
        assert_eq!(b.camera.format, PixelFormat::Yuyv);
        assert_eq!(b.microphone.sample_rate, 16000);
        let b = parse(&with("target_cpu", ""), "b.toml").unwrap();
        assert_eq!(b.target_cpu, None);
    }

    #[test]
    fn every_builtin_board_validates() {
        let boards = builtin();
        assert_eq!(boards.len(), BUILTIN.len());
        for b in &boards {
            assert_eq!(find(&b.name).unwrap(), *b);
        }
        let names: Vec<&str> = boards.iter().map(|b| b.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "keep BUILTIN in name order");
        for required in
            ["rpi-zero-2w", "rpi4", "rpi5", "jetson-nano", "jetson-orin-nano", "generic-aarch64", "generic-x86_64"]
        {
            assert!(names.contains(&required), "{required}");
        }
    }

    #[test]
    fn builtin_list_matches_the_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(path.extension().and_then(|e| e.to_str()), Some("toml"), "{} in boards/", path.display());
            let board = load(&path).unwrap();
            let (_, text) = BUILTIN.iter().find(|(n, _)| *n == board.name).expect("file missing from BUILTIN");
            assert_eq!(*text, std::fs::read_to_string(&path).unwrap());
            files.push(board.name);
        }
        files.sort();
        assert_eq!(files, builtin_names());
    }

    #[test]
    fn shipped_values_are_sane() {
        let zero = find("rpi-zero-2w").unwrap();
        assert_eq!((zero.memory_budget_mib, zero.target_cpu.as_deref()), (64, Some("cortex-a53")));
        assert_eq!(zero.target, "armv7-unknown-linux-gnueabihf");
        assert_eq!(find("rpi-zero-2w-64").unwrap().target, "aarch64-unknown-linux-gnu");
        let fixed = find("generic-aarch64-static").unwrap();
        assert_eq!((fixed.target.as_str(), fixed.glibc.as_deref()), ("aarch64-unknown-linux-musl", None));
        // Every glibc board runs on JetPack 4's glibc 2.27 and later, but the LiteRT one: the
        // aarch64 libLiteRt.so needs 2.34.
        for b in builtin().iter().filter(|b| b.target.contains("-gnu")) {
            let litert = b.features.iter().any(|f| f == "litert");
            assert_eq!(b.glibc.as_deref(), Some(if litert { "2.34" } else { "2.27" }), "{}", b.name);
        }
        let litert = find("generic-aarch64-litert").unwrap();
        assert_eq!((litert.target.as_str(), litert.target_cpu), ("aarch64-unknown-linux-gnu", None));
        assert_eq!(litert.features, ["tract", "litert", "camera", "mic", "voice"]);
        assert_eq!(find("rpi4").unwrap().target_cpu.as_deref(), Some("cortex-a72"));
        assert_eq!(find("rpi5").unwrap().target_cpu.as_deref(), Some("cortex-a76"));
        let nano = find("jetson-nano").unwrap();
        assert_eq!((nano.backend, nano.target_cpu.as_deref()), (Backend::Wgpu, Some("cortex-a57")));
        let orin = find("jetson-orin-nano").unwrap();
        assert_eq!((orin.backend, orin.target_cpu.as_deref()), (Backend::Wgpu, Some("cortex-a78ae")));
        assert_eq!(find("generic-aarch64").unwrap().target_cpu, None);
        let x86 = find("generic-x86_64").unwrap();
        assert_eq!((x86.target.as_str(), x86.target_cpu), ("x86_64-unknown-linux-gnu", None));
        for b in builtin() {
            assert!(b.features.iter().any(|f| f == b.backend.as_str()), "{}: {:?}", b.name, b.features);
        }
        assert_eq!(find("rpi4").unwrap().features, ["tract", "threads", "camera", "mic", "voice"]);
        assert_eq!(find("jetson-orin-nano").unwrap().features, ["tract", "threads", "wgpu", "camera", "mic", "voice"]);
        // A board on more than one thread carries tract's pool; one on a single thread does not.
        for b in builtin() {
            assert_eq!(b.threads > 1, b.features.iter().any(|f| f == "threads"), "{}: {:?}", b.name, b.features);
        }
        // Every shipped board but the static one takes a USB camera and microphone, and hears
        // spoken questions.
        for b in builtin().into_iter().filter(|b| !b.is_static()) {
            for f in ["camera", "mic", "voice"] {
                assert!(b.features.iter().any(|g| g == f), "{}: {:?} lacks {f}", b.name, b.features);
            }
        }
    }

    #[test]
    fn features_are_those_of_the_edgeqa_binary() {
        // FEATURES must list exactly the cargo features of cli/Cargo.toml (less `default`).
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../cli/Cargo.toml");
        let cli: toml::Table = toml::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        let mut declared: Vec<&str> =
            cli["features"].as_table().unwrap().keys().map(String::as_str).filter(|f| *f != "default").collect();
        declared.sort_unstable();
        let mut known = FEATURES.to_vec();
        known.sort_unstable();
        assert_eq!(known, declared);
        for f in ["camera", "mic", "wgpu", "voice"] {
            parse(&with("features", &format!("features = [\"tract\", \"{f}\"]")), "b.toml").unwrap();
        }
    }

    #[test]
    fn unknown_board_lists_the_known_ones() {
        let msg = find("rpi3").unwrap_err().to_string();
        assert!(msg.contains("`rpi3`") && msg.contains("rpi4, rpi5"), "{msg}");
    }

    #[test]
    fn unknown_keys_name_key_and_line() {
        assert_err(&format!("{GOOD}colour = 1\n"), "b.toml:19: ", "unknown field `colour`");
        let msg = err(&with("backend", "backend = \"tract\"\ncolour = 1"));
        assert!(msg.starts_with("b.toml:6: ") && msg.contains("unknown field `colour`"), "{msg}");
        assert!(msg.contains("expected one of"), "{msg}");
        let msg = err(&with("fps", "fps = 15\nfpps = 30"));
        assert!(msg.starts_with("b.toml:14: ") && msg.contains("`fpps`"), "{msg}");
    }

    #[test]
    fn type_errors_name_key_and_line() {
        assert_err(
            &with("memory_budget_mib", "memory_budget_mib = \"96\""),
            "b.toml:7: key `memory_budget_mib`: ",
            "invalid type",
        );
        assert_err(&with("fps", "fps = 1.5"), "b.toml:13: key `camera.fps`: ", "invalid type");
        assert_err(&with("memory_budget_mib", "memory_budget_mib = -1"), "b.toml:7: key `memory_budget_mib`: ", "");
        assert_err(&with("backend", "backend = \"cuda\""), "b.toml:5: key `backend`: ", "`tract`");
        assert_err(&with("format", "format = \"rgb\""), "b.toml:14: key `camera.format`: ", "`mjpeg`");
        assert_err(&with("features", "features = [1]"), "b.toml:6: key `features`: ", "invalid type");
    }

    #[test]
    fn missing_keys_are_named() {
        assert_err(&with("target", ""), "b.toml:1: key `target`: is missing", "docs/boards.md");
        assert_err(&with("sample_rate", ""), "b.toml:16: key `microphone.sample_rate`: is missing", "");
        assert_err(&with("device", ""), "b.toml:9: key `camera.device`: is missing", "");
        let no_camera = GOOD.replace("[camera]", "[cam]");
        assert_err(&no_camera, "b.toml:9: key `cam`: unknown field `cam`", "");
    }

    #[test]
    fn syntax_errors_give_the_line() {
        assert_err(&with("fps", "fps = = 15"), "b.toml:13: ", "");
    }

    #[test]
    fn range_errors_name_key_and_line() {
        assert_err(
            &with("memory_budget_mib", "memory_budget_mib = 0"),
            "b.toml:7: key `memory_budget_mib`: ",
            "must be between 8 and 65536",
        );
        assert_err(&with("memory_budget_mib", "memory_budget_mib = 65537"), "b.toml:7: ", "between 8 and 65536");
        assert_err(&with("fps", "fps = 0"), "b.toml:13: key `camera.fps`: ", "must be between 1 and 240");
        assert_err(&with("width", "width = 0"), "b.toml:11: key `camera.width`: ", "must be between");
        assert_err(&with("height", "height = 0"), "b.toml:12: key `camera.height`: ", "must be between");
        assert_err(
            &with("sample_rate", "sample_rate = 4000"),
            "b.toml:18: key `microphone.sample_rate`: ",
            "between 8000 and 192000",
        );
        assert_err(&with("sample_rate", "sample_rate = 192001"), "b.toml:18: ", "between 8000 and 192000");
        assert_err(&with("device", "device = \"\""), "b.toml:10: key `camera.device`: ", "must not be empty");
        assert_err(&with("description", "description = \" \""), "b.toml:2: key `description`: ", "empty");
        let threads = |n: &str| with("memory_budget_mib", &format!("memory_budget_mib = 96\nthreads = {n}"));
        assert_err(&threads("0"), "b.toml:8: key `threads`: ", "must be between 1 and 64");
        assert_err(&threads("65"), "b.toml:8: key `threads`: ", "must be between 1 and 64");
        // Above 1 thread, tract's pool must be built in.
        assert_err(&threads("3"), "b.toml:8: key `threads`: ", "3 threads need tract's thread pool: add \"threads\"");
        let pooled = threads("3").replace(r#"features = ["tract"]"#, r#"features = ["tract", "threads"]"#);
        assert_eq!(parse(&pooled, "b.toml").unwrap().threads, 3);
        assert_eq!(parse(&threads("1"), "b.toml").unwrap().threads, 1);
        assert_eq!(parse(GOOD, "b.toml").unwrap().threads, 1, "threads defaults to 1");
    }

    #[test]
    fn glibc_names_a_release_of_a_gnu_target() {
        let glibc = |v: &str| with("backend", &format!("glibc = {v}\nbackend = \"tract\""));
        assert_eq!(parse(&glibc("\"2.27\""), "b.toml").unwrap().glibc.as_deref(), Some("2.27"));
        assert_eq!(parse(GOOD, "b.toml").unwrap().glibc, None, "no key: the build machine's glibc");
        for bad in ["\"2.16\"", "\"2.40\"", "\"3.1\"", "\"2.027\"", "\"2.x\"", "\"\""] {
            assert_err(&glibc(bad), "b.toml:5: key `glibc`: ", "use 2.17 to 2.39");
        }
        assert_err(&glibc("2.27"), "b.toml:5: key `glibc`: ", "invalid type");
        let musl = glibc("\"2.27\"").replace("linux-gnu", "linux-musl");
        assert_err(&musl, "b.toml:5: key `glibc`: ", "does not link glibc");
    }

    #[test]
    fn musl_boards_carry_only_what_links_statically() {
        let musl = GOOD.replace("linux-gnu", "linux-musl");
        assert_eq!(parse(&musl, "b.toml").unwrap().features, ["tract"]);
        for f in ["mic", "voice", "wgpu", "camera"] {
            let text = musl.replace("features = [\"tract\"]", &format!("features = [\"tract\", \"{f}\"]"));
            assert_err(&text, "b.toml:6: key `features`: ", &format!("`{f}` cannot be built for the static musl"));
        }
    }

    #[test]
    fn bad_targets_name_key_and_line() {
        for t in ["x86", "aarch64-linux", "mips-unknown-linux-gnu", "aarch64--linux-gnu", "a-b-c-d-e", ""] {
            let text = with("target", &format!("target = \"{t}\""));
            assert_err(&text, "b.toml:3: key `target`: ", "not a supported target triple");
        }
        for t in ["armv7-unknown-linux-gnueabihf", "riscv64gc-unknown-linux-gnu", "x86_64-unknown-linux-musl"] {
            parse(&with("target", &format!("target = \"{t}\"")), "b.toml").unwrap();
        }
        assert_err(&with("target_cpu", "target_cpu = \"a b\""), "b.toml:4: key `target_cpu`: ", "not a CPU");
        assert_err(&with("features", "features = [\"tract\", \"a,b\"]"), "b.toml:6: key `features`: ", "`a,b`");
        assert_err(
            &with("features", "features = [\"tract\", \"cam\"]"),
            "b.toml:6: key `features`: ",
            "`cam` is not a feature of the edgeqa binary (known: tract, threads, wgpu, camera, mic, voice, tflite, litert)",
        );
        assert_err(
            &with("features", "features = [\"tract\", \"tract\"]"),
            "b.toml:6: key `features`: ",
            "listed twice",
        );
        assert_err(
            &with("features", "features = [\"wgpu\"]"),
            "b.toml:6: key `features`: ",
            "prefers the tract backend: add \"tract\" to its features",
        );
    }

    #[test]
    fn name_must_match_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("other.toml");
        std::fs::write(&path, GOOD).unwrap();
        let msg = load(&path).unwrap_err().to_string();
        let shown = path.display().to_string();
        assert!(msg.starts_with(&format!("{shown}:1: key `name`: ")), "{msg}");
        assert!(msg.contains("rename the file to b.toml"), "{msg}");
        let good = dir.join("b.toml");
        std::fs::write(&good, GOOD).unwrap();
        assert_eq!(load(&good).unwrap().name, "b");
        let msg = load(&dir.join("missing.toml")).unwrap_err().to_string();
        assert!(msg.contains("missing.toml: cannot read"), "{msg}");
        assert_err(&with("name", "name = \"../x\""), "b.toml:1: key `name`: ", "not a board name");
    }

    #[test]
    fn errors_never_panic_on_odd_input() {
        for text in
            ["", "\u{feff}", "[camera", "name = \"b\"\n[camera]\nwidth = 1e9", "\n\n\nmemory_budget_mib = 99999999999"]
        {
            assert!(parse(text, "b.toml").is_err());
        }
    }
}
