//! The speech recognizer: CMU PocketSphinx (Debian's `libpocketsphinx3`, acoustic model from
//! `pocketsphinx-en-us`) searching only the package's question grammar.
//!
//! Each utterance is decoded against the grammar without fillers between words and against a
//! free loop of the acoustic model's phones; when that transcript is doubtful, also against the
//! grammar with fillers (see [`Recognizer::recognize`]). A grammar's path can hardly fit the
//! sound better than the free loop;
//! how much worse it fits, per 10 ms frame, is the [`Transcript::margin`] and gives the
//! confidence, so a question the grammar cannot cover, or no speech at all, is refused rather
//! than forced onto the nearest question.
//!
//! The bindings below are the few C functions used, declared by hand from `pocketsphinx.h` and
//! `sphinxbase/cmd_ln.h` of PocketSphinx 5prealpha; `build.rs` links the libraries through
//! pkg-config.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::time::Instant;

use edgeqa_format::manifest::VoiceSpec;

use super::{Transcript, VOICE_RATE, VoiceError, confidence};

#[allow(non_camel_case_types)]
mod ffi {
    use super::*;

    #[repr(C)]
    pub struct ps_decoder_t {
        _opaque: [u8; 0],
    }
    #[repr(C)]
    pub struct cmd_ln_t {
        _opaque: [u8; 0],
    }
    #[repr(C)]
    pub struct arg_t {
        _opaque: [u8; 0],
    }

    #[link(name = "pocketsphinx")]
    #[link(name = "sphinxbase")]
    unsafe extern "C" {
        pub fn ps_args() -> *const arg_t;
        pub fn cmd_ln_parse_r(
            inout: *mut cmd_ln_t,
            defn: *const arg_t,
            argc: i32,
            argv: *mut *mut c_char,
            strict: i32,
        ) -> *mut cmd_ln_t;
        pub fn cmd_ln_free_r(cmdln: *mut cmd_ln_t) -> c_int;
        pub fn ps_init(config: *mut cmd_ln_t) -> *mut ps_decoder_t;
        pub fn ps_free(ps: *mut ps_decoder_t) -> c_int;
        pub fn ps_add_word(ps: *mut ps_decoder_t, word: *const c_char, phones: *const c_char, update: c_int) -> c_int;
        pub fn ps_set_jsgf_string(ps: *mut ps_decoder_t, name: *const c_char, jsgf: *const c_char) -> c_int;
        pub fn ps_set_search(ps: *mut ps_decoder_t, name: *const c_char) -> c_int;
        pub fn ps_start_utt(ps: *mut ps_decoder_t) -> c_int;
        pub fn ps_process_raw(
            ps: *mut ps_decoder_t,
            data: *const i16,
            n_samples: usize,
            no_search: c_int,
            full_utt: c_int,
        ) -> c_int;
        pub fn ps_end_utt(ps: *mut ps_decoder_t) -> c_int;
        pub fn ps_get_hyp(ps: *mut ps_decoder_t, out_best_score: *mut i32) -> *const c_char;
        pub fn ps_get_n_frames(ps: *mut ps_decoder_t) -> c_int;
        pub fn err_set_logfp(stream: *mut c_void);
        pub fn cmd_ln_set_int_r(cmdln: *mut cmd_ln_t, name: *const c_char, iv: std::ffi::c_long);
    }
}

/// Where Debian's `pocketsphinx-en-us` puts the US English acoustic model.
pub const DEFAULT_ACOUSTIC_MODEL: &str = "/usr/share/pocketsphinx/model/en-us/en-us";
/// Files an acoustic model directory must have.
const MODEL_FILES: [&str; 6] = ["mdef", "means", "variances", "transition_matrices", "feat.params", "noisedict"];
/// The phones of `cmusphinx-en-us`, each a word of the free phone loop.
const PHONES: [&str; 39] = [
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH", "K",
    "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
];
/// Decoder options: wide beams, as the grammar is small (narrow ones lose the path on
/// fast or accented speech and return nothing); and no silence removal in the front end, as
/// the utterance was already cut by our voice activity detection: PocketSphinx's own energy
/// detector drops quiet speech frames in noise (at 10 dB SNR 84.2% → 85.8% of the test
/// questions heard right with it off, clean speech unchanged).
const OPTIONS: [&str; 8] = ["-beam", "1e-80", "-pbeam", "1e-80", "-wbeam", "1e-60", "-remove_silence", "no"];
/// The package's grammar with filler words (silence, noise) allowed between its words.
const QUESTIONS: &CStr = c"questions";
/// The same grammar with no fillers between words: on clean speech it keeps a short word from
/// being swallowed by a filler ("where is the magenta object" heard as "where is the circle").
const QUESTIONS_TIGHT: &CStr = c"questions_tight";
/// Confidence at which the tight grammar's transcript is taken without decoding the grammar
/// with fillers too.
const TIGHT_ACCEPT: f32 = 0.9;
const PHONE_LOOP: &CStr = c"phones";

/// Memory the decoder needs besides the acoustic model: search, lattice, feature buffers.
const SEARCH_BYTES: u64 = 4 << 20;

/// Memory a recognizer takes with the acoustic model in `model_dir`: the model's files, which
/// are read whole, plus [`SEARCH_BYTES`]. (`edgeqa ask` with a spoken question peaks 11 MB above
/// the typed question with Debian's 6.6 MB en-us model, see docs/voice.md.)
pub fn memory_estimate(model_dir: &Path) -> Result<u64, VoiceError> {
    let mut total = SEARCH_BYTES;
    for f in MODEL_FILES.iter().chain(&["sendump", "mixture_weights"]) {
        match std::fs::metadata(model_dir.join(f)) {
            Ok(m) => total += m.len(),
            Err(_) if !MODEL_FILES.contains(f) => {}
            Err(e) => {
                return Err(VoiceError::AcousticModel {
                    path: model_dir.display().to_string(),
                    reason: format!("`{f}`: {e}"),
                });
            }
        }
    }
    Ok(total)
}

/// A loaded recognizer for one package's grammar. Not shared between threads; each thread that
/// listens loads its own.
pub struct Recognizer {
    ps: *mut ffi::ps_decoder_t,
    config: *mut ffi::cmd_ln_t,
    model: PathBuf,
    pcm: Vec<i16>,
    /// Phones per word of the grammar (its first pronunciation).
    phones: std::collections::HashMap<String, usize>,
}

// The decoder is owned and used by one thread at a time (`&mut self`); PocketSphinx keeps no
// per-thread state, and logging is switched off once for the process.
unsafe impl Send for Recognizer {}

impl std::fmt::Debug for Recognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recognizer").field("model", &self.model).finish()
    }
}

fn cstring(s: &str, what: &str) -> Result<CString, VoiceError> {
    CString::new(s).map_err(|_| VoiceError::Recognizer(format!("{what} contains a NUL byte")))
}

impl Recognizer {
    /// Loads the acoustic model from `model_dir` (see [`DEFAULT_ACOUSTIC_MODEL`]) with the
    /// package's grammar and pronunciations.
    pub fn new(voice: &VoiceSpec, model_dir: &Path) -> Result<Recognizer, VoiceError> {
        if voice.acoustic_model != "cmusphinx-en-us" {
            return Err(VoiceError::UnknownAcousticModel(voice.acoustic_model.clone()));
        }
        let shown = model_dir.display().to_string();
        for f in MODEL_FILES {
            if !model_dir.join(f).is_file() {
                return Err(VoiceError::AcousticModel { path: shown, reason: format!("no file `{f}`") });
            }
        }
        static QUIET: std::sync::Once = std::sync::Once::new();
        // SAFETY: switches PocketSphinx's global log off before any decoder exists.
        QUIET.call_once(|| unsafe { ffi::err_set_logfp(std::ptr::null_mut()) });

        let mut args: Vec<CString> = vec![cstring("-hmm", "option")?, cstring(&shown, "model path")?];
        // An empty dictionary: the package's words are added below.
        args.extend([cstring("-dict", "option")?, cstring("/dev/null", "option")?]);
        for o in OPTIONS {
            args.push(cstring(o, "option")?);
        }
        let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr() as *mut c_char).collect();
        // SAFETY: argv points at NUL-terminated strings that outlive the call; cmd_ln copies them.
        let config = unsafe {
            ffi::cmd_ln_parse_r(std::ptr::null_mut(), ffi::ps_args(), argv.len() as i32, argv.as_mut_ptr(), 1)
        };
        if config.is_null() {
            return Err(VoiceError::Recognizer("the decoder options were refused".into()));
        }
        // SAFETY: config is a valid configuration; ps_init takes its own reference.
        let ps = unsafe { ffi::ps_init(config) };
        let phones = voice
            .dictionary
            .iter()
            .filter(|(w, _)| !w.contains('('))
            .map(|(w, p)| (w.clone(), p.split_whitespace().count()))
            .collect();
        let r = Recognizer { ps, config, model: model_dir.to_path_buf(), pcm: Vec::new(), phones };
        if ps.is_null() {
            return Err(VoiceError::AcousticModel { path: shown, reason: "PocketSphinx could not load it".into() });
        }
        let words: Vec<(&String, &String)> = voice.dictionary.iter().collect();
        let phone_words: Vec<(String, String)> =
            PHONES.iter().map(|p| (format!("ph_{}", p.to_lowercase()), p.to_string())).collect();
        let all: Vec<(&str, &str)> = words
            .iter()
            .map(|(w, p)| (w.as_str(), p.as_str()))
            .chain(phone_words.iter().map(|(w, p)| (w.as_str(), p.as_str())))
            .collect();
        for (i, (word, phones)) in all.iter().enumerate() {
            let (w, p) = (cstring(word, "a word")?, cstring(phones, "a pronunciation")?);
            let update = c_int::from(i + 1 == all.len());
            // SAFETY: r.ps is a live decoder; both strings are NUL-terminated.
            if unsafe { ffi::ps_add_word(r.ps, w.as_ptr(), p.as_ptr(), update) } < 0 {
                return Err(VoiceError::Recognizer(format!(
                    "the pronunciation of `{word}` ({phones}) uses a phone the acoustic model lacks"
                )));
            }
        }
        let grammar = cstring(&voice.grammar, "the grammar")?;
        // SAFETY: as above.
        if unsafe { ffi::ps_set_jsgf_string(r.ps, QUESTIONS.as_ptr(), grammar.as_ptr()) } < 0 {
            return Err(VoiceError::Recognizer(
                "the package's JSGF grammar does not compile (a word without a pronunciation?)".into(),
            ));
        }
        // The tight search reads `-fsgusefiller` when it is built; the phone loop keeps fillers.
        // SAFETY: r.config is the live configuration the decoder holds; the name is a C string.
        unsafe { ffi::cmd_ln_set_int_r(r.config, c"-fsgusefiller".as_ptr(), 0) };
        // SAFETY: as above.
        let tight = unsafe { ffi::ps_set_jsgf_string(r.ps, QUESTIONS_TIGHT.as_ptr(), grammar.as_ptr()) };
        // SAFETY: as above.
        unsafe { ffi::cmd_ln_set_int_r(r.config, c"-fsgusefiller".as_ptr(), 1) };
        if tight < 0 {
            return Err(VoiceError::Recognizer("the package's JSGF grammar does not compile without fillers".into()));
        }
        let loop_words: Vec<&str> = phone_words.iter().map(|(w, _)| w.as_str()).collect();
        let phone_loop = format!(
            "#JSGF V1.0;\ngrammar phones;\n<phone> = {};\npublic <phones> = <phone>+;\n",
            loop_words.join(" | ")
        );
        let phone_loop = cstring(&phone_loop, "the phone loop")?;
        // SAFETY: as above.
        if unsafe { ffi::ps_set_jsgf_string(r.ps, PHONE_LOOP.as_ptr(), phone_loop.as_ptr()) } < 0 {
            return Err(VoiceError::Recognizer("the phone loop does not compile".into()));
        }
        Ok(r)
    }

    /// The acoustic model directory.
    pub fn model(&self) -> &Path {
        &self.model
    }

    /// Decodes one search over `self.pcm`: the hypothesis, its score and the frame count.
    fn decode(&mut self, search: &CStr) -> Result<(Option<String>, i32, i32), VoiceError> {
        let fail = |what: &str| VoiceError::Recognizer(format!("{what} failed"));
        // SAFETY: self.ps is a live decoder owned by self; pcm outlives the calls.
        unsafe {
            if ffi::ps_set_search(self.ps, search.as_ptr()) < 0 {
                return Err(fail("choosing the search"));
            }
            if ffi::ps_start_utt(self.ps) < 0 {
                return Err(fail("starting the utterance"));
            }
            if ffi::ps_process_raw(self.ps, self.pcm.as_ptr(), self.pcm.len(), 0, 1) < 0 {
                ffi::ps_end_utt(self.ps);
                return Err(fail("decoding"));
            }
            if ffi::ps_end_utt(self.ps) < 0 {
                return Err(fail("ending the utterance"));
            }
            let mut score = 0i32;
            let hyp = ffi::ps_get_hyp(self.ps, &mut score);
            let text = if hyp.is_null() {
                None
            } else {
                Some(CStr::from_ptr(hyp).to_string_lossy().trim().to_string()).filter(|s| !s.is_empty())
            };
            Ok((text, score, ffi::ps_get_n_frames(self.ps)))
        }
    }

    /// Recognizes one utterance of mono samples at [`VOICE_RATE`] in `[-1, 1]`.
    ///
    /// The grammar without fillers is decoded first, then the free phone loop, whose per-frame
    /// score difference is the margin. Below [`TIGHT_ACCEPT`] the grammar with fillers (which
    /// noise between words needs) is decoded too, and the transcript with the larger margin
    /// wins, the tight one on a tie.
    pub fn recognize(&mut self, samples: &[f32]) -> Result<Transcript, VoiceError> {
        let t0 = Instant::now();
        self.set_pcm(samples);
        let audio_s = samples.len() as f64 / f64::from(VOICE_RATE);
        let (tight, tight_score, frames) = self.decode(QUESTIONS_TIGHT)?;
        let mut free = None;
        let mut best: (Option<String>, f32) = (None, f32::NEG_INFINITY);
        if tight.is_some() && frames > 0 {
            let f = self.decode(PHONE_LOOP)?.1;
            free = Some(f);
            best = (tight, (tight_score as f32 - f as f32) / frames as f32);
        }
        let tight_conf = match &best.0 {
            Some(t) => confidence(best.1, self.phone_rate(Some(t), audio_s)),
            None => 0.0,
        };
        if tight_conf < TIGHT_ACCEPT {
            let (loose, loose_score, loose_frames) = self.decode(QUESTIONS)?;
            if loose.is_some() && loose_frames > 0 {
                let f = match free {
                    Some(f) => f,
                    None => self.decode(PHONE_LOOP)?.1,
                };
                let m = (loose_score as f32 - f as f32) / loose_frames as f32;
                if m > best.1 {
                    best = (loose, m);
                }
            }
        }
        let (text, margin) = best;
        let phone_rate = self.phone_rate(text.as_deref(), audio_s);
        let conf = if text.is_some() { confidence(margin, phone_rate) } else { 0.0 };
        let margin = if margin.is_finite() { margin } else { -1e3 };
        Ok(Transcript {
            text,
            margin,
            phone_rate,
            confidence: conf,
            audio_s,
            decode_ms: t0.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Holds `samples` (mono, [`VOICE_RATE`], `[-1, 1]`; anything else clipped, non-finite
    /// values silenced) as the 16-bit samples PocketSphinx decodes.
    fn set_pcm(&mut self, samples: &[f32]) {
        self.pcm.clear();
        self.pcm.extend(samples.iter().map(|s| {
            let s = if s.is_finite() { s.clamp(-1.0, 1.0) } else { 0.0 };
            (s * 32767.0).round() as i16
        }));
    }

    /// Milliseconds to decode `samples` against all three searches (the most
    /// [`Recognizer::recognize`] does), whatever they hold.
    pub fn time_all_searches(&mut self, samples: &[f32]) -> Result<f64, VoiceError> {
        let t0 = Instant::now();
        self.set_pcm(samples);
        for search in [QUESTIONS_TIGHT, PHONE_LOOP, QUESTIONS] {
            self.decode(search)?;
        }
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    }

    /// Phones per second of audio in `text` (each word's first pronunciation).
    fn phone_rate(&self, text: Option<&str>, audio_s: f64) -> f32 {
        let phones: usize =
            text.map_or(0, |t| t.split_whitespace().map(|w| self.phones.get(w).copied().unwrap_or(1)).sum());
        phones as f32 / audio_s.max(1e-3) as f32
    }
}

impl Drop for Recognizer {
    fn drop(&mut self) {
        // SAFETY: both were created in `new` and are freed once here.
        unsafe {
            if !self.ps.is_null() {
                ffi::ps_free(self.ps);
            }
            if !self.config.is_null() {
                ffi::cmd_ln_free_r(self.config);
            }
        }
    }
}
