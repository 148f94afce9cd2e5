//! `.eqa` bytes → a verified `Package`; on success every section and stage graph is read.
#![no_main]

use edgeqa::package::Package;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Package::from_bytes(data.to_vec(), "fuzz.eqa") {
        Ok(p) => {
            for s in p.sections() {
                assert_eq!(p.section(&s.name).map(<[u8]>::len), Some(s.len as usize));
            }
            for st in &p.manifest().stages {
                assert!(p.stage_graph(&st.name).is_some());
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.eqa: ")),
    }
});
