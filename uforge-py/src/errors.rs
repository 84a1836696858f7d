//! The exception hierarchy: one Python class per kind of core error, all under `UforgeError`,
//! each carrying core's message (which names the path, package or input concerned), and
//! `ClientError` with its subclasses for what goes wrong talking to a uforge server.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use uforge_core::Error;

create_exception!(
    uforge,
    UforgeError,
    PyException,
    "Base class of every error uforge raises."
);
create_exception!(
    uforge,
    IoError,
    UforgeError,
    "A file or directory could not be read or written (the message names it)."
);
create_exception!(
    uforge,
    ReportError,
    UforgeError,
    "A report (or an analysis document) is malformed, truncated or not a report at all."
);
create_exception!(
    uforge,
    RepoError,
    UforgeError,
    "A package repository could not be opened, fetched, verified or parsed."
);
create_exception!(
    uforge,
    OverlayError,
    UforgeError,
    "An overlay could not be written faithfully.\n\n\
     When files changed between the scan and the overlay, the exception has `changed` (a list \
     of ScanError) and `stats` (the overlay's statistics) attributes."
);
create_exception!(
    uforge,
    PackageDbError,
    UforgeError,
    "A package manager's database could not be parsed."
);
create_exception!(
    uforge,
    InvalidError,
    UforgeError,
    "The request cannot be carried out as given (a bad exclude, a root that is not a directory...)."
);
create_exception!(
    uforge,
    UnsatisfiableError,
    UforgeError,
    "A template's packages cannot be installed together from its repositories.\n\n\
     `problems` lists each problem in one sentence naming the packages and relations at fault."
);

create_exception!(
    uforge,
    ClientError,
    UforgeError,
    "Talking to a uforge server failed: it could not be reached (connection, TLS, certificate), \
     answered an HTTP error, or answered something the API does not allow.\n\n\
     `status` is the HTTP status when the server answered with an error, None otherwise; the \
     message carries the server's own message."
);
create_exception!(
    uforge,
    AuthError,
    ClientError,
    "The server refused the credentials (HTTP 401): a wrong, revoked or malformed token, or a \
     user name that does not own it."
);
create_exception!(
    uforge,
    NotFoundError,
    ClientError,
    "The server has no such object for this user (HTTP 404). Another user's repository, \
     machine or scan is not found either."
);

/// Maps a core error onto the exception class of its kind.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Io { .. } => IoError::new_err(msg),
        Error::MalformedReport { .. } => ReportError::new_err(msg),
        Error::Repo { .. } | Error::NotFound { .. } => RepoError::new_err(msg),
        Error::Overlay { .. } => OverlayError::new_err(msg),
        Error::PackageDb { .. } => PackageDbError::new_err(msg),
        Error::Invalid(_) => InvalidError::new_err(msg),
        Error::Unsatisfiable { problems, .. } => {
            let err = UnsatisfiableError::new_err(msg);
            Python::attach(|py| match err.value(py).setattr("problems", problems) {
                Ok(()) => err,
                Err(set) => set,
            })
        }
        _ => UforgeError::new_err(msg),
    }
}

/// Maps a client error onto `ClientError` or its subclass for the HTTP status, with `status`
/// set. Local failures during a live scan (an unreadable root, a file that changed) keep their
/// core classes, as `uforge.scan` and `uforge.write_overlay` raise them.
pub fn client_to_py(py: Python<'_>, e: uforge_client::ClientError) -> PyErr {
    if let uforge_client::ClientError::Core(e) = e {
        return to_py(e);
    }
    let status = e.status();
    let msg = e.to_string();
    let err = match status {
        Some(401) => AuthError::new_err(msg),
        Some(404) => NotFoundError::new_err(msg),
        _ => ClientError::new_err(msg),
    };
    if let Err(set) = err.value(py).setattr("status", status) {
        return set;
    }
    err
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("UforgeError", py.get_type::<UforgeError>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    m.add("ReportError", py.get_type::<ReportError>())?;
    m.add("RepoError", py.get_type::<RepoError>())?;
    m.add("OverlayError", py.get_type::<OverlayError>())?;
    m.add("PackageDbError", py.get_type::<PackageDbError>())?;
    m.add("InvalidError", py.get_type::<InvalidError>())?;
    m.add("UnsatisfiableError", py.get_type::<UnsatisfiableError>())?;
    // A class-level default, so that `status` reads None on an instance raised from Python
    // code too; errors from a server set it on the instance.
    py.get_type::<ClientError>().setattr("status", py.None())?;
    m.add("ClientError", py.get_type::<ClientError>())?;
    m.add("AuthError", py.get_type::<AuthError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    Ok(())
}
