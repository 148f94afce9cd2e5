//! Clip sources. File sources (Y4M video, WAV audio) behave like the devices they stand in for.

pub mod wav;
pub mod y4m;
