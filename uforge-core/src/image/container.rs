//! Tree formats: OCI image layout, docker-archive and tar.gz, written from the root directory.
//!
//! The root is scanned into a report file beside the output, then archived by the overlay
//! writer ([`crate::overlay::write_tree`]), which carries owners, modes, nanosecond mtimes,
//! xattrs (file capabilities included), hard links, device nodes, fifos, sparse files and raw
//! byte names as a pax tar. The scan's default exclusions apply: the contents of `/proc`,
//! `/sys`, `/dev`, `/run`, `/tmp`, `/var/tmp` and apt's package cache are left out, the
//! directories themselves kept, which is what container runtimes and unpackers expect (they
//! mount those). Sockets are left out, as tar cannot carry them.
//!
//! The tar goes through its hashes and the gzip encoder on a thread of its own, so that
//! compression overlaps reading the tree, and straight into the output file: memory stays flat
//! whatever the size of the tree, and nothing is written twice.

mod archive;
mod oci;

pub(crate) use archive::Archive;

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::{Format, ImageFormat, Staged};
use crate::model::{ReportHeader, ReportTrailer, ScanError};
use crate::progress::NoProgress;
use crate::report::{self, ReportReader, ReportSink};
use crate::scan::{self, ScanOptions};
use crate::{overlay, rawpath, Error, Result};

/// gzip level of layers and tarballs: the fastest, as compression is what the write waits
/// on and the slower levels gain little on a root tree of mostly compressed packages' files.
const GZIP_LEVEL: u32 = 1;
/// Size of the buffers handed to the compression thread.
const CHUNK: usize = 1 << 20;
/// Buffers in flight between the archive writer and the compression thread.
const IN_FLIGHT: usize = 4;

/// Writer of a tree format from the root directory.
#[derive(Debug, Clone, Copy)]
pub struct TreeFormat(pub Format);

impl ImageFormat for TreeFormat {
    fn format(&self) -> Format {
        self.0
    }

    /// Writes the root tree `staged.root` as `out`:
    /// - `tar.gz`: a gzip-compressed pax tar of the tree (members `./`, `etc/`, `etc/passwd`);
    /// - `oci`: an OCI image layout as one uncompressed tar (the `oci-archive` transport):
    ///   `oci-layout`, `index.json` (the manifest tagged `latest`) and `blobs/sha256/` with the
    ///   config, the manifest and one gzip-compressed layer;
    /// - `docker-archive`: what `docker save` writes: `manifest.json` (tag `NAME:latest`),
    ///   the config and one uncompressed layer.
    ///
    /// The image config takes its architecture from `staged.machine` (OCI names: `amd64`,
    /// `arm64`...) and runs `/bin/sh` when the tree has a shell, nothing otherwise. The
    /// module documentation says what the tree holds.
    fn write(&self, staged: &Staged<'_>, out: &Path) -> Result<()> {
        match self.0 {
            Format::TarGz => write_tar_gz(staged.root, out),
            Format::Oci => write_oci(staged, out),
            Format::DockerArchive => write_docker(staged, out),
            other => Err(Error::Invalid(format!(
                "{other} is a disk format: it is written from the raw disk, not from a tree"
            ))),
        }
    }
}

fn write_tar_gz(root: &Path, out: &Path) -> Result<()> {
    let report = Scratch::beside(out, "scan.ufr");
    scan_tree(root, &report.0)?;
    let file = File::create(out).map_err(|e| Error::io("create", out, e))?;
    let gz = GzEncoder::new(
        BufWriter::with_capacity(CHUNK, file),
        Compression::new(GZIP_LEVEL),
    );
    let gz = tree_tar(root, &report.0, gz, out)?;
    let file = gz
        .finish()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(|e| Error::io("write", out, e))?;
    file.sync_all().map_err(|e| Error::io("sync", out, e))
}

/// The layer of a container image, once written.
struct Layer {
    /// `sha256:HEX` of the uncompressed tar.
    diff_id: String,
    /// `sha256:HEX` of the blob as stored (the same as `diff_id` when uncompressed).
    digest: String,
    /// Size of the blob as stored.
    size: u64,
}

/// Streams the layer into a new member of `archive`, named by its digest once known with
/// `name(hex)`. With `gzip`, the blob is the gzip-compressed tar.
fn layer_member(
    staged: &Staged<'_>,
    report: &Path,
    archive: &mut Archive,
    out: &Path,
    gzip: bool,
    name: impl Fn(&str) -> String,
) -> Result<Layer> {
    let pending = archive.begin()?;
    let stored = Digesting::new(archive.writer());
    let (diff, stored) = if gzip {
        let gz = GzEncoder::new(stored, Compression::new(GZIP_LEVEL));
        let diff = tree_tar(staged.root, report, Digesting::new(gz), out)?;
        let stored = diff
            .inner
            .finish()
            .map_err(|e| Error::io("write", out, e))?;
        (diff.hash, stored)
    } else {
        let stored = tree_tar(staged.root, report, stored, out)?;
        (stored.hash.clone(), stored)
    };
    let digest = hex(&stored.hash.finalize());
    let size = archive.finish_member(pending, &name(&digest))?;
    Ok(Layer {
        diff_id: format!("sha256:{}", hex(&diff.finalize())),
        digest: format!("sha256:{digest}"),
        size,
    })
}

fn image_config(staged: &Staged<'_>, layer: &Layer, now: i64) -> Result<(Vec<u8>, oci::Platform)> {
    let platform = oci::platform(staged.machine)?;
    let created = oci::rfc3339(now);
    let config = oci::config(&oci::ConfigInput {
        platform,
        diff_id: &layer.diff_id,
        created: &created,
        cmd: oci::default_cmd(staged.root),
        name: staged.name,
    });
    Ok((config, platform))
}

fn write_oci(staged: &Staged<'_>, out: &Path) -> Result<()> {
    // Fail on an unknown architecture before the long part.
    oci::platform(staged.machine)?;
    let report = Scratch::beside(out, "scan.ufr");
    scan_tree(staged.root, &report.0)?;
    let now = now();
    let mut a = Archive::create(out, now as u64)?;
    a.file("oci-layout", &oci::oci_layout())?;
    a.dir("blobs/")?;
    a.dir("blobs/sha256/")?;
    let layer = layer_member(staged, &report.0, &mut a, out, true, |hex| {
        format!("blobs/sha256/{hex}")
    })?;
    let (config, platform) = image_config(staged, &layer, now)?;
    let config_digest = sha256_hex(&config);
    a.file(&format!("blobs/sha256/{config_digest}"), &config)?;
    let manifest = oci::manifest(
        oci::descriptor(
            oci::MEDIA_CONFIG,
            &format!("sha256:{config_digest}"),
            config.len() as u64,
        ),
        oci::descriptor(oci::MEDIA_LAYER_GZIP, &layer.digest, layer.size),
    );
    let manifest_digest = sha256_hex(&manifest);
    a.file(&format!("blobs/sha256/{manifest_digest}"), &manifest)?;
    let index = oci::index(
        oci::descriptor(
            oci::MEDIA_MANIFEST,
            &format!("sha256:{manifest_digest}"),
            manifest.len() as u64,
        ),
        platform,
        staged.name,
    );
    a.file("index.json", &index)?;
    a.finish()
}

fn write_docker(staged: &Staged<'_>, out: &Path) -> Result<()> {
    oci::platform(staged.machine)?;
    let report = Scratch::beside(out, "scan.ufr");
    scan_tree(staged.root, &report.0)?;
    let now = now();
    let mut a = Archive::create(out, now as u64)?;
    let layer = layer_member(staged, &report.0, &mut a, out, false, |hex| {
        format!("{hex}.tar")
    })?;
    let layer_file = format!("{}.tar", layer.digest.trim_start_matches("sha256:"));
    let (config, _) = image_config(staged, &layer, now)?;
    let config_file = format!("{}.json", sha256_hex(&config));
    a.file(&config_file, &config)?;
    let tag = format!("{}:{}", oci::repository(staged.name), oci::TAG);
    a.file(
        "manifest.json",
        &oci::docker_manifest(&config_file, &tag, &layer_file),
    )?;
    a.finish()
}

/// Scans `root` into the report file `report`, failing when the scan could not read a path
/// (the archive would silently lack it).
fn scan_tree(root: &Path, report: &Path) -> Result<()> {
    let mut opts = ScanOptions::new(root);
    opts.output = Some(report.to_path_buf());
    let mut sink = FileErrors {
        inner: report::create(report)?,
        errors: Vec::new(),
    };
    scan::scan(&opts, &mut sink, &NoProgress)?;
    // Facts and the package database are not archived: only file errors matter.
    let errors: Vec<&ScanError> = sink
        .errors
        .iter()
        .filter(|e| !matches!(e.op.as_str(), "facts" | "pkgdb"))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "cannot archive {}: {} path(s) could not be read: {}",
        root.display(),
        errors.len(),
        list(errors.iter().map(|e| (&e.path, &e.op, &e.message)))
    )))
}

/// Writes the tar of the tree scanned into `report` to `sink` on another thread, and returns
/// the sink.
fn tree_tar<S: Write + Send>(root: &Path, report: &Path, sink: S, out: &Path) -> Result<S> {
    let mut reader = ReportReader::open(report)?;
    let (stats, sink) = on_thread(sink, out, |w| {
        overlay::write_tree(root, &mut reader, w, &NoProgress)
    })?;
    if !stats.changed.is_empty() {
        return Err(Error::Invalid(format!(
            "cannot archive {}: {} file(s) changed while being archived: {}",
            root.display(),
            stats.changed.len(),
            list(stats.changed.iter().map(|e| (&e.path, &e.op, &e.message)))
        )));
    }
    Ok(sink)
}

/// The first few of a list of path errors, for a message.
fn list<'a>(items: impl Iterator<Item = (&'a Vec<u8>, &'a String, &'a String)>) -> String {
    let mut shown: Vec<String> = items
        .take(6)
        .map(|(p, op, m)| format!("{} ({op}: {m})", rawpath::display(p)))
        .collect();
    if shown.len() == 6 {
        shown[5] = "…".into();
    }
    shown.join("; ")
}

/// Runs `body` with a writer whose bytes reach `sink` on another thread; returns what `body`
/// returned and the sink. An error of the sink (`out` names it) wins over the error it made
/// `body` stop with.
fn on_thread<S: Write + Send, T>(
    mut sink: S,
    out: &Path,
    body: impl FnOnce(&mut ChunkWriter) -> Result<T>,
) -> Result<(T, S)> {
    let (work_tx, work_rx) = crossbeam_channel::bounded::<Vec<u8>>(IN_FLIGHT);
    let (free_tx, free_rx) = crossbeam_channel::bounded::<Vec<u8>>(IN_FLIGHT + 2);
    std::thread::scope(|s| {
        let worker = s.spawn(move || -> std::io::Result<S> {
            for mut buf in work_rx {
                sink.write_all(&buf)?;
                buf.clear();
                let _ = free_tx.try_send(buf);
            }
            // No flush: on a gzip encoder it would end a deflate block early. The caller
            // finishes the sink.
            Ok(sink)
        });
        let mut w = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            work: Some(work_tx),
            free: free_rx,
        };
        let result =
            body(&mut w).and_then(|t| w.ship().map(|()| t).map_err(|e| Error::io("write", out, e)));
        // Closing the channel lets the worker finish and return the sink.
        w.work = None;
        let sink = match worker.join() {
            Ok(r) => r.map_err(|e| Error::io("write", out, e))?,
            Err(_) => return Err(Error::Invalid("the compression thread panicked".into())),
        };
        result.map(|t| (t, sink))
    })
}

/// The writing side of [`on_thread`]: fills buffers and hands them over.
struct ChunkWriter {
    buf: Vec<u8>,
    work: Option<Sender<Vec<u8>>>,
    free: Receiver<Vec<u8>>,
}

impl ChunkWriter {
    fn ship(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .free
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.buf, next);
        let stopped = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "writer stopped");
        self.work
            .as_ref()
            .ok_or_else(stopped)?
            .send(full)
            .map_err(|_| stopped())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() == CHUNK {
            self.ship()?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        // Buffers travel whole; the final one goes when the body is done.
        Ok(())
    }
}

/// Hashes whatever passes through it.
struct Digesting<W> {
    inner: W,
    hash: Sha256,
}

impl<W> Digesting<W> {
    fn new(inner: W) -> Self {
        Digesting {
            inner,
            hash: Sha256::new(),
        }
    }
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hash.update(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Collects the scan's errors on their way to the report file.
struct FileErrors {
    inner: Box<dyn ReportSink>,
    errors: Vec<ScanError>,
}

impl ReportSink for FileErrors {
    fn header(&mut self, header: &ReportHeader) -> Result<()> {
        self.inner.header(header)
    }
    fn file(&mut self, entry: &crate::model::FileEntry) -> Result<()> {
        self.inner.file(entry)
    }
    fn trailer(&mut self, trailer: &ReportTrailer) -> Result<()> {
        self.errors.clone_from(&trailer.errors);
        self.inner.trailer(trailer)
    }
}

/// A scratch file beside the output, removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    /// `OUT.SUFFIX`: beside the output, so on the filesystem the caller made room on.
    pub(crate) fn beside(out: &Path, suffix: &str) -> Self {
        let mut name = OsString::from(out.as_os_str());
        name.push(".");
        name.push(suffix);
        let path = PathBuf::from(name);
        // A leftover of an interrupted run would make `create_new` callers fail.
        let _ = std::fs::remove_file(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
