//! Package repositories: what they hold and the official digests of their files.
//!
//! A repository is opened from one sources.list line ([`SourceLine`]; files of either apt form,
//! one-line or deb822 `.sources`, are read by [`read_sources_file`]) into a [`DebianRepo`],
//! which answers the analysis through [`RepoIndex`]: does the repository carry this exact
//! package, and what files (with digests) does its `.deb` ship. Indexes, `.deb` files and
//! manifests are cached on disk so that only the signed `InRelease` is fetched on a warm start.
//!
//! ```no_run
//! use std::sync::Arc;
//! use uforge_core::repo::{default_fetcher, DebianRepo, PackageKey, RepoIndex, RepoOptions, SourceLine};
//!
//! let line = SourceLine::parse("deb http://deb.debian.org/debian bookworm main")?;
//! let opts = RepoOptions::new("/var/cache/uforge");
//! let repo = DebianRepo::open(&line, &opts, Arc::from(default_fetcher()))?;
//! let key = PackageKey::new("hostname", "3.23+nmu1", "amd64");
//! if let Some(m) = repo.manifest(&key)? {
//!     println!("{} ships {} files", key, m.files.len());
//! }
//! # Ok::<(), uforge_core::Error>(())
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{FileKind, Package, RawPath};
use crate::{Error, Result};

mod ar;
mod cache;
pub(crate) mod deb;
mod debian;
mod fetch;
mod open;
mod packages;
mod release;
mod sources;
mod sources_file;
mod verify;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod tests;

pub(crate) use ar::read_full;
pub use debian::DebianRepo;
pub(crate) use fetch::percent_decode;
#[cfg(feature = "http")]
pub use fetch::HttpFetcher;
pub use fetch::{default_fetcher, Fetcher, FileFetcher, SchemeFetcher};
pub use open::{
    archs_of, default_cache_dir, file_uri, open_sources, release_dir_name, same_release, Sources,
};
pub use release::ReleaseIdentity;
pub use sources::SourceLine;
pub use sources_file::{parse_sources, read_sources_file, source_lines, SourceEntry};

/// Identity of a binary package: what dpkg records and what a `Packages` index lists.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PackageKey {
    /// Package name.
    pub name: String,
    /// Exact version, epoch included (`1:2.3-4`).
    pub version: String,
    /// Package architecture (`amd64`, `all`).
    pub arch: String,
}

impl PackageKey {
    /// Builds a key from its parts.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        arch: impl Into<String>,
    ) -> Self {
        PackageKey {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
        }
    }

    /// The key of an installed package, to look it up in repositories.
    pub fn of(pkg: &Package) -> Self {
        PackageKey::new(&pkg.name, &pkg.version, &pkg.arch)
    }
}

impl fmt::Display for PackageKey {
    /// The `.deb` naming convention (`name_version_arch`), which users recognise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}_{}", self.name, self.version, self.arch)
    }
}

/// What a repository's `Packages` index says about one package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRecord {
    /// The package.
    pub key: PackageKey,
    /// Path of the `.deb` relative to the repository base URI (`pool/main/h/hostname/...`).
    pub filename: String,
    /// Size of the `.deb` in bytes.
    pub size: u64,
    /// SHA-256 of the `.deb`.
    pub sha256: [u8; 32],
    /// Source package name, when the index names one (it does when it differs from the binary).
    pub source: Option<String>,
    /// What the package needs, provides and excludes: the fields a dependency check reads.
    #[serde(default)]
    pub relations: PackageRelations,
}

/// The relationship fields of a package, as its index (or control file) spells them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRelations {
    /// `Depends`.
    pub depends: Option<String>,
    /// `Pre-Depends`.
    pub pre_depends: Option<String>,
    /// `Conflicts`.
    pub conflicts: Option<String>,
    /// `Breaks`.
    pub breaks: Option<String>,
    /// `Provides`.
    pub provides: Option<String>,
    /// `Multi-Arch` (`same`, `foreign`, `allowed`).
    pub multi_arch: Option<String>,
    /// `Essential: yes`.
    pub essential: bool,
}

impl PackageRelations {
    /// The fields of a package's paragraph.
    pub fn of(p: &crate::deb822::Paragraph) -> Self {
        let get = |f: &str| p.get(f).map(str::to_string).filter(|v| !v.is_empty());
        PackageRelations {
            depends: get("Depends"),
            pre_depends: get("Pre-Depends"),
            conflicts: get("Conflicts"),
            breaks: get("Breaks"),
            provides: get("Provides"),
            multi_arch: get("Multi-Arch"),
            essential: p
                .get("Essential")
                .is_some_and(|e| e.eq_ignore_ascii_case("yes")),
        }
    }
}

/// One member of a `.deb`'s `data.tar`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebFile {
    /// In-root absolute path (`/usr/bin/ls`; directories without trailing slash; `/` for `./`).
    #[serde(with = "serde_bytes")]
    pub path: RawPath,
    /// Kind of object.
    pub kind: FileKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Content size for files and hard links, target length for symlinks (as `st_size`), else 0.
    pub size: u64,
    /// SHA-256 of the content, for regular files and hard links.
    pub sha256: Option<[u8; 32]>,
    /// Symlink target as stored, or for a hard link the in-root absolute path it links to.
    #[serde(with = "serde_bytes")]
    pub target: Option<RawPath>,
}

/// What a `.deb` ships.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebManifest {
    /// The package.
    pub key: PackageKey,
    /// Every member of `data.tar`, in archive order.
    pub files: Vec<DebFile>,
    /// Conffiles declared in `control.tar` (in-root absolute paths).
    pub conffiles: Vec<RawPath>,
}

/// What the analysis asks of a repository (or of anything else that can stand for one).
pub trait RepoIndex: Send + Sync {
    /// A short name for messages (the sources line).
    fn name(&self) -> String;
    /// Whether the index carries exactly this package.
    fn has(&self, key: &PackageKey) -> bool;
    /// The manifest of a package this index has (fetching and caching the `.deb` lazily);
    /// `Ok(None)` if it does not have it.
    fn manifest(&self, key: &PackageKey) -> Result<Option<Arc<DebManifest>>>;
    /// Which distribution release the index carries, when its Release file says.
    fn identity(&self) -> Option<ReleaseIdentity> {
        None
    }
}

/// Where and how repositories are opened.
#[derive(Clone, Debug)]
pub struct RepoOptions {
    /// Cache of indexes, `.deb` files and manifests; shared safely between repositories.
    pub cache_dir: PathBuf,
    /// Keyring that signs repositories without `signed-by` (default: the Debian archive
    /// keyring). Binary (`.gpg`) and ASCII-armored (`.asc`) keyrings are accepted.
    pub keyring: Option<PathBuf>,
    /// Architectures whose indexes are read unless the sources line says `arch=`.
    pub archs: Vec<String>,
}

/// The keyring used when neither the options nor the sources line name one.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

impl RepoOptions {
    /// Options with the given cache directory, the default keyring and `amd64` + `all`.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        RepoOptions {
            cache_dir: cache_dir.into(),
            keyring: None,
            archs: vec!["amd64".into(), "all".into()],
        }
    }
}

/// Builds a [`Error::Repo`] about `what`.
fn err(what: impl fmt::Display, message: impl fmt::Display) -> Error {
    Error::Repo {
        what: what.to_string(),
        message: message.to_string(),
    }
}

/// Lower-case hex of a digest, as used in cache file names and index files.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a 64-digit hex SHA-256.
fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        let txt = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(txt, 16).ok()?;
    }
    Some(out)
}
