//! `edgeqa live`: watch a camera (or a Y4M file) and listen to a microphone (or a WAV file)
//! continuously, and answer the questions typed on stdin from what was seen and heard.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use edgeqa::capture::files::{Pacing, WavSource, Y4mSource};
use edgeqa::capture::{AudioSource, FrameSource};
use edgeqa::stream::{Live, LiveConfig, Overflow, Selection, audio_block};

use super::{BackendArg, BudgetArg, demo_dir, load_student};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SelectionArg {
    /// Frames and audio spread uniformly over the last `--window` seconds (everything held
    /// without a window).
    Uniform,
    /// The most recent frames and audio segments.
    Recent,
    /// The part of the history the student's selector stage finds relevant to each question
    /// (uniform over everything held when the student has no selector).
    Question,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The student package (.eqa); the bundled demo student without it.
    #[arg(long)]
    package: Option<PathBuf>,
    /// Camera: a V4L2 device path (`/dev/video0`) or index (`0`); see `edgeqa devices`.
    #[arg(long, value_name = "PATH|INDEX", conflicts_with = "video")]
    camera: Option<String>,
    /// A Y4M file standing in for the camera.
    #[arg(long, value_name = "FILE.y4m")]
    video: Option<PathBuf>,
    /// Microphone by name (`default` for the default input); see `edgeqa devices`.
    #[arg(long, value_name = "NAME", conflicts_with = "audio")]
    mic: Option<String>,
    /// A WAV file standing in for the microphone (at the student's sample rate).
    #[arg(long, value_name = "FILE.wav")]
    audio: Option<PathBuf>,
    /// Pace file sources in real time, like devices (otherwise as fast as they are encoded).
    #[arg(long)]
    realtime: bool,
    /// Start file sources again at their end.
    #[arg(long = "loop")]
    looping: bool,
    /// Wait until the file sources are fully encoded before reading questions (reproducible
    /// answers: the same as `edgeqa ask` on the same files).
    #[arg(long, conflicts_with_all = ["looping", "camera", "mic"])]
    ask_at_end: bool,
    /// Seconds of features kept (shortened to fit the board's budget, with a warning).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    history: f64,
    /// Which frames and audio a question looks at.
    #[arg(long, value_enum, default_value = "uniform")]
    selection: SelectionArg,
    /// With `--selection uniform`: look at the last SECONDS only.
    #[arg(long, value_name = "SECONDS")]
    window: Option<f64>,
    /// Frames per second taken from the camera into the frame encoder.
    #[arg(long, default_value_t = edgeqa::stream::DEFAULT_FRAME_RATE, value_name = "HZ")]
    frame_rate: f64,
    /// Camera capture size (default: the smallest mode at least the student's input size).
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    capture_size: Option<(usize, usize)>,
    /// Print one JSON object per answer.
    #[arg(long)]
    json: bool,
    /// Print the status line on stderr every SECONDS (0: only at the prompt and at the end).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    status_every: f64,
    /// Listen for spoken questions in the audio (the microphone or `--audio`) and answer them
    /// as they are heard; typed questions still work.
    #[cfg(feature = "voice")]
    #[arg(long)]
    voice: bool,
    /// With --voice: listen only after Enter is pressed on an empty line (push-to-talk), for
    /// the next spoken question.
    #[cfg(feature = "voice")]
    #[arg(long, requires = "voice", conflicts_with = "ask_at_end")]
    push_to_talk: bool,
    #[cfg(feature = "voice")]
    #[command(flatten)]
    voice_args: super::voice::VoiceArgs,
    #[command(flatten)]
    backend: BackendArg,
    #[command(flatten)]
    budget: BudgetArg,
}

pub(super) fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"))?;
    let n = |v: &str| v.trim().parse::<usize>().map_err(|_| format!("`{s}` is not WIDTHxHEIGHT"));
    Ok((n(w)?, n(h)?))
}

/// Opens the camera or the Y4M file.
fn video_source(
    args: &Args,
    student: &edgeqa::pipeline::Student,
    pacing: Pacing,
) -> Result<Option<Box<dyn FrameSource>>> {
    if let Some(path) = &args.video {
        return Ok(Some(Box::new(Y4mSource::open(path, pacing, args.looping)?)));
    }
    let Some(camera) = &args.camera else { return Ok(None) };
    #[cfg(feature = "camera")]
    {
        let p = student.manifest().video.as_ref().context("this student does not watch video: drop --camera")?;
        let (width, height) = args.capture_size.unwrap_or((p.width, p.height));
        let req =
            edgeqa::capture::camera::CameraRequest { device: camera.clone(), width, height, fps: args.frame_rate };
        Ok(Some(Box::new(edgeqa::capture::camera::open(&req)?)))
    }
    #[cfg(not(feature = "camera"))]
    {
        let _ = (camera, student);
        bail!("this edgeqa was built without the `camera` feature: rebuild with it, or pass --video FILE.y4m")
    }
}

/// Opens the microphone or the WAV file.
fn audio_source(
    args: &Args,
    student: &edgeqa::pipeline::Student,
    pacing: Pacing,
) -> Result<Option<Box<dyn AudioSource>>> {
    let rate = student.manifest().audio.as_ref().map(|a| a.sample_rate);
    if let Some(path) = &args.audio {
        let rate = rate.context("this student does not listen: drop --audio")?;
        return Ok(Some(Box::new(WavSource::open(path, rate, audio_block(rate), pacing, args.looping)?)));
    }
    let Some(mic) = &args.mic else { return Ok(None) };
    #[cfg(feature = "mic")]
    {
        let rate = rate.context("this student does not listen: drop --mic")?;
        let name = (mic != "default").then_some(mic.as_str());
        Ok(Some(Box::new(edgeqa::capture::mic::open(name, rate, audio_block(rate))?)))
    }
    #[cfg(not(feature = "mic"))]
    {
        let _ = (mic, rate);
        bail!("this edgeqa was built without the `mic` feature: rebuild with it, or pass --audio FILE.wav")
    }
}

pub fn main(args: Args) -> Result<()> {
    if args.window.is_some() && args.selection != SelectionArg::Uniform {
        bail!("--window applies to --selection uniform only");
    }
    let package = args.package.clone().unwrap_or_else(|| demo_dir().join("demo.eqa"));
    let student = Arc::new(load_student(&package, &args.backend, &args.budget)?);
    let files_only = args.camera.is_none() && args.mic.is_none();
    let pacing = if args.realtime { Pacing::Realtime } else { Pacing::AsFastAsPossible };
    let video = video_source(&args, &student, pacing)?;
    let audio = audio_source(&args, &student, pacing)?;
    #[cfg(feature = "voice")]
    let mut voice = if args.voice { Some(voice::Voice::prepare(&args, &package, &student, files_only)?) } else { None };
    let cfg = LiveConfig {
        #[cfg(feature = "voice")]
        audio_tap: voice.as_ref().map(|v| Arc::clone(&v.tap)),
        history_s: args.history,
        frame_rate: args.frame_rate,
        selection: match args.selection {
            SelectionArg::Uniform => Selection::Uniform { window: args.window },
            SelectionArg::Recent => Selection::Recent,
            SelectionArg::Question => Selection::Question,
        },
        // Files read as fast as possible lose nothing; devices (and files paced like them) drop
        // the oldest frame when encoding falls behind.
        overflow: if files_only && !args.realtime { Overflow::Block } else { Overflow::DropOldest },
        ..LiveConfig::default()
    };
    let selection_line = match (cfg.selection, student.selector_candidates()) {
        (Selection::Question, None) => "uniform (the student has no selector stage for `question`)".to_string(),
        (Selection::Question, Some(r)) => format!("question ({r} candidates scored per question)"),
        (s, _) => s.name().to_string(),
    };
    let live = Arc::new(Live::start(Arc::clone(&student), video, audio, cfg)?);
    let (v, a) = live.sources();
    for s in [v, a].into_iter().flatten() {
        eprintln!("source: {s}");
    }
    let plan = live.plan();
    eprintln!(
        "history {:.1} s: frame ring {} entries, audio ring {} entries; memory plan {:.1} MiB; selection {}",
        plan.history_s,
        plan.frame_entries,
        plan.audio_entries,
        plan.memory.total() as f64 / edgeqa::budget::MIB,
        selection_line
    );
    // The listener starts first: with files read as fast as possible, the audio waits for it.
    #[cfg(feature = "voice")]
    let listening = voice.take().map(|v| v.start(Arc::clone(&live), args.json, args.ask_at_end)).transpose()?;
    if args.ask_at_end {
        live.wait_until_drained();
    }
    if let Some(f) = live.status().failure {
        bail!("{f}");
    }
    {
        let live = Arc::clone(&live);
        ctrlc::set_handler(move || {
            eprintln!("\n{}", live.status().line());
            std::process::exit(0);
        })
        .context("cannot install the Ctrl-C handler")?;
    }
    if args.status_every > 0.0 {
        let live = Arc::clone(&live);
        let every = std::time::Duration::from_secs_f64(args.status_every);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(every);
                eprintln!("{}", live.status().line());
            }
        });
    }
    #[cfg(feature = "voice")]
    let gate = listening.as_ref().and_then(|l| l.gate.clone());
    let mut latencies = Vec::new();
    let mut answer = |q: &str| -> Result<()> {
        let q = q.trim();
        if q.is_empty() {
            #[cfg(feature = "voice")]
            if let Some(g) = &gate {
                g.open();
                eprintln!("listening: say your question");
            }
            return Ok(());
        }
        match live.ask(q) {
            Ok(a) => {
                latencies.push(a.latency_ms);
                if args.json {
                    println!("{}", serde_json::to_string(&a)?);
                } else {
                    let span = |s: Option<(f64, f64)>, what: &str| {
                        s.map(|(a, b)| format!(", {what} {a:.1}–{b:.1} s")).unwrap_or_default()
                    };
                    println!(
                        "{} ({:.1}%)  [{:.2} ms{}{}]",
                        a.answer.answer,
                        a.answer.confidence * 100.0,
                        a.latency_ms,
                        span(a.frames_span_s, "frames"),
                        span(a.audio_span_s, "audio")
                    );
                }
            }
            Err(e) => {
                let line = edgeqa::error_line(&e);
                if args.json {
                    println!("{}", serde_json::json!({ "question": q, "error": line }));
                } else {
                    println!("error: {line}");
                }
            }
        }
        std::io::stdout().flush()?;
        Ok(())
    };
    if std::io::stdin().is_terminal() {
        let mut editor = rustyline::DefaultEditor::new().context("cannot set up line editing")?;
        eprintln!("ask a question (Ctrl-D or Ctrl-C to quit)");
        loop {
            eprintln!("{}", live.status().line());
            match editor.readline("? ") {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    answer(&line)?;
                }
                Err(rustyline::error::ReadlineError::Eof | rustyline::error::ReadlineError::Interrupted) => break,
                Err(e) => return Err(e).context("cannot read the question"),
            }
        }
    } else {
        for line in std::io::stdin().lock().lines() {
            answer(&line.context("cannot read a question from stdin")?)?;
        }
    }
    #[cfg(feature = "voice")]
    // Files end, and so does listening to them; a microphone is listened to until Ctrl-C.
    let spoken = listening.map(|l| l.join()).transpose()?;
    let status = live.status();
    let n = latencies.len();
    latencies.sort_by(f64::total_cmp);
    let p50 = if n > 0 { latencies[n / 2] } else { 0.0 };
    eprintln!("{}", status.line());
    #[cfg(feature = "voice")]
    if let Some(s) = spoken {
        eprintln!("answered {} spoken questions", s.answered);
        eprintln!(
            "voice: {} utterances heard, {} ignored (push-to-talk closed), {} dropped (recognizer busy); \
             {} audio blocks dropped before voice activity detection",
            s.heard, s.ignored, s.dropped, s.tap_dropped
        );
    }
    eprintln!("answered {n} questions, median latency {p50:.2} ms");
    Ok(())
}

#[cfg(feature = "voice")]
mod voice {
    use std::sync::Arc;
    use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
    use std::thread::JoinHandle;
    use std::time::Instant;

    use anyhow::{Context, Result, bail};
    use edgeqa::capture::AudioBlock;
    use edgeqa::stream::{Handoff, Live, Overflow, audio_block};
    use edgeqa::voice::ear::{Ear, TalkGate};
    use edgeqa::voice::sphinx::Recognizer;
    use edgeqa::voice::{Heard, Listener, QUEUED_UTTERANCES, Utterance};

    use super::Args;

    /// The listener for `--voice`, fed by a tap on the audio the student encodes: one thread
    /// cuts utterances out of it (an [`Ear`]), another recognizes and answers them, so the tap
    /// keeps being read while an utterance is decoded.
    pub struct Voice {
        pub tap: Arc<Handoff<AudioBlock>>,
        ear: Ear,
        recognizer: Recognizer,
        gate: Option<Arc<TalkGate>>,
        /// Whether the tap waits for the listener (files read as fast as possible).
        blocking: bool,
        min_confidence: f32,
        endpoint_ms: u32,
    }

    /// What the listener did, once the audio ended.
    pub struct Spoken {
        pub answered: usize,
        pub heard: usize,
        pub ignored: u64,
        pub dropped: u64,
        pub tap_dropped: u64,
    }

    /// The running listener.
    pub struct Listening {
        pub gate: Option<Arc<TalkGate>>,
        ear: JoinHandle<Result<u64>>,
        recognizer: JoinHandle<Result<(usize, usize)>>,
        tap: Arc<Handoff<AudioBlock>>,
    }

    impl Listening {
        /// Waits for the audio to end and every utterance to be answered.
        pub fn join(self) -> Result<Spoken> {
            let dropped = self.ear.join().map_err(|_| anyhow::anyhow!("the voice activity thread panicked"))??;
            let (answered, heard) =
                self.recognizer.join().map_err(|_| anyhow::anyhow!("the recognizer thread panicked"))??;
            let ignored = self.gate.as_ref().map_or(0, |g| g.ignored());
            Ok(Spoken { answered, heard, ignored, dropped, tap_dropped: self.tap.dropped() })
        }
    }

    impl Voice {
        pub fn prepare(
            args: &Args,
            package: &std::path::Path,
            student: &edgeqa::pipeline::Student,
            files_only: bool,
        ) -> Result<Voice> {
            let Some(audio) = &student.manifest().audio else {
                bail!("--voice listens to the student's audio, and this student does not listen")
            };
            if args.mic.is_none() && args.audio.is_none() {
                bail!("--voice needs --mic NAME or --audio FILE.wav");
            }
            let pkg = super::super::open_package(package)?;
            let vad = args.voice_args.vad()?;
            let listener = Listener::new(&pkg, &args.voice_args.speech_model, vad).context("cannot listen")?;
            let mut memory = listener.memory(QUEUED_UTTERANCES)?;
            let detector = listener.detector();
            let (segmenter, recognizer) = listener.into_parts();
            let block = audio_block(audio.sample_rate);
            let gate = args.push_to_talk.then(|| Arc::new(TalkGate::new()));
            let ear = Ear::new(segmenter, audio.sample_rate, block, gate.clone())?;
            if ear.resampling_bytes() > 0 {
                memory.add("voice: resampling to 16 kHz", ear.resampling_bytes());
            }
            // Files read as fast as possible wait for the listener; a device never does.
            let blocking = files_only && !args.realtime;
            let overflow = if blocking { Overflow::Block } else { Overflow::DropOldest };
            let tap = Arc::new(Handoff::new(overflow, || AudioBlock {
                samples: Vec::with_capacity(block),
                ..AudioBlock::default()
            }));
            eprintln!("listening for spoken questions ({detector} voice activity detection; {})", memory.breakdown());
            if gate.is_some() {
                eprintln!("push-to-talk: press Enter on an empty line, then say a question");
            }
            Ok(Voice {
                tap,
                ear,
                recognizer,
                gate,
                blocking,
                min_confidence: args.voice_args.min_confidence,
                endpoint_ms: vad.min_silence_ms,
            })
        }

        /// Listens until the audio ends, answering every question it catches (at the end, once
        /// the files are encoded, with `at_end`).
        pub fn start(self, live: Arc<Live>, json: bool, at_end: bool) -> Result<Listening> {
            let Voice { tap, mut ear, mut recognizer, gate, blocking, min_confidence, endpoint_ms } = self;
            let (tx, rx) = sync_channel::<Utterance>(QUEUED_UTTERANCES);
            let ear_tap = Arc::clone(&tap);
            let cut = move || -> Result<u64> {
                let mut dropped = 0;
                let mut send = |u: Utterance, tx: &SyncSender<Utterance>| -> bool {
                    if blocking {
                        return tx.send(u).is_ok();
                    }
                    match tx.try_send(u) {
                        Ok(()) => true,
                        Err(TrySendError::Full(u)) => {
                            dropped += 1;
                            log::warn!(
                                "dropped a spoken question ({:.1}–{:.1} s): still recognizing the one before",
                                u.start_s,
                                u.speech_end_s
                            );
                            true
                        }
                        Err(TrySendError::Disconnected(_)) => false,
                    }
                };
                while let Some(b) = ear_tap.take() {
                    let r = ear.push(&b.samples);
                    ear_tap.release(b);
                    for u in r? {
                        if !send(u, &tx) {
                            // The recognizer stopped (on an error it reports).
                            return Ok(dropped);
                        }
                    }
                }
                if let Some(u) = ear.finish() {
                    send(u, &tx);
                }
                Ok(dropped)
            };
            let answerer = Answerer { live, json, min_confidence, endpoint_ms };
            let recognize = move || answerer.run(&mut recognizer, rx, at_end);
            let spawn = |name: &str| std::thread::Builder::new().name(name.into());
            let recognizer = spawn("edgeqa-voice").spawn(recognize).context("cannot start the recognizer")?;
            let ear = spawn("edgeqa-vad").spawn(cut).context("cannot start the voice activity thread")?;
            Ok(Listening { gate, ear, recognizer, tap })
        }
    }

    /// Recognizes the utterances and answers them.
    struct Answerer {
        live: Arc<Live>,
        json: bool,
        min_confidence: f32,
        endpoint_ms: u32,
    }

    impl Answerer {
        /// Until the utterances end: how many were answered and how many heard.
        fn run(&self, recognizer: &mut Recognizer, rx: Receiver<Utterance>, at_end: bool) -> Result<(usize, usize)> {
            let (mut answered, mut n, mut later) = (0, 0, Vec::new());
            for u in rx {
                let h = Heard::new(&u, recognizer.recognize(&u.samples)?);
                n += 1;
                if at_end {
                    later.push(h);
                } else {
                    answered += usize::from(self.answer(&h)?);
                }
            }
            if at_end {
                self.live.wait_until_drained();
                for h in &later {
                    answered += usize::from(self.answer(h)?);
                }
            }
            Ok((answered, n))
        }

        /// Prints what was heard and the answer; whether it was answered.
        fn answer(&self, h: &Heard) -> Result<bool> {
            let (live, json) = (&self.live, self.json);
            let text = h.transcript.accepted(self.min_confidence);
            let t0 = Instant::now();
            let answer = text.map(|q| live.ask(q));
            let answered = matches!(answer, Some(Ok(_)));
            let answer_ms = t0.elapsed().as_secs_f64() * 1e3;
            let recognize_ms = h.transcript.decode_ms;
            // The end of speech is known once `--vad-min-silence-ms` of silence has followed it.
            let end_to_answer = f64::from(self.endpoint_ms) + recognize_ms + answer_ms;
            if json {
                let (a, e) = match &answer {
                    Some(Ok(a)) => (Some(a), None),
                    Some(Err(e)) => (None, Some(edgeqa::error_line(e))),
                    None => (None, None),
                };
                println!(
                    "{}",
                    serde_json::json!({
                        "spoken": true,
                        "speech_s": [h.start_s, h.speech_end_s],
                        "transcript": h.transcript.text,
                        "confidence": h.transcript.confidence,
                        "accepted": text.is_some(),
                        "question": text,
                        "answer": a.map(|a| &a.answer.answer),
                        "answer_confidence": a.map(|a| a.answer.confidence),
                        "error": e,
                        "timings_ms": {
                            "endpoint": self.endpoint_ms,
                            "recognize": recognize_ms,
                            "answer": a.map(|_| answer_ms),
                            "speech_end_to_answer": a.map(|_| end_to_answer),
                        },
                    })
                );
            } else {
                println!("{}", super::super::voice::heard_line(h, self.min_confidence));
                match answer {
                    Some(Ok(a)) => println!(
                        "{} ({:.1}%)  [speech end to answer {end_to_answer:.0} ms: endpoint {} ms, recognize {recognize_ms:.0} ms, answer {answer_ms:.1} ms]",
                        a.answer.answer,
                        a.answer.confidence * 100.0,
                        self.endpoint_ms
                    ),
                    Some(Err(e)) => println!("error: {}", edgeqa::error_line(&e)),
                    None => {}
                }
            }
            std::io::Write::flush(&mut std::io::stdout())?;
            Ok(answered)
        }
    }
}
