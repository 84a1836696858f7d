//! Making a freshly installed root equal to the scanned machine, file by file.
//!
//! The installed root and the scan are walked side by side in walk order (flat memory):
//! every scanned entry the install did not reproduce exactly is recreated from the overlay's
//! contents or has its metadata fixed, and every path the scanned machine did not have (package
//! files it had deleted, install leftovers) is removed. Paths the scan left out are not touched.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::{file_diff, walk_order};
use crate::blobstore::{to_hex, BlobStore};
use crate::model::{FileEntry, FileKind, ReportHeader, ScanStats};
use crate::progress::Progress;
use crate::report::{self, ReportReader};
use crate::scan::{scan, ScanOptions};
use crate::{Error, Result};

/// What reconciling did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileStats {
    /// Scanned entries the install reproduced exactly.
    pub kept: u64,
    /// Entries created or replaced from the scan (overlay contents).
    pub restored: u64,
    /// Entries whose metadata alone was corrected.
    pub metadata: u64,
    /// Paths removed because the scanned machine did not have them.
    pub removed: u64,
    /// Entries that could not be made equal to the scan, with the reason.
    pub unrestorable: Vec<(String, String)>,
}

/// Scans `root` into the report file `out` the way `source` was scanned (same exclusions), for
/// comparing it with the source. Returns the scan's counts.
pub fn scan_like(root: &Path, source: &ReportHeader, out: &Path) -> Result<ScanStats> {
    let mut opts = ScanOptions::new(root);
    for e in &source.scan.excludes {
        if !e.contents_only {
            opts.excludes.push(e.path.clone());
        }
    }
    opts.output = Some(out.to_path_buf());
    let mut sink = report::create(out)?;
    scan(&opts, sink.as_mut(), &crate::progress::NoProgress)
}

/// Directories whose contents the source scan skipped (without the directory itself).
fn contents_excluded(source: &ReportHeader) -> HashSet<Vec<u8>> {
    source
        .scan
        .excludes
        .iter()
        .filter(|e| e.contents_only)
        .map(|e| e.path.clone())
        .collect()
}

/// Whether `path` lies strictly inside one of `dirs`.
pub(crate) fn inside_any(path: &[u8], dirs: &HashSet<Vec<u8>>) -> bool {
    if dirs.is_empty() {
        return false;
    }
    let mut i = path.len();
    while let Some(p) = path[..i].iter().rposition(|&c| c == b'/') {
        let parent: &[u8] = if p == 0 { b"/" } else { &path[..p] };
        if dirs.contains(parent) {
            return true;
        }
        if p == 0 {
            break;
        }
        i = p;
    }
    false
}

/// Makes `root` equal to the machine of the report `report`, reading file contents from
/// `blobs`. `work` holds a temporary scan of `root`.
pub fn reconcile(
    root: &Path,
    report: &Path,
    blobs: &dyn BlobStore,
    work: &Path,
    progress: &dyn Progress,
) -> Result<ReconcileStats> {
    let mut src = ReportReader::open(report)?;
    let header = src.header().clone();
    let installed = work.join("installed.report");
    progress.phase("reconcile", None);
    scan_like(root, &header, &installed)?;
    let mut dst = ReportReader::open(&installed)?;
    let skip_inside = contents_excluded(&header);
    let mut r = Reconciler {
        root: root.as_os_str().as_bytes().to_vec(),
        blobs,
        stats: ReconcileStats::default(),
        dirs: Vec::new(),
        removed_dir: None,
    };
    let (mut s, mut t) = (src.next_file()?, dst.next_file()?);
    loop {
        // Entries below a directory removed as a whole are gone already.
        if let (Some(te), Some(gone)) = (&t, &r.removed_dir) {
            if te.path.starts_with(gone) && te.path.get(gone.len()) == Some(&b'/') {
                t = dst.next_file()?;
                continue;
            }
        }
        let ord = match (&s, &t) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => walk_order(&a.path, &b.path),
        };
        match ord {
            Ordering::Less => {
                let e = s.take().expect("present");
                r.create(&e);
                s = src.next_file()?;
            }
            Ordering::Greater => {
                let e = t.take().expect("present");
                if !inside_any(&e.path, &skip_inside) {
                    r.remove(&e);
                }
                t = dst.next_file()?;
            }
            Ordering::Equal => {
                let (a, b) = (s.take().expect("present"), t.take().expect("present"));
                r.fix(&a, &b);
                s = src.next_file()?;
                t = dst.next_file()?;
            }
        }
        progress.advance(1, 0);
    }
    // Directory times last, deepest first: creating their entries moved them.
    for (path, e) in r.dirs.iter().rev() {
        let _ = set_mtime(path, e);
    }
    let _ = std::fs::remove_file(&installed);
    progress.finish();
    Ok(r.stats)
}

struct Reconciler<'a> {
    root: Vec<u8>,
    blobs: &'a dyn BlobStore,
    stats: ReconcileStats,
    dirs: Vec<(PathBuf, FileEntry)>,
    removed_dir: Option<Vec<u8>>,
}

impl Reconciler<'_> {
    fn full(&self, in_root: &[u8]) -> PathBuf {
        let mut p = self.root.clone();
        while p.last() == Some(&b'/') {
            p.pop();
        }
        if in_root != b"/" {
            p.extend_from_slice(in_root);
        }
        PathBuf::from(std::ffi::OsStr::from_bytes(&p))
    }

    fn fail(&mut self, e: &FileEntry, why: impl std::fmt::Display) {
        self.stats.unrestorable.push((
            String::from_utf8_lossy(&e.path).into_owned(),
            why.to_string(),
        ));
    }

    /// A scanned entry the installed root lacks.
    fn create(&mut self, e: &FileEntry) {
        match self.materialize(e) {
            Ok(()) => self.stats.restored += 1,
            Err(why) => self.fail(e, why),
        }
    }

    /// A path the scanned machine did not have.
    fn remove(&mut self, e: &FileEntry) {
        let p = self.full(&e.path);
        let res = if e.kind == FileKind::Dir {
            self.removed_dir = Some(e.path.clone());
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match res {
            Ok(()) => self.stats.removed += 1,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => self.fail(e, format!("cannot remove: {err}")),
        }
    }

    /// A path both have: replace it or fix its metadata.
    fn fix(&mut self, want: &FileEntry, have: &FileEntry) {
        let mut what = file_diff(want, have);
        if want.kind == FileKind::Hardlink && !self.same_inode(want) {
            what.push("link");
        }
        if what.is_empty() {
            self.stats.kept += 1;
            if want.kind == FileKind::Dir {
                self.dirs.push((self.full(&want.path), want.clone()));
            }
            return;
        }
        let replace = what
            .iter()
            .any(|w| matches!(*w, "kind" | "content" | "target" | "device" | "link"));
        let res = if replace {
            let p = self.full(&have.path);
            let gone = if have.kind == FileKind::Dir {
                if want.kind == FileKind::Dir {
                    Ok(())
                } else {
                    self.removed_dir = Some(have.path.clone());
                    std::fs::remove_dir_all(&p)
                }
            } else {
                std::fs::remove_file(&p)
            };
            gone.map_err(|err| format!("cannot replace: {err}"))
                .and_then(|()| self.materialize(want))
                .map(|()| self.stats.restored += 1)
        } else {
            self.metadata(want)
                .map(|()| self.stats.metadata += 1)
                .map_err(|e| e.to_string())
        };
        if let Err(why) = res {
            self.fail(want, why);
        }
    }

    fn same_inode(&self, e: &FileEntry) -> bool {
        let Some(first) = &e.target else {
            return true;
        };
        match (
            std::fs::symlink_metadata(self.full(&e.path)),
            std::fs::symlink_metadata(self.full(first)),
        ) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        }
    }

    /// Creates `e` (whose path is free) with its content and metadata.
    fn materialize(&mut self, e: &FileEntry) -> std::result::Result<(), String> {
        let p = self.full(&e.path);
        match e.kind {
            FileKind::Dir => match std::fs::create_dir(&p) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => {}
                Err(err) => return Err(format!("cannot create directory: {err}")),
            },
            FileKind::File => self.write_content(e, &p)?,
            FileKind::Hardlink => {
                let first = e.target.as_ref().ok_or("hard link without a first name")?;
                std::fs::hard_link(self.full(first), &p).map_err(|err| {
                    format!("cannot link to {}: {err}", String::from_utf8_lossy(first))
                })?;
            }
            FileKind::Symlink => {
                let target = e.target.as_ref().ok_or("symbolic link without a target")?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &p)
                    .map_err(|err| format!("cannot create symbolic link: {err}"))?;
            }
            FileKind::Fifo => mknod(&p, libc::S_IFIFO, 0)?,
            FileKind::Char | FileKind::Block => {
                let (ma, mi) = e.rdev.ok_or("device without a device number")?;
                let ty = if e.kind == FileKind::Char {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                mknod(&p, ty, libc::makedev(ma, mi))?;
            }
            FileKind::Socket => {
                return Err("sockets belong to running programs and are not recreated".into())
            }
        }
        self.metadata(e).map_err(|err| err.to_string())
    }

    fn write_content(&mut self, e: &FileEntry, p: &Path) -> std::result::Result<(), String> {
        let mut out = File::create(p).map_err(|err| format!("cannot create: {err}"))?;
        if e.size == 0 {
            return Ok(());
        }
        let sha = e.sha256.ok_or("regular file without a checksum")?;
        let has = self.blobs.has(&sha).map_err(|err| err.to_string())?;
        if !has {
            return Err(format!(
                "content {} is neither in the overlay nor installed by a package",
                to_hex(&sha)
            ));
        }
        let mut input = self.blobs.open(&sha).map_err(|err| err.to_string())?;
        copy_sparse(&mut input, &mut out, e.size).map_err(|err| format!("cannot write: {err}"))
    }

    /// Owner, mode, extended attributes and time, in the order that keeps them: chown clears
    /// set-id bits and capabilities, so it goes first.
    fn metadata(&mut self, e: &FileEntry) -> Result<()> {
        let p = self.full(&e.path);
        std::os::unix::fs::lchown(&p, Some(e.uid), Some(e.gid))
            .map_err(|err| Error::io("chown", &p, err))?;
        if e.kind != FileKind::Symlink {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode & 0o7777))
                .map_err(|err| Error::io("chmod", &p, err))?;
        }
        if e.kind != FileKind::Symlink || !e.xattrs.is_empty() {
            let present: Vec<String> = xattr::list(&p)
                .map(|l| l.map(|n| n.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            for name in present {
                if !e.xattrs.contains_key(&name) && !name.starts_with("security.selinux") {
                    let _ = xattr::remove(&p, &name);
                }
            }
            for (name, value) in &e.xattrs {
                xattr::set(&p, name, value).map_err(|err| Error::io("setxattr", &p, err))?;
            }
        }
        if e.kind == FileKind::Dir {
            self.dirs.push((p, e.clone()));
            return Ok(());
        }
        set_mtime(&p, e)
    }
}

fn cstr(p: &Path) -> std::result::Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| "path holds a NUL byte".to_string())
}

fn mknod(p: &Path, kind: libc::mode_t, dev: libc::dev_t) -> std::result::Result<(), String> {
    let c = cstr(p)?;
    // SAFETY: c is a valid NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, dev) };
    if rc != 0 {
        return Err(format!(
            "cannot create node: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Sets the modification time (and access time to the same) without following symlinks.
fn set_mtime(p: &Path, e: &FileEntry) -> Result<()> {
    let c = cstr(p).map_err(Error::Invalid)?;
    let t = libc::timespec {
        tv_sec: e.mtime as libc::time_t,
        tv_nsec: e.mtime_nsec as libc::c_long,
    };
    let times = [t, t];
    // SAFETY: c is a valid path and times points to two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(Error::io("set time of", p, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Copies `size` bytes, leaving holes where the data is zeros so sparse files stay sparse.
fn copy_sparse(input: &mut dyn Read, out: &mut File, size: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    while done < size {
        let want = buf.len().min((size - done) as usize);
        let n = input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("content ends after {done} of {size} bytes"),
            ));
        }
        if buf[..n].iter().all(|&b| b == 0) {
            out.seek(SeekFrom::Current(n as i64))?;
        } else {
            out.write_all(&buf[..n])?;
        }
        done += n as u64;
    }
    out.set_len(size)
}
