//! The native report encoding.
//!
//! Layout: the 16-byte [`MAGIC`], then one zstd stream holding records, each a little-endian
//! `u32` length followed by a postcard-encoded [`Record`]: exactly one `Header`, any number of
//! `File`, exactly one `Trailer`. A stream that ends before the trailer is truncated and
//! rejected as such.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use super::validate::{too_large, ReportLimits};
use super::ReportSink;
use crate::model::{FileEntry, ReportHeader, ReportTrailer};
use crate::{Error, Result};

/// First bytes of every native report; the digit is the format version.
pub const MAGIC: &[u8; 16] = b"UFORGE-REPORT/1\n";

/// Largest header or trailer record accepted when reading: bounds memory on hostile input.
const MAX_RECORD: usize = 256 << 20;

/// Largest file record accepted: two paths of at most `PATH_MAX`, names and the file's
/// extended attributes, which Linux filesystems keep to a block or a few.
pub const MAX_FILE_RECORD: usize = 1 << 20;

/// The postcard tag of [`Record::File`]: a record's first byte.
const FILE_TAG: u8 = 1;

/// Largest zstd window accepted (8 MiB, `2^23`): the writer's level uses 2 MiB; a frame that
/// asks for more would make the decoder allocate it.
const WINDOW_LOG_MAX: u32 = 23;

#[derive(Serialize, Deserialize)]
enum Record {
    Header(Box<ReportHeader>),
    File(FileEntry),
    Trailer(ReportTrailer),
}

#[derive(Serialize)]
enum RecordRef<'a> {
    Header(&'a ReportHeader),
    File(&'a FileEntry),
    Trailer(&'a ReportTrailer),
}

/// Writes the native encoding to any `Write`.
pub struct NativeWriter<W: Write> {
    enc: Option<zstd::Encoder<'static, W>>,
    /// The writer back from the encoder once the trailer ended the stream.
    done: Option<W>,
    buf: Vec<u8>,
    what: String,
}

impl<W: Write> NativeWriter<W> {
    /// Starts a report on `out`; `what` names it in errors.
    pub fn new(mut out: W, what: String) -> Result<Self> {
        let err = |e| Error::io("write", &what, e);
        out.write_all(MAGIC).map_err(err)?;
        let enc = zstd::Encoder::new(out, 3).map_err(err)?;
        Ok(NativeWriter {
            enc: Some(enc),
            done: None,
            buf: Vec::with_capacity(4096),
            what,
        })
    }

    fn put(&mut self, rec: &RecordRef<'_>) -> Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        let mut buf = std::mem::take(&mut self.buf);
        buf = postcard::to_extend(rec, buf).map_err(|e| Error::MalformedReport {
            what: self.what.clone(),
            message: format!("cannot encode record: {e}"),
        })?;
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        let enc = self
            .enc
            .as_mut()
            .ok_or_else(|| Error::Invalid(format!("report {} already finished", self.what)))?;
        enc.write_all(&buf)
            .map_err(|e| Error::io("write", &self.what, e))?;
        self.buf = buf;
        Ok(())
    }

    /// The underlying writer, flushed; ends the zstd stream first if the trailer has not.
    pub fn into_inner(mut self) -> Result<W> {
        self.finish()?;
        self.done
            .take()
            .ok_or_else(|| Error::Invalid(format!("report {} already taken", self.what)))
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(enc) = self.enc.take() {
            let mut w = enc
                .finish()
                .map_err(|e| Error::io("write", &self.what, e))?;
            w.flush().map_err(|e| Error::io("write", &self.what, e))?;
            self.done = Some(w);
        }
        Ok(())
    }
}

impl<W: Write> ReportSink for NativeWriter<W> {
    fn header(&mut self, header: &ReportHeader) -> Result<()> {
        self.put(&RecordRef::Header(header))
    }

    fn file(&mut self, entry: &FileEntry) -> Result<()> {
        self.put(&RecordRef::File(entry))
    }

    fn trailer(&mut self, trailer: &ReportTrailer) -> Result<()> {
        self.put(&RecordRef::Trailer(trailer))?;
        self.finish()
    }
}

/// Reads the native encoding from any `Read`.
pub struct NativeReader<R: Read> {
    dec: zstd::Decoder<'static, std::io::BufReader<R>>,
    buf: Vec<u8>,
    what: String,
    header: Option<ReportHeader>,
    trailer: Option<ReportTrailer>,
    limits: ReportLimits,
    /// Decompressed bytes read so far.
    decoded: u64,
}

impl<R: Read> NativeReader<R> {
    /// Checks the magic and prepares to decode; `what` names the report in errors.
    pub fn new(input: R, what: &str) -> Result<Self> {
        Self::with_limits(input, what, ReportLimits::default())
    }

    /// Like [`NativeReader::new`], refusing a report that decompresses past `limits.max_bytes`.
    pub fn with_limits(mut input: R, what: &str, limits: ReportLimits) -> Result<Self> {
        let mut magic = [0u8; 16];
        input
            .read_exact(&mut magic)
            .map_err(|e| malformed(what, format!("cannot read the magic: {e}")))?;
        if &magic != MAGIC {
            return Err(malformed(
                what,
                "not a native uforge report (bad magic)".into(),
            ));
        }
        let mut dec = zstd::Decoder::new(input).map_err(|e| malformed(what, e.to_string()))?;
        dec.window_log_max(WINDOW_LOG_MAX)
            .map_err(|e| malformed(what, e.to_string()))?;
        let mut r = NativeReader {
            dec,
            buf: Vec::new(),
            what: what.to_string(),
            header: None,
            trailer: None,
            limits,
            decoded: 0,
        };
        match r.record()? {
            Some(Record::Header(h)) => r.header = Some(*h),
            _ => return Err(malformed(what, "the first record is not the header".into())),
        }
        Ok(r)
    }

    /// The header (read when the reader was created).
    pub fn header(&mut self) -> Result<ReportHeader> {
        self.header
            .take()
            .ok_or_else(|| malformed(&self.what, "header already taken".into()))
    }

    /// The next file, or `None` once the trailer is reached.
    pub fn next_file(&mut self) -> Result<Option<FileEntry>> {
        if self.trailer.is_some() {
            return Ok(None);
        }
        match self.record()? {
            Some(Record::File(f)) => Ok(Some(f)),
            Some(Record::Trailer(t)) => {
                self.trailer = Some(t);
                Ok(None)
            }
            Some(Record::Header(_)) => Err(malformed(&self.what, "a second header".into())),
            None => Err(malformed(
                &self.what,
                "truncated: the stream ends before the trailer".into(),
            )),
        }
    }

    /// The trailer; only available once [`NativeReader::next_file`] returned `None`.
    pub fn trailer(&mut self) -> Result<ReportTrailer> {
        self.trailer
            .take()
            .ok_or_else(|| malformed(&self.what, "trailer not reached".into()))
    }

    fn record(&mut self) -> Result<Option<Record>> {
        let mut len = [0u8; 4];
        match read_full(&mut self.dec, &mut len) {
            Ok(0) => return Ok(None),
            Ok(4) => {}
            Ok(_) => return Err(malformed(&self.what, "truncated record length".into())),
            Err(e) => return Err(malformed(&self.what, format!("decompression failed: {e}"))),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_RECORD {
            return Err(too_large(
                &self.what,
                format!("a record of {len} bytes, more than the {MAX_RECORD} allowed"),
            ));
        }
        if len == 0 {
            return Err(malformed(&self.what, "an empty record".into()));
        }
        // The first byte says what the record is: a file's is bounded far below the rest.
        let mut tag = [0u8; 1];
        self.dec
            .read_exact(&mut tag)
            .map_err(|e| malformed(&self.what, format!("truncated record: {e}")))?;
        if tag[0] == FILE_TAG && len > MAX_FILE_RECORD {
            return Err(too_large(
                &self.what,
                format!("a file record of {len} bytes, more than the {MAX_FILE_RECORD} allowed"),
            ));
        }
        self.decoded += 4 + len as u64;
        if self.decoded > self.limits.max_bytes {
            return Err(too_large(
                &self.what,
                format!(
                    "it decompresses to more than {} bytes",
                    self.limits.max_bytes
                ),
            ));
        }
        self.buf.clear();
        self.buf.push(tag[0]);
        (&mut self.dec)
            .take(len as u64 - 1)
            .read_to_end(&mut self.buf)
            .map_err(|e| malformed(&self.what, format!("truncated record: {e}")))?;
        if self.buf.len() != len {
            return Err(malformed(&self.what, "truncated record".into()));
        }
        postcard::from_bytes(&self.buf)
            .map(Some)
            .map_err(|e| malformed(&self.what, format!("undecodable record: {e}")))
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn malformed(what: &str, message: String) -> Error {
    Error::MalformedReport {
        what: what.to_string(),
        message,
    }
}
