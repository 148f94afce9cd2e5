//! MJPEG frames (the `jpeg` feature, which `camera` turns on): decoded with `zune-jpeg` to
//! interleaved RGB8. Frames without Huffman tables, as many webcams send them, get the standard
//! tables of ITU T.81 Annex K.3 inserted before their first scan (zune-jpeg fills them in only
//! for frames with an `AVI1` marker). Nothing here panics on any input (`fuzz/` target `mjpeg`):
//! frames zune-jpeg 0.5.15 is known to panic on are refused before it sees them
//! ([`check_sampling`]), since a deploy build aborts on a panic instead of catching it.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use crate::capture::pixels::PixelError;

/// Builds a DHT segment from `(class and id, 16 code counts, values)` tables.
const fn dht_segment<const N: usize>(tables: [(u8, &[u8; 16], &[u8]); 4]) -> [u8; N] {
    let mut out = [0u8; N];
    out[0] = 0xFF;
    out[1] = 0xC4;
    let len = N - 2;
    out[2] = (len >> 8) as u8;
    out[3] = (len & 0xFF) as u8;
    let mut at = 4;
    let mut t = 0;
    while t < 4 {
        let (id, counts, values) = tables[t];
        out[at] = id;
        at += 1;
        let mut i = 0;
        while i < 16 {
            out[at] = counts[i];
            at += 1;
            i += 1;
        }
        let mut i = 0;
        while i < values.len() {
            out[at] = values[i];
            at += 1;
            i += 1;
        }
        t += 1;
    }
    assert!(at == N, "DHT segment length");
    out
}

pub(crate) const DC_LUMA_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
pub(crate) const DC_CHROMA_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
pub(crate) const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
pub(crate) const AC_LUMA_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
pub(crate) const AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14,
    0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09,
    0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A,
    0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65,
    0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
    0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9,
    0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA,
    0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA,
    0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
];
pub(crate) const AC_CHROMA_COUNTS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
pub(crate) const AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32,
    0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16,
    0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39,
    0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64,
    0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86,
    0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8,
    0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9,
    0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
];

/// The standard Huffman tables of ITU T.81 Annex K.3 (luma and chroma, DC and AC) as one DHT
/// segment: what MJPEG cameras that omit their tables encode with.
pub(crate) const STANDARD_DHT: [u8; 420] = dht_segment([
    (0x00, &DC_LUMA_COUNTS, &DC_VALUES),
    (0x10, &AC_LUMA_COUNTS, &AC_LUMA_VALUES),
    (0x01, &DC_CHROMA_COUNTS, &DC_VALUES),
    (0x11, &AC_CHROMA_COUNTS, &AC_CHROMA_VALUES),
]);

/// Finds the first scan: its SOS marker's offset, and whether a DHT segment comes before it.
/// `None` when the marker structure before the scan is not one to patch.
pub(crate) fn first_scan(data: &[u8]) -> Option<(usize, bool)> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    let mut has_dht = false;
    loop {
        if *data.get(i)? != 0xFF {
            return None;
        }
        while *data.get(i)? == 0xFF {
            i += 1;
        }
        let marker = data[i];
        let at = i - 1;
        i += 1;
        match marker {
            0xDA => return Some((at, has_dht)),
            0xC4 => has_dht = true,
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*data.get(i)?, *data.get(i + 1)?]));
        if len < 2 {
            return None;
        }
        i += len;
    }
}

/// zune-jpeg 0.5.15, fault (found by the `mjpeg` fuzz target): a frame whose later component
/// (chroma) is sampled more finely than its first (luma), in either direction, makes its IDCT
/// index past its buffer and panic. Cameras never send such frames (their chroma is sampled as
/// finely as luma or less), so they are refused. Every start-of-frame marker in the frame is
/// checked, wherever it is, since zune-jpeg looks for markers past bytes it does not expect.
fn check_sampling(data: &[u8]) -> Result<(), PixelError> {
    for at in 0..data.len().saturating_sub(1) {
        if data[at] != 0xFF || !matches!(data[at + 1], 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            continue;
        }
        // Length (2), precision (1), height (2), width (2), count (1), then (id, HV, table) each.
        let count = usize::from(data.get(at + 9).copied().unwrap_or(0));
        let components = data.get(at + 10..).unwrap_or_default().chunks_exact(3).take(count);
        let mut first = None;
        for (k, c) in components.enumerate() {
            let (h, v) = (c[1] >> 4, c[1] & 0x0F);
            match first {
                None => first = Some((h, v)),
                Some((h0, v0)) if h > h0 || v > v0 => {
                    return Err(PixelError::Jpeg {
                        reason: format!(
                            "component {} is sampled {h}x{v}, more finely than the first (luma) component's \
                             {h0}x{v0}; cameras do not send such frames and the decoder cannot take them",
                            k + 1
                        ),
                    });
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

thread_local! {
    /// A JPEG with the standard tables inserted (reused between frames).
    static PATCHED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Decodes one MJPEG frame of `width` x `height` to interleaved RGB8 in `rgb8` (its capacity is
/// reused). Frames without Huffman tables get the standard ones (ITU T.81 Annex K.3), as MJPEG
/// cameras expect. A frame of another size is [`PixelError::JpegSize`]; anything undecodable is
/// [`PixelError::Jpeg`]. Never panics.
pub fn decode_mjpeg(data: &[u8], width: usize, height: usize, rgb8: &mut Vec<u8>) -> Result<(), PixelError> {
    check_sampling(data)?;
    catch_unwind(AssertUnwindSafe(|| match first_scan(data) {
        Some((sos, false)) => PATCHED.with_borrow_mut(|patched| {
            patched.clear();
            patched.extend_from_slice(&data[..sos]);
            patched.extend_from_slice(&STANDARD_DHT);
            patched.extend_from_slice(&data[sos..]);
            decode_jpeg(patched, width, height, rgb8)
        }),
        _ => decode_jpeg(data, width, height, rgb8),
    }))
    .unwrap_or_else(|_| Err(PixelError::Jpeg { reason: "the decoder failed on malformed data".into() }))
}

pub(crate) fn decode_jpeg(data: &[u8], width: usize, height: usize, rgb8: &mut Vec<u8>) -> Result<(), PixelError> {
    let jpeg = |e: zune_jpeg::errors::DecodeErrors| PixelError::Jpeg { reason: e.to_string().trim_end().to_string() };
    if data.is_empty() {
        return Err(PixelError::Jpeg { reason: "the frame is empty".into() });
    }
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
    decoder.decode_headers().map_err(jpeg)?;
    let (found_w, found_h) = decoder.dimensions().unwrap_or((0, 0));
    if (found_w, found_h) != (width, height) {
        return Err(PixelError::JpegSize { width, height, found_w, found_h });
    }
    let need = width * height * 3;
    if decoder.output_buffer_size() != Some(need) {
        return Err(PixelError::Jpeg { reason: "the decoder does not produce 3-channel RGB for this frame".into() });
    }
    rgb8.clear();
    rgb8.resize(need, 0);
    decoder.decode_into(rgb8).map_err(jpeg)
}

/// Width and height a JPEG's headers announce, or `None` when its headers cannot be read.
pub fn jpeg_size(data: &[u8]) -> Option<(usize, usize)> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut decoder = JpegDecoder::new(ZCursor::new(data));
        decoder.decode_headers().ok()?;
        decoder.dimensions()
    }))
    .ok()
    .flatten()
}
