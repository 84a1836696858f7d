//! Rows.

// Rows are read whole (a RETURNING clause yields every column), though not every column has a
// reader yet.
#![allow(dead_code)]

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    images, machines, publications, recreated_packages, repos, scans, targets, users,
};

/// A user.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// SHA-256 of the token.
    pub token_sha256: Vec<u8>,
    /// Administrator.
    pub admin: bool,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
}

/// A user to create.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// Login name.
    pub name: &'a str,
    /// SHA-256 of the token.
    pub token_sha256: &'a [u8],
    /// Administrator.
    pub admin: bool,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
}

/// A registered repository.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = repos)]
pub struct Repo {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// sources.list line.
    pub line: String,
    /// Packages at the last sync.
    pub packages: Option<i64>,
    /// Last sync.
    pub synced_at: Option<NaiveDateTime>,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// A repository to register.
#[derive(Debug, Insertable)]
#[diesel(table_name = repos)]
pub struct NewRepo<'a> {
    /// Owner.
    pub user_id: i64,
    /// sources.list line.
    pub line: &'a str,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// A machine.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = machines)]
pub struct Machine {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Name.
    pub name: String,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// A machine to create.
#[derive(Debug, Insertable)]
#[diesel(table_name = machines)]
pub struct NewMachine<'a> {
    /// Owner.
    pub user_id: i64,
    /// Name.
    pub name: &'a str,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// A scan.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = scans)]
pub struct Scan {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Machine.
    pub machine_id: i64,
    /// `created`, `analyzed` or `complete`.
    pub status: String,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Completion time.
    pub completed_at: Option<NaiveDateTime>,
    /// Analysis totals, JSON.
    pub summary: Option<String>,
}

/// A scan to create.
#[derive(Debug, Insertable)]
#[diesel(table_name = scans)]
pub struct NewScan<'a> {
    /// Owner.
    pub user_id: i64,
    /// Machine.
    pub machine_id: i64,
    /// Initial status.
    pub status: &'a str,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// A recreated package.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = recreated_packages)]
pub struct Package {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Scan it came from.
    pub scan_id: Option<i64>,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// File name in the user's repository.
    pub file: String,
    /// SHA-256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// A recreated package to record.
#[derive(Debug, Insertable)]
#[diesel(table_name = recreated_packages)]
pub struct NewPackage<'a> {
    /// Owner.
    pub user_id: i64,
    /// Scan it came from.
    pub scan_id: Option<i64>,
    /// Name.
    pub name: &'a str,
    /// Version.
    pub version: &'a str,
    /// Architecture.
    pub arch: &'a str,
    /// File name.
    pub file: &'a str,
    /// SHA-256, hex.
    pub sha256: &'a str,
    /// Size.
    pub size: i64,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// An image generation job, without its tuning log: that can be large, and only one endpoint
/// reads it ([`super::queries::image_tuning_log`]).
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = images)]
pub struct Image {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Scan it is built from.
    pub scan_id: Option<i64>,
    /// Format name.
    pub format: String,
    /// Target name.
    pub target: String,
    /// Network policy.
    pub network: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// Phase running or last reached.
    pub phase: Option<String>,
    /// Entries processed in the phase.
    pub progress_files: i64,
    /// Bytes processed in the phase.
    pub progress_bytes: i64,
    /// Bytes the phase will process.
    pub progress_total: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Image file name.
    pub file: Option<String>,
    /// Image size.
    pub size: Option<i64>,
    /// Image SHA-256, hex.
    pub sha256: Option<String>,
    /// Process running it.
    pub worker: Option<String>,
    /// Last sign of life of that process.
    pub heartbeat_at: Option<NaiveDateTime>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Claim time.
    pub started_at: Option<NaiveDateTime>,
    /// End time.
    pub finished_at: Option<NaiveDateTime>,
    /// Whether tuning may change packages of the source.
    pub allow_upgrades: bool,
}

/// An image job to queue.
#[derive(Debug, Insertable)]
#[diesel(table_name = images)]
pub struct NewImage<'a> {
    /// Owner.
    pub user_id: i64,
    /// Scan.
    pub scan_id: Option<i64>,
    /// Format name.
    pub format: &'a str,
    /// Target name.
    pub target: &'a str,
    /// Network policy.
    pub network: &'a str,
    /// Initial status.
    pub status: &'a str,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Whether tuning may change packages of the source.
    pub allow_upgrades: bool,
}

/// A publish target, with its sealed credentials.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = targets)]
pub struct TargetRow {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Name, unique per user.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Endpoint URL as given.
    pub url: String,
    /// Options as given, JSON.
    pub options: String,
    /// Target description, JSON.
    pub spec: String,
    /// Sealed credentials.
    pub credentials: Option<Vec<u8>>,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// A target to store.
#[derive(Debug, Insertable)]
#[diesel(table_name = targets)]
pub struct NewTargetRow<'a> {
    /// Owner.
    pub user_id: i64,
    /// Name.
    pub name: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// Endpoint URL.
    pub url: &'a str,
    /// Options, JSON.
    pub options: &'a str,
    /// Description, JSON.
    pub spec: &'a str,
    /// Sealed credentials.
    pub credentials: Option<&'a [u8]>,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// A publication job.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = publications)]
pub struct PublicationRow {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Image published.
    pub image_id: Option<i64>,
    /// Target.
    pub target_id: i64,
    /// Name at the target asked for.
    pub name: Option<String>,
    /// Machine to start, JSON.
    pub instance: Option<String>,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// Phase running or last reached.
    pub phase: Option<String>,
    /// Bytes sent in the phase.
    pub progress_bytes: i64,
    /// Bytes the phase will send.
    pub progress_total: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Kind of failure.
    pub error_kind: Option<String>,
    /// Publication record, JSON.
    pub result: Option<String>,
    /// Process running it.
    pub worker: Option<String>,
    /// Last sign of life of that process.
    pub heartbeat_at: Option<NaiveDateTime>,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Claim time.
    pub started_at: Option<NaiveDateTime>,
    /// End time.
    pub finished_at: Option<NaiveDateTime>,
}

/// A publication job to queue.
#[derive(Debug, Insertable)]
#[diesel(table_name = publications)]
pub struct NewPublicationRow<'a> {
    /// Owner.
    pub user_id: i64,
    /// Image.
    pub image_id: Option<i64>,
    /// Target.
    pub target_id: i64,
    /// Name at the target.
    pub name: Option<&'a str>,
    /// Machine to start, JSON.
    pub instance: Option<&'a str>,
    /// Initial status.
    pub status: &'a str,
    /// Creation time.
    pub created_at: NaiveDateTime,
}
