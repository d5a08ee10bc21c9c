//! How every binding runs a long job, written once: borrow the texts (TypeError naming the index
//! of a non-str), pick the thread count (`parallel::threads`), release the GIL once around the
//! whole job, and map the core error through `errors::to_pyerr`.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use qwen25_core::{parallel, Error};

use crate::convert::borrow_texts_at;
use crate::errors::IntoPy;

/// Run `f(threads)` with the GIL released; its error becomes the mapped Python exception.
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    num_threads: Option<usize>,
    f: impl FnOnce(usize) -> Result<T, Error> + Send,
) -> PyResult<T> {
    let n = parallel::threads(num_threads);
    job(py, || f(n))
}

/// Run `f` with the GIL released (a job that takes no thread count).
pub(crate) fn job<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> Result<T, Error> + Send,
) -> PyResult<T> {
    py.detach(f).py_err()
}

/// Borrow `texts` as `&str` (no copy), then [`run`] `f(texts, threads)`.
pub(crate) fn on_texts<T: Send>(
    py: Python<'_>,
    texts: &[Bound<'_, PyAny>],
    num_threads: Option<usize>,
    f: impl FnOnce(&[&str], usize) -> Result<T, Error> + Send,
) -> PyResult<T> {
    on_texts_at(py, texts, 0, num_threads, f)
}

/// As [`on_texts`], for a batch whose first text is `texts[offset]` of a longer stream (the index
/// in a TypeError counts from the stream's start).
pub(crate) fn on_texts_at<T: Send>(
    py: Python<'_>,
    texts: &[Bound<'_, PyAny>],
    offset: usize,
    num_threads: Option<usize>,
    f: impl FnOnce(&[&str], usize) -> Result<T, Error> + Send,
) -> PyResult<T> {
    let strs = borrow_texts_at(texts, offset)?;
    run(py, num_threads, |n| f(&strs, n))
}

/// Release the GIL around `f` when the job is big enough for that to pay off.
pub(crate) fn detach_if<T: Send, F: FnOnce() -> T + Send>(py: Python<'_>, big: bool, f: F) -> T {
    if big {
        py.detach(f)
    } else {
        f()
    }
}

/// Lock a binding's state; a poisoned lock (a panic in an earlier call) is a core error.
pub(crate) fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, Error> {
    m.lock()
        .map_err(|_| Error::Value("internal lock poisoned by an earlier failure".into()))
}

/// The ValueError (through the one error map) for a bad argument the binding itself checks.
pub(crate) fn bad_value(msg: impl Into<String>) -> PyErr {
    crate::errors::to_pyerr(Error::Value(msg.into()))
}

/// Lock state that stays usable after a panic in an earlier call (a counter, a decoder's pending
/// bytes): a poisoned lock is taken as it is.
pub(crate) fn lock_any<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
