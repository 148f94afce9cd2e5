//! V4L2 cameras through the `v4l` crate (skeleton; filled in by the camera work).

use crate::capture::DeviceInfo;
use crate::capture::pixels::PixelError;

/// Cameras present.
pub fn list() -> Vec<DeviceInfo> {
    Vec::new()
}

/// Decodes one MJPEG frame to interleaved RGB8 in `rgb8`.
pub fn decode_mjpeg(_data: &[u8], _width: usize, _height: usize, _rgb8: &mut Vec<u8>) -> Result<(), PixelError> {
    Err(PixelError::NoJpeg)
}

/// What to open.
pub struct CameraRequest {
    pub device: String,
    pub width: usize,
    pub height: usize,
    pub fps: f64,
}

/// Opens a camera.
pub fn open(_req: &CameraRequest) -> Result<crate::capture::files::Y4mSource, crate::capture::CaptureError> {
    Err(crate::capture::CaptureError::NoDevice { what: "camera" })
}
