//! Making a freshly installed root equal to the scanned machine, file by file.
//!
//! The installed root and the scan are walked side by side in walk order (flat memory):
//! every scanned entry the install did not reproduce exactly is recreated from the overlay's
//! contents or has its metadata fixed, and every path the scanned machine did not have (package
//! files it had deleted, install leftovers) is removed. Paths the scan left out are not touched.
//!
//! The report comes from the scanned machine and is not trusted: every change goes through a
//! [`RootDir`] in [`Links::Refuse`] mode, so an entry below a symlink, a `..` or a hard link
//! to something outside the root stops reconciling with an error naming the entry instead of
//! writing, linking or chowning anything outside.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde::Serialize;

use crate::analysis::{file_diff, walk_order};
use crate::blobstore::{to_hex, BlobStore};
use crate::fsroot::{self, Create, Links, RootDir};
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

/// A regular file's size; nothing for other kinds.
fn content_bytes(e: &FileEntry) -> u64 {
    if e.kind == FileKind::File {
        e.size
    } else {
        0
    }
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
        root: RootDir::open(root, Links::Refuse)?,
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
        // The scanned machine's bytes this entry accounts for, compared or written.
        let mut bytes = 0;
        match ord {
            Ordering::Less => {
                let e = s.take().expect("present");
                bytes = content_bytes(&e);
                r.create(&e)?;
                s = src.next_file()?;
            }
            Ordering::Greater => {
                let e = t.take().expect("present");
                if !inside_any(&e.path, &skip_inside) {
                    r.remove(&e)?;
                }
                t = dst.next_file()?;
            }
            Ordering::Equal => {
                let (a, b) = (s.take().expect("present"), t.take().expect("present"));
                bytes = content_bytes(&a);
                r.fix(&a, &b)?;
                s = src.next_file()?;
                t = dst.next_file()?;
            }
        }
        progress.advance(1, bytes);
    }
    // Directory times last, deepest first: creating their entries moved them.
    for e in r.dirs.iter().rev() {
        if let Ok(node) = r.root.node(&e.path) {
            let _ = node.set_times(e.mtime, i64::from(e.mtime_nsec));
        }
    }
    let _ = std::fs::remove_file(&installed);
    progress.finish();
    Ok(r.stats)
}

/// Puts `entries` into `root` as they say, replacing what is at their paths (a directory
/// stays and gets its metadata): the files of a template's My Software, which go on top of
/// what the packages installed. Parents come before their children in `entries` (path
/// order). Like [`reconcile`], every change goes through a [`RootDir`] that refuses links,
/// so an entry below a symlink or a `..` is an error naming it.
pub fn place(
    root: &Path,
    entries: impl IntoIterator<Item = FileEntry>,
    blobs: &dyn BlobStore,
) -> Result<ReconcileStats> {
    let mut r = Reconciler {
        root: RootDir::open(root, Links::Refuse)?,
        blobs,
        stats: ReconcileStats::default(),
        dirs: Vec::new(),
        removed_dir: None,
    };
    for e in entries {
        let have = match r.root.lstat(&e.path) {
            Ok(m) => Some(m),
            Err(err) if fsroot::not_found(&err) => None,
            Err(err) => return Err(err),
        };
        match have {
            Some(m) if m.is_dir() && e.kind == FileKind::Dir => {
                let res = r.metadata(&e, None).map_err(Failure::from);
                if r.settle(&e, res)? {
                    r.stats.metadata += 1;
                }
            }
            Some(m) => {
                let gone = if m.is_dir() {
                    r.root.remove_dir_all(&e.path)
                } else {
                    r.root.remove_file(&e.path)
                };
                gone?;
                r.create(&e)?;
            }
            None => r.create(&e)?,
        }
    }
    for e in r.dirs.iter().rev() {
        if let Ok(node) = r.root.node(&e.path) {
            let _ = node.set_times(e.mtime, i64::from(e.mtime_nsec));
        }
    }
    Ok(r.stats)
}

struct Reconciler<'a> {
    root: RootDir,
    blobs: &'a dyn BlobStore,
    stats: ReconcileStats,
    dirs: Vec<FileEntry>,
    removed_dir: Option<Vec<u8>>,
}

/// Why an entry could not be made equal to the scan.
enum Failure {
    /// Recorded in [`ReconcileStats::unrestorable`]; reconciling goes on.
    Entry(String),
    /// The report tried to reach outside the root: reconciling stops.
    Refused(Error),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Entry(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure::Entry(s.to_string())
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused { .. } => Failure::Refused(e),
            e => Failure::Entry(crate::error::chain(&e)),
        }
    }
}

impl Reconciler<'_> {
    /// Records `res`'s failure against `e`; a refusal ends reconciling with an error naming
    /// the entry.
    fn settle(&mut self, e: &FileEntry, res: std::result::Result<(), Failure>) -> Result<bool> {
        match res {
            Ok(()) => Ok(true),
            Err(Failure::Entry(why)) => {
                self.stats
                    .unrestorable
                    .push((String::from_utf8_lossy(&e.path).into_owned(), why));
                Ok(false)
            }
            Err(Failure::Refused(err)) => Err(Error::Invalid(format!(
                "report entry {}: {err}",
                String::from_utf8_lossy(&e.path)
            ))),
        }
    }

    /// A scanned entry the installed root lacks.
    fn create(&mut self, e: &FileEntry) -> Result<()> {
        let res = self.materialize(e);
        if self.settle(e, res)? {
            self.stats.restored += 1;
        }
        Ok(())
    }

    /// A path the scanned machine did not have.
    fn remove(&mut self, e: &FileEntry) -> Result<()> {
        let res = if e.kind == FileKind::Dir {
            self.removed_dir = Some(e.path.clone());
            self.root.remove_dir_all(&e.path)
        } else {
            self.root.remove_file(&e.path)
        };
        let res = match res {
            Ok(()) => {
                self.stats.removed += 1;
                Ok(())
            }
            Err(err) if fsroot::not_found(&err) => Ok(()),
            Err(err @ Error::Refused { .. }) => Err(Failure::Refused(err)),
            Err(err) => Err(Failure::Entry(format!(
                "cannot remove: {}",
                crate::error::chain(&err)
            ))),
        };
        self.settle(e, res).map(drop)
    }

    /// A path both have: replace it or fix its metadata.
    fn fix(&mut self, want: &FileEntry, have: &FileEntry) -> Result<()> {
        let mut what = file_diff(want, have);
        if want.kind == FileKind::Hardlink && !self.same_inode(want) {
            what.push("link");
        }
        if what.is_empty() {
            self.stats.kept += 1;
            if want.kind == FileKind::Dir {
                self.dirs.push(want.clone());
            }
            return Ok(());
        }
        let replace = what
            .iter()
            .any(|w| matches!(*w, "kind" | "content" | "target" | "device" | "link"));
        if replace {
            let gone = if have.kind == FileKind::Dir {
                if want.kind == FileKind::Dir {
                    Ok(())
                } else {
                    self.removed_dir = Some(have.path.clone());
                    self.root.remove_dir_all(&have.path)
                }
            } else {
                self.root.remove_file(&have.path)
            };
            let res = match gone {
                Ok(()) => self.materialize(want),
                Err(err @ Error::Refused { .. }) => Err(Failure::Refused(err)),
                Err(err) => Err(Failure::Entry(format!(
                    "cannot replace: {}",
                    crate::error::chain(&err)
                ))),
            };
            if self.settle(want, res)? {
                self.stats.restored += 1;
            }
        } else {
            let res = self.metadata(want, None).map_err(Failure::from);
            if self.settle(want, res)? {
                self.stats.metadata += 1;
            }
        }
        Ok(())
    }

    fn same_inode(&self, e: &FileEntry) -> bool {
        let Some(first) = &e.target else {
            return true;
        };
        match (self.root.lstat(&e.path), self.root.lstat(first)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        }
    }

    /// Creates `e` (whose path is free) with its content and metadata.
    fn materialize(&mut self, e: &FileEntry) -> std::result::Result<(), Failure> {
        let file = match e.kind {
            FileKind::Dir => {
                match self.root.node(&e.path)?.create_dir(0o700) {
                    Ok(()) => {}
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists
                            && self.root.lstat(&e.path).is_ok_and(|m| m.is_dir()) => {}
                    Err(err) => return Err(err.into()),
                }
                None
            }
            FileKind::File => Some(self.write_content(e)?),
            FileKind::Hardlink => {
                let first = e.target.as_ref().ok_or("hard link without a first name")?;
                self.root.hard_link(first, &e.path)?;
                None
            }
            FileKind::Symlink => {
                let target = e.target.as_ref().ok_or("symbolic link without a target")?;
                self.root.node(&e.path)?.symlink(target)?;
                None
            }
            FileKind::Fifo => {
                self.root.node(&e.path)?.mknod(libc::S_IFIFO, 0o600, 0)?;
                None
            }
            FileKind::Char | FileKind::Block => {
                let (ma, mi) = e.rdev.ok_or("device without a device number")?;
                let ty = if e.kind == FileKind::Char {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                self.root
                    .node(&e.path)?
                    .mknod(ty, 0o600, libc::makedev(ma, mi))?;
                None
            }
            FileKind::Socket => {
                return Err("sockets belong to running programs and are not recreated".into())
            }
        };
        self.metadata(e, file.as_ref()).map_err(Failure::from)
    }

    fn write_content(&mut self, e: &FileEntry) -> std::result::Result<File, Failure> {
        let mut out = self.root.create(&e.path, 0o600, Create::New)?;
        if e.size == 0 {
            return Ok(out);
        }
        let sha = e.sha256.ok_or("regular file without a checksum")?;
        let has = self.blobs.has(&sha).map_err(|err| err.to_string())?;
        if !has {
            return Err(format!(
                "content {} is neither in the overlay nor installed by a package",
                to_hex(&sha)
            )
            .into());
        }
        let mut input = self.blobs.open(&sha).map_err(|err| err.to_string())?;
        copy_sparse(&mut input, &mut out, e.size).map_err(|err| format!("cannot write: {err}"))?;
        Ok(out)
    }

    /// Owner, mode, extended attributes and time, in the order that keeps them: chown clears
    /// set-id bits and capabilities, so it goes first. `file` is the regular file just
    /// written, changed through its descriptor; anything else is reached as a name in its
    /// parent directory, never through a link.
    fn metadata(&mut self, e: &FileEntry, file: Option<&File>) -> Result<()> {
        if let Some(f) = file {
            return file_metadata(f, e)
                .map_err(|err| Error::io("set metadata of", self.root.host_path(&e.path), err));
        }
        let node = self.root.node(&e.path)?;
        node.lchown(e.uid, e.gid)?;
        if e.kind != FileKind::Symlink {
            node.chmod(e.mode & 0o7777)?;
        }
        if e.kind != FileKind::Symlink || !e.xattrs.is_empty() {
            for name in node.xattr_names().unwrap_or_default() {
                let s = name.to_string_lossy();
                if !e.xattrs.contains_key(s.as_ref()) && !s.starts_with("security.selinux") {
                    let _ = node.remove_xattr(&name);
                }
            }
            for (name, value) in &e.xattrs {
                node.set_xattr(name, value)?;
            }
        }
        if e.kind == FileKind::Dir {
            self.dirs.push(e.clone());
            return Ok(());
        }
        node.set_times(e.mtime, i64::from(e.mtime_nsec))
    }
}

/// [`Reconciler::metadata`] for a regular file open for writing.
fn file_metadata(f: &File, e: &FileEntry) -> std::io::Result<()> {
    use xattr::FileExt;
    std::os::unix::fs::fchown(f, Some(e.uid), Some(e.gid))?;
    f.set_permissions(std::fs::Permissions::from_mode(e.mode & 0o7777))?;
    for name in f
        .list_xattr()
        .map(|l| l.collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let s = name.to_string_lossy();
        if !e.xattrs.contains_key(s.as_ref()) && !s.starts_with("security.selinux") {
            let _ = f.remove_xattr(&name);
        }
    }
    for (name, value) in &e.xattrs {
        f.set_xattr(name, value)?;
    }
    let t = libc::timespec {
        tv_sec: e.mtime as libc::time_t,
        tv_nsec: e.mtime_nsec as libc::c_long,
    };
    let times = [t, t];
    // SAFETY: f is an open descriptor and times points to two timespecs.
    if unsafe { libc::futimens(f.as_raw_fd(), times.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
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

#[cfg(test)]
mod tests;
