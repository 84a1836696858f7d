//! Content-addressed storage of file contents, keyed by SHA-256.
//!
//! Writes go through a staged batch ([`BlobStaging`]) so that an overlay found bad halfway
//! leaves nothing behind: blobs become visible only when the batch is committed.

use std::collections::HashSet;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A store of blobs named by the SHA-256 of their content.
pub trait BlobStore: Send + Sync {
    /// Whether a committed blob with this digest exists.
    fn has(&self, sha256: &[u8; 32]) -> Result<bool>;
    /// Opens a committed blob for reading.
    fn open(&self, sha256: &[u8; 32]) -> Result<Box<dyn Read + Send>>;
    /// Starts a staged batch: nothing put through it is visible until commit.
    fn stage(&self) -> Result<Box<dyn BlobStaging>>;
}

/// A batch of blobs being written. Dropping it without [`BlobStaging::commit`] discards
/// everything put through it.
pub trait BlobStaging {
    /// Stores the stream, verifying it hashes to `sha256` and has exactly `size` bytes; error
    /// otherwise (nothing kept). A blob already stored is not written again, but the stream is
    /// still read and verified.
    fn put(&mut self, sha256: &[u8; 32], size: u64, data: &mut dyn Read) -> Result<()>;
    /// Stores a stream of exactly `size` bytes whose digest is not known beforehand (a file
    /// that changed on the source after it was scanned) and returns the SHA-256 computed over
    /// what was read; error if the stream is not exactly `size` bytes (nothing kept).
    fn put_computed(&mut self, size: u64, data: &mut dyn Read) -> Result<[u8; 32]>;
    /// Makes every staged blob visible.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Lower-case hex of a digest: how blobs are named.
pub fn to_hex(sha256: &[u8; 32]) -> String {
    sha256.iter().map(|b| format!("{b:02x}")).collect()
}

/// A blob store in a local directory: `ROOT/sha256/ab/abcdef…` (two-character fan-out, then the
/// full hex digest), batches staged in `ROOT/staging/NAME/` on the same filesystem so that
/// committing is a rename.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

const BUF: usize = 256 << 10;

impl LocalBlobStore {
    /// Opens (creating if needed) a store in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let root = dir.as_ref().to_path_buf();
        for d in [root.join("sha256"), root.join("staging")] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create", &d, e))?;
        }
        Ok(LocalBlobStore { root })
    }

    /// Removes the staging batches of processes that are gone (a crash mid-upload leaves
    /// them); returns how many. Batches are named after the process that made them, so a
    /// process sharing the store keeps its own. Call before this process stages anything.
    pub fn remove_stale_staging(&self) -> Result<usize> {
        let dir = self.root.join("staging");
        let me = std::process::id();
        let mut removed = 0;
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))? {
            let e = e.map_err(|e| Error::io("list", &dir, e))?;
            let name = e.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            let alive = |pid: u32| {
                let Ok(pid) = libc::pid_t::try_from(pid) else {
                    return false;
                };
                // SAFETY: kill with signal 0 only checks that the process exists.
                let r = unsafe { libc::kill(pid, 0) };
                r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
            };
            if pid.is_some_and(|p| p != me && p > 0 && alive(p)) {
                continue;
            }
            let path = e.path();
            let gone = if e.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            gone.map_err(|e| Error::io("remove", &path, e))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Where the committed blob with this digest lives.
    pub fn blob_path(&self, sha256: &[u8; 32]) -> PathBuf {
        blob_path(&self.root, sha256)
    }
}

fn blob_path(root: &Path, sha256: &[u8; 32]) -> PathBuf {
    let hex = to_hex(sha256);
    root.join("sha256").join(&hex[..2]).join(hex)
}

impl BlobStore for LocalBlobStore {
    fn has(&self, sha256: &[u8; 32]) -> Result<bool> {
        let p = self.blob_path(sha256);
        match std::fs::metadata(&p) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("stat", p, e)),
        }
    }

    fn open(&self, sha256: &[u8; 32]) -> Result<Box<dyn Read + Send>> {
        let p = self.blob_path(sha256);
        let f = File::open(&p).map_err(|e| Error::io("open", &p, e))?;
        Ok(Box::new(f))
    }

    fn stage(&self) -> Result<Box<dyn BlobStaging>> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        loop {
            let name = format!(
                "{}-{nanos}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let dir = self.root.join("staging").join(name);
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    return Ok(Box::new(LocalStaging {
                        root: self.root.clone(),
                        dir,
                        staged: Vec::new(),
                        known: HashSet::new(),
                        buf: vec![0; BUF],
                    }))
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", dir, e)),
            }
        }
    }
}

/// A batch in `ROOT/staging/NAME/`, one file per new blob, named by its hex digest.
struct LocalStaging {
    root: PathBuf,
    dir: PathBuf,
    staged: Vec<[u8; 32]>,
    /// Digests already staged in this batch, so a content seen twice is written once.
    known: HashSet<[u8; 32]>,
    buf: Vec<u8>,
}

impl LocalStaging {
    /// Reads `data` to its end (at most `size` + 1 bytes), hashing it and handing each chunk
    /// to `sink`; fails unless it is exactly `size` bytes hashing to `sha256`.
    fn verify(
        &mut self,
        sha256: &[u8; 32],
        size: u64,
        data: &mut dyn Read,
        sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<()> {
        let got = self.hash(&to_hex(sha256), size, data, sink)?;
        if &got != sha256 {
            return Err(Error::BlobMismatch {
                sha256: to_hex(sha256),
                message: format!("content hashes to {}", to_hex(&got)),
            });
        }
        Ok(())
    }

    /// Reads `data` to its end (at most `size` + 1 bytes), handing each chunk to `sink`, and
    /// returns its digest; fails unless it is exactly `size` bytes. `name` names the blob in
    /// errors.
    fn hash(
        &mut self,
        name: &str,
        size: u64,
        data: &mut dyn Read,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<[u8; 32]> {
        let mismatch = |message: String| Error::BlobMismatch {
            sha256: name.to_string(),
            message,
        };
        let mut h = Sha256::new();
        let mut total = 0u64;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", format!("blob {name}"), e)),
            };
            total += n as u64;
            if total > size {
                return Err(mismatch(format!("more than the {size} bytes announced")));
            }
            h.update(&self.buf[..n]);
            sink(&self.buf[..n]).map_err(|e| Error::io("write", &self.dir, e))?;
        }
        if total != size {
            return Err(mismatch(format!("{total} bytes, {size} announced")));
        }
        Ok(h.finalize().into())
    }
}

impl BlobStaging for LocalStaging {
    fn put(&mut self, sha256: &[u8; 32], size: u64, data: &mut dyn Read) -> Result<()> {
        if self.known.contains(sha256) || blob_path(&self.root, sha256).is_file() {
            return self.verify(sha256, size, data, |_| Ok(()));
        }
        let path = self.dir.join(to_hex(sha256));
        // A new file of our own, never something already there under that name (a link
        // would redirect the write). Blobs are a machine's files (its /etc/shadow, its host
        // keys): owner only.
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let result = self.verify(sha256, size, data, |chunk| f.write_all(chunk));
        if result.is_err() {
            drop(f);
            let _ = std::fs::remove_file(&path);
            return result;
        }
        self.known.insert(*sha256);
        self.staged.push(*sha256);
        Ok(())
    }

    fn put_computed(&mut self, size: u64, data: &mut dyn Read) -> Result<[u8; 32]> {
        // Written under a name no digest can take, then renamed to its digest once known.
        let tmp = self.dir.join("incoming");
        let mut f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let result = self.hash("(computed on arrival)", size, data, |c| f.write_all(c));
        drop(f);
        let sha = match result {
            Ok(sha) => sha,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if self.known.contains(&sha) || blob_path(&self.root, &sha).is_file() {
            let _ = std::fs::remove_file(&tmp);
            return Ok(sha);
        }
        let dest = self.dir.join(to_hex(&sha));
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename", &tmp, e))?;
        self.known.insert(sha);
        self.staged.push(sha);
        Ok(sha)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        if !self.staged.is_empty() {
            // One syncfs makes every staged file durable before any of them becomes visible,
            // far cheaper than an fsync per blob.
            let d = File::open(&self.dir).map_err(|e| Error::io("open", &self.dir, e))?;
            // SAFETY: syncfs on a descriptor we own and keep open for the call.
            if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(Error::io("sync", &self.dir, e));
            }
        }
        let mut fanout = [false; 256];
        for sha in &self.staged {
            let dest = blob_path(&self.root, sha);
            let parent = dest.parent().unwrap_or(&self.root);
            match std::fs::DirBuilder::new().mode(0o700).create(parent) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create", parent, e)),
            }
            let src = self.dir.join(to_hex(sha));
            std::fs::rename(&src, &dest).map_err(|e| Error::io("rename", &src, e))?;
            fanout[usize::from(sha[0])] = true;
        }
        // The renames are durable once the directories holding them are.
        let mut dirs: Vec<PathBuf> = (0..256)
            .filter(|&i| fanout[i])
            .map(|i| self.root.join("sha256").join(format!("{i:02x}")))
            .collect();
        dirs.push(self.root.join("sha256"));
        for d in dirs {
            File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io("sync", &d, e))?;
        }
        Ok(())
    }
}

impl Drop for LocalStaging {
    fn drop(&mut self) {
        // After a commit only the empty directory is left; without one, the discarded blobs.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_staging_goes_and_blobs_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let data = b"secret";
        let sha: [u8; 32] = Sha256::digest(data).into();
        let mut st = store.stage().unwrap();
        st.put(&sha, 6, &mut &data[..]).unwrap();
        // Left by a dead process (this one stands for its successor with the same pid), and
        // one of a live process (init), which stays.
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        dead.wait().unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir(staging.join(format!("{}-1-0", dead.id()))).unwrap();
        std::fs::create_dir(staging.join("1-1-0")).unwrap();
        assert_eq!(store.remove_stale_staging().unwrap(), 2);
        let left: Vec<_> = std::fs::read_dir(&staging)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["1-1-0"]);
        drop(st);

        let mut st = store.stage().unwrap();
        st.put(&sha, 6, &mut &data[..]).unwrap();
        st.commit().unwrap();
        let p = store.blob_path(&sha);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
    }

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn files_under(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    files_under(&e.path()) + 1
                } else {
                    1
                }
            })
            .sum()
    }

    #[test]
    fn staged_until_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(tmp.path()).unwrap();
        let (a, b) = (b"alpha".as_slice(), vec![7u8; 600_000]);
        let mut st = store.stage().unwrap();
        st.put(&sha(a), 5, &mut &a[..]).unwrap();
        st.put(&sha(&b), b.len() as u64, &mut &b[..]).unwrap();
        // A second copy in the same batch is verified, not rewritten.
        st.put(&sha(a), 5, &mut &a[..]).unwrap();
        assert!(st.put(&sha(a), 5, &mut &b"alphx"[..]).is_err());
        assert!(!store.has(&sha(a)).unwrap());
        st.commit().unwrap();
        assert!(store.has(&sha(a)).unwrap() && store.has(&sha(&b)).unwrap());
        let mut back = Vec::new();
        store
            .open(&sha(&b))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, b);
        let hex = to_hex(&sha(a));
        assert!(tmp
            .path()
            .join("sha256")
            .join(&hex[..2])
            .join(&hex)
            .is_file());
        assert_eq!(files_under(&tmp.path().join("staging")), 0);

        // Already stored: verified all the same.
        let mut st = store.stage().unwrap();
        st.put(&sha(a), 5, &mut &a[..]).unwrap();
        let err = st.put(&sha(a), 5, &mut &b"beta!"[..]).unwrap_err();
        assert!(matches!(err, Error::BlobMismatch { .. }), "{err}");
        st.commit().unwrap();
    }

    #[test]
    fn computed_digest_is_what_arrived() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(tmp.path()).unwrap();
        let mut st = store.stage().unwrap();
        let data = b"grown since the scan".as_slice();
        assert_eq!(st.put_computed(20, &mut &data[..]).unwrap(), sha(data));
        // The same content again is not stored twice; a short stream keeps nothing.
        assert_eq!(st.put_computed(20, &mut &data[..]).unwrap(), sha(data));
        let err = st.put_computed(21, &mut &data[..]).unwrap_err();
        assert!(matches!(err, Error::BlobMismatch { .. }), "{err}");
        assert!(!store.has(&sha(data)).unwrap());
        st.commit().unwrap();
        assert!(store.has(&sha(data)).unwrap());
        assert_eq!(files_under(&tmp.path().join("staging")), 0);
    }

    #[test]
    fn mismatch_and_drop_keep_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(tmp.path()).unwrap();
        let data = b"some content".as_slice();
        let mut st = store.stage().unwrap();
        let e = st.put(&sha(data), 11, &mut &data[..]).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        let e = st.put(&sha(data), 13, &mut &data[..]).unwrap_err();
        assert!(e.to_string().contains("12 bytes, 13 announced"), "{e}");
        let e = st.put(&sha(b"x"), 12, &mut &data[..]).unwrap_err();
        assert!(e.to_string().contains("hashes to"), "{e}");
        st.put(&sha(data), 12, &mut &data[..]).unwrap();
        assert_eq!(files_under(&tmp.path().join("staging")), 2);
        drop(st);
        assert!(!store.has(&sha(data)).unwrap());
        assert_eq!(files_under(&tmp.path().join("staging")), 0);
        assert_eq!(files_under(&tmp.path().join("sha256")), 0);
        assert!(store.open(&sha(data)).is_err());
    }
}
