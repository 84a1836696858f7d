//! The JSON report reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uforge_core::report::{ReportLimits, ReportReader};

fuzz_target!(|data: &[u8]| {
    let limits = ReportLimits {
        max_entries: 10_000,
        max_bytes: 16 << 20,
    };
    let input = std::io::Cursor::new(data.to_vec());
    if let Ok(mut r) = ReportReader::from_reader_with(input, "fuzz", limits) {
        while let Ok(Some(_)) = r.next_file() {}
        let _ = r.trailer();
    }
});
