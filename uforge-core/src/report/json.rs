//! The JSON form of a report: the documented public format, `"format": "uforge-report"`,
//! `"version": 1`, described by `schema/uforge-report-v1.schema.json`.
//!
//! Raw byte strings that are UTF-8 appear as text (`path`, `target`); others appear base64
//! encoded under a `_b64` name (`path_b64`, `target_b64`). Extended attribute values are always
//! base64, digests are lower-case hex.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::validate::{too_large, ReportLimits};
use super::ReportSink;
use crate::model::{
    Exclude, FileEntry, FileKind, Machine, Package, RawPath, Report, ReportHeader, ReportTrailer,
    ScanError, ScanInfo, ScanStats,
};
use crate::rawpath::{to_text, TextPath, B64};
use crate::{Error, Result};

/// The `format` value of a JSON report.
pub const FORMAT: &str = "uforge-report";
/// The JSON format version this library writes and reads.
pub const VERSION: u32 = 1;

/// A raw byte string as it appears in JSON: `name` when UTF-8, `name_b64` otherwise.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Bytes {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    b64: Option<String>,
}

impl Bytes {
    fn of(raw: &[u8]) -> Self {
        match to_text(raw) {
            TextPath::Utf8(s) => Bytes {
                text: Some(s.to_string()),
                b64: None,
            },
            TextPath::Base64(b) => Bytes {
                text: None,
                b64: Some(b),
            },
        }
    }

    fn decode(self, field: &str) -> std::result::Result<Option<RawPath>, String> {
        match (self.text, self.b64) {
            (Some(t), None) => Ok(Some(t.into_bytes())),
            (None, Some(b)) => B64
                .decode(b)
                .map(Some)
                .map_err(|e| format!("{field}_b64 is not base64: {e}")),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(format!("both {field} and {field}_b64 are set")),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct JsonFile {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    path_b64: Option<String>,
    kind: FileKind,
    mode: u32,
    uid: u32,
    gid: u32,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    group: Option<String>,
    size: u64,
    mtime: i64,
    #[serde(default)]
    mtime_nsec: u32,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    target_b64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    rdev: Option<(u32, u32)>,
    #[serde(default)]
    xattrs: BTreeMap<String, String>,
    #[serde(default)]
    package: Option<String>,
    #[serde(default)]
    allocated: u64,
}

impl JsonFile {
    fn from_entry(f: &FileEntry) -> Self {
        let path = Bytes::of(&f.path);
        let target = f.target.as_deref().map(Bytes::of).unwrap_or_default();
        JsonFile {
            path: path.text,
            path_b64: path.b64,
            kind: f.kind,
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
            user: f.user.clone(),
            group: f.group.clone(),
            size: f.size,
            mtime: f.mtime,
            mtime_nsec: f.mtime_nsec,
            sha256: f.sha256.map(|d| hex(&d)),
            target: target.text,
            target_b64: target.b64,
            rdev: f.rdev,
            xattrs: f
                .xattrs
                .iter()
                .map(|(k, v)| (k.clone(), B64.encode(v)))
                .collect(),
            package: f.package.clone(),
            allocated: f.allocated,
        }
    }

    fn into_entry(self) -> std::result::Result<FileEntry, String> {
        let path = Bytes {
            text: self.path,
            b64: self.path_b64,
        }
        .decode("path")?
        .ok_or("a file has neither path nor path_b64")?;
        let at = || String::from_utf8_lossy(&path).into_owned();
        let target = Bytes {
            text: self.target,
            b64: self.target_b64,
        }
        .decode("target")
        .map_err(|e| format!("{}: {e}", at()))?;
        let sha256 = match self.sha256 {
            Some(h) => Some(unhex(&h).ok_or_else(|| format!("{}: bad sha256 {h:?}", at()))?),
            None => None,
        };
        let mut xattrs = BTreeMap::new();
        for (k, v) in self.xattrs {
            let v = B64
                .decode(&v)
                .map_err(|e| format!("{}: xattr {k} is not base64: {e}", at()))?;
            xattrs.insert(k, v);
        }
        if self.mode > 0o7777 {
            return Err(format!(
                "{}: mode {} has bits above 0o7777",
                at(),
                self.mode
            ));
        }
        Ok(FileEntry {
            path,
            kind: self.kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            user: self.user,
            group: self.group,
            size: self.size,
            mtime: self.mtime,
            mtime_nsec: self.mtime_nsec,
            sha256,
            target,
            rdev: self.rdev,
            xattrs,
            package: self.package,
            allocated: self.allocated,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct JsonExclude {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    path_b64: Option<String>,
    contents_only: bool,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct JsonScan {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    root: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    root_b64: Option<String>,
    live: bool,
    started: i64,
    tool: String,
    excludes: Vec<JsonExclude>,
}

#[derive(Serialize, Deserialize)]
struct JsonError {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    path_b64: Option<String>,
    op: String,
    message: String,
}

/// The whole document, for reading.
#[derive(Deserialize)]
struct JsonReport {
    format: String,
    version: u32,
    scan: JsonScan,
    machine: Machine,
    packages: Vec<Package>,
    files: Vec<JsonFile>,
    #[serde(default)]
    errors: Vec<JsonError>,
    #[serde(default)]
    stats: ScanStats,
}

fn scan_to_json(s: &ScanInfo) -> JsonScan {
    let root = Bytes::of(&s.root);
    JsonScan {
        root: root.text,
        root_b64: root.b64,
        live: s.live,
        started: s.started,
        tool: s.tool.clone(),
        excludes: s
            .excludes
            .iter()
            .map(|e| {
                let p = Bytes::of(&e.path);
                JsonExclude {
                    path: p.text,
                    path_b64: p.b64,
                    contents_only: e.contents_only,
                    reason: e.reason.clone(),
                }
            })
            .collect(),
    }
}

/// Writes the JSON form as a stream: one line per file, so memory stays flat.
pub struct JsonWriter<W: Write> {
    out: W,
    what: String,
    first_file: bool,
}

impl<W: Write> JsonWriter<W> {
    /// Starts a JSON report on `out`; `what` names it in errors.
    pub fn new(out: W, what: String) -> Self {
        JsonWriter {
            out,
            what,
            first_file: true,
        }
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io("write", &self.what, e)
    }

    fn value<T: Serialize>(&mut self, v: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, v)
            .map_err(|e| Error::io("write", &self.what, e.into()))
    }
}

impl<W: Write> ReportSink for JsonWriter<W> {
    fn header(&mut self, h: &ReportHeader) -> Result<()> {
        write!(
            self.out,
            "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"scan\":"
        )
        .map_err(|e| self.io(e))?;
        self.value(&scan_to_json(&h.scan))?;
        self.out
            .write_all(b",\n\"machine\":")
            .map_err(|e| self.io(e))?;
        self.value(&h.machine)?;
        self.out
            .write_all(b",\n\"packages\":")
            .map_err(|e| self.io(e))?;
        self.value(&h.packages)?;
        self.out
            .write_all(b",\n\"files\":[")
            .map_err(|e| self.io(e))?;
        Ok(())
    }

    fn file(&mut self, f: &FileEntry) -> Result<()> {
        let sep: &[u8] = if self.first_file { b"\n" } else { b",\n" };
        self.first_file = false;
        self.out.write_all(sep).map_err(|e| self.io(e))?;
        self.value(&JsonFile::from_entry(f))
    }

    fn trailer(&mut self, t: &ReportTrailer) -> Result<()> {
        self.out
            .write_all(b"],\n\"errors\":")
            .map_err(|e| self.io(e))?;
        let errors: Vec<JsonError> = t
            .errors
            .iter()
            .map(|e| {
                let p = Bytes::of(&e.path);
                JsonError {
                    path: p.text,
                    path_b64: p.b64,
                    op: e.op.clone(),
                    message: e.message.clone(),
                }
            })
            .collect();
        self.value(&errors)?;
        self.out
            .write_all(b",\n\"stats\":")
            .map_err(|e| self.io(e))?;
        self.value(&t.stats)?;
        self.out.write_all(b"}\n").map_err(|e| self.io(e))?;
        self.out.flush().map_err(|e| self.io(e))
    }
}

/// Reads a whole JSON report, validating what the schema cannot (base64, digests, exclusive
/// path fields). Errors name the offending entry.
pub fn read(input: impl Read, what: &str) -> Result<Report> {
    read_with(input, what, ReportLimits::default())
}

/// Counts what passes and fails the read past a limit, so that a report too large is told
/// apart from a malformed one.
struct Bounded<R> {
    inner: R,
    left: u64,
    over: bool,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.over = true;
            return Err(std::io::Error::other("the report is too large"));
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Like [`read`], refusing a document of more than `limits.max_bytes` bytes or
/// `limits.max_entries` files.
pub fn read_with(input: impl Read, what: &str, limits: ReportLimits) -> Result<Report> {
    let bad = |message: String| Error::MalformedReport {
        what: what.to_string(),
        message,
    };
    let mut bounded = Bounded {
        inner: input,
        left: limits.max_bytes,
        over: false,
    };
    let parsed: serde_json::Result<JsonReport> =
        serde_json::from_reader(std::io::BufReader::new(&mut bounded));
    if bounded.over {
        return Err(too_large(
            what,
            format!("more than {} bytes of JSON", limits.max_bytes),
        ));
    }
    let doc = parsed.map_err(|e| bad(e.to_string()))?;
    if doc.files.len() as u64 > limits.max_entries {
        return Err(too_large(
            what,
            format!("more than {} entries", limits.max_entries),
        ));
    }
    if doc.format != FORMAT {
        return Err(bad(format!(
            "format is {:?}, expected {FORMAT:?}",
            doc.format
        )));
    }
    if doc.version != VERSION {
        return Err(bad(format!(
            "version {} is not supported (this reader knows {VERSION})",
            doc.version
        )));
    }
    let root = Bytes {
        text: doc.scan.root,
        b64: doc.scan.root_b64,
    }
    .decode("root")
    .map_err(bad)?
    .unwrap_or_default();
    let mut excludes = Vec::new();
    for e in doc.scan.excludes {
        let path = Bytes {
            text: e.path,
            b64: e.path_b64,
        }
        .decode("path")
        .map_err(bad)?
        .ok_or_else(|| bad("an exclude has no path".into()))?;
        excludes.push(Exclude {
            path,
            contents_only: e.contents_only,
            reason: e.reason,
        });
    }
    let mut files = Vec::with_capacity(doc.files.len());
    for f in doc.files {
        files.push(f.into_entry().map_err(bad)?);
    }
    let mut errors = Vec::new();
    for e in doc.errors {
        let path = Bytes {
            text: e.path,
            b64: e.path_b64,
        }
        .decode("path")
        .map_err(bad)?
        .unwrap_or_default();
        errors.push(ScanError {
            path,
            op: e.op,
            message: e.message,
        });
    }
    Ok(Report {
        header: ReportHeader {
            scan: ScanInfo {
                root,
                live: doc.scan.live,
                started: doc.scan.started,
                tool: doc.scan.tool,
                excludes,
            },
            machine: doc.machine,
            packages: doc.packages,
        },
        files,
        trailer: ReportTrailer {
            errors,
            stats: doc.stats,
        },
    })
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses a 64-digit hex SHA-256.
pub fn unhex(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        out[i] = (d(pair[0])? * 16 + d(pair[1])?) as u8;
    }
    Some(out)
}
