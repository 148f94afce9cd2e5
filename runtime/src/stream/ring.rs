//! Fixed-capacity feature rings: R entries of D `f32` values, each with its timestamp, in one
//! allocation made at creation. Pushing overwrites the oldest entry when full; nothing
//! allocates afterwards.
//!
//! A ring of our own rather than `heapless`: R is chosen at run time (from `--history` and the
//! board's budget), where `heapless` fixes capacities at compile time.

/// R entries of D values with timestamps (seconds since the source started).
#[derive(Debug, Clone)]
pub struct FeatureRing {
    dim: usize,
    capacity: usize,
    values: Vec<f32>,
    stamps: Vec<f64>,
    /// Index of the oldest entry.
    head: usize,
    len: usize,
    pushed: u64,
}

impl FeatureRing {
    /// A ring of `capacity` entries of `dim` values (both at least 1).
    pub fn new(capacity: usize, dim: usize) -> FeatureRing {
        let (capacity, dim) = (capacity.max(1), dim.max(1));
        FeatureRing {
            dim,
            capacity,
            values: vec![0.0; capacity * dim],
            stamps: vec![0.0; capacity],
            head: 0,
            len: 0,
            pushed: 0,
        }
    }

    /// Bytes a ring of `capacity` entries of `dim` values holds.
    pub fn bytes_for(capacity: usize, dim: usize) -> u64 {
        (capacity * dim * 4 + capacity * 8) as u64
    }

    /// Values per entry.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Most entries held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries pushed since creation (including those overwritten since).
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Appends an entry (`values.len() == dim`), overwriting the oldest when full.
    pub fn push(&mut self, stamp: f64, values: &[f32]) {
        assert_eq!(values.len(), self.dim, "FeatureRing::push: entry of {} values, ring of {}", values.len(), self.dim);
        let slot = (self.head + self.len) % self.capacity;
        self.values[slot * self.dim..(slot + 1) * self.dim].copy_from_slice(values);
        self.stamps[slot] = stamp;
        if self.len == self.capacity {
            self.head = (self.head + 1) % self.capacity;
        } else {
            self.len += 1;
        }
        self.pushed += 1;
    }

    fn slot(&self, i: usize) -> usize {
        assert!(i < self.len, "FeatureRing: entry {i} of {}", self.len);
        (self.head + i) % self.capacity
    }

    /// Values of entry `i`, 0 being the oldest held.
    pub fn get(&self, i: usize) -> &[f32] {
        let s = self.slot(i);
        &self.values[s * self.dim..(s + 1) * self.dim]
    }

    /// Timestamp of entry `i`, 0 being the oldest held.
    pub fn stamp(&self, i: usize) -> f64 {
        self.stamps[self.slot(i)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn overwrites_the_oldest() {
        let mut r = FeatureRing::new(3, 2);
        assert!(r.is_empty());
        for k in 0..5 {
            r.push(k as f64, &[k as f32, -(k as f32)]);
        }
        assert_eq!((r.len(), r.pushed()), (3, 5));
        assert_eq!((r.get(0), r.stamp(0)), (&[2.0, -2.0][..], 2.0));
        assert_eq!((r.get(2), r.stamp(2)), (&[4.0, -4.0][..], 4.0));
    }

    proptest! {
        #[test]
        fn holds_the_last_capacity_entries(cap in 1usize..9, n in 0usize..40) {
            let mut r = FeatureRing::new(cap, 1);
            for k in 0..n {
                r.push(k as f64, &[k as f32]);
            }
            let held: Vec<f32> = (0..r.len()).map(|i| r.get(i)[0]).collect();
            let want: Vec<f32> = (n.saturating_sub(cap)..n).map(|k| k as f32).collect();
            prop_assert_eq!(held, want);
        }
    }
}
