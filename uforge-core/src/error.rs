//! The error type of the library. Every variant names the path or input it is about.

use std::path::PathBuf;

/// Errors returned by `uforge-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a named path failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `read`, `write`...).
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A report could not be decoded.
    #[error("malformed report {what}: {message}")]
    MalformedReport {
        /// Which report (a path, or `input`).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A package database could not be parsed.
    #[error("malformed package database {}: {message}", path.display())]
    PackageDb {
        /// The file that could not be parsed.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The caller asked for something that cannot be done.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for `uforge-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the operation and path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
