//! Rebuilding the packages no repository has, from a complete scan's report and overlay.

use std::path::Path;

use uforge_core::blobstore::{to_hex, BlobStore};
use uforge_core::recreate::recreate_packages;
use uforge_core::repo::PackageKey;

/// A package rebuilt into a user's repository.
#[derive(Debug, Clone)]
pub struct Recreated {
    /// Which package.
    pub key: PackageKey,
    /// File name in the repository.
    pub file_name: String,
    /// SHA-256 of the `.deb`, hex.
    pub sha256: String,
    /// Size of the `.deb`.
    pub size: u64,
}

/// Rebuilds each of `missing` as a `.deb` in `repo_dir` and regenerates its `Packages` index,
/// which makes the directory a flat repository later analyses of the user include.
pub fn recreate(
    report: &Path,
    missing: &[PackageKey],
    blobs: &dyn BlobStore,
    repo_dir: &Path,
) -> uforge_core::Result<Vec<Recreated>> {
    Ok(recreate_packages(report, missing, blobs, repo_dir)?
        .into_iter()
        .map(|p| Recreated {
            sha256: to_hex(&p.sha256),
            key: p.key,
            file_name: p.file_name,
            size: p.size,
        })
        .collect())
}
