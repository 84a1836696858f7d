//! `run`: the live scan against a server.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use uforge_client::agent::{self, RunOptions};

use super::RunArgs;
use crate::progress::Bar;

/// Runs `run`.
pub fn run(args: RunArgs) -> Result<()> {
    let client = args.connect.client()?;
    let mut scan = args.scan;
    scan.tool = super::tool();
    let root = scan.root.clone();
    let opts = RunOptions {
        machine: args.name.clone(),
        scan,
    };
    let bar = Bar::new(args.quiet);
    let summary = agent::run(&client, &opts, &bar).with_context(|| {
        format!(
            "scan of {} for {} failed",
            root.display(),
            args.connect.url.as_deref().unwrap_or_default()
        )
    })?;
    if !args.quiet && std::io::stderr().is_terminal() {
        let a = &summary.analysis;
        eprintln!(
            "scan {} of {} complete: report {} KiB, {} of {} entries shipped ({:.1} MiB in {} tar members)",
            summary.scan_id,
            args.name,
            summary.report_bytes / 1024,
            a.wanted.len(),
            a.stats.entries,
            summary.overlay.bytes as f64 / 1048576.0,
            summary.overlay.members
        );
        eprintln!(
            "  {} missing packages, {} modified, {} deleted, {} unknown files, {} held by earlier scans",
            a.missing_packages.len(),
            a.modified_files.len(),
            a.deleted_files.len(),
            a.unknown_files.len(),
            a.stats.held
        );
        for p in &summary.result.recreated {
            eprintln!("  recreated {}", p.file);
        }
    }
    Ok(())
}
