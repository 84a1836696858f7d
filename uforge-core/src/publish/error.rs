//! The error of every publish target: which target, what kind of failure, what happened.
//!
//! The kind decides what a caller does next (a job retries [`ErrorKind::retryable`] ones, a
//! user fixes credentials or makes room); the message is for people and never holds a
//! credential or a signed URL.

use serde::{Deserialize, Serialize};

/// What went wrong, in the terms a user acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The target description or the request is wrong (bad URL, missing option).
    Invalid,
    /// The target cannot take an image of this format.
    Unsupported,
    /// The image file cannot be read or is not what its format says.
    Image,
    /// Nothing answered at the endpoint (refused, unknown host, timed out).
    Unreachable,
    /// The TLS handshake failed: untrusted or mismatched certificate.
    Tls,
    /// The target refused the credentials, or they do not allow this.
    Unauthorized,
    /// The target is full: quota, bucket, pool or disk.
    NoSpace,
    /// The bucket, pool, repository or directory does not exist.
    NotFound,
    /// The connection was cut during a transfer; publishing again resumes.
    Interrupted,
    /// The target failed on its side (HTTP 5xx, daemon error).
    Server,
    /// The target answered with a refusal not covered above.
    Rejected,
    /// What the target holds does not match what was sent (digest, size).
    Mismatch,
    /// The caller asked to stop.
    Cancelled,
    /// A local file could not be read or written.
    Local,
}

impl ErrorKind {
    /// Whether trying again later can succeed without anyone changing anything.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Unreachable | ErrorKind::Interrupted | ErrorKind::Server
        )
    }

    /// A short name (`unauthorized`, `no-space`), as stored with a failed job.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Image => "image",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Tls => "tls",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NoSpace => "no-space",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Server => "server",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Mismatch => "mismatch",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Local => "local",
        }
    }
}

/// A failure to publish to, read from or delete at a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {message}")]
pub struct TargetError {
    /// The target, as [`crate::publish::TargetSpec::display`] names it (no credentials).
    pub target: String,
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What happened, for people.
    pub message: String,
}

impl TargetError {
    /// An error of `kind` at `target`.
    pub fn new(target: impl Into<String>, kind: ErrorKind, message: impl Into<String>) -> Self {
        TargetError {
            target: target.into(),
            kind,
            message: message.into(),
        }
    }

    /// The same error with `context` put before its message (`uploading layer sha256:…`).
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

/// Result of publish operations.
pub type Result<T, E = TargetError> = std::result::Result<T, E>;

/// Maps a local I/O error on `path` to a [`TargetError`]: a full disk is [`ErrorKind::NoSpace`].
pub(crate) fn local_io(
    target: &str,
    op: &str,
    path: &std::path::Path,
    e: &std::io::Error,
) -> TargetError {
    let kind = match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorKind::NoSpace,
        _ if e.kind() == std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        _ => ErrorKind::Local,
    };
    TargetError::new(target, kind, format!("{op} {}: {e}", path.display()))
}

/// Leaves out the query of a URL (S3 signatures, registry upload state) for messages.
pub(crate) fn redact_url(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let e = TargetError::new("registry r:5000", ErrorKind::Unauthorized, "refused")
            .context("pushing ns/app");
        assert_eq!(e.to_string(), "registry r:5000: pushing ns/app: refused");
        assert!(!e.kind.retryable());
        assert!(ErrorKind::Interrupted.retryable());
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = local_io("directory /x", "write", std::path::Path::new("/x/a"), &full);
        assert_eq!(e.kind, ErrorKind::NoSpace);
        assert_eq!(
            redact_url("http://h/b/k?X-Amz-Signature=abc"),
            "http://h/b/k"
        );
        assert_eq!(ErrorKind::NoSpace.name(), "no-space");
    }
}
