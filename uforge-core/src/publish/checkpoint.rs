//! Where publishers keep what a cut transfer needs to resume when the target cannot tell
//! (a registry's upload session, a libvirt volume's uploaded length). S3 needs none: the
//! store lists the parts of an unfinished upload itself.
//!
//! The CLI keeps checkpoints in a directory; the server can keep them with the job.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// A small key-value store of resume points. Keys name the target and the blob or file;
/// values are short JSON documents. Saving is best effort for the caller: a checkpoint that
/// could not be saved only costs a resend.
pub trait Checkpoints: Send + Sync {
    /// The value saved under `key`, if any.
    fn load(&self, key: &str) -> Option<String>;
    /// Saves `value` under `key`, replacing what was there.
    fn save(&self, key: &str, value: &str) -> std::io::Result<()>;
    /// Forgets `key`.
    fn remove(&self, key: &str);
}

/// Keeps nothing: every cut transfer starts again (what S3 and directories need anyway).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCheckpoints;

impl Checkpoints for NoCheckpoints {
    fn load(&self, _key: &str) -> Option<String> {
        None
    }
    fn save(&self, _key: &str, _value: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn remove(&self, _key: &str) {}
}

/// Checkpoints in memory, for retries inside one process.
#[derive(Debug, Default)]
pub struct MemoryCheckpoints(Mutex<HashMap<String, String>>);

impl Checkpoints for MemoryCheckpoints {
    fn load(&self, key: &str) -> Option<String> {
        self.0.lock().ok()?.get(key).cloned()
    }
    fn save(&self, key: &str, value: &str) -> std::io::Result<()> {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_string(), value.to_string());
        }
        Ok(())
    }
    fn remove(&self, key: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(key);
        }
    }
}

/// Checkpoints as files in a directory (mode 0600: upload locations can grant access), one
/// per key, named by the SHA-256 of the key and replaced atomically.
#[derive(Debug, Clone)]
pub struct DirCheckpoints {
    dir: PathBuf,
}

impl DirCheckpoints {
    /// Checkpoints in `dir`, created (0700) if missing.
    pub fn new(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(DirCheckpoints { dir })
    }

    fn path(&self, key: &str) -> PathBuf {
        let h = Sha256::digest(key.as_bytes());
        self.dir.join(crate::blobstore::to_hex(&h.into()))
    }
}

impl Checkpoints for DirCheckpoints {
    fn load(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(self.path(key)).ok()
    }

    fn save(&self, key: &str, value: &str) -> std::io::Result<()> {
        let path = self.path(key);
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(value.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    fn remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.path(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn dir_checkpoints_persist_privately() {
        let tmp = tempfile::tempdir().unwrap();
        let c = DirCheckpoints::new(tmp.path().join("cp")).unwrap();
        assert_eq!(c.load("k"), None);
        c.save("k", "{\"offset\":5}").unwrap();
        c.save("k", "{\"offset\":7}").unwrap();
        let again = DirCheckpoints::new(tmp.path().join("cp")).unwrap();
        assert_eq!(again.load("k").as_deref(), Some("{\"offset\":7}"));
        let mode = std::fs::metadata(again.path("k"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        again.remove("k");
        assert_eq!(c.load("k"), None);
        let m = MemoryCheckpoints::default();
        m.save("a", "1").unwrap();
        assert_eq!(m.load("a").as_deref(), Some("1"));
    }
}
