//! Microphones through cpal (skeleton; filled in by the microphone work).

use crate::capture::DeviceInfo;

/// Microphones present.
pub fn list() -> Vec<DeviceInfo> {
    Vec::new()
}

/// Opens a microphone.
pub fn open(
    _name: Option<&str>,
    _rate: u32,
    _block: usize,
) -> Result<crate::capture::files::WavSource, crate::capture::CaptureError> {
    Err(crate::capture::CaptureError::NoDevice { what: "microphone" })
}
