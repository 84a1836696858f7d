//! The live scan: the five steps of a migration scan, run by the agent on the source machine.
//!
//! 1. check the connection and credentials;
//! 2. scan the root into a compressed report held in memory (nothing is written on the scanned
//!    machine);
//! 3. post it and receive the analysis;
//! 4. ask the server which wanted files it already holds (an upload of this scan cut earlier,
//!    the same file of another machine) and stream the overlay of the rest from the disk to
//!    the socket through a pipe (a file that changed since the scan goes as it is now, and the
//!    server amends the stored report to match);
//! 5. the server stores it and recreates missing packages.

use std::collections::HashSet;
use std::io::{BufReader, Cursor};
use std::sync::Arc;

use uforge_api::OverlayResult;
use uforge_core::analysis::Analysis;
use uforge_core::model::RawPath;
use uforge_core::overlay::{write_overlay, OverlayStats};
use uforge_core::progress::Progress;
use uforge_core::rawpath;
use uforge_core::report::native::NativeWriter;
use uforge_core::report::ReportReader;
use uforge_core::scan::{scan, ScanOptions};

use crate::client::Client;
use crate::error::ClientError;

/// What to scan and under which machine name.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Machine name on the server; a second run with the same name is incremental.
    pub machine: String,
    /// The scan itself (root, excludes, threads).
    pub scan: ScanOptions,
}

/// What a run did.
#[derive(Debug)]
pub struct RunSummary {
    /// The server's scan id.
    pub scan_id: i64,
    /// The server's analysis of the report.
    pub analysis: Analysis,
    /// What the overlay carried; its `changed` lists the files that changed on the machine
    /// after the scan (sent as they are now, or recorded as vanished).
    pub overlay: OverlayStats,
    /// Size of the compressed report sent.
    pub report_bytes: u64,
    /// The server's answer to the overlay (status, stored members, recreated packages).
    pub result: OverlayResult,
    /// Wanted files not sent because the server already held their content.
    pub skipped_files: u64,
    /// Bytes of content not sent for that reason.
    pub skipped_bytes: u64,
}

/// Shares one in-memory report between readers without copying it.
#[derive(Clone)]
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Runs a live scan against the server.
pub fn run(
    client: &Client,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<RunSummary, ClientError> {
    progress.phase("connect", None);
    client.health()?;
    // Right after a dropped link the server may still be winding down the broken upload of
    // this machine's scan (409): a rerun waits for it rather than failing.
    let mut tries = 0;
    let created = loop {
        match client.create_scan(&opts.machine) {
            Err(e) if e.status() == Some(409) && tries < 30 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            other => break other?,
        }
    };
    let scan_id = created.id;

    progress.phase("scan", None);
    let mut sink = NativeWriter::new(Vec::new(), "the report in memory".into())?;
    scan(&opts.scan, &mut sink, progress)?;
    let report = Shared(Arc::new(sink.into_inner()?));
    let report_bytes = report.0.len() as u64;

    progress.phase("report", Some(report_bytes));
    let analysis = client.post_report(scan_id, &mut Cursor::new(report.clone()))?;

    let held = held_by_server(client, scan_id)?;
    let wanted: HashSet<RawPath> = analysis
        .wanted
        .iter()
        .filter(|p| !held.paths.contains(*p))
        .cloned()
        .collect();
    progress.phase(
        "overlay",
        Some(analysis.stats.wanted_bytes.saturating_sub(held.bytes)),
    );
    let mut reader = ReportReader::from_reader(
        BufReader::new(Cursor::new(report.clone())),
        "the report in memory",
    )?;
    let root = opts.scan.root.clone();
    let (pipe_rx, pipe_tx) = std::io::pipe().map_err(|e| uforge_core::Error::io("pipe", "", e))?;
    let (written, sent) = std::thread::scope(|s| {
        let writer = s.spawn(move || write_overlay(&root, &mut reader, &wanted, pipe_tx, progress));
        let mut body = pipe_rx;
        let sent = client.put_overlay(scan_id, &mut body);
        // If the upload stopped early, the writer fails on the closed pipe: drop our end so
        // it cannot block.
        drop(body);
        (writer.join(), sent)
    });
    let (overlay, result) = match (written, sent) {
        (Ok(Ok(stats)), Ok(result)) => (stats, result),
        // The upload stopped first (server refusal, broken link): the writer only saw its
        // pipe close, so the upload's error is the one that explains.
        (Ok(Err(e)), Err(net)) if is_broken_pipe(&e) => return Err(net),
        (Ok(Err(e)), _) => return Err(ClientError::Core(e)),
        (Ok(Ok(_)), Err(net)) => return Err(net),
        (Err(_), _) => {
            return Err(ClientError::Protocol {
                url: "overlay".into(),
                message: "the overlay writer panicked".into(),
            })
        }
    };
    progress.finish();
    Ok(RunSummary {
        scan_id,
        analysis,
        overlay,
        report_bytes,
        result,
        skipped_files: held.paths.len() as u64,
        skipped_bytes: held.bytes,
    })
}

/// The wanted paths the server already holds the content of.
struct Held {
    paths: HashSet<RawPath>,
    bytes: u64,
}

/// Asks the server what the overlay may leave out; a server that predates the question (404
/// for the route, the scan being there) holds nothing.
fn held_by_server(client: &Client, scan: i64) -> Result<Held, ClientError> {
    let w = match client.overlay_wanted(scan) {
        Ok(w) => w,
        Err(e) if e.status() == Some(404) => Default::default(),
        Err(e) => return Err(e),
    };
    let mut paths = HashSet::with_capacity(w.held.len());
    for p in &w.held {
        let raw = rawpath::from_text(p.path.as_deref(), p.path_b64.as_deref()).map_err(|m| {
            ClientError::Protocol {
                url: format!("/scans/{scan}/overlay/wanted"),
                message: m,
            }
        })?;
        paths.insert(raw);
    }
    Ok(Held {
        paths,
        bytes: w.held_bytes,
    })
}

fn is_broken_pipe(e: &uforge_core::Error) -> bool {
    matches!(e, uforge_core::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}
