//! What every request handler shares: the database, the data directory, the blob store and the
//! locks that keep two uploads to one scan apart.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use uforge_core::blobstore::LocalBlobStore;

use crate::datadir::DataDir;
use crate::db::Db;
use crate::error::ApiError;

/// What every handler shares.
pub struct AppState {
    /// The database pool.
    pub db: Db,
    /// The data directory's layout.
    pub data: DataDir,
    /// Overlay contents, by SHA-256.
    pub blobs: Arc<LocalBlobStore>,
    /// Reports larger than this are refused.
    pub max_report_bytes: u64,
    /// What a report may hold once decoded: entries and bytes.
    pub report_limits: uforge_core::report::ReportLimits,
    /// Keyring for repositories whose line names none.
    pub keyring: Option<PathBuf>,
    /// Scans with an upload or deletion under way: one at a time per scan.
    pub busy: Mutex<HashSet<i64>>,
    /// Rebuilding packages rewrites a user's repository index: one rebuild at a time.
    pub recreating: tokio::sync::Mutex<()>,
    /// Seals and opens target credentials.
    pub key: Arc<crate::sealing::SealingKey>,
    /// The image workers, woken when a job is queued.
    pub jobs: Arc<crate::jobs::Jobs>,
}

/// The state as handlers hold it.
pub type Shared = Arc<AppState>;

/// Holds a scan's place in [`AppState::busy`] until dropped.
pub struct BusyGuard {
    state: Shared,
    id: i64,
}

impl AppState {
    /// Claims a scan for an operation that changes its files; 409 if one is under way.
    pub fn claim(self: &Arc<Self>, id: i64) -> Result<BusyGuard, ApiError> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if !busy.insert(id) {
            return Err(ApiError::conflict(format!(
                "scan {id} has an upload under way; try again when it ends"
            )));
        }
        Ok(BusyGuard {
            state: self.clone(),
            id,
        })
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut busy = self.state.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.id);
    }
}
