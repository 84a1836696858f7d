//! Recreating packages no repository holds (built in-house, installed with `dpkg -i`) as real
//! `.deb` files, the way dpkg-repack does: control data, conffiles and maintainer scripts from
//! the scanned dpkg database, files from the overlay's blobs, metadata from the report. The
//! packages land in a flat repository that the rebuilt machine installs from like any other.
//!
//! ```no_run
//! use std::path::Path;
//! use uforge_core::blobstore::LocalBlobStore;
//! use uforge_core::recreate::recreate_packages;
//! use uforge_core::repo::PackageKey;
//!
//! let blobs = LocalBlobStore::open("/srv/uforge/blobs")?;
//! let missing = [PackageKey::new("acme-agent", "2.4.1-1", "amd64")];
//! for p in recreate_packages(Path::new("scan.ufr"), &missing, &blobs, Path::new("/srv/repo"))? {
//!     println!("{} ({} bytes)", p.file_name, p.size);
//! }
//! # Ok::<(), uforge_core::Error>(())
//! ```
//!
//! A package's files are the entries the report says it owns; a path several packages list is
//! owned by the first of them by name, so such a path only comes with that one. Not
//! reproduced: `md5sums` (dpkg does not need it; no MD5 implementation is at hand), extended
//! attributes (a `.deb` cannot carry them; maintainer scripts set file capabilities), and files
//! the scan left out (excluded paths).

mod control;
mod debfile;
mod index;
mod plan;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use index::write_flat_index;

use crate::blobstore::{to_hex, BlobStore};
use crate::deb822;
use crate::pkgdb::package_keys;
use crate::repo::PackageKey;
use crate::report::ReportReader;
use crate::{rawpath, Error, Result};
use plan::{Member, MemberKind};

/// Largest status file read; real ones are a few megabytes.
const MAX_STATUS: u64 = 512 << 20;

/// A package rebuilt as a `.deb` in the repository directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecreatedPackage {
    /// The package.
    pub key: PackageKey,
    /// Its file in the repository directory (`acme-agent_2.4.1-1_amd64.deb`; no epoch, as
    /// dpkg names files).
    pub file_name: String,
    /// SHA-256 of the `.deb`.
    pub sha256: [u8; 32],
    /// Size of the `.deb` in bytes.
    pub size: u64,
}

/// Rebuilds each of `missing` as a `.deb` in `repo_dir` (created if needed), then regenerates
/// `repo_dir/Packages` ([`write_flat_index`]) so that the directory is a flat repository usable
/// as `deb [trusted=yes] file:REPO_DIR ./`.
///
/// A package's files are the entries of the report (`report`, a report file of either
/// encoding) it owns (`FileEntry::package` equal to its report key, see
/// [`crate::pkgdb::package_keys`]), with the directories above them, their metadata from the
/// report and their contents from `blobs` by SHA-256. Its control file is its paragraph of the
/// scanned `/var/lib/dpkg/status` (read from `blobs`) without dpkg's bookkeeping fields; its
/// conffiles and maintainer scripts come from the scanned `/var/lib/dpkg/info` files.
///
/// Every package is checked (paragraph, blobs) before any file is written, and every `.deb` is
/// written under a temporary name first: on error nothing new is left in `repo_dir`, and the
/// error names the package and the file at fault. Returns the packages in the order of
/// `missing` (duplicates dropped).
pub fn recreate_packages(
    report: &Path,
    missing: &[PackageKey],
    blobs: &dyn BlobStore,
    repo_dir: &Path,
) -> Result<Vec<RecreatedPackage>> {
    let mut keys: Vec<PackageKey> = Vec::new();
    let mut file_names = HashSet::new();
    for key in missing {
        if keys.contains(key) {
            continue;
        }
        check_key(key)?;
        if !file_names.insert(deb_file_name(key)) {
            return Err(recreate_err(
                key,
                "another package to recreate has the same file name (versions differing only by epoch)",
            ));
        }
        keys.push(key.clone());
    }

    std::fs::create_dir_all(repo_dir).map_err(|e| Error::io("create", repo_dir, e))?;
    let built = if keys.is_empty() {
        Vec::new()
    } else {
        build_all(report, keys, blobs, repo_dir)?
    };
    let mut out = Vec::new();
    for (tmp, p) in built {
        tmp.persist(&repo_dir.join(&p.file_name))?;
        out.push(p);
    }
    if !out.is_empty() {
        sync_dir(repo_dir)?;
    }
    write_flat_index(repo_dir)?;
    Ok(out)
}

/// Builds every package under a temporary name in `repo_dir`; nothing is renamed yet.
fn build_all(
    report: &Path,
    keys: Vec<PackageKey>,
    blobs: &dyn BlobStore,
    repo_dir: &Path,
) -> Result<Vec<(TempFile, RecreatedPackage)>> {
    let mut reader = ReportReader::open(report)?;
    let header = reader.header().clone();
    let report_keys = package_keys(&header.packages);
    let mut wanted = Vec::with_capacity(keys.len());
    for key in keys {
        let i = header
            .packages
            .iter()
            .position(|p| PackageKey::of(p) == key)
            .ok_or_else(|| recreate_err(&key, "the report lists no such package"))?;
        wanted.push((key, report_keys[i].clone()));
    }
    let mtime = header.scan.started;
    let mut gathered = plan::gather(&mut reader, wanted, mtime)?;
    for plan in &mut gathered.plans {
        // dpkg's list of the package is what it installed: the recreated package holds
        // exactly those paths (when the scan shipped the list).
        if let Some(e) = plan.info(plan::LIST, false).cloned() {
            let list = control::read_blob(plan, &e, blobs)?;
            plan.follow_list(&list, &gathered.symlinks, mtime);
        }
    }
    let Some(first) = gathered.plans.first().map(|p| &p.key) else {
        return Ok(Vec::new());
    };

    let status = gathered.status.as_ref().ok_or_else(|| {
        recreate_err(
            first,
            format!(
                "the report has no {}: the package's control data is unknown",
                rawpath::display(plan::STATUS)
            ),
        )
    })?;
    let status =
        control::read_small_blob(status, blobs, MAX_STATUS).map_err(|m| recreate_err(first, m))?;
    // dpkg writes UTF-8; a stray byte of an old Latin-1 field is not worth failing over.
    let paragraphs = deb822::parse(&String::from_utf8_lossy(&status));

    let mut controls = Vec::with_capacity(gathered.plans.len());
    for plan in &gathered.plans {
        let para = control::find_paragraph(&paragraphs, &plan.key).ok_or_else(|| {
            plan.err("the scanned dpkg status has no installed paragraph for it".into())
        })?;
        let files = control::control_files(plan, para, blobs)?;
        let tar = debfile::control_tar(&files, mtime)
            .map_err(|e| plan.err(format!("building control.tar: {e}")))?;
        // Checked now so that a missing file fails before anything is written.
        for m in &plan.members {
            if let MemberKind::File { sha256, .. } = m.kind {
                if !blobs.has(&sha256)? {
                    return Err(plan.err(format!(
                        "the blob store has no content for {:?} (sha256 {})",
                        rawpath::display(&m.path),
                        to_hex(&sha256)
                    )));
                }
            }
        }
        controls.push(tar);
    }

    let root = match &gathered.root {
        Some(e) => Member::root_of(e),
        None => Member::default_dir(b"/".to_vec(), mtime),
    };
    let mut built = Vec::with_capacity(gathered.plans.len());
    for (plan, control_tar) in gathered.plans.iter().zip(&controls) {
        let file_name = deb_file_name(&plan.key);
        let tmp = TempFile::new(repo_dir, &file_name);
        let (sha256, size) =
            debfile::write_deb(tmp.path(), plan, control_tar, &root, blobs, mtime)?;
        built.push((
            tmp,
            RecreatedPackage {
                key: plan.key.clone(),
                file_name,
                sha256,
                size,
            },
        ));
    }
    Ok(built)
}

/// The file name dpkg gives a package: `NAME_VERSION_ARCH.deb`, the epoch left out.
pub(crate) fn deb_file_name(key: &PackageKey) -> String {
    let version = key
        .version
        .split_once(':')
        .map_or(key.version.as_str(), |(_, v)| v);
    format!("{}_{}_{}.deb", key.name, version, key.arch)
}

/// Refuses keys dpkg would refuse: they also end up in a file name, so a `/` or a blank in
/// them (a hostile report) must not get that far.
fn check_key(key: &PackageKey) -> Result<()> {
    let name_ok = key.name.len() >= 2
        && key.name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let version_ok = key.version.starts_with(|c: char| c.is_ascii_digit())
        && key
            .version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~-:".contains(&b));
    let arch_ok = !key.arch.is_empty()
        && key
            .arch
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    match (name_ok, version_ok, arch_ok) {
        (true, true, true) => Ok(()),
        (false, _, _) => Err(recreate_err(key, "not a valid package name")),
        (_, false, _) => Err(recreate_err(key, "not a valid version")),
        (_, _, false) => Err(recreate_err(key, "not a valid architecture")),
    }
}

/// Builds a [`Error::Recreate`] about `key`.
fn recreate_err(key: &PackageKey, message: impl Into<String>) -> Error {
    Error::Recreate {
        package: key.to_string(),
        message: message.into(),
    }
}

/// Makes the renames into `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync", dir, e))
}

/// A file being written under a hidden name beside its destination: removed when dropped
/// unless it was moved into place. Hidden names (`.NAME.partial-…`) are never taken for
/// packages or indexes.
pub(crate) struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl TempFile {
    /// Picks a fresh temporary name in `dir` for a file that will be called `name`.
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            ".{name}.partial-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        TempFile { path, kept: false }
    }

    /// Where it is being written.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves it to `dest`, replacing any file there.
    pub(crate) fn persist(mut self, dest: &Path) -> Result<()> {
        std::fs::rename(&self.path, dest).map_err(|e| Error::io("rename", &self.path, e))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
