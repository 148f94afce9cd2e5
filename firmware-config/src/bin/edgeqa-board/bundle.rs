//! `edgeqa-board bundle`: one .tar.gz with everything a board needs to answer questions about
//! what it sees and hears, unpacked into `/opt`:
//!
//! ```text
//! edgeqa/edgeqa            the binary for the board (the `deploy` profile by default)
//! edgeqa/<package>.eqa     the student
//! edgeqa/edgeqa.service    systemd unit: `edgeqa live` on the board's camera and microphone
//! edgeqa/README.md         the three commands that install and run it
//! edgeqa/libLiteRt.so      LiteRT, for boards with the `litert` feature (the binary looks
//!                          for it beside itself)
//! ```
//!
//! The unit reads typed questions from the FIFO `/run/edgeqa/questions` (opened read-write, so
//! it never sees an end of input) and, when the board and the student both have voice, answers
//! spoken ones too; answers go to the journal as JSON lines.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use edgeqa_firmware_config::Board;
use edgeqa_format::manifest::{Manifest, PackageKind};
use edgeqa_format::package::Package;

use super::{BundleArgs, build_binary, mib, shown, with_features};

/// Directory the bundle unpacks to under `/opt`.
const DIR: &str = "edgeqa";
/// Where the unit expects the bundle.
const INSTALL: &str = "/opt/edgeqa";
/// The FIFO the unit reads typed questions from.
const QUESTIONS: &str = "/run/edgeqa/questions";

pub(super) fn bundle(args: &BundleArgs) -> Result<()> {
    let package = Package::open(&args.package).with_context(|| "the package to bundle is not usable".to_string())?;
    let package_name = file_name(&args.package)?;
    let board = with_features(edgeqa_firmware_config::find(&args.board)?, args.features.as_deref())?;
    let plan = Plan::new(&board, package.manifest(), &package_name)?;
    let output = match &args.output {
        Some(o) => o.clone(),
        None => {
            let stem = Path::new(&package_name).file_stem().and_then(|s| s.to_str()).unwrap_or("package");
            PathBuf::from(format!("{}-{stem}.tar.gz", board.name))
        }
    };
    let built = build_binary(board, &args.profile, &args.cargo_args)?;
    // The stripped copy when there is one: the symbols are of no use on the board.
    let binary = built.stripped.as_ref().map_or(&built.binary, |s| &s.0);
    write(&output, binary, &built.libraries, &args.package, &package_name, &plan)?;
    let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    println!("bundle for {} with {package_name}: {} ({})", built.board.name, shown(&output), mib(size));
    println!(
        "  unpack on the board with `sudo tar -xzf {} -C /opt`, then see {INSTALL}/README.md",
        file_name(&output)?
    );
    Ok(())
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("{}: not a file name", path.display()))
}

/// What the bundle's unit and README say, from the board profile and the student's manifest.
#[derive(Debug)]
struct Plan {
    board: String,
    description: String,
    package: String,
    /// `edgeqa live` arguments after the binary, one per element.
    live_args: Vec<String>,
    camera: Option<String>,
    microphone: Option<String>,
    voice: bool,
    /// The build has LiteRT, whose library ships beside the binary.
    litert: bool,
}

impl Plan {
    fn new(board: &Board, manifest: &Manifest, package: &str) -> Result<Plan> {
        if manifest.kind != PackageKind::Student {
            bail!(
                "{package} is a generic model package: `edgeqa live` answers questions with a student package \
                 (edgeqa-convert --student DIR)"
            );
        }
        let has = |f: &str| board.features.iter().any(|x| x == f);
        let camera = (manifest.video.is_some() && has("camera")).then(|| board.camera.device.clone());
        let microphone = (manifest.audio.is_some() && has("mic")).then(|| board.microphone.device.clone());
        if camera.is_none() && microphone.is_none() {
            bail!(
                "the board {} cannot feed {package}: the student reads {} and the board's build has {}",
                board.name,
                match (manifest.video.is_some(), manifest.audio.is_some()) {
                    (true, true) => "video and audio",
                    (true, false) => "video",
                    (false, true) => "audio",
                    (false, false) => "neither video nor audio",
                },
                if board.features.is_empty() { "no capture features".to_string() } else { board.features.join(", ") }
            );
        }
        let voice = has("voice") && manifest.voice.is_some() && microphone.is_some();
        let mut live_args: Vec<String> = vec![
            "live".into(),
            "--package".into(),
            format!("{INSTALL}/{package}"),
            "--board".into(),
            board.name.clone(),
        ];
        if let Some(device) = &camera {
            live_args.extend([
                "--camera".into(),
                device.clone(),
                "--capture-size".into(),
                format!("{}x{}", board.camera.width, board.camera.height),
            ]);
        }
        if let Some(device) = &microphone {
            live_args.extend(["--mic".into(), device.clone()]);
        }
        if voice {
            live_args.push("--voice".into());
        }
        live_args.push("--json".into());
        Ok(Plan {
            board: board.name.clone(),
            description: board.description.clone(),
            package: package.to_string(),
            live_args,
            camera,
            microphone,
            voice,
            litert: has("litert"),
        })
    }

    /// The systemd unit.
    fn unit(&self) -> String {
        let exec = format!("exec {INSTALL}/edgeqa {} 0<>{QUESTIONS}", self.live_args.join(" "));
        format!(
            "[Unit]
Description=edgeqa: answers questions about what the {board} sees and hears ({package})
After=sound.target

[Service]
Type=simple
DynamicUser=yes
# The camera and the microphone.
SupplementaryGroups=video audio
RuntimeDirectory=edgeqa
RuntimeDirectoryMode=0755
# Typed questions, one per line: echo \"...\" | sudo tee {QUESTIONS}. Opened read-write, the FIFO
# never reaches an end of input. Answers (JSON lines) go to the journal.
ExecStartPre=/usr/bin/mkfifo -m 0600 {QUESTIONS}
ExecStart=/bin/sh -c '{exec}'
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
",
            board = self.board,
            package = self.package,
        )
    }

    /// The README: what is in the bundle and the three commands.
    fn readme(&self, bundle: &str) -> String {
        let mut sources = Vec::new();
        if let Some(c) = &self.camera {
            sources.push(format!("the camera `{c}`"));
        }
        if let Some(m) = &self.microphone {
            sources.push(format!("the microphone `{m}`"));
        }
        let voice = if self.voice {
            "It also answers questions spoken into the microphone.\n"
        } else {
            "Questions are typed (this student or board build has no voice).\n"
        };
        format!(
            "# edgeqa for {board}: {package}

{description}. `edgeqa live` watches and listens through {sources} (the board profile `{board}`)
and answers questions about what it has seen and heard. {voice}
Files: `edgeqa` (the binary), `{package}` (the student), `edgeqa.service` (the systemd unit){litert}.

1. Unpack it on the board (it goes to {INSTALL}):

       sudo tar -xzf {bundle} -C /opt

2. Install and start the service:

       sudo cp {INSTALL}/edgeqa.service /etc/systemd/system/ && sudo systemctl daemon-reload && sudo systemctl enable --now edgeqa

3. Ask a question and read the answer:

       echo \"what is in front of the camera\" | sudo tee {QUESTIONS} >/dev/null; journalctl -u edgeqa -n 5 -o cat

Try the binary by hand first: `{INSTALL}/edgeqa devices` lists the cameras and microphones it
sees; `{INSTALL}/edgeqa {live}` answers questions typed on the terminal. If the microphone
`default` goes to a sound server (PipeWire, PulseAudio), which a system service cannot reach,
give an ALSA device from `edgeqa devices` in the unit instead.
",
            board = self.board,
            package = self.package,
            description = self.description,
            sources = sources.join(" and "),
            litert = if self.litert {
                ", `libLiteRt.so` (LiteRT, for TFLite models: `edgeqa run --backend litert`; the binary loads it \
                 from beside itself)"
            } else {
                ""
            },
            live = self.live_args.iter().filter(|a| *a != "--json").cloned().collect::<Vec<_>>().join(" "),
        )
    }
}

/// Writes the bundle: the binary, the shared libraries it loads from beside itself, the package,
/// the unit and the README under `edgeqa/`.
fn write(
    output: &Path,
    binary: &Path,
    libraries: &[PathBuf],
    package: &Path,
    package_name: &str,
    plan: &Plan,
) -> Result<()> {
    let tmp = output.with_extension("partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let add_file = |tar: &mut tar::Builder<_>, path: &Path, name: &str, mode: u32| -> Result<()> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        add_bytes(tar, &bytes, name, mode)
    };
    add_file(&mut tar, binary, &format!("{DIR}/edgeqa"), 0o755)?;
    for lib in libraries {
        add_file(&mut tar, lib, &format!("{DIR}/{}", file_name(lib)?), 0o644)?;
    }
    add_file(&mut tar, package, &format!("{DIR}/{package_name}"), 0o644)?;
    add_bytes(&mut tar, plan.unit().as_bytes(), &format!("{DIR}/edgeqa.service"), 0o644)?;
    add_bytes(&mut tar, plan.readme(&file_name(output)?).as_bytes(), &format!("{DIR}/README.md"), 0o644)?;
    let gz = tar.into_inner().with_context(|| format!("cannot write {}", tmp.display()))?;
    let mut out = gz.finish().with_context(|| format!("cannot write {}", tmp.display()))?;
    out.flush().with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(out);
    std::fs::rename(&tmp, output).with_context(|| format!("cannot write {}", output.display()))
}

fn add_bytes<W: Write>(tar: &mut tar::Builder<W>, bytes: &[u8], name: &str, mode: u32) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes).with_context(|| format!("cannot add {name} to the bundle"))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn demo() -> (Manifest, PathBuf) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/demo/demo.eqa");
        let p = Package::open(&path).unwrap_or_else(|e| panic!("{e}: the bundled demo student"));
        (p.manifest().clone(), path)
    }

    #[test]
    fn the_unit_runs_live_on_the_boards_devices_with_voice_when_both_have_it() {
        let (m, _) = demo();
        let rpi4 = edgeqa_firmware_config::find("rpi4").unwrap();
        let plan = Plan::new(&rpi4, &m, "demo.eqa").unwrap();
        let unit = plan.unit();
        assert!(
            unit.contains(
                "ExecStart=/bin/sh -c 'exec /opt/edgeqa/edgeqa live --package /opt/edgeqa/demo.eqa --board rpi4 \
                 --camera /dev/video0 --capture-size 640x480 --mic default --voice --json 0<>/run/edgeqa/questions'"
            ),
            "{unit}"
        );
        assert!(unit.contains("ExecStartPre=/usr/bin/mkfifo -m 0600 /run/edgeqa/questions"), "{unit}");
        // A board build without voice: typed questions only.
        let mut quiet = rpi4.clone();
        quiet.features.retain(|f| f != "voice");
        let plan = Plan::new(&quiet, &m, "demo.eqa").unwrap();
        assert!(!plan.unit().contains("--voice") && plan.readme("b.tar.gz").contains("no voice"));
        // Without capture features the student cannot be fed.
        let mut blind = rpi4.clone();
        blind.features = vec!["tract".into()];
        let e = Plan::new(&blind, &m, "demo.eqa").unwrap_err().to_string();
        assert!(e.contains("cannot feed demo.eqa") && e.contains("video and audio"), "{e}");
        // A generic model package is refused.
        let mut model = m.clone();
        model.kind = PackageKind::Model;
        assert!(Plan::new(&rpi4, &model, "m.eqa").unwrap_err().to_string().contains("generic model package"));
    }

    /// A missing, corrupt or unfit package is refused before anything is built.
    #[test]
    fn a_bad_package_is_refused_before_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let args = |package: PathBuf, board: &str| BundleArgs {
            board: board.into(),
            package,
            output: Some(dir.path().join("b.tar.gz")),
            profile: "deploy".into(),
            features: None,
            cargo_args: vec![],
        };
        let missing = dir.path().join("missing.eqa");
        let e = format!("{:#}", bundle(&args(missing, "rpi4")).unwrap_err());
        assert!(e.contains("not usable") && e.contains("missing.eqa"), "{e}");
        let corrupt = dir.path().join("corrupt.eqa");
        std::fs::write(&corrupt, [b'x'; 100]).unwrap();
        let e = format!("{:#}", bundle(&args(corrupt, "rpi4")).unwrap_err());
        assert!(e.contains("not an .eqa package"), "{e}");
        let (_, demo) = demo();
        let e = format!("{:#}", bundle(&args(demo.clone(), "no-such-board")).unwrap_err());
        assert!(e.contains("no-such-board"), "{e}");
        // So is a feature list the board does not have.
        let mut wrong = args(demo, "rpi4");
        wrong.features = Some(vec!["tract".into(), "wgpu".into()]);
        let e = format!("{:#}", bundle(&wrong).unwrap_err());
        assert!(e.contains("`wgpu` is not a feature of the board rpi4"), "{e}");
        assert!(!dir.path().join("b.tar.gz").exists());
    }

    /// A bundle's entries: (path, mode, bytes), in order.
    fn entries(bundle: &Path) -> Vec<(String, u32, Vec<u8>)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(bundle).unwrap()));
        let mut entries = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            entries.push((e.path().unwrap().display().to_string(), e.header().mode().unwrap(), bytes));
        }
        entries
    }

    #[test]
    fn the_bundle_holds_the_binary_the_package_the_unit_and_the_readme() {
        let (m, package) = demo();
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("edgeqa-bin");
        std::fs::write(&binary, b"\x7fELF not really").unwrap();
        let plan = Plan::new(&edgeqa_firmware_config::find("rpi-zero-2w").unwrap(), &m, "demo.eqa").unwrap();
        let out = dir.path().join("b.tar.gz");
        write(&out, &binary, &[], &package, "demo.eqa", &plan).unwrap();
        let entries = entries(&out);
        let names: Vec<(&str, u32)> = entries.iter().map(|(n, m, _)| (n.as_str(), *m)).collect();
        assert_eq!(
            names,
            [
                ("edgeqa/edgeqa", 0o755),
                ("edgeqa/demo.eqa", 0o644),
                ("edgeqa/edgeqa.service", 0o644),
                ("edgeqa/README.md", 0o644)
            ]
        );
        assert_eq!(entries[0].2, b"\x7fELF not really");
        assert_eq!(entries[1].2, std::fs::read(&package).unwrap());
        let readme = String::from_utf8(entries[3].2.clone()).unwrap();
        assert!(readme.contains("sudo tar -xzf b.tar.gz -C /opt"), "{readme}");
        assert!(readme.contains("systemctl enable --now edgeqa"), "{readme}");
        assert!(!dir.path().join("b.partial").exists());
    }

    #[test]
    fn a_litert_bundle_ships_the_library_beside_the_binary() {
        let (m, package) = demo();
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("edgeqa-bin");
        std::fs::write(&binary, b"\x7fELF binary").unwrap();
        let lib = dir.path().join("libLiteRt.so");
        std::fs::write(&lib, b"\x7fELF library").unwrap();
        let board = edgeqa_firmware_config::find("generic-aarch64-litert").unwrap();
        let plan = Plan::new(&board, &m, "demo.eqa").unwrap();
        let out = dir.path().join("b.tar.gz");
        write(&out, &binary, std::slice::from_ref(&lib), &package, "demo.eqa", &plan).unwrap();
        let entries = entries(&out);
        assert_eq!((entries[1].0.as_str(), entries[1].1), ("edgeqa/libLiteRt.so", 0o644));
        assert_eq!(entries[1].2, b"\x7fELF library");
        let readme = String::from_utf8(entries.last().unwrap().2.clone()).unwrap();
        assert!(readme.contains("`libLiteRt.so` (LiteRT"), "{readme}");
    }
}
