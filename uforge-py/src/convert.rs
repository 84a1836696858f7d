//! Conversions between core values and Python objects that pyo3 does not provide as needed:
//! raw byte paths both ways, and serde values as plain Python data.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyString};
use serde::Serialize;

/// Raw bytes that Python sees as `bytes` (pyo3 would turn a `Vec<u8>` into a list of ints).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Raw(pub Vec<u8>);

impl<'py> IntoPyObject<'py> for &Raw {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

impl<'py> IntoPyObject<'py> for Raw {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

/// A filesystem path argument: `str`, `bytes` or any `os.PathLike`, kept as raw bytes so that
/// names that are not UTF-8 survive (pyo3's `PathBuf` accepts no `bytes`).
#[derive(Clone, Debug)]
pub struct FsArg(pub Vec<u8>);

impl FsArg {
    /// The path as the OS sees it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(&self.0))
    }
}

impl FromPyObject<'_, '_> for FsArg {
    type Error = PyErr;

    fn extract(ob: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        if let Ok(b) = ob.cast::<PyBytes>() {
            return Ok(FsArg(b.as_bytes().to_vec()));
        }
        if ob.cast::<PyString>().is_ok() {
            let p: PathBuf = ob.extract()?;
            return Ok(FsArg(p.into_os_string().into_encoded_bytes()));
        }
        // os.PathLike: its __fspath__ gives str or bytes.
        let fspath = ob.call_method0("__fspath__").map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "expected str, bytes or os.PathLike, not {}",
                ob.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "?".into())
            ))
        })?;
        if let Ok(b) = fspath.cast::<PyBytes>() {
            return Ok(FsArg(b.as_bytes().to_vec()));
        }
        let p: PathBuf = fspath.extract()?;
        Ok(FsArg(p.into_os_string().into_encoded_bytes()))
    }
}

/// Any serialisable core value as plain Python data (dicts, lists, str, int...), through its
/// JSON form: the same shape the CLI and server print, with no field list repeated here.
pub fn to_python<'py>(py: Python<'py>, value: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let text = serde_json::to_string(value)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    LOADS.import(py, "json", "loads")?.call1((text,))
}

/// Plain Python data (a dict of str, int...) as a serde value, through its JSON form; a
/// value of the wrong shape is a ValueError saying what was expected, quoting none of it
/// (it may hold a credential).
pub fn from_python<T: serde::de::DeserializeOwned>(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
) -> PyResult<T> {
    static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let text: String = DUMPS
        .import(py, "json", "dumps")?
        .call1((value,))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| {
        let what = e.to_string();
        // serde names the field or variant wanted, never the value given.
        pyo3::exceptions::PyValueError::new_err(what)
    })
}
