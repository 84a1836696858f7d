//! The native report reader. The input is the record stream inside the zstd layer, so that
//! mutations reach the records rather than break the compression.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uforge_core::report::native::MAGIC;
use uforge_core::report::{ReportLimits, ReportReader};

fuzz_target!(|data: &[u8]| {
    let mut report = MAGIC.to_vec();
    report.extend(zstd::encode_all(data, 1).expect("compress"));
    let limits = ReportLimits {
        max_entries: 10_000,
        max_bytes: 16 << 20,
    };
    if let Ok(mut r) = ReportReader::from_reader_with(std::io::Cursor::new(report), "fuzz", limits)
    {
        while let Ok(Some(_)) = r.next_file() {}
        let _ = r.trailer();
    }
});
