//! `uforge.scan` and `uforge.Report`.
//!
//! A report is held as its native encoding (a zstd stream, a few bytes per file) plus its
//! decoded header and trailer: machine facts and packages are at hand, and files are decoded
//! from the bytes each time they are iterated.

use std::io::Cursor;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use uforge_core::model::{FileEntry, ReportHeader, ReportTrailer};
use uforge_core::report::json::JsonWriter;
use uforge_core::report::native::{NativeWriter, MAGIC};
use uforge_core::report::{self, Encoding, ReportReader, ReportSink};
use uforge_core::scan::ScanOptions;
use uforge_core::{repo, Error, Result};

use crate::convert::{to_python, FsArg};
use crate::errors::to_py;
use crate::model::{FileIterator, Machine, Package, ScanError, ScanInfo};
use crate::progress::Callback;

/// Shared report bytes that a reader can own (`Cursor` needs `AsRef<[u8]>`).
#[derive(Clone)]
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Encodes a report natively into memory, keeping its header and trailer.
struct Capture<'a> {
    native: NativeWriter<&'a mut Vec<u8>>,
    header: Option<ReportHeader>,
    trailer: Option<ReportTrailer>,
}

impl ReportSink for Capture<'_> {
    fn header(&mut self, header: &ReportHeader) -> Result<()> {
        self.header = Some(header.clone());
        self.native.header(header)
    }

    fn file(&mut self, entry: &FileEntry) -> Result<()> {
        self.native.file(entry)
    }

    fn trailer(&mut self, trailer: &ReportTrailer) -> Result<()> {
        self.trailer = Some(trailer.clone());
        self.native.trailer(trailer)
    }
}

/// The result of a scan: machine facts, packages, and every file with its metadata.
///
/// Obtained from `uforge.scan`, `Report.load` or `Report.from_bytes`. The files are kept
/// compressed in memory and decoded one at a time by `files()`.
#[pyclass(frozen, module = "uforge")]
pub struct Report {
    bytes: Shared,
    header: ReportHeader,
    trailer: ReportTrailer,
    /// Names the report in error messages (its file, or the scanned root).
    what: String,
}

impl Report {
    /// Runs `fill` against an in-memory native encoder and keeps the result.
    fn build(what: &str, fill: impl FnOnce(&mut dyn ReportSink) -> Result<()>) -> Result<Self> {
        let mut bytes = Vec::new();
        let mut cap = Capture {
            native: NativeWriter::new(&mut bytes, what.to_string())?,
            header: None,
            trailer: None,
        };
        fill(&mut cap)?;
        let incomplete = || Error::MalformedReport {
            what: what.to_string(),
            message: "the report was not written to its end".into(),
        };
        let header = cap.header.take().ok_or_else(incomplete)?;
        let trailer = cap.trailer.take().ok_or_else(incomplete)?;
        drop(cap);
        Ok(Report {
            bytes: Shared(Arc::new(bytes)),
            header,
            trailer,
            what: what.to_string(),
        })
    }

    /// A report from the bytes of a report file, native or JSON.
    fn from_data(data: Vec<u8>, what: &str) -> Result<Self> {
        if data.starts_with(MAGIC) {
            // Decoding it to the end checks the whole stream and yields the trailer.
            let bytes = Shared(Arc::new(data));
            let mut r = ReportReader::from_reader(Cursor::new(bytes.clone()), what)?;
            let header = r.header().clone();
            let trailer = r.trailer()?;
            Ok(Report {
                bytes,
                header,
                trailer,
                what: what.to_string(),
            })
        } else {
            let r = ReportReader::from_reader(Cursor::new(data), what)?;
            Report::build(what, |sink| r.copy_to(sink).map(drop))
        }
    }

    /// A fresh reader over the report's bytes.
    pub fn reader(&self) -> Result<ReportReader> {
        ReportReader::from_reader(Cursor::new(self.bytes.clone()), &self.what)
    }

    /// The decoded header.
    pub fn header(&self) -> &ReportHeader {
        &self.header
    }
}

#[pymethods]
impl Report {
    /// Machine facts: OS, architecture, kernels, mounts, network, users...
    #[getter]
    fn machine(&self) -> Machine {
        Machine::from(&self.header.machine)
    }

    /// Native packages, as a new list of `Package` on each access.
    #[getter]
    fn packages(&self) -> Vec<Package> {
        self.header.packages.iter().map(Package::from).collect()
    }

    /// How the scan was run: root, live or not, start time, tool, excludes.
    #[getter]
    fn scan_info(&self) -> ScanInfo {
        ScanInfo::from(&self.header.scan)
    }

    /// Paths the scan could not record fully, as `ScanError` objects.
    #[getter]
    fn errors(&self) -> Vec<ScanError> {
        self.trailer.errors.iter().map(ScanError::from).collect()
    }

    /// Totals: `entries`, `files`, `dirs`, `bytes`, `packaged`, `errors`, `duration_ms`.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.trailer.stats)
    }

    /// The architectures whose repository indexes an analysis of this report needs (the
    /// machine's, any other its packages use, and `all`): pass them to
    /// `RepoIndex.from_sources(..., archs=...)`.
    #[getter]
    fn index_archs(&self) -> Vec<String> {
        repo::archs_of(&self.header)
    }

    /// A lazy iterator over the file entries, in scan order (parents before children). Each
    /// call starts again from the first entry; entries are decoded one per step.
    fn files(&self) -> PyResult<FileIterator> {
        Ok(FileIterator::new(self.reader().map_err(to_py)?))
    }

    /// Saves the report: JSON when the name ends in `.json`, the native form otherwise.
    fn save(&self, py: Python<'_>, path: FsArg) -> PyResult<()> {
        let path = path.path();
        py.detach(|| match Encoding::for_path(&path) {
            Encoding::Native => {
                std::fs::write(&path, self.bytes.as_ref()).map_err(|e| Error::io("write", &path, e))
            }
            Encoding::Json => {
                let mut sink = report::create(&path)?;
                self.reader()?.copy_to(sink.as_mut()).map(drop)
            }
        })
        .map_err(to_py)
    }

    /// Loads a report file, native or JSON (detected from its content).
    #[staticmethod]
    fn load(py: Python<'_>, path: FsArg) -> PyResult<Report> {
        let path = path.path();
        py.detach(|| {
            let data = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            Report::from_data(data, &path.display().to_string())
        })
        .map_err(to_py)
    }

    /// A report from the content of a report file (native or JSON bytes).
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Report> {
        let data = data.to_vec();
        py.detach(|| Report::from_data(data, "report bytes"))
            .map_err(to_py)
    }

    /// The native encoding, as written by `save` to a name not ending in `.json`.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.bytes.as_ref())
    }

    /// The JSON form (`schema/uforge-report-v1.schema.json`), as a string.
    fn to_json(&self, py: Python<'_>) -> PyResult<String> {
        let out = py
            .detach(|| {
                let mut out = Vec::new();
                let mut w = JsonWriter::new(&mut out, self.what.clone());
                self.reader()?.copy_to(&mut w)?;
                drop(w);
                Ok::<_, Error>(out)
            })
            .map_err(to_py)?;
        String::from_utf8(out).map_err(|e| {
            to_py(Error::Invalid(format!(
                "the JSON form of {} is not UTF-8: {e}",
                self.what
            )))
        })
    }

    fn __repr__(&self) -> String {
        let m = &self.header.machine;
        format!(
            "<uforge.Report of {}: {}, {} packages, {} entries>",
            self.what,
            m.os.pretty_name.as_deref().unwrap_or("unknown OS"),
            self.header.packages.len(),
            self.trailer.stats.entries
        )
    }
}

/// Scans a root directory: machine facts, packages, and every file with its metadata, SHA-256,
/// xattrs and owning package. The GIL is released while scanning.
///
/// `exclude` lists in-root paths to leave out entirely (`/srv/cache`). With `default_excludes`
/// the contents of `/proc`, `/sys`, `/dev`, `/run`, `/tmp`... are skipped (and pseudo and
/// network filesystems on a live system). `threads`: hashing threads, 0 for one per core.
///
/// `progress(entries, bytes)` gets running totals at most ~10 times a second, and the final
/// totals once at the end. If it raises, it is not called again, the scan runs to its end, and
/// the exception is then raised instead of returning the report.
///
/// Problems with single paths are recorded in `Report.errors`; only an unreadable root fails
/// (IoError, InvalidError).
#[pyfunction]
#[pyo3(
    signature = (
        root = FsArg(b"/".to_vec()),
        exclude = Vec::new(),
        progress = None,
        *,
        default_excludes = true,
        threads = 0
    ),
    text_signature = "(root='/', exclude=(), progress=None, *, default_excludes=True, threads=0)"
)]
pub fn scan(
    py: Python<'_>,
    root: FsArg,
    exclude: Vec<FsArg>,
    progress: Option<Py<PyAny>>,
    default_excludes: bool,
    threads: usize,
) -> PyResult<Report> {
    let mut opts = ScanOptions::new(root.path());
    opts.excludes = exclude.into_iter().map(|e| e.0).collect();
    opts.default_excludes = default_excludes;
    opts.threads = threads;
    opts.tool = format!("uforge-py {}", env!("CARGO_PKG_VERSION"));
    let what = format!("scan of {}", opts.root.display());
    let cb = Callback::new(py, progress)?;
    let report = py.detach(|| {
        Report::build(&what, |sink| {
            uforge_core::scan::scan(&opts, sink, &cb).map(drop)
        })
    });
    let report = report.map_err(to_py)?;
    cb.done(py)?;
    Ok(report)
}
