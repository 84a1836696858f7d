//! Reading and writing reports.
//!
//! Two encodings hold the same data:
//! - the native form ([`native`]): a magic line, then a zstd stream of length-prefixed postcard
//!   records (header, one record per file, trailer). It is written and read as a stream, so a
//!   report of millions of files never sits in memory whole;
//! - the JSON form ([`json`]): the documented public format (`schema/uforge-report-v1.schema.json`),
//!   also written as a stream.
//!
//! Writers implement [`ReportSink`]; [`ReportReader`] reads either form back.

pub mod json;
pub mod native;
pub mod validate;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::model::{FileEntry, Report, ReportHeader, ReportTrailer};
use crate::{Error, Result};
pub use validate::{ReportLimits, Validator};

/// Receives a report as it is produced: the header once, every file in order, the trailer once.
pub trait ReportSink {
    /// Writes the header. Called once, first.
    fn header(&mut self, header: &ReportHeader) -> Result<()>;
    /// Writes one file entry.
    fn file(&mut self, entry: &FileEntry) -> Result<()>;
    /// Writes the trailer and flushes. Called once, last.
    fn trailer(&mut self, trailer: &ReportTrailer) -> Result<()>;
}

/// Collects a report in memory.
impl ReportSink for Report {
    fn header(&mut self, header: &ReportHeader) -> Result<()> {
        self.header = header.clone();
        Ok(())
    }
    fn file(&mut self, entry: &FileEntry) -> Result<()> {
        self.files.push(entry.clone());
        Ok(())
    }
    fn trailer(&mut self, trailer: &ReportTrailer) -> Result<()> {
        self.trailer = trailer.clone();
        Ok(())
    }
}

/// Which encoding a report uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The compact binary form.
    Native,
    /// The JSON form.
    Json,
}

impl Encoding {
    /// The encoding a file name asks for: JSON for `.json`, native otherwise.
    pub fn for_path(path: &Path) -> Self {
        match path.extension() {
            Some(e) if e.eq_ignore_ascii_case("json") => Encoding::Json,
            _ => Encoding::Native,
        }
    }
}

enum Inner {
    Native(Box<native::NativeReader<Box<dyn Read + Send>>>),
    Json(std::vec::IntoIter<FileEntry>, Option<ReportTrailer>),
}

/// Reads a report of either encoding: the header at once, then files one at a time. Every
/// part is checked by a [`Validator`] as it is read: no caller sees a malformed entry.
pub struct ReportReader {
    header: ReportHeader,
    inner: Inner,
    validator: Validator,
}

impl ReportReader {
    /// Opens a report file, detecting its encoding from its first bytes.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, ReportLimits::default())
    }

    /// Opens a report file within the given limits.
    pub fn open_with(path: &Path, limits: ReportLimits) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        Self::from_reader_with(
            BufReader::with_capacity(1 << 16, file),
            &path.display().to_string(),
            limits,
        )
    }

    /// Reads a report from a stream; `what` names it in errors.
    pub fn from_reader<R: BufRead + Send + 'static>(input: R, what: &str) -> Result<Self> {
        Self::from_reader_with(input, what, ReportLimits::default())
    }

    /// Reads a report from a stream within the given limits; `what` names it in errors.
    pub fn from_reader_with<R: BufRead + Send + 'static>(
        mut input: R,
        what: &str,
        limits: ReportLimits,
    ) -> Result<Self> {
        let mut validator = Validator::new(what, limits);
        let head = input.fill_buf().map_err(|e| Error::MalformedReport {
            what: what.to_string(),
            message: e.to_string(),
        })?;
        let first = head.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if head.starts_with(native::MAGIC) {
            let mut r = native::NativeReader::with_limits(
                Box::new(input) as Box<dyn Read + Send>,
                what,
                limits,
            )?;
            let header = r.header()?;
            validator.header(&header)?;
            Ok(ReportReader {
                header,
                inner: Inner::Native(Box::new(r)),
                validator,
            })
        } else if first == Some(b'{') {
            let report = json::read_with(input, what, limits)?;
            validator.header(&report.header)?;
            Ok(ReportReader {
                header: report.header,
                inner: Inner::Json(report.files.into_iter(), Some(report.trailer)),
                validator,
            })
        } else {
            Err(Error::MalformedReport {
                what: what.to_string(),
                message: "neither a native uforge report nor JSON".into(),
            })
        }
    }

    /// The header: scan info, machine facts, packages.
    pub fn header(&self) -> &ReportHeader {
        &self.header
    }

    /// The next file entry, or `None` after the last one.
    pub fn next_file(&mut self) -> Result<Option<FileEntry>> {
        let next = match &mut self.inner {
            Inner::Native(r) => r.next_file()?,
            Inner::Json(it, _) => it.next(),
        };
        if let Some(f) = &next {
            self.validator.file(f)?;
        }
        Ok(next)
    }

    /// The trailer, once every file has been read (reads and drops remaining files first).
    pub fn trailer(&mut self) -> Result<ReportTrailer> {
        while self.next_file()?.is_some() {}
        let trailer = match &mut self.inner {
            Inner::Native(r) => r.trailer()?,
            Inner::Json(_, t) => t.take().unwrap_or_default(),
        };
        self.validator.trailer(&trailer)?;
        Ok(trailer)
    }

    /// Streams the whole report into a sink (re-encoding it).
    pub fn copy_to(mut self, sink: &mut dyn ReportSink) -> Result<ReportTrailer> {
        sink.header(&self.header)?;
        while let Some(f) = self.next_file()? {
            sink.file(&f)?;
        }
        let trailer = self.trailer()?;
        sink.trailer(&trailer)?;
        Ok(trailer)
    }

    /// Reads everything into memory.
    pub fn into_report(self) -> Result<Report> {
        let mut report = Report::default();
        self.copy_to(&mut report)?;
        Ok(report)
    }
}

impl Iterator for ReportReader {
    type Item = Result<FileEntry>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_file().transpose()
    }
}

impl Report {
    /// Loads a whole report (either encoding) into memory.
    pub fn load(path: &Path) -> Result<Report> {
        ReportReader::open(path)?.into_report()
    }

    /// Saves the report, in JSON when the name ends in `.json`, natively otherwise.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut sink = create(path)?;
        sink.header(&self.header)?;
        for f in &self.files {
            sink.file(f)?;
        }
        sink.trailer(&self.trailer)
    }
}

/// Creates a report file whose encoding follows its name ([`Encoding::for_path`]).
pub fn create(path: &Path) -> Result<Box<dyn ReportSink>> {
    let file = File::create(path).map_err(|e| Error::io("create", path, e))?;
    let out = std::io::BufWriter::with_capacity(1 << 16, file);
    Ok(match Encoding::for_path(path) {
        Encoding::Json => Box::new(json::JsonWriter::new(out, path.display().to_string())),
        Encoding::Native => Box::new(native::NativeWriter::new(out, path.display().to_string())?),
    })
}
