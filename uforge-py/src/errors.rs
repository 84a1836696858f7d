//! The exception hierarchy: one Python class per kind of core error, all under `UforgeError`,
//! each carrying core's message (which names the path, package or input concerned).

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
        _ => UforgeError::new_err(msg),
    }
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
    Ok(())
}
