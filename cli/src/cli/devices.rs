//! `edgeqa devices`: the cameras and microphones this build can open.

use anyhow::Result;

use super::print_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON: a list of {kind, id, name, modes}.
    #[arg(long)]
    json: bool,
}

pub fn main(args: Args) -> Result<()> {
    let devices = edgeqa::capture::list_devices();
    if args.json {
        return print_json(&devices);
    }
    for (kind, what, feature) in [("camera", "cameras", "camera"), ("microphone", "microphones", "mic")] {
        let built = match feature {
            "camera" => cfg!(feature = "camera"),
            _ => cfg!(feature = "mic"),
        };
        if !built {
            println!("{what}: not built in (the `{feature}` feature)");
            continue;
        }
        let found: Vec<_> = devices.iter().filter(|d| d.kind == kind).collect();
        if found.is_empty() {
            println!("{what}: none found");
        }
        for d in found {
            println!("{kind} {}  {}", d.id, d.name);
            for m in &d.modes {
                println!("    {m}");
            }
        }
    }
    Ok(())
}
