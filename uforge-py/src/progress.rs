//! Core's progress forwarded to a Python callable.
//!
//! Core calls [`Progress::advance`] for every entry, from threads that do not hold the GIL.
//! Taking the GIL that often would serialise the scan behind the interpreter, so counts are
//! kept in atomics and the callable is called at most every [`PERIOD`], then once more with the
//! final totals when the operation is over.
//!
//! An exception raised by the callable does not stop the operation (core has no way to be
//! cancelled): the callable is not called again, and the exception is raised by the function
//! that was given the callable once the operation is over, instead of its result.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use uforge_core::progress::Progress;

/// Shortest time between two calls of the callable.
const PERIOD: Duration = Duration::from_millis(100);

/// Forwards `(entries, bytes)` to an optional Python callable.
pub struct Callback {
    func: Option<Py<PyAny>>,
    files: AtomicU64,
    bytes: AtomicU64,
    start: Instant,
    /// Nanoseconds after `start` before which the callable is not called again.
    next: AtomicU64,
    failed: AtomicBool,
    error: Mutex<Option<PyErr>>,
}

impl Callback {
    /// A callback calling `func` (`None`: only counting); refuses what cannot be called, now
    /// rather than after a long operation.
    pub fn new(py: Python<'_>, func: Option<Py<PyAny>>) -> PyResult<Self> {
        if let Some(f) = &func {
            if !f.bind(py).is_callable() {
                return Err(PyTypeError::new_err(format!(
                    "progress must be callable, not {}",
                    f.bind(py).get_type().name()?
                )));
            }
        }
        Ok(Callback {
            func,
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            start: Instant::now(),
            next: AtomicU64::new(PERIOD.as_nanos() as u64),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
        })
    }

    fn call(&self, py: Python<'_>, func: &Py<PyAny>) {
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        let args = (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        );
        if let Err(e) = func.call1(py, args) {
            self.failed.store(true, Ordering::Relaxed);
            *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    }

    /// Reports the final totals, then hands back the callable's exception, if it raised one.
    pub fn done(self, py: Python<'_>) -> PyResult<()> {
        if let Some(func) = &self.func {
            self.call(py, func);
        }
        match self.error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Progress for Callback {
    fn advance(&self, files: u64, bytes: u64) {
        self.files.fetch_add(files, Ordering::Relaxed);
        if bytes > 0 {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        let Some(func) = &self.func else { return };
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        let now = self.start.elapsed().as_nanos() as u64;
        let next = self.next.load(Ordering::Relaxed);
        // Only the thread that moves the deadline calls: one call per period, however many
        // threads advance.
        if now < next
            || self
                .next
                .compare_exchange(
                    next,
                    now + PERIOD.as_nanos() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        Python::attach(|py| self.call(py, func));
    }
}
