//! Synthetic inputs for a stage: deterministic by seed, of each input's declared dtype and shape.
//!
//! For benchmarks, backend comparisons and tests that need plausible inputs without a data set:
//! - `f32`: uniform in [-1, 1);
//! - integer inputs whose name contains `mask`: all 1 (attend to every position);
//! - integer inputs whose name contains `type` (token types): all 0;
//! - other `i64` / `i32` inputs (token ids, indices): uniform in [0, [`ID_RANGE`]), valid for
//!   any embedding table of at least that many rows;
//! - `u8` / `i8`: uniform over the whole type; `bool`: all true.
//!
//! The generator is SplitMix64 (a fixed, documented sequence), so the same seed gives the same
//! tensors on every platform and in every release.

use crate::manifest::{DType, TensorInfo};
use crate::tensor::{Tensor, TensorData};

/// Integer ids are drawn from `0..ID_RANGE`.
pub const ID_RANGE: u64 = 16;

/// A seeded stream of pseudo-random values (SplitMix64).
#[derive(Debug, Clone)]
pub struct Synthetic {
    state: u64,
}

impl Synthetic {
    /// A stream starting from `seed`.
    pub fn new(seed: u64) -> Synthetic {
        Synthetic { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1) (24 random bits, so every value is exact in f32).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// `n` values uniform in [-1, 1).
    pub fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }

    /// A tensor of `info`'s dtype and shape (see the module docs for the values).
    pub fn tensor(&mut self, info: &TensorInfo) -> Tensor {
        let n = info.len();
        let name = info.name.to_ascii_lowercase();
        let int = |s: &mut Synthetic| -> i64 {
            if name.contains("mask") {
                1
            } else if name.contains("type") {
                0
            } else {
                (s.next_u64() % ID_RANGE) as i64
            }
        };
        let data = match info.dtype {
            DType::F32 => TensorData::F32(self.f32s(n)),
            DType::I64 => TensorData::I64((0..n).map(|_| int(self)).collect()),
            DType::I32 => TensorData::I32((0..n).map(|_| int(self) as i32).collect()),
            DType::U8 => TensorData::U8((0..n).map(|_| self.next_u64() as u8).collect()),
            DType::I8 => TensorData::I8((0..n).map(|_| self.next_u64() as i8).collect()),
            DType::Bool => TensorData::Bool(vec![true; n]),
        };
        Tensor { shape: info.shape.clone(), data }
    }
}

/// One tensor per input, in order, from one stream seeded with `seed`.
pub fn inputs(infos: &[TensorInfo], seed: u64) -> Vec<Tensor> {
    let mut s = Synthetic::new(seed);
    infos.iter().map(|i| s.tensor(i)).collect()
}

/// `n` f32 values uniform in [-1, 1) from `seed`.
pub fn f32s(n: usize, seed: u64) -> Vec<f32> {
    Synthetic::new(seed).f32s(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, dtype: DType, shape: &[usize]) -> TensorInfo {
        TensorInfo { name: name.into(), dtype, shape: shape.to_vec() }
    }

    #[test]
    fn the_same_seed_gives_the_same_tensors_and_another_seed_others() {
        let infos = [info("x", DType::F32, &[2, 3]), info("ids", DType::I64, &[1, 8])];
        assert_eq!(inputs(&infos, 7), inputs(&infos, 7));
        assert_ne!(inputs(&infos, 7), inputs(&infos, 8));
        // The sequence is fixed: SplitMix64's first output for seed 0.
        assert_eq!(Synthetic::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn values_honour_dtype_shape_and_name() {
        let infos = [
            info("x", DType::F32, &[4, 256]),
            info("input_ids", DType::I64, &[1, 64]),
            info("attention_mask", DType::I64, &[1, 64]),
            info("token_type_ids", DType::I32, &[1, 64]),
            info("q", DType::U8, &[3]),
            info("keep", DType::Bool, &[2]),
        ];
        let t = inputs(&infos, 1);
        for (t, i) in t.iter().zip(&infos) {
            assert_eq!((&t.shape, t.dtype()), (&i.shape, i.dtype), "{}", i.name);
        }
        let TensorData::F32(x) = &t[0].data else { unreachable!() };
        assert!(x.iter().all(|v| (-1.0..1.0).contains(v)));
        let mean = x.iter().sum::<f32>() / x.len() as f32;
        assert!(mean.abs() < 0.1, "mean {mean}");
        let TensorData::I64(ids) = &t[1].data else { unreachable!() };
        assert!(ids.iter().all(|v| (0..ID_RANGE as i64).contains(v)) && ids.iter().any(|&v| v != ids[0]));
        assert_eq!(t[2].data, TensorData::I64(vec![1; 64]));
        assert_eq!(t[3].data, TensorData::I32(vec![0; 64]));
        assert_eq!(t[5].data, TensorData::Bool(vec![true; 2]));
    }
}
