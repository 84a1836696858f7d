//! Progress reporting. Core code reports through [`Progress`]; the CLI draws bars, the Python
//! module forwards to a callback, the server records job progress.

/// Receives progress from long operations. All methods have no-op defaults and must be cheap:
/// they are called from worker threads on hot paths.
pub trait Progress: Sync {
    /// A new phase starts (`scan`, `hash`...), with its total amount of work if known: in
    /// content bytes for a phase that advances bytes, else in entries (the install counts
    /// dpkg's steps).
    fn phase(&self, _name: &str, _total_bytes: Option<u64>) {}
    /// `files` more entries and `bytes` more content bytes were processed.
    fn advance(&self, _files: u64, _bytes: u64) {}
    /// The current phase ended.
    fn finish(&self) {}
}

/// Progress that is thrown away.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
