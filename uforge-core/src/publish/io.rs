//! Reading image files for upload: ranges of one open file read by position (so parallel
//! parts share it without seeking), counted into the progress, and whole-file SHA-256.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::error::{local_io, ErrorKind, Result, TargetError};
use crate::progress::Progress;

/// Read size: large enough that the hash and the socket see few calls.
pub(crate) const BUF: usize = 1 << 20;

/// `len` bytes of `file` from `offset`, read by position.
pub(crate) struct FileRange<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> FileRange<'a> {
    pub(crate) fn new(file: &'a File, offset: u64, len: u64) -> Self {
        FileRange {
            file,
            pos: offset,
            end: offset + len,
        }
    }
}

impl Read for FileRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the image file shrank while it was being sent",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Opens the image and returns it with its size.
pub(crate) fn open_image(target: &str, path: &Path) -> Result<(File, u64)> {
    let f = File::open(path).map_err(|e| image_io(target, "open", path, &e))?;
    let size = f
        .metadata()
        .map_err(|e| image_io(target, "stat", path, &e))?
        .len();
    Ok((f, size))
}

/// A read error on the image: the image's fault, not the target's.
pub(crate) fn image_io(target: &str, op: &str, path: &Path, e: &std::io::Error) -> TargetError {
    let mut err = local_io(target, op, path, e);
    if err.kind != ErrorKind::NoSpace {
        err.kind = ErrorKind::Image;
    }
    err
}

/// SHA-256 of `len` bytes of `file` from `offset`, fed into `hasher`; progress counts them.
pub(crate) fn hash_range(
    hasher: &mut Sha256,
    file: &File,
    offset: u64,
    len: u64,
    progress: &dyn Progress,
) -> std::io::Result<()> {
    let mut r = FileRange::new(file, offset, len);
    let mut buf = vec![0u8; BUF];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
        progress.advance(0, n as u64);
    }
}

/// Lower-case hex SHA-256 of the whole image, in a `hash` phase.
pub(crate) fn sha256_of(
    target: &str,
    path: &Path,
    file: &File,
    size: u64,
    progress: &dyn Progress,
) -> Result<String> {
    progress.phase("hash", Some(size));
    let mut h = Sha256::new();
    hash_range(&mut h, file, 0, size, progress).map_err(|e| image_io(target, "read", path, &e))?;
    progress.finish();
    Ok(crate::blobstore::to_hex(&h.finalize().into()))
}

/// Checks a known SHA-256 against the one computed; a difference means the file is not the
/// image the caller meant.
pub(crate) fn check_sha256(
    target: &str,
    path: &Path,
    known: Option<&str>,
    got: &str,
) -> Result<()> {
    let norm = |s: &str| s.trim_start_matches("sha256:").to_ascii_lowercase();
    match known {
        Some(k) if norm(k) != norm(got) => Err(TargetError::new(
            target,
            ErrorKind::Mismatch,
            format!(
                "{} hashes to {got}, not the {k} its build recorded",
                path.display()
            ),
        )),
        _ => Ok(()),
    }
}
