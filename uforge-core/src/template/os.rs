//! The OS profile: distribution, release, architecture, repositories and packages.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::forms;
use crate::repo::PackageKey;

/// What repository lines write in place of the release, so that changing
/// [`OsProfile::release`] retargets every repository (`deb http://deb.debian.org/debian
/// {release} main`, `... {release}-security main`).
pub const RELEASE_PLACEHOLDER: &str = "{release}";

/// The operating system an image is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsProfile {
    /// Distribution (`debian`).
    #[serde(rename = "name")]
    pub distribution: String,
    /// Release codename (`bookworm`, `trixie`): the suite the repositories are read for.
    pub release: String,
    /// Package architecture in dpkg naming (`amd64`, `arm64`).
    pub arch: String,
    /// Package repositories in sources.list syntax; [`RELEASE_PLACEHOLDER`] stands for the
    /// release.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// The packages to install, in name order.
    #[serde(default, serialize_with = "forms::flow_items")]
    pub pkgs: Vec<PackageSpec>,
}

impl OsProfile {
    /// The repository lines with the release filled in.
    pub fn repository_lines(&self) -> Vec<String> {
        self.repositories
            .iter()
            .map(|l| l.replace(RELEASE_PLACEHOLDER, &self.release))
            .collect()
    }
}

/// One package of the OS profile: pinned to an exact version, or free (the newest version the
/// repositories carry when the template is checked or generated).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    /// Package name.
    pub name: String,
    /// The exact version (`1.22.1-9+deb12u1`) of a pinned package; `None` for a free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Architecture (`amd64`, `all`, `i386`); `None`: the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Installed only as a dependency of another package (`apt-mark showauto`): the check
    /// drops it, with a note, when the repositories no longer have it (a library renamed in a
    /// newer release) instead of failing.
    #[serde(default, skip_serializing_if = "forms::is_false")]
    pub auto: bool,
}

impl PackageSpec {
    /// A free package: the newest version.
    pub fn free(name: impl Into<String>) -> Self {
        PackageSpec {
            name: name.into(),
            version: None,
            arch: None,
            auto: false,
        }
    }

    /// A package pinned to exactly this version and architecture.
    pub fn pinned(key: &PackageKey) -> Self {
        PackageSpec {
            name: key.name.clone(),
            version: Some(key.version.clone()),
            arch: Some(key.arch.clone()),
            auto: false,
        }
    }

    /// Whether the version is fixed.
    pub fn is_pinned(&self) -> bool {
        self.version.is_some()
    }

    /// The package freed: any version, of its architecture when that is a foreign one
    /// (`native` is the profile's).
    pub fn unpinned(&self, native: &str) -> Self {
        PackageSpec {
            version: None,
            // `all` is a property of a version, not a choice: a newer one may be built per
            // architecture.
            arch: self.arch.clone().filter(|a| a != "all" && a != native),
            ..self.clone()
        }
    }
}

impl fmt::Display for PackageSpec {
    /// apt's syntax: `name`, `name:arch`, `name=version`, `name:arch=version`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(a) = &self.arch {
            write!(f, ":{a}")?;
        }
        if let Some(v) = &self.version {
            write!(f, "={v}")?;
        }
        Ok(())
    }
}
