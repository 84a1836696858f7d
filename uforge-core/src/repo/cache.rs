//! The on-disk cache: files appear whole or not at all, because several processes and threads
//! share it and a crash must never leave a truncated index or `.deb` behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// A file being written under a private name, renamed into place by [`TempFile::persist`] and
/// removed if dropped before that.
pub(crate) struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// A fresh name in `dir` (created if needed), not yet a file: for tools that refuse to
    /// overwrite their output (gpgv).
    pub fn name_in(dir: &Path, hint: &str) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{hint}.{}.{n}.tmp", std::process::id()));
        Ok(TempFile { path, armed: true })
    }

    /// A new empty file in `dir`, open for writing.
    pub fn create_in(dir: &Path, hint: &str) -> Result<(Self, File)> {
        loop {
            let t = Self::name_in(dir, hint)?;
            match File::options().write(true).create_new(true).open(&t.path) {
                Ok(f) => return Ok((t, f)),
                // A leftover of a crashed process with the same pid: pick the next name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", &t.path, e)),
            }
        }
    }

    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the file to `dest` (same filesystem, so the rename is atomic).
    pub fn persist(mut self, dest: &Path) -> Result<()> {
        std::fs::rename(&self.path, dest).map_err(|e| Error::io("rename into", dest, e))?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to `dest` atomically.
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let (tmp, mut f) = TempFile::create_in(dir, "write")?;
    f.write_all(bytes)
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    drop(f);
    tmp.persist(dest)
}

/// Stores `value` as `magic` + zstd(postcard(value)). The magic names the format version so
/// that a cache written by an older build is ignored rather than misread.
pub(crate) fn store<T: Serialize>(dest: &Path, magic: &[u8], value: &T) -> Result<()> {
    let raw = postcard::to_stdvec(value)
        .map_err(|e| Error::Invalid(format!("encoding {}: {e}", dest.display())))?;
    let mut out = magic.to_vec();
    out.extend(zstd::bulk::compress(&raw, 3).map_err(|e| Error::io("compress", dest, e))?);
    write_atomic(dest, &out)
}

/// Loads what [`store`] wrote; `None` when the file is missing, of another format version or
/// damaged, so the caller rebuilds it.
pub(crate) fn load<T: DeserializeOwned>(path: &Path, magic: &[u8]) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    let body = bytes.strip_prefix(magic)?;
    let raw = zstd::stream::decode_all(body).ok()?;
    postcard::from_bytes(&raw).ok()
}
