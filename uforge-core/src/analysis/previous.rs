//! Earlier scans of the same machine, as an index: the packages they held and a fingerprint of
//! every entry, so an incremental scan ships only what changed since.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::model::{FileEntry, FileKind};
use crate::repo::PackageKey;
use crate::report::ReportReader;
use crate::Result;

/// 128 bits of SHA-256: compact keys for millions of entries, with collisions out of reach.
type Key = [u8; 16];

/// What an earlier scan of the machine holds.
#[derive(Debug, Default)]
pub struct PreviousScan {
    packages: HashSet<PackageKey>,
    /// Path digest to metadata digest.
    entries: HashMap<Key, Key>,
}

fn short(h: Sha256) -> Key {
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

fn path_key(path: &[u8]) -> Key {
    short(Sha256::new_with_prefix(path))
}

/// Everything that must match for an entry to count as already shipped. Directory mtimes are
/// left out (they move whenever an entry is added inside); a hard link's first name is left
/// out too, since it depends on walk order, not content.
fn fingerprint(e: &FileEntry) -> Key {
    let mut h = Sha256::new();
    let kind = match e.kind {
        FileKind::Hardlink => FileKind::File,
        k => k,
    };
    h.update(kind.as_str());
    h.update(e.mode.to_le_bytes());
    h.update(e.uid.to_le_bytes());
    h.update(e.gid.to_le_bytes());
    h.update(e.size.to_le_bytes());
    if kind != FileKind::Dir {
        h.update(e.mtime.to_le_bytes());
        h.update(e.mtime_nsec.to_le_bytes());
    }
    h.update(e.sha256.unwrap_or_default());
    if e.kind == FileKind::Symlink {
        h.update(e.target.as_deref().unwrap_or_default());
    }
    if let Some((ma, mi)) = e.rdev {
        h.update(ma.to_le_bytes());
        h.update(mi.to_le_bytes());
    }
    for (k, v) in &e.xattrs {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k);
        h.update((v.len() as u64).to_le_bytes());
        h.update(v);
    }
    short(h)
}

impl PreviousScan {
    /// Indexes an earlier report of the machine.
    pub fn load(mut report: ReportReader) -> Result<Self> {
        let packages = report
            .header()
            .packages
            .iter()
            .map(PackageKey::of)
            .collect();
        let mut entries = HashMap::new();
        while let Some(e) = report.next_file()? {
            entries.insert(path_key(&e.path), fingerprint(&e));
        }
        Ok(PreviousScan { packages, entries })
    }

    /// Whether the earlier scan had this exact package.
    pub fn has_package(&self, key: &PackageKey) -> bool {
        self.packages.contains(key)
    }

    /// Whether the earlier scan had this entry at the same path with the same content and
    /// metadata.
    pub fn holds(&self, e: &FileEntry) -> bool {
        self.entries.get(&path_key(&e.path)) == Some(&fingerprint(e))
    }

    /// Number of entries indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the earlier scan recorded no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
