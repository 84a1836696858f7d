//! Repositories and recreated packages.

use serde::{Deserialize, Serialize};

/// `POST /repos` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewRepo {
    /// A sources.list line.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "deb http://deb.debian.org/debian bookworm main")
    )]
    pub line: String,
}

/// A registered package repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Repo {
    /// Repository id.
    pub id: i64,
    /// Its sources.list line.
    pub line: String,
    /// Packages in the index at the last sync.
    pub packages: Option<i64>,
    /// When it was last synced (RFC 3339).
    pub synced_at: Option<String>,
}

/// A package the server recreated because no repository had it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture.
    pub arch: String,
    /// File name of the `.deb` (`GET /packages/{file}`).
    pub file: String,
    /// SHA-256 of the `.deb`, hex.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// The scan it was rebuilt from; null once that scan is deleted.
    pub scan: Option<i64>,
}
