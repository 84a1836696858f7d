//! The `Packages` index parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = uforge_core::repo::fuzzing::packages(data);
});
