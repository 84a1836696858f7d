//! The blocking work behind a report upload: receiving and checking the report, and keeping its
//! analysis. Each step calls the library and returns its errors, for the API to map.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use uforge_api::ScanSummary;
use uforge_core::analysis::Analysis;
use uforge_core::overlay::{amend_report, OverlayReceipt};
use uforge_core::report::native::{NativeWriter, MAGIC};
use uforge_core::report::{ReportLimits, ReportReader};
use uforge_core::{Error, Result};

/// Creates (or truncates) a file only the server's user can read.
pub fn create_private(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("create", path, e))
}

/// Copies an upload into `tmp`, refusing it (and removing the file) past `limit` bytes.
pub fn receive(body: &mut dyn Read, tmp: &Path, limit: u64) -> Result<u64> {
    let result = (|| {
        let f = create_private(tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let n = std::io::copy(&mut body.take(limit + 1), &mut w)
            .map_err(|e| Error::io("store the upload in", tmp, e))?;
        if n > limit {
            return Err(too_large(limit));
        }
        w.flush().map_err(|e| Error::io("write", tmp, e))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// The refusal of a report over the limit.
pub fn too_large(limit: u64) -> Error {
    Error::ReportTooLarge {
        what: "upload".into(),
        message: format!("larger than the limit of {limit} bytes (--max-report-bytes)"),
    }
}

/// Decodes and validates the whole upload (either encoding) within `limits` and writes it
/// natively to `dest`. `what` names the report in errors.
pub fn store_report(upload: &Path, dest: &Path, what: &str, limits: ReportLimits) -> Result<()> {
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(op, p, e)
    };
    let mut head = [0u8; MAGIC.len()];
    let n = File::open(upload)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(io("read", upload))?;
    let open = || -> Result<ReportReader> {
        let f = File::open(upload).map_err(io("open", upload))?;
        ReportReader::from_reader_with(BufReader::with_capacity(1 << 16, f), what, limits)
    };
    if head[..n] == MAGIC[..] {
        // Already native: decoding it to the end is the check.
        let mut r = open()?;
        r.trailer()?;
        std::fs::rename(upload, dest).map_err(io("rename", upload))?;
    } else {
        let f = create_private(dest)?;
        let mut w = NativeWriter::new(BufWriter::with_capacity(1 << 20, f), what.to_string())?;
        if let Err(e) = open().and_then(|r| r.copy_to(&mut w)) {
            drop(w);
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
        let _ = std::fs::remove_file(upload);
    }
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Writes the analysis document (the same as `uforge-scan analyze -o`).
pub fn write_analysis(a: &Analysis, dest: &Path) -> Result<()> {
    let f = create_private(dest)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    a.write_json(&mut w)?;
    w.flush().map_err(|e| Error::io("write", dest, e))
}

/// Amends the stored report and analysis once an overlay carried files that changed on the
/// machine after the scan ([`amend_report`]); returns the new totals to keep, or `None` when
/// nothing changed.
pub fn amend(
    report: &Path,
    analysis_file: &Path,
    analysis: &mut Analysis,
    receipt: &OverlayReceipt,
) -> Result<Option<String>> {
    if !amend_report(report, analysis, receipt)? {
        return Ok(None);
    }
    let tmp = analysis_file.with_extension("json.amending");
    write_analysis(analysis, &tmp)?;
    std::fs::rename(&tmp, analysis_file).map_err(|e| Error::io("rename", &tmp, e))?;
    let mut s = summary(analysis);
    s.amended = receipt.amended.len() as u64;
    s.vanished = receipt.vanished.len() as u64;
    serde_json::to_string(&s)
        .map(Some)
        .map_err(|e| Error::Invalid(format!("cannot encode the scan's totals: {e}")))
}

/// The totals kept in the database and shown with a scan.
pub fn summary(a: &Analysis) -> ScanSummary {
    let n = |v: usize| v as u64;
    ScanSummary {
        packages: a.stats.packages,
        entries: a.stats.entries,
        missing_packages: n(a.missing_packages.len()),
        modified_files: n(a.modified_files.len()),
        metadata_files: n(a.metadata_files.len()),
        deleted_files: n(a.deleted_files.len()),
        unknown_files: n(a.unknown_files.len()),
        wanted: n(a.wanted.len()),
        wanted_bytes: a.stats.wanted_bytes,
        held: a.stats.held,
        amended: 0,
        vanished: 0,
    }
}

/// The repository of a user's recreated packages for the release a report was scanned from:
/// packages recreated for one release are never offered to a machine of another.
pub fn release_repo(
    own_repos: &std::path::Path,
    report: &std::path::Path,
) -> uforge_core::Result<std::path::PathBuf> {
    let header = uforge_core::report::ReportReader::open(report)?
        .header()
        .clone();
    Ok(own_repos.join(uforge_core::repo::release_dir_name(&header.machine.os)))
}
