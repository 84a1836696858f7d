//! Machines, scans and what an overlay upload stored.

use serde::{Deserialize, Serialize};

/// A scanned machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Machine {
    /// Machine name.
    pub name: String,
    /// How many scans it has.
    pub scans: i64,
    /// When the newest scan was created (RFC 3339).
    pub last_scan: Option<String>,
}

/// `POST /scans` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewScan {
    /// The machine's name; a second scan of a name is incremental.
    #[cfg_attr(feature = "openapi", schema(example = "web01"))]
    pub machine: String,
}

/// Where a scan is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ScanStatus {
    /// Waiting for its report.
    Created,
    /// Report analysed, waiting for the overlay.
    Analyzed,
    /// Overlay verified and stored.
    Complete,
}

/// The totals of a scan's analysis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScanSummary {
    /// Installed packages.
    pub packages: u64,
    /// Entries in the report.
    pub entries: u64,
    /// Packages no repository or earlier scan has.
    pub missing_packages: u64,
    /// Package files that differ from their package.
    pub modified_files: u64,
    /// Package files with stock bytes but another mode or owner (not shipped).
    #[serde(default)]
    pub metadata_files: u64,
    /// Package files absent from the machine.
    pub deleted_files: u64,
    /// Entries no package owns.
    pub unknown_files: u64,
    /// Paths the overlay must carry.
    pub wanted: u64,
    /// Bytes of file content the overlay carries.
    pub wanted_bytes: u64,
    /// Entries earlier scans already hold unchanged.
    pub held: u64,
    /// Files that changed on the machine between the scan and the overlay, stored as the
    /// overlay carried them (the report amended to match).
    #[serde(default)]
    pub amended: u64,
    /// Wanted files that vanished from the machine between the scan and the overlay.
    #[serde(default)]
    pub vanished: u64,
}

/// A scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Scan {
    /// Scan id.
    pub id: i64,
    /// The machine's name.
    pub machine: String,
    /// Where the scan is.
    pub status: ScanStatus,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Completion time (RFC 3339).
    pub completed_at: Option<String>,
    /// The analysis totals, once the report is in.
    pub summary: Option<ScanSummary>,
}

/// A package rebuilt from an overlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecreatedRef {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// File name of the `.deb`.
    pub file: String,
}

/// `PUT /scans/{id}/overlay` answer: what was stored and rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverlayResult {
    /// Always `complete`.
    pub status: ScanStatus,
    /// Tar members read.
    pub members: u64,
    /// Distinct file contents stored.
    pub blobs: u64,
    /// Bytes of file content.
    pub content_bytes: u64,
    /// Files that changed on the machine after the scan, stored as the overlay carried them
    /// (the stored report is amended to match).
    #[serde(default)]
    pub amended: u64,
    /// Wanted files that vanished from the machine after the scan (dropped from the report).
    #[serde(default)]
    pub vanished: u64,
    /// Wanted files the overlay left out because a scan of the caller's already held their
    /// content (an interrupted upload, another machine with the same file).
    #[serde(default)]
    pub held: u64,
    /// Bytes of content of those.
    #[serde(default)]
    pub held_bytes: u64,
    /// Bytes of overlay received.
    #[serde(default)]
    pub received_bytes: u64,
    /// The packages rebuilt.
    pub recreated: Vec<RecreatedRef>,
    /// Present only when rebuilding the missing packages failed; the overlay is stored and the
    /// scan complete all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recreate_error: Option<String>,
}

/// `GET /scans/{id}/overlay/wanted` answer: what the overlay still has to carry once the
/// contents the caller's scans already hold are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverlayWanted {
    /// Wanted regular files and hard links the overlay may leave out: a scan of the caller's
    /// holds their content (a verified overlay, or an interrupted upload of this scan), and the
    /// blob store has it. Sorted by path.
    pub held: Vec<crate::PathEntry>,
    /// Bytes of content the overlay need not carry.
    pub held_bytes: u64,
    /// Wanted paths the overlay must still carry (directories, links and metadata included).
    pub lacking: u64,
    /// Bytes of content the overlay must still carry.
    pub lacking_bytes: u64,
}

crate::wire_names!(ScanStatus { Created => "created", Analyzed => "analyzed", Complete => "complete" });
