//! `analyze`, `overlay` and `compare`.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use uforge_core::analysis::{self, Analysis};
use uforge_core::model::RawPath;
use uforge_core::report::ReportReader;
use uforge_core::{overlay, rawpath};

use super::{AnalyzeArgs, CompareArgs, OverlayArgs};
use crate::progress::Bar;

fn open_output(path: &Path) -> Result<Box<dyn Write>> {
    Ok(if path == Path::new("-") {
        Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout().lock(),
        ))
    } else {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Box::new(std::io::BufWriter::with_capacity(1 << 20, f))
    })
}

/// Runs `analyze`.
pub fn analyze(mut a: AnalyzeArgs) -> Result<()> {
    a.sources.read_files()?;
    let bar = Bar::new(a.quiet);
    let analysis = analysis::analyze_report(&a.report, &a.sources, &a.previous, &bar)
        .with_context(|| format!("analysis of {} failed", a.report.display()))?;
    let mut out = open_output(&a.output)?;
    analysis.write_json(&mut out)?;
    out.flush()?;
    if !a.quiet && std::io::stderr().is_terminal() {
        let s = &analysis.stats;
        eprintln!(
            "{} packages: {} from repositories, {} from earlier scans, {} missing",
            s.packages,
            s.from_repositories,
            s.from_previous,
            analysis.missing_packages.len()
        );
        for p in &analysis.missing_packages {
            eprintln!("  missing  {} {} {}", p.name, p.version, p.arch);
        }
        eprintln!(
            "{} modified, {} with only their mode or owner changed, {} deleted, {} unknown; {} of {} entries wanted ({:.1} MiB), {} held by earlier scans",
            analysis.modified_files.len(),
            analysis.metadata_files.len(),
            analysis.deleted_files.len(),
            analysis.unknown_files.len(),
            analysis.wanted.len(),
            s.entries,
            s.wanted_bytes as f64 / 1048576.0,
            s.held
        );
        eprintln!("layout: {}", analysis.usr_layout.describe());
        if let Err(e) = analysis.usr_layout.check() {
            eprintln!("warning: {e}");
        }
    }
    Ok(())
}

/// Runs `overlay`.
pub fn overlay(a: OverlayArgs) -> Result<()> {
    let analysis = Analysis::open(&a.analysis)?;
    let wanted: HashSet<RawPath> = analysis.wanted.into_iter().collect();
    let mut reader = ReportReader::open(&a.report)
        .with_context(|| format!("cannot read the report {}", a.report.display()))?;
    let root = a
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from(OsStr::from_bytes(&reader.header().scan.root)));
    let bar = Bar::new(a.quiet);
    let out = open_output(&a.output)?;
    let stats = overlay::write_overlay(&root, &mut reader, &wanted, out, &bar)
        .with_context(|| format!("overlay of {} failed", root.display()))?;
    if !a.quiet && std::io::stderr().is_terminal() {
        eprintln!(
            "overlay: {} members, {:.1} MiB of content, {:.1} MiB written",
            stats.members,
            stats.content_bytes as f64 / 1048576.0,
            stats.bytes as f64 / 1048576.0
        );
    }
    if !stats.changed.is_empty() {
        for c in stats.changed.iter().take(10) {
            eprintln!(
                "  {} since the scan: {}: {}",
                c.op,
                rawpath::display(&c.path),
                c.message
            );
        }
        // The archive is whole, but the report file beside it no longer describes it.
        bail!(
            "{} files changed since the scan; the overlay carries them as they are now, which \
             the report no longer matches: scan again (a live scan with `run` amends the \
             server's report instead)",
            stats.changed.len()
        );
    }
    Ok(())
}

/// Runs `compare`.
pub fn compare(a: CompareArgs) -> Result<()> {
    let open = |p: &Path| {
        ReportReader::open(p).with_context(|| format!("cannot read the report {}", p.display()))
    };
    let c = analysis::compare(open(&a.before)?, open(&a.after)?)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &c.to_json())?;
        writeln!(out)?;
        return Ok(());
    }
    for p in &c.packages {
        let sign = match (&p.before, &p.after) {
            (None, _) => "+",
            (_, None) => "-",
            _ => "~",
        };
        writeln!(
            out,
            "{sign} package {:<40} {} -> {}",
            p.name,
            p.before.as_deref().unwrap_or("(none)"),
            p.after.as_deref().unwrap_or("(none)")
        )?;
    }
    for f in &c.files {
        let sign = match f.status {
            "added" => "+",
            "removed" => "-",
            _ => "~",
        };
        writeln!(
            out,
            "{sign} {}{}",
            String::from_utf8_lossy(&f.path).escape_debug(),
            if f.what.is_empty() {
                String::new()
            } else {
                format!("  ({})", f.what.join(", "))
            }
        )?;
    }
    writeln!(
        out,
        "{} package changes, {} file changes",
        c.packages.len(),
        c.files.len()
    )?;
    Ok(())
}
