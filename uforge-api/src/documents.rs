//! The documents `uforge-core` writes and the API serves as they are: an analysis, the
//! comparison of two scans, the tuning log of an image. Paths are `path` when they are UTF-8
//! and `path_b64` (base64 of the raw bytes) otherwise, as in reports.

use serde::{Deserialize, Serialize};

/// A package's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PackageRef {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Architecture.
    pub arch: String,
}

/// A path of an analysis, with what is known of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PathEntry {
    /// The path, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The path as base64 of its bytes, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_b64: Option<String>,
    /// The owning package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// What differs: content, metadata, target, kind or unshipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

/// Totals of an analysis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnalysisStats {
    /// Installed packages.
    pub packages: u64,
    /// Of those, the ones a repository has.
    pub from_repositories: u64,
    /// Of those, the ones only an earlier scan holds.
    pub from_previous: u64,
    /// Of `from_repositories`, the ones only a local repository (recreated packages) has.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub from_local: u64,
    /// Entries in the report.
    pub entries: u64,
    /// Entries an earlier scan holds unchanged.
    pub held: u64,
    /// Bytes of file content the overlay carries.
    pub wanted_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A top-level link of a merged /usr.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UsrLink {
    /// The link (`/bin`).
    pub path: String,
    /// Its target as stored (`usr/bin`); empty when the entry is not a link.
    pub target: String,
}

/// The source's /usr layout, which a build reproduces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UsrLayout {
    /// `merged` (`/bin`, `/sbin`, `/lib*` link into `/usr`), `unmerged` (directories),
    /// `mixed` (some of each: cannot be rebuilt) or `none`.
    pub kind: String,
    /// The top-level links.
    pub links: Vec<UsrLink>,
    /// The top-level directories (`/bin`).
    pub dirs: Vec<String>,
    /// Installed merge packages (`usrmerge`, `usr-is-merged`).
    pub packages: Vec<String>,
    /// Whether `/etc/unsupported-skip-usrmerge-conversion` exists.
    pub skip_conversion: bool,
}

/// An analysis: the same document as `uforge-scan analyze -o`, read into
/// `uforge_core::analysis::Analysis` by the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnalysisDocument {
    /// Always `uforge-analysis`.
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// Packages no repository or earlier scan has.
    pub missing_packages: Vec<PackageRef>,
    /// Package files that differ from their package.
    pub modified_files: Vec<PathEntry>,
    /// Package files with the package's bytes but another mode or owner: not shipped, the
    /// build restores their metadata.
    #[serde(default)]
    pub metadata_files: Vec<PathEntry>,
    /// Package files absent from the machine.
    pub deleted_files: Vec<PathEntry>,
    /// Entries no package owns.
    pub unknown_files: Vec<PathEntry>,
    /// Exactly the paths the overlay must carry, in report order.
    pub wanted: Vec<PathEntry>,
    /// Totals.
    #[serde(default)]
    pub stats: AnalysisStats,
    /// The source's /usr layout.
    #[serde(default)]
    pub usr_layout: UsrLayout,
}

/// A package added, removed or at another version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PackageChange {
    /// Package name.
    pub name: String,
    /// Version before, if it was installed.
    pub before: Option<String>,
    /// Version after, if it is installed.
    pub after: Option<String>,
}

/// A path added, removed or modified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileChange {
    /// The path, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The path as base64 of its bytes, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_b64: Option<String>,
    /// `added`, `removed` or `modified`.
    pub status: String,
    /// For `modified`: content, mode, owner, mtime, kind, target, xattrs, device.
    pub what: Vec<String>,
}

impl FileChange {
    /// The path for display: the text, or the base64 form.
    pub fn shown_path(&self) -> &str {
        self.path
            .as_deref()
            .or(self.path_b64.as_deref())
            .unwrap_or("-")
    }
}

/// What differs between two scans (as `uforge-scan compare --json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// Package changes.
    pub packages: Vec<PackageChange>,
    /// File changes.
    pub files: Vec<FileChange>,
}

/// One change the tuning made to one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TuningChange {
    /// In-root path, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// In-root path as base64 of its bytes, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_b64: Option<String>,
    /// `added`, `removed` or `modified`.
    pub status: String,
    /// For `modified`: what differs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<String>,
}

/// A package a tuning step installed (no `from`), removed (no `to`) or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TuningPackage {
    /// `name:arch`.
    pub package: String,
    /// The version before the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The version after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// One step of the tuning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TuningStep {
    /// fstab, network, kernel, bootloader...
    pub name: String,
    /// What the step did.
    pub description: String,
    /// Packages the step installed, `name=version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Every package the step installed, upgraded, downgraded or removed, with both versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub package_changes: Vec<TuningPackage>,
    /// Every path it changed.
    pub changes: Vec<TuningChange>,
}

/// Every change a build made to the scanned machine's files (`GET /images/{id}/tuning-log`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TuningLog {
    /// The image format.
    pub format: String,
    /// The target.
    pub target: String,
    /// The steps, in order.
    pub steps: Vec<TuningStep>,
}

#[cfg(test)]
mod tests {
    //! Each type against the JSON core writes: decoding it with unknown fields refused and
    //! encoding it again gives the same JSON.

    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::Value;
    use uforge_core::analysis::{
        Analysis, Change, Comparison as CoreComparison, DeletedFile, FileChange as CoreFile,
        ModifiedFile, PackageChange as CorePackage,
    };
    use uforge_core::image::{TuningChange as CoreChange, TuningLog as CoreLog, TuningStep};
    use uforge_core::repo::PackageKey;

    fn same<T: DeserializeOwned + Serialize>(written: Value) {
        let typed: T = serde_json::from_value(written.clone()).expect("core's JSON decodes");
        assert_eq!(serde_json::to_value(&typed).unwrap(), written);
    }

    #[test]
    fn analysis_documents_are_cores() {
        let a = Analysis {
            missing_packages: vec![PackageKey::new("acme", "1.0", "amd64")],
            modified_files: vec![ModifiedFile {
                path: b"/etc/a".to_vec(),
                package: "base-files".into(),
                change: Change::Content,
            }],
            metadata_files: vec![ModifiedFile {
                path: b"/usr/bin/ssh-agent".to_vec(),
                package: "openssh-client".into(),
                change: Change::Metadata,
            }],
            deleted_files: vec![DeletedFile {
                path: b"/usr/\xff".to_vec(),
                package: "x".into(),
            }],
            unknown_files: vec![b"/srv/x".to_vec()],
            wanted: vec![b"/srv".to_vec(), b"/srv/x".to_vec()],
            usr_layout: uforge_core::facts::UsrLayout::of(
                &[],
                &[uforge_core::model::Package {
                    name: "usr-is-merged".into(),
                    manager: "dpkg".into(),
                    status: "installed".into(),
                    ..Default::default()
                }],
            ),
            ..Analysis::default()
        };
        let mut out = Vec::new();
        a.write_json(&mut out).unwrap();
        same::<AnalysisDocument>(serde_json::from_slice(&out).unwrap());
    }

    #[test]
    fn comparisons_are_cores() {
        let c = CoreComparison {
            packages: vec![CorePackage {
                name: "bash".into(),
                before: Some("5.1".into()),
                after: None,
            }],
            files: vec![CoreFile {
                path: b"/etc/\xfe".to_vec(),
                status: "modified",
                what: vec!["content", "mode"],
            }],
        };
        same::<Comparison>(c.to_json());
    }

    #[test]
    fn tuning_logs_are_cores() {
        let log = CoreLog {
            format: "qcow2".into(),
            target: "kvm".into(),
            steps: vec![TuningStep {
                name: "kernel".into(),
                description: "installed a kernel".into(),
                packages: vec!["linux-image-amd64=6.1".into()],
                package_changes: vec![
                    uforge_core::image::TuningPackage {
                        package: "linux-image-amd64:amd64".into(),
                        from: None,
                        to: Some("6.1".into()),
                    },
                    uforge_core::image::TuningPackage {
                        package: "systemd:amd64".into(),
                        from: Some("252.38-1~deb12u1".into()),
                        to: Some("252.39-1~deb12u2".into()),
                    },
                ],
                changes: vec![CoreChange {
                    path: b"/boot/\xff".to_vec(),
                    status: "added".into(),
                    what: Vec::new(),
                }],
            }],
        };
        same::<TuningLog>(serde_json::to_value(&log).unwrap());
    }
}
