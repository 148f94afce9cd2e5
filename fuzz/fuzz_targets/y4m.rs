//! Y4M bytes → `parse_y4m` → every frame (at most 8) converted to RGB.
#![no_main]

use edgeqa::capture::y4m::parse_y4m;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = parse_y4m(data, "fuzz.y4m") else { return };
    assert!(v.frame_count() >= 1);
    for i in 0..v.frame_count().min(8) {
        let rgb = v.frame_rgb(i).expect("a parsed frame converts");
        assert_eq!(rgb.len(), 3 * v.width * v.height);
        assert!(rgb.iter().all(|x| (0.0..=1.0).contains(x)));
    }
    assert!(v.frame_rgb(v.frame_count()).is_err());
});
