//! Reads everything about one path: metadata, link target, xattrs, content digest. Runs on the
//! worker threads; results go back to the writer in walk order.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::model::{FileEntry, FileKind, ScanError};

/// Identity of an inode, to find further names of it (hard links).
pub type InodeKey = (u64, u64);

/// What inspecting one path produced.
pub struct Inspected {
    /// The entry, unless the path vanished or could not be stat'ed.
    pub entry: Option<FileEntry>,
    /// The inode, when it has several names.
    pub inode: Option<InodeKey>,
    /// Problems met (an entry can still be recorded with a partial error, e.g. unreadable xattrs).
    pub errors: Vec<ScanError>,
}

/// Reads buffer size: large enough that syscall overhead vanishes next to hashing.
const BUF: usize = 256 << 10;

/// Per-thread scratch space.
pub struct Scratch {
    buf: Vec<u8>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch { buf: vec![0; BUF] }
    }
}

fn err(path: &[u8], op: &str, e: impl std::fmt::Display) -> ScanError {
    ScanError {
        path: path.to_vec(),
        op: op.to_string(),
        message: e.to_string(),
    }
}

/// Inspects `full` (the host path) recorded as `path` (the in-root path).
pub fn inspect(full: &Path, path: &[u8], scratch: &mut Scratch) -> Inspected {
    let mut errors = Vec::new();
    let meta = match std::fs::symlink_metadata(full) {
        Ok(m) => m,
        Err(e) => {
            let op = if e.kind() == std::io::ErrorKind::NotFound {
                "vanished"
            } else {
                "stat"
            };
            return Inspected {
                entry: None,
                inode: None,
                errors: vec![err(path, op, e)],
            };
        }
    };
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        FileKind::File
    } else if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_fifo() {
        FileKind::Fifo
    } else if ft.is_socket() {
        FileKind::Socket
    } else if ft.is_char_device() {
        FileKind::Char
    } else {
        FileKind::Block
    };
    let mut entry = FileEntry {
        path: path.to_vec(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        user: None,
        group: None,
        size: meta.size(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec() as u32,
        sha256: None,
        target: None,
        rdev: None,
        xattrs: BTreeMap::new(),
        package: None,
        allocated: meta.blocks() * 512,
    };
    match kind {
        FileKind::Symlink => match std::fs::read_link(full) {
            Ok(t) => entry.target = Some(t.as_os_str().as_bytes().to_vec()),
            Err(e) => errors.push(err(path, "readlink", e)),
        },
        FileKind::Char | FileKind::Block => {
            let rdev = meta.rdev();
            entry.rdev = Some((libc::major(rdev), libc::minor(rdev)));
        }
        FileKind::File => match hash_file(full, &meta, &mut scratch.buf) {
            Ok(d) => entry.sha256 = Some(d),
            Err((op, e)) => {
                let vanished = e.kind() == std::io::ErrorKind::NotFound;
                errors.push(err(path, if vanished { "vanished" } else { op }, e));
                if vanished {
                    return Inspected {
                        entry: None,
                        inode: None,
                        errors,
                    };
                }
            }
        },
        _ => {}
    }
    read_xattrs(full, path, &mut entry.xattrs, &mut errors);
    let inode = (kind != FileKind::Dir && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
    Inspected {
        entry: Some(entry),
        inode,
        errors,
    }
}

/// Hashes a regular file, checking that what was read is the inode that was stat'ed and that
/// it did not change size underneath: a file rewritten during the scan is reported, not given
/// a digest that matches neither version.
fn hash_file(
    full: &Path,
    meta: &std::fs::Metadata,
    buf: &mut [u8],
) -> Result<[u8; 32], (&'static str, std::io::Error)> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOATIME)
        .open(full)
        .or_else(|e| {
            // O_NOATIME (which keeps the scan from touching atimes) is refused for files we do
            // not own unless privileged; retry without it.
            if e.raw_os_error() == Some(libc::EPERM) {
                File::options()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(full)
            } else {
                Err(e)
            }
        })
        .map_err(|e| ("open", e))?;
    let now = f.metadata().map_err(|e| ("stat", e))?;
    if now.ino() != meta.ino() || now.dev() != meta.dev() {
        return Err((
            "changed",
            std::io::Error::other("replaced by another file during the scan"),
        ));
    }
    let mut h = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(("read", e)),
        };
        h.update(&buf[..n]);
        total += n as u64;
    }
    if total != meta.size() {
        return Err((
            "changed",
            std::io::Error::other(format!(
                "size changed during the scan ({} bytes recorded, {total} read)",
                meta.size()
            )),
        ));
    }
    Ok(h.finalize().into())
}

/// Reads the extended attributes of `full` (recorded as `path`) into `out`, noting problems in
/// `errors`.
pub(crate) fn read_xattrs(
    full: &Path,
    path: &[u8],
    out: &mut BTreeMap<String, Vec<u8>>,
    errors: &mut Vec<ScanError>,
) {
    let names = match xattr::list(full) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return,
        Err(e) => {
            errors.push(err(path, "xattr", e));
            return;
        }
    };
    for name in names {
        let Some(key) = name.to_str() else {
            errors.push(err(
                path,
                "xattr",
                format!("attribute name {:?} is not UTF-8", name),
            ));
            continue;
        };
        match xattr::get(full, &name) {
            Ok(Some(v)) => {
                out.insert(key.to_string(), v);
            }
            Ok(None) => {}
            Err(e) => errors.push(err(path, "xattr", format!("{key}: {e}"))),
        }
    }
}
