//! Core's progress forwarded to a Python callable.
//!
//! Core calls [`Progress::advance`] for every entry, from threads that do not hold the GIL.
//! Taking the GIL that often would serialise the scan behind the interpreter, so counts are
//! kept in atomics and the callable is called at most every [`PERIOD`], then once more with the
//! final totals when the operation is over.
//!
//! The live scan (`Client.run`) goes through several steps, each counting from zero: there the
//! callable also gets the step's name first, and is called at once when a step starts (after
//! one more call with the final totals of the step that ends, if it counted anything).
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

/// The steps of the live scan the callable is told about: the agent's phases. Core's own
/// phases inside them (`packages`, `files`...) are not steps: the counts run on through them.
const STEPS: [&str; 4] = ["connect", "scan", "report", "overlay"];

/// Forwards `(entries, bytes)`, or `(step, entries, bytes)`, to an optional Python callable.
pub struct Callback {
    func: Option<Py<PyAny>>,
    files: AtomicU64,
    bytes: AtomicU64,
    start: Instant,
    /// Nanoseconds after `start` before which the callable is not called again.
    next: AtomicU64,
    failed: AtomicBool,
    error: Mutex<Option<PyErr>>,
    /// In stepped mode, the current step (empty before the first), passed to the callable
    /// before the counts.
    step: Option<Mutex<&'static str>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave a step name or an error half written.
    m.lock().unwrap_or_else(|p| p.into_inner())
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
            step: None,
        })
    }

    /// A callback calling `func(step, entries, bytes)`, the counts starting again at each
    /// step of the live scan.
    pub fn with_steps(py: Python<'_>, func: Option<Py<PyAny>>) -> PyResult<Self> {
        Ok(Callback {
            step: Some(Mutex::new("")),
            ..Callback::new(py, func)?
        })
    }

    fn call(&self, py: Python<'_>, func: &Py<PyAny>) {
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        let files = self.files.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let called = match &self.step {
            Some(step) => {
                let step = *lock(step);
                func.call1(py, (step, files, bytes))
            }
            None => func.call1(py, (files, bytes)),
        };
        if let Err(e) = called {
            self.failed.store(true, Ordering::Relaxed);
            *lock(&self.error) = Some(e);
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
    fn phase(&self, name: &str, _total_bytes: Option<u64>) {
        let Some(step) = &self.step else { return };
        let Some(name) = STEPS.iter().find(|s| **s == name) else {
            return;
        };
        // The agent's `overlay` step and core's `overlay` phase start together: one call.
        if *lock(step) == *name {
            return;
        }
        let counted =
            self.files.load(Ordering::Relaxed) > 0 || self.bytes.load(Ordering::Relaxed) > 0;
        let start = || {
            *lock(step) = name;
            self.files.store(0, Ordering::Relaxed);
            self.bytes.store(0, Ordering::Relaxed);
        };
        let Some(func) = &self.func else {
            return start();
        };
        Python::attach(|py| {
            // The ending step's final totals, which a step shorter than PERIOD never showed.
            if counted {
                self.call(py, func);
            }
            start();
            self.call(py, func);
        });
    }

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
