//! `scan` and `export-json`.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use uforge_core::model::{ReportHeader, ScanStats};
use uforge_core::report::{self, json::JsonWriter, ReportReader, ReportSink};
use uforge_core::scan;

use super::{ExportArgs, ScanArgs};
use crate::progress::Bar;

/// Keeps the header for the summary while passing everything on to the real sink.
struct Tee<'a> {
    inner: &'a mut dyn ReportSink,
    header: Option<ReportHeader>,
    quiet: bool,
}

impl ReportSink for Tee<'_> {
    fn header(&mut self, h: &ReportHeader) -> uforge_core::Result<()> {
        self.header = Some(h.clone());
        self.inner.header(h)
    }
    fn file(&mut self, e: &uforge_core::model::FileEntry) -> uforge_core::Result<()> {
        self.inner.file(e)
    }
    fn trailer(&mut self, t: &uforge_core::model::ReportTrailer) -> uforge_core::Result<()> {
        self.inner.trailer(t)?;
        if !self.quiet {
            let shown = t.errors.iter().take(5);
            for e in shown {
                eprintln!(
                    "  warning: {} {}: {}",
                    e.op,
                    String::from_utf8_lossy(&e.path),
                    e.message
                );
            }
        }
        Ok(())
    }
}

/// Runs `scan`.
pub fn scan(args: ScanArgs) -> Result<()> {
    let mut opts = args.scan;
    opts.tool = super::tool();
    opts.output = Some(args.output.clone());

    let mut sink = report::create(&args.output)
        .with_context(|| format!("cannot write the report to {}", args.output.display()))?;
    let bar = Bar::new(args.quiet);
    let mut tee = Tee {
        inner: sink.as_mut(),
        header: None,
        quiet: args.quiet || !std::io::stderr().is_terminal(),
    };
    let stats = scan::scan(&opts, &mut tee, &bar).with_context(|| {
        // A half-written report must not pass for a whole one.
        let _ = std::fs::remove_file(&args.output);
        format!("scan of {} failed", opts.root.display())
    })?;
    if !args.quiet && std::io::stderr().is_terminal() {
        if let Some(h) = &tee.header {
            let size = std::fs::metadata(&args.output)
                .map(|m| m.len())
                .unwrap_or(0);
            summary(h, &stats, &args.output, size);
        }
    }
    Ok(())
}

fn summary(h: &ReportHeader, s: &ScanStats, out: &std::path::Path, size: u64) {
    let m = &h.machine;
    let secs = s.duration_ms as f64 / 1000.0;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "Scanned {} ({}, {})",
        String::from_utf8_lossy(&h.scan.root),
        m.os.pretty_name.as_deref().unwrap_or("unknown OS"),
        m.arch
    );
    let _ = writeln!(
        e,
        "  host       {}  tz {}  keyboard {}  locale {}",
        m.hostname.as_deref().unwrap_or("-"),
        m.timezone.as_deref().unwrap_or("-"),
        m.keyboard.as_ref().map_or("-", |k| k.layout.as_str()),
        m.locale.as_deref().unwrap_or("-"),
    );
    for n in &m.network {
        let _ = writeln!(
            e,
            "  network    {} {:?} {} ({})",
            n.name,
            n.method,
            n.addresses.join(" "),
            n.source
        );
    }
    let _ = writeln!(
        e,
        "  packages   {} ({} kernels)",
        h.packages.len(),
        m.kernels.len()
    );
    let _ = writeln!(
        e,
        "  entries    {} ({} files, {} dirs; {} owned by packages, {} not)",
        s.entries,
        s.files,
        s.dirs,
        s.packaged,
        s.entries - s.packaged
    );
    let _ = writeln!(
        e,
        "  hashed     {:.1} MiB in {:.2} s ({:.0} MiB/s)",
        s.bytes as f64 / 1048576.0,
        secs,
        s.bytes as f64 / 1048576.0 / secs.max(0.001)
    );
    let skipped: Vec<String> = h.scan.excludes.iter().map(scan::describe).collect();
    let _ = writeln!(e, "  skipped    {}", skipped.join(", "));
    if s.errors > 0 {
        let _ = writeln!(e, "  errors     {} (listed in the report)", s.errors);
    }
    let _ = writeln!(e, "  report     {} ({} KiB)", out.display(), size / 1024);
}

/// Runs `export-json`.
pub fn export_json(args: ExportArgs) -> Result<()> {
    let reader = ReportReader::open(&args.report)
        .with_context(|| format!("cannot read {}", args.report.display()))?;
    match &args.output {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = JsonWriter::new(std::io::BufWriter::new(f), path.display().to_string());
            reader.copy_to(&mut w)?;
        }
        None => {
            let out = std::io::stdout().lock();
            let mut w = JsonWriter::new(std::io::BufWriter::new(out), "standard output".into());
            reader.copy_to(&mut w)?;
        }
    }
    Ok(())
}
