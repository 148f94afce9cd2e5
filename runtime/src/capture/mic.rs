//! Microphones through cpal (skeleton; filled in by the microphone work).

use crate::capture::DeviceInfo;

/// Microphones present.
pub fn list() -> Vec<DeviceInfo> {
    Vec::new()
}
