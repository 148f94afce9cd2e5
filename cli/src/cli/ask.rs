//! `edgeqa ask`: one question about one clip.

use std::path::PathBuf;

use anyhow::Result;
use edgeqa::budget::MemoryReport;

use super::{BackendArg, BudgetArg, load_student, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The student package (.eqa).
    #[arg(long)]
    package: PathBuf,
    /// The clip's video (YUV4MPEG2, .y4m).
    #[arg(long)]
    video: Option<PathBuf>,
    /// The clip's audio (WAV at the student's sample rate).
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Print JSON: question, answer, confidence, top_k, backend, timings_ms.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArg,
    #[command(flatten)]
    budget: BudgetArg,
    /// The question spoken in a WAV file (any rate; channels are mixed), instead of typed.
    #[cfg(feature = "voice")]
    #[arg(long, value_name = "Q.wav", conflicts_with = "question")]
    question_audio: Option<PathBuf>,
    #[cfg(feature = "voice")]
    #[command(flatten)]
    voice: super::voice::VoiceArgs,
    /// The question, e.g. "what colour is the square?"
    #[cfg_attr(feature = "voice", arg(required_unless_present = "question_audio"))]
    #[cfg_attr(not(feature = "voice"), arg(required = true))]
    question: Option<String>,
}

pub fn main(args: Args) -> Result<()> {
    #[cfg(feature = "voice")]
    if let Some(wav) = &args.question_audio {
        return spoken(&args, wav);
    }
    let Some(question) = args.question.as_deref() else { anyhow::bail!("give the question") };
    let student = load_student(&args.package, &args.backend, &args.budget)?;
    let clip = student.encode_files(args.video.as_deref(), args.audio.as_deref())?;
    let mut answer = student.answer(question, &clip)?;
    answer.timings_ms.extend(clip.timings_ms.clone());
    if args.json {
        let memory = MemoryReport::measure(student.memory_plan(), student.budget());
        return print_json(&serde_json::json!({
            "question": answer.question,
            "answer": answer.answer,
            "confidence": answer.confidence,
            "top_k": answer.top_k,
            "backend": answer.backend,
            "timings_ms": answer.timings_ms,
            "memory": memory,
        }));
    }
    println!("{} ({:.1}%)", answer.answer, answer.confidence * 100.0);
    let rest: Vec<String> =
        answer.top_k.iter().skip(1).map(|s| format!("{} {:.1}%", s.answer, s.confidence * 100.0)).collect();
    if !rest.is_empty() {
        println!("  then: {}", rest.join(", "));
    }
    let timings: Vec<String> = answer.timings_ms.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
    println!("  {} ms: {}", answer.backend, timings.join(", "));
    Ok(())
}

/// `--question-audio`: hears the question, then answers it when the recognizer is confident.
#[cfg(feature = "voice")]
fn spoken(args: &Args, wav: &std::path::Path) -> Result<()> {
    use anyhow::Context;
    use edgeqa::voice::{Listener, VOICE_RATE, resample_to_voice_rate};
    use std::time::Instant;

    let pkg = super::open_package(&args.package)?;
    let vad = args.voice.vad()?;
    let mut listener = Listener::new(&pkg, &args.voice.speech_model, vad).context("cannot listen")?;
    args.backend.apply_threads(args.budget.board.as_deref())?;
    let student = edgeqa::pipeline::Student::load(&pkg, args.backend.backend, args.budget.resolve()?)?;
    drop(pkg);
    let (samples, rate) = edgeqa::capture::wav::read_wav_any_rate(wav)?;
    let origin = wav.display().to_string();
    let samples = resample_to_voice_rate(&samples, rate, &origin)?;
    let clip = student.encode_files(args.video.as_deref(), args.audio.as_deref())?;
    let t0 = Instant::now();
    let heard = listener.hear_recording(&samples, &origin)?;
    let vad_ms = t0.elapsed().as_secs_f64() * 1e3 - heard.as_ref().map_or(0.0, |h| h.transcript.decode_ms);
    let min = args.voice.min_confidence;
    let text = heard.as_ref().and_then(|h| h.transcript.accepted(min)).map(str::to_string);
    let t1 = Instant::now();
    let answer = text.as_deref().map(|q| student.answer(q, &clip)).transpose()?;
    let answer_ms = t1.elapsed().as_secs_f64() * 1e3;
    if args.json {
        let recognize_ms = heard.as_ref().map(|h| h.transcript.decode_ms);
        return print_json(&serde_json::json!({
            "question_audio": origin,
            "audio_s": samples.len() as f64 / f64::from(VOICE_RATE),
            "vad": listener.detector(),
            "speech": heard.is_some(),
            "transcript": heard.as_ref().and_then(|h| h.transcript.text.clone()),
            "confidence": heard.as_ref().map(|h| h.transcript.confidence),
            "margin": heard.as_ref().map(|h| h.transcript.margin),
            "accepted": text.is_some(),
            "question": text,
            "answer": answer.as_ref().map(|a| &a.answer),
            "answer_confidence": answer.as_ref().map(|a| a.confidence),
            "top_k": answer.as_ref().map(|a| &a.top_k),
            "backend": student.backend().0,
            "timings_ms": {
                "vad": vad_ms,
                "recognize": recognize_ms,
                "answer": answer.as_ref().map(|_| answer_ms),
                "speech_end_to_answer": recognize_ms.map(|r| r + if answer.is_some() { answer_ms } else { 0.0 }),
            },
        }));
    }
    match &heard {
        None => println!("heard: no speech in {origin}: I did not catch a question"),
        Some(h) => println!("{}", super::voice::heard_line(h, min)),
    }
    if let Some(a) = &answer {
        println!("{} ({:.1}%)", a.answer, a.confidence * 100.0);
        println!(
            "  speech end to answer {:.1} ms (recognize {:.1} ms, answer {:.1} ms)",
            heard.as_ref().map_or(0.0, |h| h.transcript.decode_ms) + answer_ms,
            heard.as_ref().map_or(0.0, |h| h.transcript.decode_ms),
            answer_ms
        );
    }
    Ok(())
}
