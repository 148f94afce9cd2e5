//! A small owned tensor type that crosses the backend boundary, plus NumPy `.npy` I/O.

use std::path::Path;

use thiserror::Error;

use crate::manifest::{DType, TensorInfo};

/// Deepest bracket nesting accepted in a `.npy` header. NumPy's headers nest at most three deep
/// (a structured dtype's list of tuples); the header parser npyz uses takes time exponential in
/// the depth of unclosed brackets, so a 300-byte file could stall it for minutes.
const MAX_NPY_HEADER_NESTING: usize = 8;

/// Deepest nesting of `(`, `[` and `{` in a `.npy` header (0 when there is none to find).
fn npy_header_nesting(bytes: &[u8]) -> usize {
    let (start, len): (usize, _) = match bytes.get(6) {
        Some(1) => (10, bytes.get(8..10).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))),
        Some(2 | 3) => (12, bytes.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)),
        _ => return 0,
    };
    let end = start.saturating_add(len.unwrap_or(0)).min(bytes.len());
    let (mut depth, mut deepest) = (0usize, 0usize);
    for &b in bytes.get(start..end).unwrap_or_default() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Element storage of a [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    Bool(Vec<bool>),
}

/// A dense row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

/// Tensor construction and `.npy` errors.
#[derive(Debug, Error)]
pub enum TensorError {
    #[error("{origin}: shape {shape:?} needs {expected} elements, got {got}")]
    ElementCount { origin: String, shape: Vec<usize>, expected: usize, got: usize },
    #[error("{origin}: cannot read .npy: {reason}")]
    NpyRead { origin: String, reason: String },
    #[error("{origin}: .npy dtype `{dtype}` is not supported (use float32, int64, int32, uint8, int8 or bool)")]
    NpyDType { origin: String, dtype: String },
    #[error("{origin}: cannot write .npy: {reason}")]
    NpyWrite { origin: String, reason: String },
    #[error("{origin}: expected {expected} {want_shape:?}, got {got} {got_shape:?}")]
    Mismatch {
        origin: String,
        expected: &'static str,
        want_shape: Vec<usize>,
        got: &'static str,
        got_shape: Vec<usize>,
    },
}

impl Tensor {
    /// An f32 tensor; the element count must match the shape.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, TensorData::F32(data))
    }

    /// An i64 tensor; the element count must match the shape.
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, TensorData::I64(data))
    }

    /// Any tensor; the element count must match the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, TensorError> {
        let expected: usize = shape.iter().product();
        let t = Tensor { shape, data };
        let got = t.len();
        if got != expected {
            return Err(TensorError::ElementCount { origin: "tensor".into(), shape: t.shape, expected, got });
        }
        Ok(t)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match &self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
            TensorData::U8(_) => DType::U8,
            TensorData::I8(_) => DType::I8,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    /// The f32 elements, if this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Every element as f64 (booleans as 0 and 1), for statistics and comparisons.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// Checks dtype and shape against a manifest entry; `origin` names the tensor in the error.
    pub fn check(&self, info: &TensorInfo, origin: &str) -> Result<(), TensorError> {
        if self.dtype() != info.dtype || self.shape != info.shape {
            return Err(TensorError::Mismatch {
                origin: origin.to_string(),
                expected: info.dtype.name(),
                want_shape: info.shape.clone(),
                got: self.dtype().name(),
                got_shape: self.shape.clone(),
            });
        }
        Ok(())
    }

    /// Reads a C-order `.npy` file.
    pub fn read_npy(path: &Path) -> Result<Tensor, TensorError> {
        let origin = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|e| TensorError::NpyRead { origin: origin.clone(), reason: e.to_string() })?;
        Tensor::from_npy_bytes(&bytes, &origin)
    }

    /// Parses the bytes of a C-order `.npy` file; `origin` names it in errors.
    pub fn from_npy_bytes(bytes: &[u8], origin: &str) -> Result<Tensor, TensorError> {
        let origin = origin.to_string();
        let err = |reason: String| TensorError::NpyRead { origin: origin.clone(), reason };
        if npy_header_nesting(bytes) > MAX_NPY_HEADER_NESTING {
            return Err(err(format!(
                "the header nests brackets more than {MAX_NPY_HEADER_NESTING} deep; it is not a header NumPy writes"
            )));
        }
        let npy = npyz::NpyFile::new(bytes).map_err(|e| err(e.to_string()))?;
        if npy.order() != npyz::Order::C {
            return Err(err("Fortran-order arrays are not supported; save with np.ascontiguousarray".into()));
        }
        let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
        let descr = npy.dtype().descr();
        let data = match descr.as_str() {
            "'<f4'" => TensorData::F32(npy.into_vec().map_err(|e| err(e.to_string()))?),
            "'<i8'" => TensorData::I64(npy.into_vec().map_err(|e| err(e.to_string()))?),
            "'<i4'" => TensorData::I32(npy.into_vec().map_err(|e| err(e.to_string()))?),
            "'|u1'" => TensorData::U8(npy.into_vec().map_err(|e| err(e.to_string()))?),
            "'|i1'" => TensorData::I8(npy.into_vec().map_err(|e| err(e.to_string()))?),
            "'|b1'" => TensorData::Bool(npy.into_vec().map_err(|e| err(e.to_string()))?),
            other => return Err(TensorError::NpyDType { origin, dtype: other.trim_matches('\'').to_string() }),
        };
        let t = Tensor { shape, data };
        let expected: usize = t.shape.iter().product();
        let got = t.len();
        if got != expected {
            return Err(TensorError::ElementCount { origin, shape: t.shape, expected, got });
        }
        Ok(t)
    }

    /// Writes a C-order `.npy` file.
    pub fn write_npy(&self, path: &Path) -> Result<(), TensorError> {
        let origin = path.display().to_string();
        let err = |e: std::io::Error| TensorError::NpyWrite { origin: origin.clone(), reason: e.to_string() };
        let shape: Vec<u64> = self.shape.iter().map(|&d| d as u64).collect();
        let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
        fn put<T: npyz::Serialize + npyz::AutoSerialize + Copy, W: std::io::Write>(
            w: W,
            shape: &[u64],
            data: &[T],
        ) -> std::io::Result<()> {
            use npyz::WriterBuilder;
            let mut writer = npyz::WriteOptions::new().default_dtype().shape(shape).writer(w).begin_nd()?;
            writer.extend(data.iter().copied())?;
            writer.finish()
        }
        match &self.data {
            TensorData::F32(v) => put(file, &shape, v),
            TensorData::I64(v) => put(file, &shape, v),
            TensorData::I32(v) => put(file, &shape, v),
            TensorData::U8(v) => put(file, &shape, v),
            TensorData::I8(v) => put(file, &shape, v),
            TensorData::Bool(v) => put(file, &shape, v),
        }
        .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_every_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            Tensor::new(vec![2, 3], TensorData::F32(vec![0.5, -1.0, 2.0, 3.0, 4.0, f32::MAX])).unwrap(),
            Tensor::new(vec![3], TensorData::I64(vec![1, -2, i64::MAX])).unwrap(),
            Tensor::new(vec![1, 2], TensorData::I32(vec![7, -7])).unwrap(),
            Tensor::new(vec![2], TensorData::U8(vec![0, 255])).unwrap(),
            Tensor::new(vec![2], TensorData::I8(vec![-128, 127])).unwrap(),
            Tensor::new(vec![2], TensorData::Bool(vec![true, false])).unwrap(),
        ];
        for (i, t) in cases.iter().enumerate() {
            let p = dir.path().join(format!("{i}.npy"));
            t.write_npy(&p).unwrap();
            assert_eq!(&Tensor::read_npy(&p).unwrap(), t);
        }
    }

    #[test]
    fn element_count_is_checked() {
        assert!(Tensor::f32(vec![2, 2], vec![1.0; 3]).is_err());
    }

    #[test]
    fn deeply_nested_npy_header_is_refused_at_once() {
        // Found by the `npy` fuzz target: npyz's header parser took over 15 s on this 300-byte file.
        let mut header = b"{".to_vec();
        header.extend([b'['; 70]);
        header.extend_from_slice(b"'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }");
        header.resize(118, b' ');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend((0..12u32).flat_map(|v| v.to_le_bytes()));
        let t = std::time::Instant::now();
        let e = Tensor::from_npy_bytes(&bytes, "deep.npy").unwrap_err().to_string();
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert!(e.starts_with("deep.npy: cannot read .npy: the header nests brackets more than 8 deep"), "{e}");
        // What NumPy writes, structured dtypes included, stays well within the limit.
        let ok = b"{'descr': [('a', '<f4', (2,)), ('b', [('c', '<i4')])], 'fortran_order': False, 'shape': (3,), }";
        assert_eq!(npy_header_nesting(&[&b"\x93NUMPY\x01\x00"[..], &[ok.len() as u8, 0], ok].concat()), 5);
    }

    #[test]
    fn garbage_npy_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, b"not numpy at all").unwrap();
        let e = Tensor::read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("bad.npy"), "{e}");
    }
}
