//! Scans a directory with the library and prints a summary.
//!
//! ```text
//! cargo run --release -p uforge-examples --example scan_summary -- /path/to/rootfs
//! ```

use std::collections::BTreeMap;

use uforge_core::model::FileKind;
use uforge_core::progress::NoProgress;
use uforge_core::scan::{scan_to_report, ScanOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "/".into());
    let report = scan_to_report(&ScanOptions::new(&root), &NoProgress)?;
    let m = &report.header.machine;
    println!(
        "{root}: {} ({}), host {}",
        m.os.pretty_name.as_deref().unwrap_or("unknown OS"),
        m.arch,
        m.hostname.as_deref().unwrap_or("-")
    );
    println!("{} packages", report.header.packages.len());

    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let mut unowned_bytes = 0u64;
    for f in &report.files {
        *kinds.entry(f.kind.as_str()).or_default() += 1;
        if f.package.is_none() && f.kind == FileKind::File {
            unowned_bytes += f.size;
        }
    }
    for (kind, n) in kinds {
        println!("{n:>9} {kind}");
    }
    println!(
        "{:.1} MiB in files owned by no package",
        unowned_bytes as f64 / 1048576.0
    );
    for e in &report.trailer.errors {
        println!(
            "error: {} {}: {}",
            e.op,
            String::from_utf8_lossy(&e.path),
            e.message
        );
    }
    Ok(())
}
