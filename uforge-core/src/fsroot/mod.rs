//! Link-safe file operations inside a directory taken as a root: an image being built from a
//! scanned machine, or an unpacked image being read.
//!
//! Everything in such a tree came from a machine that is not trusted, its symbolic links
//! included: a link `/srv/evil -> /etc` followed by the host kernel leads to the host's `/etc`.
//! A [`RootDir`] holds a descriptor of the root directory and resolves every in-root path
//! from it with `openat2(2)`, so that no resolution leaves the root whatever links it meets;
//! the last component is then handled with the `*at` calls on its parent directory's
//! descriptor, never followed unless asked. Two ways to meet links ([`Links`]):
//!
//! - [`Links::Refuse`]: for the entries of a scan report. A scan never crosses a symlink, so a
//!   report entry whose parent is one is hostile (or the root changed); any symlink met is an
//!   error naming it.
//! - [`Links::InRoot`]: for the files tuning edits (`/etc/fstab`...), which the machine itself
//!   would reach through its links: they are followed with the root as `/`
//!   (`RESOLVE_IN_ROOT`), so `/etc -> /host` leads to the root's `/host`.
//!
//! Mount points inside the root are not crossed either unless asked
//! ([`RootDir::crossing_mounts`]): the `/dev` a chroot binds from the host is not the image's.
//! Kernels older than Linux 5.6 have no `openat2`; the same rules are then applied by a walk
//! of one `openat` per component.

mod sys;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::rawpath;
use crate::{Error, Result};

/// Same limit as the kernel's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// How in-root paths meet symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Any symlink on the way is an error, and so are `.`, `..` and empty components; a final
    /// symlink is acted on itself, never followed.
    Refuse,
    /// Symlinks are followed with the root as `/` (absolute targets and `..` stay inside).
    InRoot,
}

/// How [`RootDir::create`] treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// The name must be free.
    New,
    /// An existing regular file is emptied and reused (its owner and mode kept).
    Truncate,
}

/// A directory taken as the root of the in-root paths (`/etc/fstab`) given to its methods.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    host: PathBuf,
    links: Links,
    same_mount: bool,
    dev: u64,
    /// Use the walk even where `openat2` exists (tests of the walk).
    walk_only: bool,
}

/// A directory descriptor: the root's own, or one opened below it.
enum Dir<'r> {
    Root(BorrowedFd<'r>),
    Owned(OwnedFd),
}

impl Dir<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Dir::Root(fd) => *fd,
            Dir::Owned(fd) => fd.as_fd(),
        }
    }
}

/// An entry of a root, found as a name in its parent directory's descriptor: the operations
/// on it never resolve the path again, so nothing renamed meanwhile can redirect them.
pub struct Node<'r> {
    root: &'r RootDir,
    dir: Dir<'r>,
    name: CString,
    path: Vec<u8>,
}

/// Whether `e` says that the path does not exist (or a parent is not a directory).
pub fn not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. }
        if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(libc::ENOTDIR))
}

fn refused(op: &'static str, path: &[u8], reason: impl Into<String>) -> Error {
    Error::Refused {
        op,
        path: rawpath::display(path),
        reason: reason.into(),
    }
}

fn cstring(b: &[u8], path: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| refused("open", path, "the path holds a NUL byte"))
}

impl RootDir {
    /// Takes the directory `dir` as a root. `dir` itself is the caller's (its own links are
    /// followed); only what lies below it is the root's.
    pub fn open(dir: &Path, links: Links) -> Result<RootDir> {
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| Error::Invalid(format!("{}: path holds a NUL byte", dir.display())))?;
        let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
        let fd = sys::openat(cwd, &c, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| Error::io("open", dir, e))?;
        let st = sys::lstat_at(fd.as_fd(), c"").map_err(|e| Error::io("stat", dir, e))?;
        Ok(RootDir {
            fd,
            host: dir.to_path_buf(),
            links,
            same_mount: true,
            dev: st.st_dev,
            walk_only: false,
        })
    }

    /// The same root, with the file systems mounted inside it reachable (an image's separate
    /// `/var` mounted below its root when reading it).
    pub fn crossing_mounts(mut self) -> Self {
        self.same_mount = false;
        self
    }

    /// The same root, resolving as on kernels without `openat2` and `fchmodat2`.
    #[cfg(test)]
    fn walking(mut self) -> Self {
        self.walk_only = true;
        self
    }

    /// The root directory on the host.
    pub fn host(&self) -> &Path {
        &self.host
    }

    /// The host path of in-root `path`, for messages and for tools that take paths; never
    /// for opening anything.
    pub fn host_path(&self, path: &[u8]) -> PathBuf {
        rawpath::join(&self.host, path)
    }

    /// The directory at in-root `path` as a root of its own, with the same rules. The last
    /// component may be a mount point (a tmpfs on `/run`), but not a symlink.
    pub fn subdir(&self, path: &[u8]) -> Result<RootDir> {
        let node = self.node(path)?;
        let fd = sys::openat(
            node.dir.fd(),
            &node.name,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|e| self.refusal("open", path, e))?;
        let st = sys::lstat_at(fd.as_fd(), c"").map_err(|e| self.refusal("stat", path, e))?;
        Ok(RootDir {
            fd,
            host: self.host_path(path),
            links: self.links,
            same_mount: self.same_mount,
            dev: st.st_dev,
            walk_only: self.walk_only,
        })
    }

    fn resolve_flags(&self) -> u64 {
        let base = match self.links {
            Links::Refuse => libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
            Links::InRoot => libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
        };
        if self.same_mount {
            base | libc::RESOLVE_NO_XDEV
        } else {
            base
        }
    }

    /// `path` relative to the root (`etc/fstab`, `.` for the root), checked for what the
    /// resolution rules refuse.
    fn relative<'p>(&self, path: &'p [u8]) -> Result<&'p [u8]> {
        let bad = || refused("open", path, "not a normalised absolute in-root path");
        let Some(rel) = path.strip_prefix(b"/") else {
            return Err(bad());
        };
        if self.links == Links::Refuse
            && !rel.is_empty()
            && rel
                .split(|&b| b == b'/')
                .any(|c| c.is_empty() || c == b"." || c == b"..")
        {
            return Err(bad());
        }
        let rel = rel.strip_suffix(b"/").unwrap_or(rel);
        Ok(if rel.is_empty() { b"." } else { rel })
    }

    /// Opens in-root `path` with `flags`; the last component is followed only in
    /// [`Links::InRoot`] mode and without `O_NOFOLLOW` in `flags`.
    fn open_at(
        &self,
        op: &'static str,
        path: &[u8],
        mut flags: libc::c_int,
        mode: libc::mode_t,
    ) -> Result<OwnedFd> {
        let rel = self.relative(path)?;
        if self.links == Links::Refuse {
            flags |= libc::O_NOFOLLOW;
        }
        let c = cstring(rel, path)?;
        let fast = if self.walk_only {
            None
        } else {
            sys::openat2(self.fd.as_fd(), &c, flags, mode, self.resolve_flags())
        };
        match fast {
            Some(r) => r,
            None => self.walk(rel, flags, mode),
        }
        .map_err(|e| self.refusal(op, path, e))
    }

    /// The resolution of [`RootDir::open_at`] for kernels without `openat2`: one component
    /// at a time from the root, each opened without following, symlinks resolved by hand.
    fn walk(&self, rel: &[u8], flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
        let fd = self.walk_components(rel, flags, mode)?;
        if self.same_mount && sys::lstat_at(fd.as_fd(), c"")?.st_dev != self.dev {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        Ok(fd)
    }

    fn walk_components(
        &self,
        rel: &[u8],
        flags: libc::c_int,
        mode: libc::mode_t,
    ) -> io::Result<OwnedFd> {
        let follow_last = self.links == Links::InRoot && flags & libc::O_NOFOLLOW == 0;
        let mut todo: VecDeque<Vec<u8>> = components(rel).collect();
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut links = 0;
        while let Some(comp) = todo.pop_front() {
            let last = todo.is_empty();
            let cur = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
            if comp == b".." {
                // Refuse mode never gets here (relative() refused the path).
                stack.pop();
                continue;
            }
            let name = CString::new(comp.clone())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            let fd = match sys::openat(cur, &name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
                Ok(fd) => fd,
                Err(e) if last && e.kind() == io::ErrorKind::NotFound => {
                    return sys::openat(cur, &name, flags | libc::O_NOFOLLOW, mode)
                }
                Err(e) => return Err(e),
            };
            let st = sys::lstat_at(fd.as_fd(), c"")?;
            let kind = st.st_mode & libc::S_IFMT;
            if kind == libc::S_IFLNK && (!last || follow_last) {
                links += 1;
                if self.links == Links::Refuse || links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = sys::readlinkat(fd.as_fd(), c"")?;
                if target.starts_with(b"/") {
                    stack.clear();
                }
                for c in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    todo.push_front(c);
                }
                if todo.is_empty() {
                    // A link to `/`.
                    todo.push_back(b".".to_vec());
                }
                continue;
            }
            if last {
                return sys::openat(cur, &name, flags | libc::O_NOFOLLOW, mode);
            }
            if kind != libc::S_IFDIR {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            if self.same_mount && st.st_dev != self.dev {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
            stack.push(fd);
        }
        let cur = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
        sys::openat(cur, c".", flags & !libc::O_NOFOLLOW, mode)
    }

    /// The error for a failed resolution of `path`: a refusal naming the link or mount in
    /// the way, or the I/O error.
    fn refusal(&self, op: &'static str, path: &[u8], e: io::Error) -> Error {
        let errno = e.raw_os_error();
        if self.links == Links::Refuse && matches!(errno, Some(libc::ELOOP | libc::ENOTDIR)) {
            // ENOTDIR: a parent opened without following is a symlink, not a directory.
            let link = self.first_link(path);
            if link.is_some() || errno == Some(libc::ELOOP) {
                let link = link.unwrap_or_else(|| path.to_vec());
                let reason = format!(
                    "{} is a symbolic link, and nothing in the root is reached through one",
                    rawpath::display(&link)
                );
                return refused(op, path, reason);
            }
        }
        if errno == Some(libc::EXDEV) {
            let reason = format!(
                "it leads out of the root {} or onto another mount",
                self.host.display()
            );
            return refused(op, path, reason);
        }
        Error::io(op, self.host_path(path), e)
    }

    /// The first component of `path` that is a symlink, for messages.
    fn first_link(&self, path: &[u8]) -> Option<Vec<u8>> {
        let mut at = Vec::new();
        for c in components(path) {
            at.push(b'/');
            at.extend_from_slice(&c);
            let meta = std::fs::symlink_metadata(self.host_path(&at)).ok()?;
            if meta.file_type().is_symlink() {
                return Some(at);
            }
            if !meta.is_dir() {
                return None;
            }
        }
        None
    }

    /// The entry at in-root `path` as a name in its parent directory, which is resolved by
    /// the root's rules. The root itself is `.` in itself.
    pub fn node(&self, path: &[u8]) -> Result<Node<'_>> {
        let rel = self.relative(path)?;
        let (parent, name): (&[u8], &[u8]) = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (b".", rel),
        };
        if name == b".." || (name == b"." && rel != b".") {
            return Err(refused("open", path, "names no entry"));
        }
        let dir = if parent == b"." {
            Dir::Root(self.fd.as_fd())
        } else {
            let mut p = Vec::with_capacity(parent.len() + 1);
            p.push(b'/');
            p.extend_from_slice(parent);
            Dir::Owned(self.open_at("open", &p, libc::O_PATH | libc::O_DIRECTORY, 0)?)
        };
        Ok(Node {
            root: self,
            dir,
            name: cstring(name, path)?,
            path: path.to_vec(),
        })
    }

    /// Opens the file at in-root `path` for reading. `O_NONBLOCK`: a FIFO planted under the
    /// name must not hang the caller, which checks what it opened. The access time is left
    /// alone where the kernel allows it (`O_NOATIME`, refused on files of other owners to
    /// the unprivileged).
    pub fn open_file(&self, path: &[u8]) -> Result<File> {
        let flags = libc::O_RDONLY | libc::O_NONBLOCK;
        match self.open_at("open", path, flags | libc::O_NOATIME, 0) {
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {
                self.open_at("open", path, flags, 0)
            }
            r => r,
        }
        .map(File::from)
    }

    /// The content of the regular file at in-root `path`, at most `max` bytes.
    pub fn read(&self, path: &[u8], max: u64) -> Result<Vec<u8>> {
        use std::io::Read;
        let f = self.open_file(path)?;
        let host = || self.host_path(path);
        let meta = f.metadata().map_err(|e| Error::io("stat", host(), e))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!(
                "{} is not a regular file",
                rawpath::display(path)
            )));
        }
        let mut out = Vec::new();
        f.take(max)
            .read_to_end(&mut out)
            .map_err(|e| Error::io("read", host(), e))?;
        Ok(out)
    }

    /// Creates (or with [`Create::Truncate`], empties) the regular file at in-root `path`,
    /// with `mode` when it is new, and opens it for writing.
    pub fn create(&self, path: &[u8], mode: u32, how: Create) -> Result<File> {
        let extra = match how {
            Create::New => libc::O_EXCL,
            Create::Truncate => libc::O_TRUNC,
        };
        let flags = libc::O_WRONLY | libc::O_CREAT | extra;
        let fd = self.open_at("create", path, flags, mode as libc::mode_t)?;
        let f = File::from(fd);
        let meta = f
            .metadata()
            .map_err(|e| Error::io("stat", self.host_path(path), e))?;
        if !meta.is_file() {
            return Err(refused("create", path, "not a regular file"));
        }
        Ok(f)
    }

    /// Metadata of in-root `path`, a final symlink not followed.
    pub fn lstat(&self, path: &[u8]) -> Result<Metadata> {
        let fd = self.open_at("stat", path, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        File::from(fd)
            .metadata()
            .map_err(|e| Error::io("stat", self.host_path(path), e))
    }

    /// Metadata of in-root `path`, a final symlink followed within the root in
    /// [`Links::InRoot`] mode.
    pub fn stat(&self, path: &[u8]) -> Result<Metadata> {
        let fd = self.open_at("stat", path, libc::O_PATH, 0)?;
        File::from(fd)
            .metadata()
            .map_err(|e| Error::io("stat", self.host_path(path), e))
    }

    /// Whether in-root `path` exists (as [`RootDir::stat`] sees it).
    pub fn exists(&self, path: &[u8]) -> bool {
        self.stat(path).is_ok()
    }

    /// Whether in-root `path` is a directory (as [`RootDir::stat`] sees it).
    pub fn is_dir(&self, path: &[u8]) -> bool {
        self.stat(path).is_ok_and(|m| m.is_dir())
    }

    /// Whether in-root `path` is a regular file (as [`RootDir::stat`] sees it).
    pub fn is_file(&self, path: &[u8]) -> bool {
        self.stat(path).is_ok_and(|m| m.is_file())
    }

    /// Entry names of the directory at in-root `path`, each with whether it is a directory
    /// itself (not followed), in directory order.
    pub fn read_dir(&self, path: &[u8]) -> Result<Vec<(Vec<u8>, bool)>> {
        let fd = self.open_at("open", path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        sys::read_dir(fd).map_err(|e| Error::io("read", self.host_path(path), e))
    }

    /// Creates the directories of in-root `path` that are missing, with `mode`; returns the
    /// ones created, outermost first.
    pub fn create_dir_all(&self, path: &[u8], mode: u32) -> Result<Vec<Vec<u8>>> {
        let mut missing = Vec::new();
        let mut at = path.to_vec();
        loop {
            match self.stat(&at) {
                Ok(m) if m.is_dir() => break,
                Ok(_) => {
                    return Err(Error::Invalid(format!(
                        "create {}: {} is not a directory",
                        rawpath::display(path),
                        rawpath::display(&at)
                    )))
                }
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e),
            }
            missing.push(at.clone());
            match at.iter().rposition(|&b| b == b'/') {
                Some(0) | None => break,
                Some(i) => at.truncate(i),
            }
        }
        missing.reverse();
        for d in &missing {
            self.node(d)?.create_dir(mode)?;
        }
        Ok(missing)
    }

    /// Removes the file (of any kind but a directory) at in-root `path`.
    pub fn remove_file(&self, path: &[u8]) -> Result<()> {
        self.node(path)?.remove_file()
    }

    /// Removes the directory at in-root `path` with everything below it. Nothing below is
    /// followed, and a mount met below is an error rather than emptied.
    pub fn remove_dir_all(&self, path: &[u8]) -> Result<()> {
        let node = self.node(path)?;
        let fd = sys::openat(
            node.dir.fd(),
            &node.name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|e| self.refusal("remove", path, e))?;
        self.empty_dir(fd, path)?;
        sys::unlinkat(node.dir.fd(), &node.name, true)
            .map_err(|e| Error::io("remove", self.host_path(path), e))
    }

    fn empty_dir(&self, fd: OwnedFd, path: &[u8]) -> Result<()> {
        let err = |op, e| Error::io(op, self.host_path(path), e);
        let st = sys::lstat_at(fd.as_fd(), c"").map_err(|e| err("stat", e))?;
        if self.same_mount && st.st_dev != self.dev {
            return Err(self.refusal("remove", path, io::Error::from_raw_os_error(libc::EXDEV)));
        }
        let entries = sys::read_dir(fd.try_clone().map_err(|e| err("open", e))?)
            .map_err(|e| err("read", e))?;
        for (name, is_dir) in entries {
            let mut child = path.to_vec();
            if child != b"/" {
                child.push(b'/');
            }
            child.extend_from_slice(&name);
            let c = cstring(&name, &child)?;
            if is_dir {
                let sub = sys::openat(
                    fd.as_fd(),
                    &c,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(|e| Error::io("open", self.host_path(&child), e))?;
                self.empty_dir(sub, &child)?;
            }
            sys::unlinkat(fd.as_fd(), &c, is_dir)
                .map_err(|e| Error::io("remove", self.host_path(&child), e))?;
        }
        Ok(())
    }

    /// Renames in-root `from` to in-root `to` (replacing what `to` names, as rename(2) does).
    pub fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let (a, b) = (self.node(from)?, self.node(to)?);
        sys::renameat(a.dir.fd(), &a.name, b.dir.fd(), &b.name)
            .map_err(|e| Error::io("rename", self.host_path(from), e))
    }

    /// Makes in-root `path` a new name of the regular file at in-root `existing`. Both are
    /// resolved by the root's rules; `existing` is not followed if it is a symlink.
    pub fn hard_link(&self, existing: &[u8], path: &[u8]) -> Result<()> {
        let src = self.open_at("link", existing, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        let st = sys::lstat_at(src.as_fd(), c"")
            .map_err(|e| Error::io("stat", self.host_path(existing), e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            let reason = format!(
                "its first name {} is not a regular file",
                rawpath::display(existing)
            );
            return Err(refused("link", path, reason));
        }
        let node = self.node(path)?;
        sys::link_fd(src.as_fd(), node.dir.fd(), &node.name)
            .map_err(|e| Error::io("link", self.host_path(path), e))
    }
}

/// The non-empty, non-`.` components of a path.
fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
}

impl Node<'_> {
    fn err(&self, op: &'static str, e: io::Error) -> Error {
        Error::io(op, self.root.host_path(&self.path), e)
    }

    /// The in-root path this node was found by.
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The entry's metadata, not followed.
    pub fn lstat(&self) -> Result<Metadata> {
        let fd = sys::openat(
            self.dir.fd(),
            &self.name,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        )
        .map_err(|e| self.err("stat", e))?;
        File::from(fd).metadata().map_err(|e| self.err("stat", e))
    }

    /// Whether the entry is another inode than `other`'s.
    pub fn same_inode(&self, other: &Metadata) -> bool {
        self.lstat()
            .is_ok_and(|m| m.ino() == other.ino() && m.dev() == other.dev())
    }

    /// Target of the symlink.
    pub fn read_link(&self) -> Result<Vec<u8>> {
        sys::readlinkat(self.dir.fd(), &self.name).map_err(|e| self.err("readlink", e))
    }

    /// Creates the entry as a directory.
    pub fn create_dir(&self, mode: u32) -> Result<()> {
        sys::mkdirat(self.dir.fd(), &self.name, mode as libc::mode_t)
            .map_err(|e| self.err("create", e))
    }

    /// Creates the entry as a symlink to `target` (stored as given, never resolved here).
    pub fn symlink(&self, target: &[u8]) -> Result<()> {
        let t = cstring(target, &self.path)?;
        sys::symlinkat(&t, self.dir.fd(), &self.name).map_err(|e| self.err("symlink", e))
    }

    /// Creates the entry as a device node or FIFO (`kind` is `S_IFCHR`, `S_IFBLK` or `S_IFIFO`).
    pub fn mknod(&self, kind: u32, mode: u32, dev: u64) -> Result<()> {
        sys::mknodat(
            self.dir.fd(),
            &self.name,
            (kind | mode) as libc::mode_t,
            dev as libc::dev_t,
        )
        .map_err(|e| self.err("mknod", e))
    }

    /// Removes the entry (not a directory).
    pub fn remove_file(&self) -> Result<()> {
        sys::unlinkat(self.dir.fd(), &self.name, false).map_err(|e| self.err("remove", e))
    }

    /// Sets the owner, of a symlink itself when it is one.
    pub fn lchown(&self, uid: u32, gid: u32) -> Result<()> {
        sys::fchownat(self.dir.fd(), &self.name, uid, gid).map_err(|e| self.err("chown", e))
    }

    /// Sets the mode bits (`0o7777`); never through a symlink.
    pub fn chmod(&self, mode: u32) -> Result<()> {
        sys::chmod_at(
            self.dir.fd(),
            &self.name,
            mode as libc::mode_t,
            !self.root.walk_only,
        )
        .map_err(|e| self.err("chmod", e))
    }

    /// Sets the modification and access times, of a symlink itself when it is one.
    pub fn set_times(&self, sec: i64, nsec: i64) -> Result<()> {
        sys::utimensat(self.dir.fd(), &self.name, sec, nsec).map_err(|e| self.err("set time of", e))
    }

    /// The entry as seen through its parent's descriptor (`/proc/self/fd/N/NAME`), for the
    /// extended-attribute calls, which have no `*at` form: the parent is the inode held, and
    /// the `l*` calls used do not follow the last component.
    fn proc_path(&self) -> PathBuf {
        let c = sys::proc_fd(self.dir.fd().as_raw_fd(), Some(self.name.as_bytes()));
        PathBuf::from(OsStr::from_bytes(c.as_bytes()))
    }

    /// Names of the entry's extended attributes.
    pub fn xattr_names(&self) -> Result<Vec<OsString>> {
        xattr::list(self.proc_path())
            .map(|l| l.collect())
            .map_err(|e| self.err("listxattr", e))
    }

    /// Sets an extended attribute (file capabilities are `security.capability`).
    pub fn set_xattr(&self, name: &str, value: &[u8]) -> Result<()> {
        xattr::set(self.proc_path(), name, value).map_err(|e| self.err("setxattr", e))
    }

    /// Removes an extended attribute.
    pub fn remove_xattr(&self, name: &OsStr) -> Result<()> {
        xattr::remove(self.proc_path(), name).map_err(|e| self.err("removexattr", e))
    }
}

impl std::fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("path", &rawpath::display(&self.path))
            .finish()
    }
}
