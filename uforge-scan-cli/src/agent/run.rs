//! `run`: the live scan against a server.

use anyhow::{Context, Result};
use uforge_client::agent::{self, RunOptions};
use uforge_core::model::ScanError;
use uforge_core::rawpath;

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
    if args.json {
        println!("{}", json_summary(&args.name, &summary));
    }
    // On a terminal or not: a log of the run needs it as much as the person watching.
    if !args.quiet {
        let a = &summary.analysis;
        eprintln!(
            "scan {} of {} complete: report {} KiB, {} of {} entries shipped ({:.1} MiB in {} tar members)",
            summary.scan_id,
            args.name,
            summary.report_bytes / 1024,
            a.wanted.len() as u64 - summary.skipped_files,
            a.stats.entries,
            summary.overlay.bytes as f64 / 1048576.0,
            summary.overlay.members
        );
        if summary.skipped_files > 0 {
            eprintln!(
                "  {} files ({:.1} MiB) not sent: the server already held their content",
                summary.skipped_files,
                summary.skipped_bytes as f64 / 1048576.0
            );
        }
        // Packages recreated by an earlier scan of the machine come from the server's
        // repository of recreated packages now: not missing, but still no public
        // repository's.
        let missing = a.missing_packages.len() as u64;
        eprintln!(
            "  {} packages no public repository has: {missing} missing ({} recreated now), {} \
             recreated by earlier scans, {} held by earlier scans",
            missing + a.stats.from_local + a.stats.from_previous,
            summary.result.recreated.len(),
            a.stats.from_local,
            a.stats.from_previous
        );
        eprintln!(
            "  {} modified files, {} with only their mode or owner changed, {} deleted, {} unknown files, {} entries held by earlier scans",
            a.modified_files.len(),
            a.metadata_files.len(),
            a.deleted_files.len(),
            a.unknown_files.len(),
            a.stats.held
        );
        eprintln!("  layout: {}", a.usr_layout.describe());
        if let Err(e) = a.usr_layout.check() {
            eprintln!("  warning: {e}");
        }
        for p in &summary.result.recreated {
            eprintln!("  recreated {}", p.file);
        }
    }
    if !args.quiet {
        if let Some(text) = churn(&summary.overlay.changed) {
            eprint!("{text}");
        }
    }
    Ok(())
}

/// The summary for scripts: what was sent, what was skipped, what the server stored.
fn json_summary(machine: &str, s: &agent::RunSummary) -> serde_json::Value {
    let a = &s.analysis;
    serde_json::json!({
        "scan": s.scan_id,
        "machine": machine,
        "report_bytes": s.report_bytes,
        "entries": a.stats.entries,
        "wanted": a.wanted.len(),
        "wanted_bytes": a.stats.wanted_bytes,
        "overlay": {
            "bytes": s.overlay.bytes,
            "members": s.overlay.members,
            "content_bytes": s.overlay.content_bytes,
        },
        "skipped": { "files": s.skipped_files, "bytes": s.skipped_bytes },
        "received": {
            "bytes": s.result.received_bytes,
            "members": s.result.members,
            "held": s.result.held,
            "held_bytes": s.result.held_bytes,
        },
        "recreated": s.result.recreated.iter().map(|p| &p.file).collect::<Vec<_>>(),
        "changed": s.overlay.changed.len(),
    })
}

/// How many files changed under the overlay and the first of them, or `None` if none did.
fn churn(changed: &[ScanError]) -> Option<String> {
    if changed.is_empty() {
        return None;
    }
    let count = |op: &str| changed.iter().filter(|c| c.op == op).count();
    let mut text = format!(
        "  {} files changed on the machine during the scan: {} sent as they are now, {} vanished\n",
        changed.len(),
        count("amended"),
        count("vanished")
    );
    for c in changed.iter().take(SHOWN) {
        text.push_str(&format!(
            "    {} {}: {}\n",
            c.op,
            rawpath::display(&c.path),
            c.message
        ));
    }
    if changed.len() > SHOWN {
        text.push_str(&format!("    ... and {} more\n", changed.len() - SHOWN));
    }
    Some(text)
}

/// Changed files listed by name in the summary.
const SHOWN: usize = 10;
