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
    /// A report goes past a limit on its size: entries, decoded bytes, one record, one list.
    #[error("report {what} is too large: {message}")]
    ReportTooLarge {
        /// Which report.
        what: String,
        /// Which limit it goes past.
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
    /// A file operation on a build root was refused because its path would leave the root:
    /// through a symbolic link, onto another mount, by `..`, or a hard link to something
    /// other than a regular file of the root. Only hostile input (or a root changed under
    /// the build) leads here.
    #[error("{op} {path}: refused: {reason}")]
    Refused {
        /// What was being done (`create`, `link`, `chmod`...).
        op: &'static str,
        /// The in-root path concerned (lossy, for messages).
        path: String,
        /// Why.
        reason: String,
    },
    /// A package repository, or something fetched from one, could not be used.
    #[error("{what}: {message}")]
    Repo {
        /// What it is about: a URL, a package, a file, a sources line.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// A URL names nothing (HTTP 404 or 410, or a missing `file:` path). Kept apart from
    /// [`Error::Repo`] because callers fall back to other names (`InRelease` to `Release`).
    #[error("{url}: not found")]
    NotFound {
        /// The URL that was asked for.
        url: String,
    },
    /// An overlay could not be written faithfully, or one being read is malformed or does not
    /// match what was asked for.
    #[error("overlay member {member}: {message}")]
    Overlay {
        /// The member (in-root path, or the raw tar name when it has none yet).
        member: String,
        /// What is wrong.
        message: String,
    },
    /// A package could not be rebuilt as a `.deb` from a report and the blobs of its overlay.
    #[error("recreating {package}: {message}")]
    Recreate {
        /// The package (`name_version_arch`).
        package: String,
        /// What is missing or wrong.
        message: String,
    },
    /// A template's packages cannot be installed together from its repositories.
    #[error("template {template} cannot be installed: {}", problems.join("; "))]
    Unsatisfiable {
        /// The template (`name version`).
        template: String,
        /// Each problem in one sentence naming the packages and relations at fault.
        problems: Vec<String>,
    },
    /// Data handed to a blob store does not hash to, or is not the size of, what it claimed.
    #[error("blob {sha256}: {message}")]
    BlobMismatch {
        /// The claimed SHA-256, in hex.
        sha256: String,
        /// What differs.
        message: String,
    },
    /// Publishing to, reading from or deleting at a target failed.
    #[error(transparent)]
    Target(#[from] crate::publish::TargetError),
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

/// An error and its causes on one line, each cause once: errors here (and the ones wrapping
/// them) often quote the error they wrap already, so the plain chain would repeat it.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_chains_name_each_cause_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "building: {}", self.0)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(super::chain(&e), "building: disk full");
        let wrapped = super::Error::io("write", "/x", std::io::Error::other("disk full"));
        assert_eq!(super::chain(&wrapped), "write /x: disk full");
    }
}
