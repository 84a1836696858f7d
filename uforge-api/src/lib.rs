//! uforge-api: the request and answer bodies of the uforge server's HTTP API (`docs/api.md`),
//! as serde types. The server answers with them, the client returns them, and with the
//! `openapi` feature each carries its OpenAPI schema, from which the server's document is
//! generated.
//!
//! The analysis, comparison and tuning-log documents are written by `uforge-core` (the same
//! files `uforge-scan analyze -o` and `uforge-scan compare --json` write); their types here
//! describe that JSON form, and tests hold them to what core writes.

#[macro_use]
mod names;

mod documents;
mod images;
mod publish;
mod repos;
mod scans;

pub use documents::{
    AnalysisDocument, AnalysisStats, Comparison, FileChange, PackageChange, PackageRef, PathEntry,
    TuningChange, TuningLog, TuningPackage, TuningStep, UsrLayout, UsrLink,
};
pub use images::{Image, ImageFile, ImageProgress, ImageStatus, NewImage};
pub use publish::{
    Deployed, NewPublication, NewTarget, Publication, PublicationProgress, Target,
    TargetCredentials,
};
pub use repos::{NewRepo, Package, Repo};
pub use scans::{
    Machine, NewScan, OverlayResult, OverlayWanted, RecreatedRef, Scan, ScanStatus, ScanSummary,
};

use serde::{Deserialize, Serialize};

/// `GET /health`: the server is up, and who the caller is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The server's version.
    #[cfg_attr(feature = "openapi", schema(example = "0.1.0"))]
    pub version: String,
    /// The caller's user name.
    pub user: String,
}

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What was wrong, naming the input concerned.
    pub error: String,
}
