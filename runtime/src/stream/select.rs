//! Which ring entries a question looks at: the [`Selector`] seam.
//!
//! - [`Selection::Uniform`]: entries spread uniformly (as [`sample_indices`] spreads a clip's
//!   frames) over the last `window` seconds, or over everything held without a window — so a
//!   question asked after a whole clip looks at the very frames `edgeqa ask` uses for it;
//! - [`Selection::Recent`]: the most recent entries;
//! - [`Selection::Question`]: the student's `selector` stage scores candidate entries for the
//!   question and [`question_span`] turns the scores into the part of the stream to answer from
//!   (`Live::ask` runs it: it needs the question, which [`Selector::select`] does not see).

use crate::preprocess::image::sample_indices;
use crate::stream::ring::FeatureRing;

/// Chooses `wanted` entries of a ring.
pub trait Selector: Send + Sync {
    /// Appends to `out` the indices (0 = oldest held) of `wanted` entries of `ring`, oldest
    /// first, repeating entries when fewer are held. Leaves `out` empty for an empty ring.
    fn select(&self, ring: &FeatureRing, wanted: usize, out: &mut Vec<usize>);
}

/// The built-in selectors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Selection {
    /// Uniform over the last `window` seconds (everything held when `None`).
    Uniform { window: Option<f64> },
    /// The most recent entries.
    Recent,
    /// The part of the stream the student's selector finds relevant to the question
    /// ([`question_span`]); entries spread uniformly over it.
    Question,
}

impl Selection {
    /// The name answers report: `uniform` or `recent`.
    pub fn name(&self) -> &'static str {
        match self {
            Selection::Uniform { .. } => "uniform",
            Selection::Recent => "recent",
            Selection::Question => "question",
        }
    }
}

impl Selector for Selection {
    fn select(&self, ring: &FeatureRing, wanted: usize, out: &mut Vec<usize>) {
        out.clear();
        let n = ring.len();
        if n == 0 {
            return;
        }
        let first = match *self {
            Selection::Uniform { window: Some(w) } => {
                let newest = ring.stamp(n - 1);
                // Entries are in time order: the first one inside the window.
                let mut lo = 0;
                let mut hi = n - 1;
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if ring.stamp(mid) < newest - w { lo = mid + 1 } else { hi = mid }
                }
                lo
            }
            Selection::Uniform { window: None } | Selection::Question => 0,
            Selection::Recent => n.saturating_sub(wanted),
        };
        out.extend(sample_indices(n - first, wanted).into_iter().map(|i| first + i));
    }
}

/// The part `start..end` (end exclusive) of a stream of `length` frames to answer a question
/// from, given a selector's `scores` (logits) for candidate frames `frames` (a frame may be a
/// candidate more than once):
///
/// 1. the frames whose candidates score above zero (relevance over one half), or, when none
///    does, the `wanted` best-scoring frames (ties to the earlier candidate);
/// 2. the part from the first to the last of them;
/// 3. the coverage guard: a part shorter than `wanted` frames grows to `wanted` around its centre
///    (inside the stream), so a short burst still gets `wanted` distinct frames around it rather
///    than every slot on a few repeated frames.
///
/// `training/selector.py` (`chosen_span`) applies the same rule when it reports how well the
/// selector finds the ground-truth windows. Returns `None` for no candidates.
pub fn question_span(scores: &[f32], frames: &[usize], length: usize, wanted: usize) -> Option<(usize, usize)> {
    let n = scores.len().min(frames.len());
    // The frames of the candidates scoring above zero (no sorting: this runs on every question).
    let positive = (0..n).filter(|&c| scores[c] > 0.0).map(|c| frames[c]);
    let (lo, hi) = match positive
        .fold(None, |span: Option<(usize, usize)>, f| Some(span.map_or((f, f), |(lo, hi)| (lo.min(f), hi.max(f)))))
    {
        Some((lo, hi)) => (lo, hi + 1),
        None => {
            // None does: the `wanted` best-scoring distinct frames.
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            let mut picked: Vec<usize> = Vec::with_capacity(wanted);
            for c in order {
                if picked.len() >= wanted {
                    break;
                }
                if !picked.contains(&frames[c]) {
                    picked.push(frames[c]);
                }
            }
            (*picked.iter().min()?, picked.iter().max()? + 1)
        }
    };
    if hi - lo >= wanted || length <= wanted {
        return Some(if hi - lo >= wanted { (lo, hi) } else { (0, length) });
    }
    let lo = (lo.saturating_sub((wanted - (hi - lo)) / 2)).min(length - wanted);
    Some((lo, lo + wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize) -> FeatureRing {
        let mut r = FeatureRing::new(32, 1);
        for k in 0..n {
            r.push(k as f64 * 0.5, &[k as f32]);
        }
        r
    }

    #[test]
    fn uniform_recent_and_windowed() {
        let mut out = Vec::new();
        Selection::Uniform { window: None }.select(&ring(16), 8, &mut out);
        assert_eq!(out, sample_indices(16, 8));
        Selection::Recent.select(&ring(16), 4, &mut out);
        assert_eq!(out, vec![12, 13, 14, 15]);
        Selection::Recent.select(&ring(2), 4, &mut out);
        assert_eq!(out, vec![0, 0, 1, 1]);
        // Stamps 0, 0.5, ..., 7.5: the last 2 s are entries 11..=15.
        Selection::Uniform { window: Some(2.0) }.select(&ring(16), 3, &mut out);
        assert_eq!(out, vec![11, 13, 15]);
        Selection::Uniform { window: None }.select(&ring(0), 3, &mut out);
        assert!(out.is_empty());
        assert_eq!(Selection::Question.name(), "question");
    }

    #[test]
    fn the_question_span_holds_the_relevant_frames_and_at_least_wanted() {
        let frames: Vec<usize> = (0..100).collect();
        let mut scores = vec![-3.0f32; 100];
        for s in &mut scores[40..56] {
            *s = 2.0;
        }
        assert_eq!(question_span(&scores, &frames, 100, 8), Some((40, 56)), "every frame above zero");
        // A 2-frame burst grows to 8 frames around it; at the stream's end it stays inside.
        let mut burst = vec![-3.0f32; 100];
        burst[50] = 1.0;
        burst[51] = 1.0;
        assert_eq!(question_span(&burst, &frames, 100, 8), Some((47, 55)));
        let mut end = vec![-3.0f32; 100];
        end[99] = 1.0;
        assert_eq!(question_span(&end, &frames, 100, 8), Some((92, 100)));
        // Nothing above zero: the 8 best frames, wherever they are.
        let mut low: Vec<f32> = (0..100).map(|i| -100.0 + i as f32 * 0.01).collect();
        low[10] = -0.5;
        assert_eq!(question_span(&low, &frames, 100, 8), Some((10, 100)));
        // One frame above zero: only it counts, grown to 8 frames.
        let mut one = vec![-1.0f32; 100];
        one[30] = 0.5;
        assert_eq!(question_span(&one, &frames, 100, 8), Some((27, 35)));
        // Candidates repeat frames of a short stream: 8 distinct frames are still taken.
        let twice: Vec<usize> = (0..64).map(|c| c / 2).collect();
        let mut s2 = vec![-1.0f32; 64];
        s2[20] = 5.0;
        s2[21] = 5.0;
        assert_eq!(question_span(&s2, &twice, 32, 8), Some((7, 15)));
        assert_eq!(question_span(&[1.0; 4], &[0, 1, 2, 3], 4, 8), Some((0, 4)), "a stream shorter than wanted");
        assert_eq!(question_span(&[], &[], 10, 8), None);
    }

    /// The rule as first written: every candidate in score order.
    fn span_by_sorting(scores: &[f32], frames: &[usize], length: usize, wanted: usize) -> Option<(usize, usize)> {
        let mut order: Vec<usize> = (0..scores.len().min(frames.len())).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let first = *order.first()?;
        let mut picked: Vec<usize> = Vec::new();
        for c in order {
            if scores[c] <= 0.0 && (picked.len() >= wanted || scores[first] > 0.0) {
                break;
            }
            if !picked.contains(&frames[c]) {
                picked.push(frames[c]);
            }
        }
        let (lo, hi) = (*picked.iter().min()?, picked.iter().max()? + 1);
        if hi - lo >= wanted || length <= wanted {
            return Some(if hi - lo >= wanted { (lo, hi) } else { (0, length) });
        }
        let lo = (lo.saturating_sub((wanted - (hi - lo)) / 2)).min(length - wanted);
        Some((lo, lo + wanted))
    }

    proptest::proptest! {
        #[test]
        fn the_span_is_the_rule_without_sorting(
            scores in proptest::collection::vec(-4.0f32..4.0, 0..80),
            length in 1usize..200,
            wanted in 1usize..12,
        ) {
            let frames = sample_indices(length, scores.len());
            proptest::prop_assert_eq!(
                question_span(&scores, &frames, length, wanted),
                span_by_sorting(&scores, &frames, length, wanted)
            );
        }
    }
}
