//! Image jobs.

use serde::{Deserialize, Serialize};

/// `POST /scans/{id}/images` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewImage {
    /// Image format: raw, qcow2, vmdk, vhd, vhdx, vdi, ova, oci, docker-archive, tar.gz (any
    /// case; `img`, `tgz`, `docker`, `oci-archive` are aliases).
    #[cfg_attr(feature = "openapi", schema(example = "qcow2"))]
    pub format: String,
    /// Target platform: kvm, openstack, aws, gcp, azure, vmware, container, none (default: the
    /// format's usual one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `keep` the source's network configuration (default), or `dhcp` on every interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Let the packages tuning installs upgrade, downgrade or remove packages of the source
    /// (default: each stays at its scanned version, and a conflict fails the build).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_upgrades: bool,
}

/// Where an image job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    /// Waiting for a worker.
    Queued,
    /// Being built.
    Running,
    /// Built: the file can be downloaded.
    Done,
    /// Ended without an image; `error` says why.
    Failed,
}

impl ImageStatus {
    /// Whether the job has ended, well or not.
    pub fn is_final(self) -> bool {
        matches!(self, ImageStatus::Done | ImageStatus::Failed)
    }
}

/// How far a job is in its build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageProgress {
    /// Position of `phase` among the build's phases (1 to `steps`).
    pub step: Option<u64>,
    /// Number of phases.
    pub steps: u64,
    /// Entries processed in the phase.
    pub files: i64,
    /// Bytes processed in the phase.
    pub bytes: i64,
    /// The phase's total work, when known: bytes, or entries for a phase that processes no
    /// bytes (the install counts each package's unpacking and setting up).
    pub total_bytes: Option<i64>,
    /// Of the phase, when its total is known; 100 once done.
    pub percent: Option<i64>,
}

/// An image job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Image {
    /// Image id.
    pub id: i64,
    /// The scan it is built from; null once that scan is deleted.
    pub scan: Option<i64>,
    /// The scan's machine.
    pub machine: Option<String>,
    /// Format name.
    pub format: String,
    /// The target it is built for (the format's default when none was asked for).
    pub target: String,
    /// Network policy: `keep` or `dhcp`.
    pub network: String,
    /// Where the job is.
    pub status: ImageStatus,
    /// The phase running, or the last one reached: check, install, reconcile, tune, write.
    pub phase: Option<String>,
    /// Progress of the phase.
    pub progress: ImageProgress,
    /// Why a failed job failed, with every cause.
    pub error: Option<String>,
    /// File name of the image (the scanned host name, or scan-ID, and the format's extension).
    pub file: Option<String>,
    /// Size of the image.
    pub size: Option<i64>,
    /// SHA-256 of the image, hex.
    pub sha256: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// When a worker took it.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Path of the download, once done.
    pub download_url: Option<String>,
    /// Path of the tuning log, once done.
    pub tuning_log_url: Option<String>,
}

/// Where a finished image's file lies on the server's host, for a client on that host to link
/// to it instead of copying it (`GET /images/{id}/file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImageFile {
    /// Absolute path of the file on the server's host.
    pub path: String,
    /// Its device number there: with `inode`, tells the very file from one of the same name on
    /// another host.
    pub device: u64,
    /// Its inode number there.
    pub inode: u64,
    /// Its size.
    pub size: u64,
}

crate::wire_names!(ImageStatus { Queued => "queued", Running => "running", Done => "done", Failed => "failed" });
