//! Grows a real report to a given number of entries, for analysis benchmarks.
//!
//! `uforge-bench-report IN OUT ENTRIES` copies report IN (header, packages and files) and adds
//! synthetic files under `/srv/bulk`, 1,000 per directory, until OUT holds ENTRIES entries.

use std::collections::BTreeMap;
use std::path::Path;

use uforge_core::analysis::walk_order;
use uforge_core::model::{FileEntry, FileKind};
use uforge_core::report::{self, ReportReader};

fn entry(path: String, kind: FileKind, n: u64) -> FileEntry {
    let mut sha = [0u8; 32];
    sha[..8].copy_from_slice(&n.to_le_bytes());
    FileEntry {
        path: path.into_bytes(),
        kind,
        mode: if kind == FileKind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        user: Some("root".into()),
        group: Some("root".into()),
        size: if kind == FileKind::File { 4096 } else { 0 },
        mtime: 1_700_000_000 + n as i64,
        mtime_nsec: 0,
        sha256: (kind == FileKind::File).then_some(sha),
        target: None,
        rdev: None,
        xattrs: BTreeMap::new(),
        package: None,
        allocated: 4096,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, total] = args.as_slice() else {
        return Err("usage: uforge-bench-report IN OUT ENTRIES".into());
    };
    let total: u64 = total.parse()?;
    let mut reader = ReportReader::open(Path::new(input))?;
    let mut sink = report::create(Path::new(output))?;
    sink.header(reader.header())?;
    let mut n = 0u64;
    let mut bulk_done = false;
    let add_bulk = |sink: &mut dyn report::ReportSink, n: &mut u64| -> uforge_core::Result<()> {
        sink.file(&entry("/srv/bulk".into(), FileKind::Dir, 0))?;
        *n += 1;
        let mut i = 0u64;
        while *n < total {
            if i.is_multiple_of(1000) {
                sink.file(&entry(
                    format!("/srv/bulk/d{:05}", i / 1000),
                    FileKind::Dir,
                    i,
                ))?;
            } else {
                sink.file(&entry(
                    format!("/srv/bulk/d{:05}/f{i:08}", i / 1000),
                    FileKind::File,
                    i,
                ))?;
            }
            i += 1;
            *n += 1;
        }
        Ok(())
    };
    while let Some(f) = reader.next_file()? {
        // Keep walk order, which the analysis relies on to find a path's directories.
        if !bulk_done && walk_order(&f.path, b"/srv/bulk") == std::cmp::Ordering::Greater {
            add_bulk(sink.as_mut(), &mut n)?;
            bulk_done = true;
        }
        sink.file(&f)?;
        n += 1;
    }
    if !bulk_done {
        add_bulk(sink.as_mut(), &mut n)?;
    }
    let trailer = reader.trailer()?;
    sink.trailer(&trailer)?;
    println!("{n} entries written to {output}");
    Ok(())
}
