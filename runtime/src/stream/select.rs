//! Which ring entries a question looks at: the [`Selector`] seam.
//!
//! - [`Selection::Uniform`]: entries spread uniformly (as [`sample_indices`] spreads a clip's
//!   frames) over the last `window` seconds, or over everything held without a window — so a
//!   question asked after a whole clip looks at the very frames `edgeqa ask` uses for it;
//! - [`Selection::Recent`]: the most recent entries.
//!
//! A question-aware selector (scoring entries against the question) fits the same trait.

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
}

impl Selection {
    /// The name answers report: `uniform` or `recent`.
    pub fn name(&self) -> &'static str {
        match self {
            Selection::Uniform { .. } => "uniform",
            Selection::Recent => "recent",
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
            Selection::Uniform { window: None } => 0,
            Selection::Recent => n.saturating_sub(wanted),
        };
        out.extend(sample_indices(n - first, wanted).into_iter().map(|i| first + i));
    }
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
    }
}
