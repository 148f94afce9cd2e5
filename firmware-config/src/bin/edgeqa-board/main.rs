//! `edgeqa-board`: lists the shipped board profiles and cross-builds the `edgeqa` binary for one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use edgeqa_firmware_config::{Board, builtin, find};

mod bundle;

/// Board profiles of edgeqa: list them, show one, build edgeqa for one.
#[derive(Debug, Parser)]
#[command(name = "edgeqa-board", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List the shipped boards: name, target, backend, memory budget, description.
    List {
        /// Print every board with all its fields as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show every field of one board.
    Show {
        /// Board name (see `list`).
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cross-build the `edgeqa` binary for a board and report its size, stripped and not.
    ///
    /// A board with the `litert` feature links the libLiteRt.so in the directory `LITERT_LIB_DIR`
    /// names, built for the board's architecture (scripts/fetch-tflite.sh fetches it).
    Build(BuildArgs),
    /// Build edgeqa for a board and pack it with a student package, a systemd unit that runs
    /// `edgeqa live` on the board's camera and microphone, and a README into one .tar.gz.
    ///
    /// For a board with the `litert` feature, the libLiteRt.so from `LITERT_LIB_DIR` goes beside
    /// the binary, which loads it from there.
    Bundle(BundleArgs),
}

#[derive(Debug, clap::Args)]
struct BundleArgs {
    /// Board name (see `list`).
    #[arg(long)]
    board: String,
    /// The student package (.eqa) to ship; it is checked (checksums, manifest) first.
    #[arg(long)]
    package: PathBuf,
    /// The bundle to write. Default: `<board>-<package name>.tar.gz` here.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Cargo profile of the binary (as for `build`: `deploy`, `deploy-fast`, `release`).
    #[arg(long, default_value = "deploy")]
    profile: String,
    /// Build only these of the board's features (comma-separated, e.g. `tract,camera,mic` to leave
    /// `voice` out); the board's backend must stay. Default: all the board's features.
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Extra arguments for `cargo build`, after `--` (e.g. `-- --locked`).
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// Board name (see `list`).
    #[arg(long)]
    board: String,
    /// Cargo profile: `deploy` (whole-program LTO for size, panics abort, stripped: the smallest
    /// binary, a slower CPU path), `deploy-fast` (whole-program LTO at opt-level 3: about three
    /// times larger, faster) or `release` (quicker to build, larger).
    #[arg(long, default_value = "deploy")]
    profile: String,
    /// Build only these of the board's features (comma-separated, e.g. `tract,camera,mic` to leave
    /// `voice` out); the board's backend must stay. Default: all the board's features.
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Print a JSON summary on stdout: {"board", "target", "binary", "size_bytes", "stripped", ...}.
    #[arg(long)]
    json: bool,
    /// Extra arguments for `cargo build`, after `--` (e.g. `-- --locked`).
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::List { json } => list(json),
        Cmd::Show { name, json } => show(&name, json),
        Cmd::Build(args) => build(&args),
        Cmd::Bundle(args) => bundle::bundle(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn list(json: bool) -> Result<()> {
    let boards = builtin();
    if json {
        println!("{}", serde_json::to_string_pretty(&boards)?);
        return Ok(());
    }
    let w = boards.iter().map(|b| b.name.len()).max().unwrap_or(4).max(4);
    let t = boards.iter().map(|b| b.target.len()).max().unwrap_or(6).max(6);
    println!("{:<w$}  {:<t$}  {:<7}  {:>8}  DESCRIPTION", "NAME", "TARGET", "BACKEND", "BUDGET");
    for b in &boards {
        let budget = format!("{} MiB", b.memory_budget_mib);
        println!("{:<w$}  {:<t$}  {:<7}  {:>8}  {}", b.name, b.target, b.backend.as_str(), budget, b.description);
    }
    Ok(())
}

fn show(name: &str, json: bool) -> Result<()> {
    let b = find(name)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&b)?);
        return Ok(());
    }
    let features = if b.features.is_empty() { "(none)".to_string() } else { b.features.join(", ") };
    let rows = [
        ("name", b.name.clone()),
        ("description", b.description.clone()),
        ("target", b.target.clone()),
        ("target_cpu", b.target_cpu.clone().unwrap_or_else(|| "(none: baseline of the architecture)".into())),
        (
            "glibc",
            match &b.glibc {
                Some(g) => format!("{g} or newer (linked with zig)"),
                None if b.is_static() => "(none: static musl binary)".into(),
                None => "(the build machine's)".into(),
            },
        ),
        ("backend", b.backend.as_str().into()),
        ("features", features),
        ("memory_budget_mib", format!("{} ({} bytes)", b.memory_budget_mib, b.memory_budget_bytes())),
        ("camera.device", b.camera.device.clone()),
        ("camera.width", b.camera.width.to_string()),
        ("camera.height", b.camera.height.to_string()),
        ("camera.fps", b.camera.fps.to_string()),
        ("camera.format", b.camera.format.as_str().into()),
        ("microphone.device", b.microphone.device.clone()),
        ("microphone.sample_rate", format!("{} Hz", b.microphone.sample_rate)),
    ];
    for (k, v) in rows {
        println!("{k:<22}  {v}");
    }
    Ok(())
}

/// Cross toolchain of a target: C compiler used as linker, its strip, the Debian packages, and
/// where Debian puts the target's headers and (multiarch) libraries.
struct CrossTools {
    linker: &'static str,
    strip: &'static str,
    packages: &'static str,
    /// Debian's multiarch triplet: headers in `/usr/<triplet>/include` (the cross libc and Linux
    /// headers), libraries and pkg-config files in `/usr/lib/<triplet>` (multiarch packages).
    multiarch: &'static str,
    /// Debian's architecture name (`dpkg --add-architecture`, `package:arch`).
    dpkg_arch: &'static str,
}

/// The Debian cross toolchain for a target's architecture (any C library: its strip serves musl
/// builds too).
fn cross_tools(target: &str) -> Option<CrossTools> {
    let arch = target.split('-').next().unwrap_or_default();
    if !target.contains("-linux-") {
        return None;
    }
    Some(match arch {
        "aarch64" => CrossTools {
            linker: "aarch64-linux-gnu-gcc",
            strip: "aarch64-linux-gnu-strip",
            packages: "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
            multiarch: "aarch64-linux-gnu",
            dpkg_arch: "arm64",
        },
        "armv7" => CrossTools {
            linker: "arm-linux-gnueabihf-gcc",
            strip: "arm-linux-gnueabihf-strip",
            packages: "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross",
            multiarch: "arm-linux-gnueabihf",
            dpkg_arch: "armhf",
        },
        "riscv64gc" => CrossTools {
            linker: "riscv64-linux-gnu-gcc",
            strip: "riscv64-linux-gnu-strip",
            packages: "gcc-riscv64-linux-gnu libc6-dev-riscv64-cross",
            multiarch: "riscv64-linux-gnu",
            dpkg_arch: "riscv64",
        },
        "x86_64" => CrossTools {
            linker: "x86_64-linux-gnu-gcc",
            strip: "x86_64-linux-gnu-strip",
            packages: "gcc-x86-64-linux-gnu libc6-dev-amd64-cross",
            multiarch: "x86_64-linux-gnu",
            dpkg_arch: "amd64",
        },
        _ => return None,
    })
}

/// Environment for the C dependencies of a cross build. pkg-config (alsa-sys, feature `mic`)
/// searches only the target's multiarch directory, so it can neither miss the target's ALSA nor
/// pick the host's; bindgen (v4l, feature `camera`) parses the target's Linux headers rather than
/// the host's. A variable already set for the target (or a sysroot set for pkg-config) is kept.
/// Fails, saying what to install, when a feature of the board needs files that are missing.
fn cross_c_env(
    target: &str,
    features: &[String],
    tools: &CrossTools,
    var: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> bool,
) -> Result<Vec<(String, String)>> {
    let underscored = target.replace('-', "_");
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    let set_for_target = |name: &str| set(&format!("{name}_{target}")) || set(&format!("{name}_{underscored}"));
    let has = |f: &str| features.iter().any(|g| g == f);
    let (ma, da) = (tools.multiarch, tools.dpkg_arch);
    let mut env = Vec::new();

    let user_pkg_config = ["PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR", "PKG_CONFIG"]
        .iter()
        .any(|v| set_for_target(v) || set(&format!("TARGET_{v}")))
        || set("PKG_CONFIG_LIBDIR")
        || set("PKG_CONFIG_SYSROOT_DIR");
    if !user_pkg_config {
        let dir = format!("/usr/lib/{ma}/pkgconfig");
        if has("mic") && !exists(&Path::new(&dir).join("alsa.pc")) {
            bail!(
                "the `mic` feature needs ALSA built for {target}, and {dir}/alsa.pc is missing: on Debian/Ubuntu \
                 run `sudo dpkg --add-architecture {da} && sudo apt-get update && sudo apt-get install \
                 libasound2-dev:{da}`, or point PKG_CONFIG_SYSROOT_DIR_{underscored} and \
                 PKG_CONFIG_LIBDIR_{underscored} at a sysroot of the board"
            );
        }
        env.push((format!("PKG_CONFIG_LIBDIR_{underscored}"), format!("{dir}:/usr/share/pkgconfig")));
    }
    if !set_for_target("BINDGEN_EXTRA_CLANG_ARGS") {
        let include = format!("/usr/{ma}/include");
        if has("camera") && !exists(&Path::new(&include).join("linux/videodev2.h")) {
            bail!(
                "the `camera` feature needs the Linux headers for {target}, and {include}/linux/videodev2.h is \
                 missing: on Debian/Ubuntu run `sudo apt-get install {}`, or set \
                 BINDGEN_EXTRA_CLANG_ARGS_{underscored}=--sysroot=<a sysroot of the board>",
                tools.packages
            );
        }
        // Both spellings: bindgen reads the one with the target as cargo spells it first, and
        // cargo-zigbuild sets that one to zig's own headers unless it is set already.
        let args = format!("--sysroot=/usr/{ma} -I{include}");
        env.push((format!("BINDGEN_EXTRA_CLANG_ARGS_{target}"), args.clone()));
        env.push((format!("BINDGEN_EXTRA_CLANG_ARGS_{underscored}"), args));
    }
    Ok(env)
}

/// Environment for the C dependencies of a native build linked by zig: cargo-zigbuild points
/// bindgen (v4l, feature `camera`) at zig's own headers, and with those alone bindgen did not find
/// `linux/videodev2.h`; so add the build machine's, `/usr/include` (a setting of the user's wins).
fn native_zig_env(target: &str, var: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let underscored = target.replace('-', "_");
    let names = [format!("BINDGEN_EXTRA_CLANG_ARGS_{target}"), format!("BINDGEN_EXTRA_CLANG_ARGS_{underscored}")];
    if names.iter().any(|n| var(n).is_some_and(|v| !v.is_empty())) {
        return Vec::new();
    }
    // Debian keeps `asm/` under the multiarch directory.
    let multiarch = cross_tools(target).map(|t| format!("-I/usr/include/{} ", t.multiarch)).unwrap_or_default();
    names.into_iter().map(|n| (n, format!("{multiarch}-I/usr/include"))).collect()
}

/// Full path of an executable found on PATH (or `name` itself when it contains a slash).
fn on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Output of a tool, or why it could not run.
fn output_of(program: &OsString, args: &[&str]) -> Result<String> {
    let shown = program.to_string_lossy();
    let out = Command::new(program).args(args).output().with_context(|| format!("cannot run `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown} {}` failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rustc() -> OsString {
    std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}

fn host_triple() -> Result<String> {
    let vv = output_of(&rustc(), &["-vV"])?;
    vv.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .context("`rustc -vV` printed no `host:` line")
}

/// Fails unless the standard library for `target` is installed.
fn check_target_installed(target: &str) -> Result<()> {
    match Command::new("rustup").args(["target", "list", "--installed"]).output() {
        Ok(out) if out.status.success() => {
            if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == target) {
                Ok(())
            } else {
                bail!("target {target} is not installed: run `rustup target add {target}`")
            }
        }
        Ok(out) => bail!(
            "`rustup target list --installed` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Without rustup, look for the target's standard library in the sysroot.
            let sysroot = output_of(&rustc(), &["--print", "sysroot"])?;
            if Path::new(sysroot.trim()).join("lib/rustlib").join(target).join("lib").is_dir() {
                Ok(())
            } else {
                bail!(
                    "rustup not found, and {} has no standard library for target {target}: install Rust with \
                     rustup (https://rustup.rs), then run `rustup target add {target}`",
                    sysroot.trim()
                )
            }
        }
        Err(e) => bail!("cannot run rustup: {e}"),
    }
}

/// Fails unless rustc knows `cpu` for `target` (rustc itself only warns and ignores it).
fn check_cpu(target: &str, cpu: &str) -> Result<()> {
    let cpus = output_of(&rustc(), &["--print", "target-cpus", "--target", target])?;
    let known = cpus.lines().skip(1).any(|l| l.split_whitespace().next() == Some(cpu));
    if !known {
        bail!("rustc does not know CPU `{cpu}` for {target}: see `rustc --print target-cpus --target {target}`");
    }
    Ok(())
}

/// Workspace root and target directory, as cargo sees them from the current directory.
fn workspace(cargo: &OsString) -> Result<(PathBuf, PathBuf)> {
    let json = output_of(cargo, &["metadata", "--no-deps", "--format-version", "1"])
        .context("run edgeqa-board inside the edgeqa workspace")?;
    let v: serde_json::Value = serde_json::from_str(&json).context("cannot read `cargo metadata` output")?;
    let field = |k: &str| v[k].as_str().map(PathBuf::from).with_context(|| format!("`cargo metadata` has no {k}"));
    Ok((field("workspace_root")?, field("target_directory")?))
}

/// `path` relative to the current directory when it is inside it.
fn shown(path: &Path) -> String {
    let rel = std::env::current_dir().ok().and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    rel.unwrap_or_else(|| path.to_path_buf()).display().to_string()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A board binary `cargo build` made, and its stripped copy when a strip tool was found.
struct Built {
    board: Board,
    binary: PathBuf,
    size: u64,
    stripped: Option<(PathBuf, u64)>,
    /// ` with -C target-cpu=...` when the board sets a CPU.
    flags_note: String,
    /// Static, or the glibc it needs.
    linkage: Linkage,
    /// Shared libraries the binary loads from beside itself (LiteRT's), to ship with it.
    libraries: Vec<PathBuf>,
}

/// The board with only `only` of its features (all of them when `None`).
fn with_features(mut board: Board, only: Option<&[String]>) -> Result<Board> {
    let Some(only) = only else { return Ok(board) };
    for f in only {
        if !board.features.contains(f) {
            bail!(
                "--features: `{f}` is not a feature of the board {} (it has {})",
                board.name,
                board.features.join(", ")
            );
        }
    }
    let backend = board.backend.as_str();
    if !only.iter().any(|f| f == backend) {
        bail!("--features: the board {} runs the {backend} backend: keep `{backend}` in the list", board.name);
    }
    board.features.retain(|f| only.contains(f));
    Ok(board)
}

fn build(args: &BuildArgs) -> Result<()> {
    let board = with_features(find(&args.board)?, args.features.as_deref())?;
    let built = build_binary(board, &args.profile, &args.cargo_args)?;
    let (board, target) = (&built.board, built.board.target.as_str());
    let (binary, size) = (&built.binary, built.size);
    if args.json {
        let linkage = built.linkage.json();
        let v = serde_json::json!({
            "board": board.name,
            "target": target,
            "target_cpu": board.target_cpu,
            "features": board.features,
            "profile": args.profile,
            "binary": binary,
            "size_bytes": size,
            "stripped": built.stripped.as_ref().map(|s| &s.0),
            "stripped_size_bytes": built.stripped.as_ref().map(|s| s.1),
            "glibc": board.glibc,
            "static": linkage["static"],
            "glibc_required": linkage["glibc_required"],
            "libraries": built.libraries,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "edgeqa for {} ({target}{}, profile {}, features {}):",
        board.name,
        built.flags_note,
        args.profile,
        board.features.join(",")
    );
    println!("  binary    {}  ({}, {size} bytes)", shown(binary), mib(size));
    match &built.stripped {
        Some((path, s)) => println!("  stripped  {}  ({}, {s} bytes)", shown(path), mib(*s)),
        None => println!("  stripped  (not made: no strip tool found on PATH; it comes with binutils)"),
    }
    println!("  links     {}", built.linkage.describe());
    for lib in &built.libraries {
        println!("  ships     {} (the board needs it beside the binary; `bundle` puts it there)", shown(lib));
    }
    Ok(())
}

/// How a board's binary is linked.
enum Link {
    /// The build machine's own toolchain (a board of the build machine's target, without `glibc`).
    Host,
    /// A Debian cross gcc as linker, against the cross toolchain's glibc.
    Gcc,
    /// zig through cargo-zigbuild: against the symbols of an older glibc (`target.2.27`, see
    /// [`link_glibc`]) or musl.
    Zig { cargo_target: String },
}

/// The glibc release whose symbols every glibc board newer than it is linked against. edgeqa's own
/// code needs nothing newer (the 2.27 boards build every feature), and one release per target
/// lets the boards of a target share their compiled dependencies: cargo rebuilds every crate when
/// the linker changes, and cargo-zigbuild's linker is named after the release. A board's own
/// `glibc` stays the floor that its binary and the libraries it ships are checked against.
const LINK_GLIBC: &str = "2.27";

/// The glibc release a board whose OS has glibc `board_glibc` is linked against: its own when it
/// is older than [`LINK_GLIBC`], [`LINK_GLIBC`] otherwise.
fn link_glibc(board_glibc: &str) -> &str {
    if glibc_minor(board_glibc) > glibc_minor(LINK_GLIBC) { LINK_GLIBC } else { board_glibc }
}

/// Fails unless cargo-zigbuild and zig can be run, saying how to install what is missing.
fn check_zig(board: &Board) -> Result<()> {
    let why = match &board.glibc {
        Some(g) => format!("the board {} asks for a binary that runs on glibc {g}", board.name),
        None => format!("the board {} is a static musl build", board.name),
    };
    if on_path("cargo-zigbuild").is_none() {
        bail!(
            "{why}, which is linked with zig through cargo-zigbuild, and cargo-zigbuild is not on PATH: run \
               `source scripts/setup-zig.sh` in the edgeqa tree (or `cargo install --locked cargo-zigbuild`)"
        );
    }
    let zig_runs =
        |program: &str, args: &[&str]| Command::new(program).args(args).output().is_ok_and(|o| o.status.success());
    let zig = std::env::var("CARGO_ZIGBUILD_ZIG_PATH").unwrap_or_else(|_| "zig".into());
    if !zig_runs(&zig, &["version"]) && !zig_runs("python3", &["-m", "ziglang", "version"]) {
        bail!(
            "{why}, which is linked with zig, and neither `zig` nor python3's `ziglang` module was found: run \
               `source scripts/setup-zig.sh` in the edgeqa tree (or `pip install ziglang`, or put zig on PATH)"
        );
    }
    Ok(())
}

/// The `-C` flags a cargo profile brings beyond its keys. `deploy` puts size first (root
/// `Cargo.toml`): a position-dependent executable. A PIE's relative relocations were 0.9 MB of
/// the tract-only aarch64 binary, and the boards' glibc (2.27) predates packed ones (DT_RELR,
/// 2.36). Libraries, stack, heap and mmap stay randomised; the binary's own image loads at a
/// fixed address. The other profiles build a PIE.
fn profile_flags(profile: &str) -> &'static [&'static str] {
    match profile {
        "deploy" => &["relocation-model=static"],
        _ => &[],
    }
}

/// Builds `edgeqa` for `board` with cargo profile `profile`.
fn build_binary(board: Board, profile: &str, cargo_args: &[String]) -> Result<Built> {
    // LiteRT (feature `litert`): the target's libLiteRt.so, linked from where it lies and shipped
    // beside the binary, which looks there first (cli/build.rs). Never downloaded by the build.
    let litert = if board.features.iter().any(|f| f == "litert") {
        Some(litert_library(&board, |v| std::env::var(v).ok())?)
    } else {
        None
    };
    let target = board.target.as_str();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let host = host_triple()?;
    let cross = target != host;
    if cross {
        check_target_installed(target)?;
    }
    let musl = board.is_static();
    let tools = if cross { cross_tools(target) } else { None };
    let linker_env = format!("CARGO_TARGET_{}_LINKER", target.to_uppercase().replace(['-', '.'], "_"));
    let linker_override = std::env::var(&linker_env).ok().filter(|l| !l.is_empty());
    let link = if board.glibc.is_some() || musl {
        check_zig(&board)?;
        let cargo_target = match &board.glibc {
            Some(g) => format!("{target}.{}", link_glibc(g)),
            None => target.to_string(),
        };
        Link::Zig { cargo_target }
    } else if let Some(t) = &tools {
        let linker = linker_override.as_deref().unwrap_or(t.linker);
        if on_path(linker).is_none() {
            bail!(
                "linker `{linker}` for {target} not found on PATH: install it (Debian/Ubuntu: \
                 `sudo apt-get install {}`)",
                t.packages
            );
        }
        Link::Gcc
    } else {
        Link::Host
    };
    if let Some(cpu) = &board.target_cpu {
        check_cpu(target, cpu)?;
    }
    // The target's C libraries and headers (pkg-config for ALSA and PocketSphinx, bindgen for
    // V4L2) for every cross build that links them: zig links against the same Debian files.
    let c_env = match (&tools, &link) {
        (Some(t), _) if !musl => cross_c_env(target, &board.features, t, |v| std::env::var(v).ok(), Path::exists)?,
        (None, Link::Zig { .. }) if !musl => native_zig_env(target, |v| std::env::var(v).ok()),
        _ => Vec::new(),
    };

    // Builds with `-C target-cpu` get their own target dir so that boards with different CPUs do
    // not invalidate each other's artifacts; baseline builds share cargo's usual target/<triple>/.
    let (root, target_root) = workspace(&cargo)?;
    let board_dir = target_root.join("boards").join(&board.name);
    let target_dir = if board.target_cpu.is_some() { board_dir.clone() } else { target_root.clone() };

    let (subcommand, cargo_target) = match &link {
        Link::Zig { cargo_target } => ("zigbuild", cargo_target.as_str()),
        _ => ("build", target),
    };
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root).args([
        subcommand,
        "--profile",
        profile,
        "-p",
        "edgeqa-cli",
        "--bin",
        "edgeqa",
        "--target",
        cargo_target,
        "--no-default-features",
        "--features",
        &board.features.join(","),
    ]);
    if board.target_cpu.is_some() {
        cmd.arg("--target-dir").arg(&target_dir);
    }
    cmd.args(cargo_args).env("PKG_CONFIG_ALLOW_CROSS", "1");
    if let (Link::Gcc, Some(t), None) = (&link, &tools, &linker_override) {
        cmd.env(&linker_env, t.linker);
    }
    for (k, v) in &c_env {
        cmd.env(k, v);
    }
    if let Some(lib) = &litert {
        let dir = lib.parent().unwrap_or(Path::new("."));
        cmd.env("LITERT_LIB_DIR", dir).env("LITERT_NO_DOWNLOAD", "1");
    }
    let mut flags: Vec<String> = Vec::new();
    let mut flags_note = String::new();
    if let Some(cpu) = &board.target_cpu {
        flags.extend(["-C".into(), format!("target-cpu={cpu}")]);
        flags_note = format!(" with -C target-cpu={cpu}");
    }
    for f in profile_flags(profile) {
        flags_note.push_str(if flags_note.is_empty() { " with" } else { "," });
        flags_note.push_str(&format!(" -C {f}"));
        flags.extend(["-C".into(), f.to_string()]);
    }
    if board.glibc.is_some() {
        // The target's ALSA and PocketSphinx are Debian's, linked against a newer glibc than the
        // board's: their own glibc symbols are resolved on the board, by the board's builds of
        // them. Only the binary's own symbols must exist in the old glibc, and zig checks those.
        flags.extend(["-C".into(), "link-arg=-Wl,--allow-shlib-undefined".into()]);
    }
    if !flags.is_empty() {
        // CARGO_ENCODED_RUSTFLAGS wins over RUSTFLAGS in cargo: extend whichever is in force.
        match std::env::var("CARGO_ENCODED_RUSTFLAGS").ok().filter(|f| !f.is_empty()) {
            Some(enc) => {
                cmd.env("CARGO_ENCODED_RUSTFLAGS", format!("{enc}\x1f{}", flags.join("\x1f")));
            }
            None => {
                let mut all = std::env::var("RUSTFLAGS").unwrap_or_default();
                for f in &flags {
                    if !all.trim().is_empty() {
                        all.push(' ');
                    }
                    all.push_str(f);
                }
                cmd.env("RUSTFLAGS", all.trim());
            }
        }
    }
    match &board.glibc {
        Some(g) if link_glibc(g) != g => {
            flags_note.push_str(&format!(", for glibc {g}+, linked against glibc {}'s symbols", link_glibc(g)))
        }
        Some(g) => flags_note.push_str(&format!(", for glibc {g}+")),
        None if musl => flags_note.push_str(", static"),
        None => {}
    }
    eprintln!("edgeqa-board: building edgeqa for {} ({target}{flags_note}, profile {profile})", board.name);
    for (k, v) in &c_env {
        eprintln!("edgeqa-board:   {k}=\"{v}\"");
    }
    let status = cmd.status().with_context(|| format!("cannot run `{}`", cargo.to_string_lossy()))?;
    if !status.success() {
        bail!("cargo {subcommand} of edgeqa for {} failed ({status}): see cargo's errors above", board.name);
    }

    let profile_dir = match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        p => p,
    };
    let binary = target_dir.join(target).join(profile_dir).join("edgeqa");
    let size = std::fs::metadata(&binary)
        .with_context(|| format!("cargo succeeded but {} is not there", binary.display()))?
        .len();
    let linkage = linkage(&binary)?;
    if let Some(wanted) = &board.glibc
        && let Some(needed) = linkage.glibc_newer_than(wanted)
    {
        bail!(
            "{} needs glibc {needed}, newer than the board's {wanted}: a C library it links was built against \
             a newer glibc (see `readelf -V {}`)",
            binary.display(),
            binary.display()
        );
    }
    if musl && linkage != Linkage::Static {
        bail!("{} is not statically linked (see `readelf -d`), though {target} should be", binary.display());
    }

    let strip = tools.as_ref().map_or("strip", |t| t.strip);
    let stripped = board_dir.join("edgeqa.stripped");
    let stripped_size = if on_path(strip).is_some() {
        std::fs::create_dir_all(&board_dir).with_context(|| format!("cannot create {}", board_dir.display()))?;
        let out = Command::new(strip)
            .arg("--strip-all")
            .arg("-o")
            .arg(&stripped)
            .arg(&binary)
            .output()
            .with_context(|| format!("cannot run `{strip}`"))?;
        if !out.status.success() {
            bail!("`{strip}` failed on {}: {}", binary.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        Some(std::fs::metadata(&stripped).with_context(|| format!("{strip} wrote no {}", stripped.display()))?.len())
    } else {
        None
    };

    let stripped = stripped_size.map(|s| (stripped, s));
    let libraries = litert.into_iter().collect();
    Ok(Built { board, binary, size, stripped, flags_note, linkage, libraries })
}

/// How a built binary loads: static, or through the dynamic loader needing some glibc.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Linkage {
    /// No program interpreter and no shared libraries.
    Static,
    /// Dynamically linked; the newest `GLIBC_` symbol version it needs (`None`: no glibc symbol).
    Dynamic { glibc: Option<String> },
    /// readelf (binutils) is not on PATH.
    Unknown,
}

impl Linkage {
    /// The glibc this needs, when it is newer than `wanted` (a board's `glibc`).
    fn glibc_newer_than(&self, wanted: &str) -> Option<&str> {
        match self {
            Linkage::Dynamic { glibc: Some(needed) } if glibc_minor(needed) > glibc_minor(wanted) => Some(needed),
            _ => None,
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Linkage::Static => serde_json::json!({ "static": true, "glibc_required": null }),
            Linkage::Dynamic { glibc } => serde_json::json!({ "static": false, "glibc_required": glibc }),
            Linkage::Unknown => serde_json::json!({ "static": null, "glibc_required": null }),
        }
    }

    fn describe(&self) -> String {
        match self {
            Linkage::Static => "static: needs no shared library".into(),
            Linkage::Dynamic { glibc: Some(g) } => format!("dynamic: needs glibc {g} or newer"),
            Linkage::Dynamic { glibc: None } => "dynamic: needs no versioned glibc symbol".into(),
            Linkage::Unknown => "(not checked: readelf, from binutils, is not on PATH)".into(),
        }
    }
}

/// The libLiteRt.so a board build with the `litert` feature links and ships: the one in
/// `LITERT_LIB_DIR` (`var` reads the environment), checked to be built for the board's
/// architecture and to need no newer glibc than the board's OS has.
fn litert_library(board: &Board, var: impl Fn(&str) -> Option<String>) -> Result<PathBuf> {
    let arch = board.target.split('-').next().unwrap_or_default();
    let fetched =
        format!("`bash scripts/fetch-tflite.sh` in the edgeqa tree fetches it into .cache/tflite/litert/{arch}");
    let Some(dir) = var("LITERT_LIB_DIR").filter(|d| !d.is_empty()) else {
        bail!(
            "the board {} has the `litert` feature, which links LiteRT's libLiteRt.so built for {arch}: set \
             LITERT_LIB_DIR to the directory that holds it ({fetched})",
            board.name
        );
    };
    let lib = Path::new(&dir).join("libLiteRt.so");
    if !lib.is_file() {
        bail!("LITERT_LIB_DIR={dir} holds no libLiteRt.so, which the board {} needs ({fetched})", board.name);
    }
    let got = elf_machine(&lib)?;
    let want = ELF_MACHINES.iter().find(|(a, _)| *a == arch).map(|(_, m)| *m);
    if want.is_some_and(|want| want != got) {
        let built_for = ELF_MACHINES
            .iter()
            .find(|(_, m)| *m == got)
            .map_or_else(|| format!("ELF machine {got}"), |(a, _)| a.to_string());
        bail!(
            "{} is built for {built_for}, not for the board {}'s {arch}: set LITERT_LIB_DIR to the directory of \
             an {arch} build ({fetched})",
            lib.display(),
            board.name
        );
    }
    litert_fits(board, &lib, &linkage(&lib)?)?;
    // Absolute: litert-sys's build script runs in the crate's own directory.
    lib.canonicalize().with_context(|| format!("cannot resolve {}", lib.display()))
}

/// Fails when LiteRT's library `lib`, which links as `linkage` says, needs a newer glibc than
/// the board's OS has.
fn litert_fits(board: &Board, lib: &Path, linkage: &Linkage) -> Result<()> {
    if let Some(wanted) = &board.glibc
        && let Some(needed) = linkage.glibc_newer_than(wanted)
    {
        bail!(
            "{} needs glibc {needed}, newer than the board {}'s {wanted}, so it would not load there: LiteRT \
             needs a board whose OS has glibc {needed} or newer, with `glibc = \"{needed}\"` in its profile \
             (as generic-aarch64-litert), or drop `litert` with --features",
            lib.display(),
            board.name
        );
    }
    Ok(())
}

/// The architectures edgeqa builds for (the first part of a target triple) and their ELF
/// `e_machine`.
const ELF_MACHINES: &[(&str, u16)] = &[("x86_64", 62), ("aarch64", 183), ("armv7", 40), ("riscv64gc", 243)];

/// The architecture an ELF file was built for: its header's `e_machine`.
fn elf_machine(path: &Path) -> Result<u16> {
    let mut head = [0u8; 20];
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    std::io::Read::read_exact(&mut file, &mut head)
        .ok()
        .filter(|_| head.starts_with(b"\x7fELF"))
        .with_context(|| format!("{} is not an ELF file (a shared library)", path.display()))?;
    let machine = [head[18], head[19]];
    Ok(if head[5] == 2 { u16::from_be_bytes(machine) } else { u16::from_le_bytes(machine) })
}

/// Minor number of a `2.N[.M]` glibc version (0 when it is not one).
fn glibc_minor(version: &str) -> u32 {
    version.strip_prefix("2.").and_then(|r| r.split('.').next()).and_then(|m| m.parse().ok()).unwrap_or(0)
}

/// Reads how `binary` links with `readelf` (which reads any architecture's ELF).
fn linkage(binary: &Path) -> Result<Linkage> {
    if on_path("readelf").is_none() {
        return Ok(Linkage::Unknown);
    }
    let bin = binary.as_os_str().to_string_lossy().into_owned();
    let headers = output_of(&"readelf".into(), &["-W", "--program-headers", "--dynamic", &bin])?;
    let dynamic = headers.contains("INTERP") || headers.contains("(NEEDED)");
    if !dynamic {
        return Ok(Linkage::Static);
    }
    let versions = output_of(&"readelf".into(), &["-W", "--version-info", &bin])?;
    Ok(Linkage::Dynamic { glibc: newest_glibc(&versions) })
}

/// The newest `GLIBC_2.N[.M]` version named in `readelf --version-info` output.
fn newest_glibc(readelf: &str) -> Option<String> {
    readelf
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '@')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter(|v| {
            v.starts_with("2.") && v[2..].split('.').all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .max_by_key(|v| v.split('.').map(|n| n.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "aarch64-unknown-linux-gnu";

    fn env_for(features: &[&str], vars: &[(&str, &str)], files: &[&str]) -> Result<Vec<(String, String)>> {
        let features: Vec<String> = features.iter().map(|f| f.to_string()).collect();
        let tools = cross_tools(TARGET).unwrap();
        let var = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        cross_c_env(TARGET, &features, &tools, var, |p: &Path| files.iter().any(|f| Path::new(f) == p))
    }

    const ALSA: &str = "/usr/lib/aarch64-linux-gnu/pkgconfig/alsa.pc";
    const V4L2: &str = "/usr/aarch64-linux-gnu/include/linux/videodev2.h";

    #[test]
    fn only_deploy_links_a_position_dependent_binary() {
        assert_eq!(profile_flags("deploy"), ["relocation-model=static"]);
        for p in ["deploy-fast", "release", "cross-test", "dev"] {
            assert!(profile_flags(p).is_empty(), "{p}");
        }
    }

    #[test]
    fn features_narrow_to_a_subset_with_the_backend() {
        let rpi4 = || find("rpi4").unwrap();
        assert_eq!(with_features(rpi4(), None).unwrap().features, ["tract", "threads", "camera", "mic", "voice"]);
        let only = ["mic".to_string(), "tract".to_string()];
        assert_eq!(with_features(rpi4(), Some(&only)).unwrap().features, ["tract", "mic"]);
        let msg = with_features(rpi4(), Some(&["mic".to_string()])).unwrap_err().to_string();
        assert!(msg.contains("keep `tract`"), "{msg}");
        let msg = with_features(rpi4(), Some(&["tract".to_string(), "wgpu".to_string()])).unwrap_err().to_string();
        assert!(msg.contains("`wgpu` is not a feature of the board rpi4"), "{msg}");
    }

    #[test]
    fn every_known_architecture_has_an_elf_machine() {
        for arch in edgeqa_firmware_config::KNOWN_ARCHES {
            assert!(ELF_MACHINES.iter().any(|(a, _)| a == arch), "{arch} is not in ELF_MACHINES");
        }
    }

    #[test]
    fn litert_builds_check_the_library_they_ship() {
        let board = find("generic-aarch64-litert").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        let err = |vars: &[(&str, &str)]| {
            let var = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
            litert_library(&board, var).unwrap_err().to_string()
        };
        let e = err(&[]);
        assert!(e.contains("set LITERT_LIB_DIR") && e.contains(".cache/tflite/litert/aarch64"), "{e}");
        let e = err(&[("LITERT_LIB_DIR", &d)]);
        assert!(e.contains("holds no libLiteRt.so"), "{e}");
        let lib = dir.path().join("libLiteRt.so");
        std::fs::write(&lib, b"#!/bin/sh\n not a library at all").unwrap();
        let e = err(&[("LITERT_LIB_DIR", &d)]);
        assert!(e.contains("is not an ELF file"), "{e}");
        // An ELF header (64-bit, little-endian, shared object) for x86_64 (e_machine 62).
        let mut x86 = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00".to_vec();
        x86.extend([62, 0, 1, 0, 0, 0]);
        std::fs::write(&lib, &x86).unwrap();
        let e = err(&[("LITERT_LIB_DIR", &d)]);
        assert!(e.contains("is built for x86_64, not for the board generic-aarch64-litert's aarch64"), "{e}");
        assert_eq!(elf_machine(&lib).unwrap(), 62);

        let needs = |g: &str| Linkage::Dynamic { glibc: Some(g.to_string()) };
        assert!(litert_fits(&board, &lib, &needs("2.34")).is_ok());
        let mut old = board.clone();
        old.glibc = Some("2.27".into());
        let e = litert_fits(&old, &lib, &needs("2.34")).unwrap_err().to_string();
        assert!(e.contains("needs glibc 2.34, newer than the board generic-aarch64-litert's 2.27"), "{e}");
        assert!(litert_fits(&old, &lib, &needs("2.17")).is_ok());
    }

    #[test]
    fn newer_glibc_boards_link_against_one_release() {
        assert_eq!(link_glibc("2.34"), "2.27", "the LiteRT board shares the 2.27 boards' link");
        assert_eq!(link_glibc("2.39"), "2.27");
        assert_eq!(link_glibc("2.27"), "2.27");
        assert_eq!(link_glibc("2.17"), "2.17", "an older board links against its own release");
    }

    #[test]
    fn the_newest_glibc_version_is_found() {
        let readelf = "Version needs section '.gnu.version_r' contains 2 entries:\n\
             000000: Version: 1  File: libgcc_s.so.1  Cnt: 1\n\
             0x0010:   Name: GCC_4.2.0  Flags: none  Version: 5\n\
             0x0020: Version: 1  File: libc.so.6  Cnt: 3\n\
             0x0030:   Name: GLIBC_2.9  Flags: none  Version: 4\n\
             0x0040:   Name: GLIBC_2.17  Flags: none  Version: 3\n\
             0x0050:   Name: GLIBC_2.17.1  Flags: none  Version: 2\n\
             0x0060:   Name: GLIBC_PRIVATE  Flags: none  Version: 6\n\
             0x0070:   0x1 (GLIBC_2.3.4) (GLIBC_2.x)\n";
        assert_eq!(newest_glibc(readelf).as_deref(), Some("2.17.1"));
        assert_eq!(newest_glibc("Name: GCC_3.0"), None);
        assert_eq!((glibc_minor("2.27"), glibc_minor("2.17.1"), glibc_minor("x")), (27, 17, 0));
    }

    #[test]
    fn cross_builds_get_the_targets_pkg_config_and_headers() {
        let env = env_for(&["tract", "camera", "mic"], &[], &[ALSA, V4L2]).unwrap();
        assert_eq!(
            env,
            [
                (
                    "PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu".to_string(),
                    "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig".to_string()
                ),
                (
                    "BINDGEN_EXTRA_CLANG_ARGS_aarch64-unknown-linux-gnu".to_string(),
                    "--sysroot=/usr/aarch64-linux-gnu -I/usr/aarch64-linux-gnu/include".to_string()
                ),
                (
                    "BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu".to_string(),
                    "--sysroot=/usr/aarch64-linux-gnu -I/usr/aarch64-linux-gnu/include".to_string()
                ),
            ]
        );
        // Without the features nothing is checked; the settings are harmless.
        assert_eq!(env_for(&["tract"], &[], &[]).unwrap().len(), 3);
    }

    #[test]
    fn missing_target_files_say_what_to_install() {
        let msg = env_for(&["tract", "mic"], &[], &[V4L2]).unwrap_err().to_string();
        assert!(msg.contains("dpkg --add-architecture arm64") && msg.contains("libasound2-dev:arm64"), "{msg}");
        let msg = env_for(&["tract", "camera"], &[], &[ALSA]).unwrap_err().to_string();
        assert!(msg.contains("videodev2.h") && msg.contains("libc6-dev-arm64-cross"), "{msg}");
    }

    #[test]
    fn native_zig_builds_read_the_hosts_linux_headers() {
        let target = "x86_64-unknown-linux-gnu";
        let env = native_zig_env(target, |_| None);
        let args = "-I/usr/include/x86_64-linux-gnu -I/usr/include".to_string();
        assert_eq!(
            env,
            [
                ("BINDGEN_EXTRA_CLANG_ARGS_x86_64-unknown-linux-gnu".to_string(), args.clone()),
                ("BINDGEN_EXTRA_CLANG_ARGS_x86_64_unknown_linux_gnu".to_string(), args),
            ]
        );
        let mine = |k: &str| (k == "BINDGEN_EXTRA_CLANG_ARGS_x86_64_unknown_linux_gnu").then(|| "-I/mine".to_string());
        assert!(native_zig_env(target, mine).is_empty());
    }

    #[test]
    fn the_users_settings_are_kept() {
        let vars = [
            ("PKG_CONFIG_SYSROOT_DIR_aarch64-unknown-linux-gnu", "/sysroot"),
            ("BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu", "--sysroot=/sysroot"),
        ];
        assert!(env_for(&["tract", "camera", "mic"], &vars, &[]).unwrap().is_empty());
        let only_pkg = env_for(&["mic"], &[("PKG_CONFIG_SYSROOT_DIR", "/s")], &[]).unwrap();
        assert_eq!(only_pkg.len(), 2);
        assert!(only_pkg.iter().all(|(k, _)| k.starts_with("BINDGEN_")), "{only_pkg:?}");
    }
}
