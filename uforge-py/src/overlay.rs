//! `uforge.write_overlay`: the overlay tar streamed to a file or to a Python file object.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use uforge_core::model::RawPath;
use uforge_core::overlay::{self, OverlayStats};
use uforge_core::{rawpath, Error, Result};

use crate::analysis::Analysis;
use crate::convert::FsArg;
use crate::errors::{to_py, OverlayError};
use crate::model::ScanError;
use crate::progress::Callback;
use crate::report::Report;

/// How many changed files the exception message names (all are in its `changed` attribute).
const NAMED: usize = 10;

/// A Python binary file object as a `Write`. Core writes the archive in 1 MiB chunks, so the
/// GIL is taken once per chunk.
struct PyWriter {
    obj: Py<PyAny>,
    /// The exception the object raised: re-raised as is rather than as an IoError.
    error: Option<PyErr>,
}

impl PyWriter {
    fn failed(&mut self, e: PyErr) -> std::io::Error {
        self.error = Some(e);
        std::io::Error::other("the file object raised an exception")
    }
}

impl Write for PyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = Python::attach(|py| {
            let n = self
                .obj
                .call_method1(py, "write", (PyBytes::new(py, buf),))?;
            // Raw files may write less and say so; buffered ones return the length or None.
            Ok::<_, PyErr>(n.extract::<Option<usize>>(py).ok().flatten())
        });
        match written {
            Ok(n) => Ok(n.unwrap_or(buf.len()).min(buf.len())),
            Err(e) => Err(self.failed(e)),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = Python::attach(|py| {
            let obj = self.obj.bind(py);
            if obj.hasattr("flush")? {
                obj.call_method0("flush")?;
            }
            Ok::<_, PyErr>(())
        });
        flushed.map_err(|e| self.failed(e))
    }
}

/// An overlay's statistics as `write_overlay` returns them.
pub(crate) fn stats_dict<'py>(py: Python<'py>, s: &OverlayStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("members", s.members)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("content_bytes", s.content_bytes)?;
    d.set_item("skipped", s.skipped)?;
    Ok(d)
}

/// Streams a POSIX pax tar of exactly `analysis.wanted` to `dest`.
///
/// `dest` is a path (created or truncated) or a binary file object with `write`, called with
/// chunks of about 1 MiB (the GIL is taken for each). Metadata comes from the report, contents
/// from `root` (default: the root the report was scanned from), checked against the report's
/// digests as they stream. `progress(members, bytes)` as for `scan`.
///
/// Returns `{"members", "bytes", "content_bytes", "skipped"}`. Raises OverlayError, with
/// `changed` (ScanError list) and `stats`, when files changed since the scan: the archive is
/// complete, carrying them as they are now or recording them as vanished, but no longer
/// matches `report`. An exception raised by `dest.write` propagates as is.
#[pyfunction]
#[pyo3(signature = (report, analysis, dest, root = None, progress = None))]
pub fn write_overlay<'py>(
    py: Python<'py>,
    report: Py<Report>,
    analysis: Py<Analysis>,
    dest: &Bound<'py, PyAny>,
    root: Option<FsArg>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let root = root
        .map(|r| r.path())
        .unwrap_or_else(|| PathBuf::from(OsStr::from_bytes(&report.get().header().scan.root)));
    let cb = Callback::new(py, progress)?;
    let write = |out: &mut dyn Write| -> Result<OverlayStats> {
        let mut reader = report.get().reader()?;
        let wanted: HashSet<RawPath> = analysis.get().0.wanted.iter().cloned().collect();
        overlay::write_overlay(&root, &mut reader, &wanted, out, &cb)
    };
    let stats = if dest.hasattr("write")? {
        let mut w = PyWriter {
            obj: dest.clone().unbind(),
            error: None,
        };
        let result = py.detach(|| write(&mut w));
        if let Some(e) = w.error.take() {
            return Err(e);
        }
        result
    } else {
        let path = dest.extract::<FsArg>()?.path();
        py.detach(|| {
            let mut file =
                std::fs::File::create(&path).map_err(|e| Error::io("create", &path, e))?;
            write(&mut file)
        })
    }
    .map_err(to_py)?;
    cb.done(py)?;

    if !stats.changed.is_empty() {
        let named: Vec<String> = stats
            .changed
            .iter()
            .take(NAMED)
            .map(|c| format!("{}: {}", rawpath::display(&c.path), c.message))
            .collect();
        let err = OverlayError::new_err(format!(
            "{} files changed since the scan; the overlay carries them as they are now: {}{}",
            stats.changed.len(),
            named.join("; "),
            if stats.changed.len() > NAMED {
                "; ..."
            } else {
                ""
            }
        ));
        let changed: Vec<ScanError> = stats.changed.iter().map(ScanError::from).collect();
        err.value(py).setattr("changed", changed)?;
        err.value(py).setattr("stats", stats_dict(py, &stats)?)?;
        return Err(err);
    }
    stats_dict(py, &stats)
}
