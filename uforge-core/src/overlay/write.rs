//! Writing an overlay: the wanted entries of a report, metadata from the report and contents
//! from disk, streamed as a POSIX pax archive ([`super::output`] does the buffering and hashing).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::names::{is_clean, member_name};
use super::output::{self, Output};
use super::pax;
use super::sparse::{self, Extent};
use super::ustar::{self, Block, BLOCK};
use crate::fsroot::{self, Links, RootDir};
use crate::model::{FileEntry, FileKind, RawPath, ScanError};
use crate::progress::Progress;
use crate::report::ReportReader;
use crate::{rawpath, Error, Result};

/// What writing an overlay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayStats {
    /// Members written (extended headers not counted).
    pub members: u64,
    /// Bytes of tar written, end-of-archive blocks included.
    pub bytes: u64,
    /// Bytes of regular file content, sparse files counted at their full size.
    pub content_bytes: u64,
    /// Wanted entries tar cannot carry (sockets), left out on purpose.
    pub skipped: u64,
    /// What changed under the writer since the scan, in archive order: files sent as they are
    /// now (`op` `amended`, the message saying what differed), files that vanished (`op`
    /// `vanished`, recorded in the archive) and entries the scan could not read (`op`
    /// `unreadable`, left out).
    pub changed: Vec<ScanError>,
}

/// Streams a standard tar of exactly the entries of `report` whose path is in `wanted`, reading
/// contents from `root`, into `out`. Order = report order (parents before children, first hard
/// link before others). Memory stays bounded (4 MiB of buffers) whatever the size;
/// contents are hashed on a second thread while the next ones are read.
///
/// A regular file whose size, mtime or type no longer match the report is sent as it is now:
/// an amended member (pax `UFORGE.amended=1`) with its current metadata, whose digest the
/// reader computes; one that vanished (or is no longer a regular file) is recorded by a global
/// `UFORGE.vanished` record in its place. Both are listed in [`OverlayStats::changed`]. A file
/// whose content changed without its size or mtime changing is only noticed once it has been
/// streamed, when its digest differs: the archive is then unusable and an error is returned.
/// Sockets are counted in [`OverlayStats::skipped`]. A hard link whose first name is not wanted
/// is written as the regular file in its place, and later names of the inode link to it; a
/// later name whose first name changed or vanished is sent as an amended regular file.
pub fn write_overlay<W: Write>(
    root: &Path,
    report: &mut ReportReader,
    wanted: &HashSet<RawPath>,
    out: W,
    progress: &dyn Progress,
) -> Result<OverlayStats> {
    write(root, report, Wanted::Only(wanted), out, progress)
}

/// Streams a tar of every entry of `report` (a scan of `root`), as [`write_overlay`] does for
/// the wanted ones: the archive of a whole tree (image layers, root tarballs) without a set of
/// every path in memory.
pub fn write_tree<W: Write>(
    root: &Path,
    report: &mut ReportReader,
    out: W,
    progress: &dyn Progress,
) -> Result<OverlayStats> {
    write(root, report, Wanted::All, out, progress)
}

/// Which entries of a report an archive carries.
#[derive(Clone, Copy)]
enum Wanted<'a> {
    All,
    Only(&'a HashSet<RawPath>),
}

impl Wanted<'_> {
    fn contains(self, path: &RawPath) -> bool {
        match self {
            Wanted::All => true,
            Wanted::Only(set) => set.contains(path),
        }
    }
}

fn write<W: Write>(
    root: &Path,
    report: &mut ReportReader,
    wanted: Wanted<'_>,
    out: W,
    progress: &dyn Progress,
) -> Result<OverlayStats> {
    let mut full = root.as_os_str().as_bytes().to_vec();
    // In-root paths start with '/': a root of "/" must contribute nothing.
    while full.last() == Some(&b'/') {
        full.pop();
    }
    // Contents are read through the root's descriptor, never through a symlink: a scan does
    // not cross one, so one met now was put there since. Mounts inside are crossed as the scan
    // did.
    let dir = RootDir::open(root, Links::Refuse)?.crossing_mounts();
    output::with_output(out, |out| {
        let mut w = Writer {
            out,
            dir,
            root_len: full.len(),
            full,
            name: Vec::new(),
            pax: Vec::new(),
            map: Vec::new(),
            extents: Vec::new(),
            wanted,
            left_out_files: HashSet::new(),
            amended_files: HashSet::new(),
            promoted: HashMap::new(),
            stats: OverlayStats::default(),
            progress,
        };
        progress.phase("overlay", None);
        while let Some(e) = report.next_file()? {
            if wanted.contains(&e.path) {
                w.entry(&e)?;
            }
        }
        w.out.put(&[0; 2 * BLOCK])?;
        progress.finish();
        w.stats.bytes = w.out.pos();
        Ok(w.stats)
    })
}

struct Writer<'a, 'o, W> {
    out: &'a mut Output<'o, W>,
    dir: RootDir,
    /// Host path of the entry at hand: the root, then the in-root path (reused, not allocated).
    full: Vec<u8>,
    root_len: usize,
    name: Vec<u8>,
    pax: Vec<u8>,
    map: Vec<u8>,
    extents: Vec<Extent>,
    wanted: Wanted<'a>,
    /// Wanted regular files left out (vanished, unreadable): their further names cannot link
    /// to them.
    left_out_files: HashSet<RawPath>,
    /// Regular files sent amended: further names cannot link to them either (the reader
    /// checks a link against the report's digest).
    amended_files: HashSet<RawPath>,
    /// First name of an inode (not wanted) -> the wanted name written as its regular file.
    promoted: HashMap<RawPath, RawPath>,
    stats: OverlayStats,
    progress: &'a dyn Progress,
}

impl<W: Write> Writer<'_, '_, W> {
    fn entry(&mut self, e: &FileEntry) -> Result<()> {
        let link_ok = e.kind != FileKind::Hardlink || e.target.as_deref().is_none_or(is_clean);
        if !is_clean(&e.path) || !link_ok {
            return Err(overlay_err(
                e,
                "the report holds a path that is not a clean in-root path".into(),
            ));
        }
        let flag = match e.kind {
            FileKind::Socket => {
                self.stats.skipped += 1;
                return Ok(());
            }
            FileKind::File => {
                self.file(e, false)?;
                return Ok(());
            }
            FileKind::Hardlink => return self.hardlink(e),
            FileKind::Dir => b'5',
            FileKind::Symlink => b'2',
            FileKind::Fifo => b'6',
            FileKind::Char => b'3',
            FileKind::Block => b'4',
        };
        if e.kind == FileKind::Symlink && e.target.is_none() {
            self.left_out(e, "unreadable", "the scan recorded no link target".into());
            return Ok(());
        }
        self.header(e, flag, 0, e.target.as_deref(), false, false)?;
        self.progress.advance(1, 0);
        Ok(())
    }

    fn hardlink(&mut self, e: &FileEntry) -> Result<()> {
        let Some(first) = &e.target else {
            self.file(e, false)?;
            return Ok(());
        };
        let linked = if self.wanted.contains(first) {
            Some(first.clone())
        } else {
            self.promoted.get(first).cloned()
        };
        match linked {
            Some(to) if !self.amended_files.contains(&to) && !self.left_out_files.contains(&to) => {
                self.link_to(e, &to)
            }
            // The name it would link to was not sent as scanned: this one goes as itself.
            Some(_) => self.file(e, true).map(drop),
            None => {
                if self.file(e, false)? {
                    self.promoted.insert(first.clone(), e.path.clone());
                }
                Ok(())
            }
        }
    }

    fn link_to(&mut self, e: &FileEntry, first: &[u8]) -> Result<()> {
        let mut link = Vec::new();
        member_name(first, false, &mut link);
        self.header(e, b'1', 0, Some(&link), false, false)?;
        self.progress.advance(1, 0);
        Ok(())
    }

    fn left_out(&mut self, e: &FileEntry, op: &str, message: String) {
        self.stats.changed.push(ScanError {
            path: e.path.clone(),
            op: op.to_string(),
            message,
        });
    }

    /// Records a wanted file that is gone from disk: listed in the stats, and a global header
    /// names it in the place its member would have had.
    fn vanished(&mut self, e: &FileEntry, why: String) -> Result<()> {
        self.left_out(e, "vanished", why);
        self.left_out_files.insert(e.path.clone());
        self.pax.clear();
        pax::push(&mut self.pax, pax::VANISHED.as_bytes(), &e.path);
        self.extended(b'g')?;
        self.progress.advance(1, 0);
        Ok(())
    }

    /// Writes a regular file (or a hard link carried as one): as scanned when it is unchanged,
    /// as it is now when it changed since the scan or `amend` is set (an amended member).
    /// Returns false when it is not written (vanished, or never readable).
    fn file(&mut self, e: &FileEntry, amend: bool) -> Result<bool> {
        if e.sha256.is_none() && !amend {
            self.left_out(e, "unreadable", "the scan recorded no digest".into());
            self.left_out_files.insert(e.path.clone());
            return Ok(false);
        }
        self.full.truncate(self.root_len);
        self.full.extend_from_slice(&e.path);
        let path = Path::new(OsStr::from_bytes(&self.full));
        // What is read is what was opened, resolved inside the root: its metadata come from the
        // descriptor, so a rename or unlink racing the open cannot mix two files, and a
        // directory replaced by a link since the scan is never followed.
        let file = match self.dir.open_file(&e.path) {
            Ok(f) => f,
            Err(err) if fsroot::not_found(&err) => {
                self.vanished(e, "vanished since the scan".into())?;
                return Ok(false);
            }
            Err(err @ Error::Refused { .. }) => {
                self.vanished(e, err.to_string())?;
                return Ok(false);
            }
            Err(Error::Io { source, .. })
                if matches!(source.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) =>
            {
                self.vanished(e, "no longer a regular file".into())?;
                return Ok(false);
            }
            Err(err) => return Err(err),
        };
        let meta = file
            .metadata()
            .map_err(|err| Error::io("stat", path, err))?;
        if !meta.file_type().is_file() {
            self.vanished(e, "no longer a regular file".into())?;
            return Ok(false);
        }
        let why = differs(&meta, e).or_else(|| {
            amend.then(|| "a name it shares an inode with changed or vanished".to_string())
        });
        let now;
        let (entry, amended) = match why {
            None => (e, false),
            Some(why) => {
                now = current(e, &meta, path);
                self.stats.changed.push(ScanError {
                    path: e.path.clone(),
                    op: "amended".into(),
                    message: why,
                });
                self.amended_files.insert(e.path.clone());
                (&now, true)
            }
        };
        let e = entry;

        let sparse = e.allocated < e.size
            && sparse::data_extents(&file, e.size, &mut self.extents)
                .map_err(|err| Error::io("seek", path, err))?;
        let data_len = if sparse {
            self.map.clear();
            sparse::push_map(&mut self.map, &self.extents, e.size);
            self.map.len() as u64 + self.extents.iter().map(|x| x.1).sum::<u64>()
        } else {
            e.size
        };
        self.header(e, b'0', data_len, None, sparse, amended)?;
        let start = self.out.pos();

        let path = Path::new(OsStr::from_bytes(&self.full));
        let mut pos = 0u64;
        if sparse {
            self.out.put(&self.map)?;
            for &(off, len) in &self.extents {
                self.out.hash_zeros(off - pos);
                pos = off + self.out.copy_from(&file, path, off, len)?;
                if pos < off + len {
                    break;
                }
            }
            if pos == self.extents.last().map_or(0, |x| x.0 + x.1) {
                self.out.hash_zeros(e.size - pos);
                pos = e.size;
            }
        } else {
            pos = self.out.copy_from(&file, path, 0, e.size)?;
        }
        if pos < e.size {
            if !amended {
                return Err(overlay_err(
                    e,
                    format!("shrank while being read ({} bytes expected)", e.size),
                ));
            }
            // The header is out: an amended file that shrinks under the reader is completed
            // with zeros, so the archive stays whole and carries what was sent.
            let written = self.out.pos() - start;
            self.out.put_zeros(data_len.saturating_sub(written))?;
            if let Some(c) = self.stats.changed.last_mut() {
                c.message
                    .push_str("; it shrank while being sent and was completed with zeros");
            }
        }
        self.out.pad()?;
        if amended {
            self.out.end_file_unchecked();
        } else if let Some(digest) = e.sha256 {
            self.out.end_file(digest, &e.path);
        }
        if self.out.failed() {
            // The hashing thread has the error naming the file; stopping lets it surface.
            return Err(Error::Invalid("overlay abandoned".into()));
        }
        self.stats.content_bytes += e.size;
        self.progress.advance(1, e.size);
        Ok(true)
    }

    /// Writes the headers of one member: a pax extended header for whatever ustar cannot hold,
    /// then the ustar block. `size` is the member's data size in the archive.
    fn header(
        &mut self,
        e: &FileEntry,
        flag: u8,
        size: u64,
        link: Option<&[u8]>,
        sparse: bool,
        amended: bool,
    ) -> Result<()> {
        member_name(&e.path, flag == b'5', &mut self.name);
        let name = &self.name[..];
        let mut b: Block = [0; BLOCK];
        let pax = &mut self.pax;
        pax.clear();

        let split = ustar::split_at(name);
        let name_in_pax = sparse || (name.len() > ustar::NAME.1 && split.is_none());
        let link_in_pax = link.is_some_and(|l| l.len() > ustar::LINKNAME.1);
        let utf8 = |s: &[u8]| std::str::from_utf8(s).is_ok();
        if (name_in_pax && !utf8(name)) || (link_in_pax && link.is_some_and(|l| !utf8(l))) {
            // pax values are UTF-8 unless declared otherwise; raw names must be declared.
            pax::push(pax, b"hdrcharset", b"BINARY");
        }

        if amended {
            pax::push(pax, pax::AMENDED.as_bytes(), b"1");
        }
        if sparse {
            pax::push(pax, b"GNU.sparse.major", b"1");
            pax::push(pax, b"GNU.sparse.minor", b"0");
            pax::push(pax, b"GNU.sparse.name", name);
            pax::push_number(pax, b"GNU.sparse.realsize", e.size);
            // What a reader without sparse support extracts the raw member as.
            let base = name.rsplit(|&c| c == b'/').next().unwrap_or(name);
            let fake = [&b"GNUSparseFile.0/"[..], base].concat();
            ustar::put_bytes(&mut b, ustar::NAME, &fake[..fake.len().min(ustar::NAME.1)]);
        } else if name.len() <= ustar::NAME.1 {
            ustar::put_bytes(&mut b, ustar::NAME, name);
        } else if let Some(i) = split {
            ustar::put_bytes(&mut b, ustar::PREFIX, &name[..i]);
            ustar::put_bytes(&mut b, ustar::NAME, &name[i + 1..]);
        } else {
            pax::push(pax, b"path", name);
            ustar::put_bytes(&mut b, ustar::NAME, &name[..ustar::NAME.1]);
        }
        if let Some(link) = link {
            if link_in_pax {
                pax::push(pax, b"linkpath", link);
            }
            let n = link.len().min(ustar::LINKNAME.1);
            ustar::put_bytes(&mut b, ustar::LINKNAME, &link[..n]);
        }

        ustar::put_octal(&mut b, ustar::MODE, u64::from(e.mode & 0o7777));
        for (field, key, v) in [
            (ustar::UID, &b"uid"[..], e.uid),
            (ustar::GID, b"gid", e.gid),
        ] {
            if !ustar::put_octal(&mut b, field, u64::from(v)) {
                pax::push_number(pax, key, u64::from(v));
            }
        }
        if !ustar::put_octal(&mut b, ustar::SIZE, size) {
            pax::push_number(pax, b"size", size);
        }
        let secs = u64::try_from(e.mtime).ok();
        if !secs.is_some_and(|s| ustar::put_octal(&mut b, ustar::MTIME, s)) || e.mtime_nsec != 0 {
            pax::push_time(pax, b"mtime", e.mtime, e.mtime_nsec);
        }
        b[ustar::TYPEFLAG] = flag;
        ustar::put_bytes(&mut b, ustar::MAGIC, ustar::MAGIC_POSIX);
        for (field, key, v) in [
            (ustar::UNAME, &b"uname"[..], &e.user),
            (ustar::GNAME, b"gname", &e.group),
        ] {
            match v.as_deref() {
                Some(n) if n.len() < field.1 => ustar::put_bytes(&mut b, field, n.as_bytes()),
                Some(n) => pax::push(pax, key, n.as_bytes()),
                None => {}
            }
        }
        if flag == b'3' || flag == b'4' {
            let (major, minor) = e.rdev.unwrap_or((0, 0));
            if !ustar::put_octal(&mut b, ustar::DEVMAJOR, u64::from(major)) {
                pax::push_number(pax, b"SCHILY.devmajor", u64::from(major));
            }
            if !ustar::put_octal(&mut b, ustar::DEVMINOR, u64::from(minor)) {
                pax::push_number(pax, b"SCHILY.devminor", u64::from(minor));
            }
        }
        for (k, v) in &e.xattrs {
            if k.contains('=') {
                return Err(overlay_err(
                    e,
                    format!("extended attribute name {k:?} contains '=', which pax cannot carry"),
                ));
            }
            pax::push_parts(pax, &[b"SCHILY.xattr.", k.as_bytes()], &[v]);
        }
        ustar::set_checksum(&mut b);

        if !self.pax.is_empty() {
            self.extended(b'x')?;
        }
        self.out.put(&b)?;
        self.stats.members += 1;
        Ok(())
    }

    /// Writes the records in `self.pax` as an extended header: `x` for the next member, `g`
    /// for the archive.
    fn extended(&mut self, flag: u8) -> Result<()> {
        let mut x: Block = [0; BLOCK];
        ustar::put_bytes(&mut x, ustar::NAME, b"././@PaxHeader");
        ustar::put_octal(&mut x, ustar::MODE, 0o644);
        ustar::put_octal(&mut x, ustar::UID, 0);
        ustar::put_octal(&mut x, ustar::GID, 0);
        ustar::put_octal(&mut x, ustar::SIZE, self.pax.len() as u64);
        ustar::put_octal(&mut x, ustar::MTIME, 0);
        x[ustar::TYPEFLAG] = flag;
        ustar::put_bytes(&mut x, ustar::MAGIC, ustar::MAGIC_POSIX);
        ustar::set_checksum(&mut x);
        self.out.put(&x)?;
        self.out.put(&self.pax)?;
        self.out.pad()
    }
}

/// The entry of a file that changed since the scan, as it is now (`meta` is its descriptor's):
/// the report's names for its owner and group are kept only where the ids did not change, as
/// the names of new ids are not known.
fn current(e: &FileEntry, meta: &std::fs::Metadata, path: &Path) -> FileEntry {
    let mut now = e.clone();
    now.kind = FileKind::File;
    now.target = None;
    now.sha256 = None;
    now.mode = meta.mode() & 0o7777;
    if meta.uid() != e.uid {
        now.user = None;
    }
    if meta.gid() != e.gid {
        now.group = None;
    }
    now.uid = meta.uid();
    now.gid = meta.gid();
    now.size = meta.size();
    now.mtime = meta.mtime();
    now.mtime_nsec = meta.mtime_nsec() as u32;
    now.allocated = meta.blocks() * 512;
    now.xattrs.clear();
    crate::scan::read_xattrs(path, &e.path, &mut now.xattrs, &mut Vec::new());
    now
}

/// Why a file on disk no longer matches its report entry, if it does not.
fn differs(meta: &std::fs::Metadata, e: &FileEntry) -> Option<String> {
    if e.sha256.is_none() {
        return Some("the scan could not read it".into());
    }
    if meta.size() != e.size {
        return Some(format!(
            "size changed from {} to {} bytes",
            e.size,
            meta.size()
        ));
    }
    if (meta.mtime(), meta.mtime_nsec()) != (e.mtime, i64::from(e.mtime_nsec)) {
        return Some("modified since the scan (mtime differs)".into());
    }
    if (meta.mode() & 0o7777, meta.uid(), meta.gid()) != (e.mode, e.uid, e.gid) {
        return Some("mode or owner changed since the scan".into());
    }
    None
}

fn overlay_err(e: &FileEntry, message: String) -> Error {
    Error::Overlay {
        member: rawpath::display(&e.path),
        message,
    }
}
