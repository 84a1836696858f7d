//! Making a stored report and its analysis say what the overlay carried, once files changed on
//! the source between the scan and the overlay.
//!
//! The report file itself is rewritten (streamed into a sibling file, then renamed over it),
//! so that every later reader (image builds, reconcile and verify, templates, package
//! recreation, the next incremental scan) sees one consistent machine without knowing that
//! anything changed. Its trailer keeps the trace: one `amended` or `vanished` record per path.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use super::read::OverlayReceipt;
use crate::analysis::Analysis;
use crate::model::{FileEntry, FileKind, RawPath, ScanError};
use crate::report::native::NativeWriter;
use crate::report::{ReportReader, ReportSink};
use crate::{Error, Result};

/// Rewrites the report file `report` (natively encoded) with the amended entries of `receipt`
/// in place of the scanned ones and without the vanished ones, and updates `analysis` (the
/// analysis of that report) to match: vanished paths leave its lists, wanted bytes follow the
/// new sizes. Returns whether anything changed. The report is replaced atomically; on error it
/// is left as it was.
pub fn amend_report(
    report: &Path,
    analysis: &mut Analysis,
    receipt: &OverlayReceipt,
) -> Result<bool> {
    if receipt.amended.is_empty() && receipt.vanished.is_empty() {
        return Ok(false);
    }
    let amended: HashMap<&[u8], &FileEntry> = receipt
        .amended
        .iter()
        .map(|e| (e.path.as_slice(), e))
        .collect();
    let vanished: HashSet<&[u8]> = receipt.vanished.iter().map(Vec::as_slice).collect();
    let mut name = report.as_os_str().to_os_string();
    name.push(".amending");
    let tmp = Path::new(&name);
    let result = rewrite(report, tmp, &amended, &vanished, analysis);
    match result {
        Ok(()) => std::fs::rename(tmp, report).map_err(|e| Error::io("rename", tmp, e))?,
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
    }
    let gone = |p: &RawPath| vanished.contains(p.as_slice());
    analysis.wanted.retain(|p| !gone(p));
    analysis.unknown_files.retain(|p| !gone(p));
    analysis.modified_files.retain(|m| !gone(&m.path));
    analysis.metadata_files.retain(|m| !gone(&m.path));
    Ok(true)
}

fn rewrite(
    report: &Path,
    tmp: &Path,
    amended: &HashMap<&[u8], &FileEntry>,
    vanished: &HashSet<&[u8]>,
    analysis: &mut Analysis,
) -> Result<()> {
    let mut reader = ReportReader::open(report)?;
    let f = File::create(tmp).map_err(|e| Error::io("create", tmp, e))?;
    let mut w = NativeWriter::new(
        BufWriter::with_capacity(1 << 20, f),
        tmp.display().to_string(),
    )?;
    w.header(reader.header())?;
    let shipped = |e: &FileEntry| match e.kind {
        FileKind::File => e.size.min(e.allocated),
        _ => 0,
    };
    let mut notes = Vec::new();
    let (mut gone_entries, mut gone_bytes, mut new_bytes) = (0u64, 0u64, 0u64);
    // Regular files gained (hard links now carried as files) less those that vanished.
    let mut files: i64 = 0;
    while let Some(e) = reader.next_file()? {
        if vanished.contains(e.path.as_slice()) {
            gone_entries += 1;
            if e.kind == FileKind::File {
                files -= 1;
                gone_bytes += e.size;
            }
            analysis.stats.wanted_bytes = analysis.stats.wanted_bytes.saturating_sub(shipped(&e));
            notes.push(ScanError {
                path: e.path,
                op: "vanished".into(),
                message: "vanished between the scan and the overlay".into(),
            });
            continue;
        }
        let Some(now) = amended.get(e.path.as_slice()) else {
            w.file(&e)?;
            continue;
        };
        if e.kind == FileKind::File {
            gone_bytes += e.size;
        } else {
            // A hard link carried as a file of its own is now a regular file of the report.
            files += 1;
        }
        new_bytes += now.size;
        let stats = &mut analysis.stats;
        stats.wanted_bytes = stats.wanted_bytes.saturating_sub(shipped(&e)) + shipped(now);
        w.file(now)?;
        notes.push(ScanError {
            path: e.path,
            op: "amended".into(),
            message: "changed between the scan and the overlay: the entry is the file as the \
                      overlay carried it"
                .into(),
        });
    }
    let mut trailer = reader.trailer()?;
    let s = &mut trailer.stats;
    s.entries = s.entries.saturating_sub(gone_entries);
    s.files = s.files.saturating_add_signed(files);
    s.bytes = s.bytes.saturating_sub(gone_bytes) + new_bytes;
    s.errors += notes.len() as u64;
    trailer.errors.extend(notes);
    w.trailer(&trailer)?;
    let f = w
        .into_inner()?
        .into_inner()
        .map_err(|e| Error::io("write", tmp, e.into_error()))?;
    f.sync_all().map_err(|e| Error::io("sync", tmp, e))?;
    Ok(())
}
