//! Read-only access to files of a scanned root, with symlinks resolved inside that root.
//!
//! A scanned root is often another machine's file system mounted or unpacked somewhere. Its
//! absolute symlinks (`/etc/localtime -> /usr/share/zoneinfo/Europe/Paris`) name paths of that
//! machine, so following them with the host kernel would read the host's files instead.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::model::ScanError;
use crate::{Error, Result};

/// Same limit as the kernel's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// Fact files are small; the cap keeps a corrupted or hostile root from exhausting memory.
const MAX_READ: u64 = 64 << 20;

/// Resolves the absolute in-root `path`, following symlinks with `root` as `/`. Returns the
/// resolved in-root path. Components past the first missing one are kept as written, so that
/// opening the result reports "not found" as the caller expects.
pub(crate) fn resolve_in_root(root: &Path, path: &[u8]) -> Result<Vec<u8>> {
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut todo: VecDeque<Vec<u8>> = components(path).collect();
    let mut links = 0;
    let mut missing = false;
    while let Some(comp) = todo.pop_front() {
        if comp == b".." {
            done.pop();
            continue;
        }
        done.push(comp);
        if missing {
            continue;
        }
        let host = host_path(root, &join(&done));
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    let loop_err = io::Error::from_raw_os_error(libc::ELOOP);
                    return Err(Error::io("resolve", host, loop_err));
                }
                let target = fs::read_link(&host)
                    .map_err(|e| Error::io("readlink", &host, e))?
                    .into_os_string()
                    .into_vec();
                done.pop();
                if target.starts_with(b"/") {
                    done.clear();
                }
                for c in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    todo.push_front(c);
                }
            }
            Ok(_) => {}
            Err(e) if is_missing(&e) => missing = true,
            Err(e) => return Err(Error::io("stat", host, e)),
        }
    }
    Ok(join(&done))
}

/// The non-empty, non-`.` components of a path.
fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    if comps.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::new();
    for c in comps {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    out
}

/// The host path of an absolute in-root path.
pub(crate) fn host_path(root: &Path, inroot: &[u8]) -> PathBuf {
    let rel = inroot.strip_prefix(b"/").unwrap_or(inroot);
    root.join(OsStr::from_bytes(rel))
}

/// Whether an error means "nothing there" rather than "could not look".
pub(crate) fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Lossless enough for the model's string fields: paths there are for people to read.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scanned root plus the errors met while reading it.
pub(crate) struct RootFs<'a> {
    root: &'a Path,
    /// Facts that could not be read, reported with the scan rather than failing it.
    pub errors: Vec<ScanError>,
}

impl<'a> RootFs<'a> {
    /// Reads from `root`.
    pub fn new(root: &'a Path) -> Self {
        RootFs {
            root,
            errors: Vec::new(),
        }
    }

    /// Records a fact that could not be read.
    pub fn error(&mut self, path: &[u8], message: impl std::fmt::Display) {
        self.errors.push(ScanError {
            path: path.to_vec(),
            op: "facts".to_string(),
            message: message.to_string(),
        });
    }

    /// The host path of in-root `path` after resolving its symlinks within the root.
    pub fn resolve(&self, path: &[u8]) -> Result<PathBuf> {
        Ok(host_path(self.root, &resolve_in_root(self.root, path)?))
    }

    /// `r`'s value, or `T::default()` with the error recorded against `path`.
    fn record<T: Default>(&mut self, path: &[u8], r: Result<T>) -> T {
        r.unwrap_or_else(|e| {
            self.error(path, e);
            T::default()
        })
    }

    /// Contents of the regular file at in-root `path`; `None` when it does not exist.
    /// Other failures are recorded.
    pub fn read(&mut self, path: &[u8]) -> Option<Vec<u8>> {
        let r = self.open_file(path).and_then(|opened| {
            let Some((host, file)) = opened else {
                return Ok(None);
            };
            let mut data = Vec::new();
            file.take(MAX_READ)
                .read_to_end(&mut data)
                .map_err(|e| Error::io("read", &host, e))?;
            Ok(Some(data))
        });
        self.record(path, r)
    }

    /// The first `len` bytes of the regular file at in-root `path`, if it can be read.
    pub fn read_head(&self, path: &[u8], len: u64) -> Option<Vec<u8>> {
        let (_, file) = self.open_file(path).ok()??;
        let mut data = Vec::new();
        file.take(len).read_to_end(&mut data).ok()?;
        Some(data)
    }

    /// Opens the regular file at in-root `path`; `None` when it does not exist.
    fn open_file(&self, path: &[u8]) -> Result<Option<(PathBuf, File)>> {
        let host = self.resolve(path)?;
        // O_NOFOLLOW: the last component was resolved in the root, a symlink there now would
        // lead outside it. O_NONBLOCK: a FIFO planted under a fact's name must not hang the scan.
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&host);
        let file = match file {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(Error::io("open", host, e)),
        };
        let meta = file.metadata().map_err(|e| Error::io("stat", &host, e))?;
        if !meta.is_file() {
            let msg = format!("{} is not a regular file", host.display());
            return Err(Error::Invalid(msg));
        }
        Ok(Some((host, file)))
    }

    /// Sorted entry names of the directory at in-root `dir`; empty when it does not exist.
    /// Other failures are recorded.
    pub fn list(&mut self, dir: &[u8]) -> Vec<Vec<u8>> {
        let r = self.resolve(dir).and_then(|host| {
            let names = match fs::read_dir(&host) {
                Ok(it) => it.map(|e| e.map(|e| e.file_name().into_vec())).collect(),
                Err(e) if is_missing(&e) => Ok(Vec::new()),
                Err(e) => Err(e),
            };
            let mut names: Vec<_> = names.map_err(|e| Error::io("readdir", host, e))?;
            names.sort();
            Ok(names)
        });
        self.record(dir, r)
    }

    /// Metadata of in-root `path` with its symlinks resolved, if it exists.
    pub fn metadata(&self, path: &[u8]) -> Option<fs::Metadata> {
        fs::metadata(self.resolve(path).ok()?).ok()
    }

    /// Whether in-root `path` is a directory once resolved.
    pub fn is_dir(&self, path: &[u8]) -> bool {
        self.metadata(path).is_some_and(|m| m.is_dir())
    }

    /// Whether in-root `path` is a regular file once resolved.
    pub fn is_file(&self, path: &[u8]) -> bool {
        self.metadata(path).is_some_and(|m| m.is_file())
    }

    /// Target of the symlink at in-root `path` (its parents resolved within the root); `None`
    /// when it is not a symlink.
    pub fn read_link(&self, path: &[u8]) -> Option<Vec<u8>> {
        let (parent, name) = split_last(path);
        let dir = resolve_in_root(self.root, parent).ok()?;
        let host = host_path(self.root, &dir).join(OsStr::from_bytes(name));
        Some(fs::read_link(host).ok()?.into_os_string().into_vec())
    }
}

/// Splits an in-root path into its parent and last component.
pub(crate) fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (b"/", trimmed),
    }
}

/// `dir` and `name` joined with one slash.
pub(crate) fn child(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_stay_in_root() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::write(r.join("usr/lib/os-release"), "ID=inside\n").unwrap();
        symlink("/usr/lib/os-release", r.join("etc/os-release")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        symlink("../../../../../lib/os-release", r.join("etc/deep")).unwrap();
        let mut fs = RootFs::new(r);
        assert_eq!(fs.read(b"/etc/os-release").unwrap(), b"ID=inside\n");
        // `..` cannot climb above the root, just as on the machine itself.
        assert_eq!(fs.read(b"/etc/deep").unwrap(), b"ID=inside\n");
        assert_eq!(
            resolve_in_root(r, b"/lib/./os-release").unwrap(),
            b"/usr/lib/os-release"
        );
        assert_eq!(fs.read(b"/etc/missing/x"), None);
        assert!(fs.errors.is_empty());
    }

    #[test]
    fn link_loops_and_fifos_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        symlink("/b", r.join("a")).unwrap();
        symlink("/a", r.join("b")).unwrap();
        let fifo = r.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let mut fs = RootFs::new(r);
        assert_eq!(fs.read(b"/a"), None);
        assert_eq!(fs.read(b"/fifo"), None);
        assert_eq!(fs.errors.len(), 2);
        assert_eq!(fs.errors[0].op, "facts");
    }

    #[test]
    fn split_and_child() {
        assert_eq!(split_last(b"/etc/x"), (&b"/etc"[..], &b"x"[..]));
        assert_eq!(split_last(b"/x"), (&b"/"[..], &b"x"[..]));
        assert_eq!(child(b"/", b"etc"), b"/etc");
        assert_eq!(child(b"/etc", b"x"), b"/etc/x");
    }
}
