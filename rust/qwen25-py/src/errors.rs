//! The one place where core errors become Python exceptions. The classes live in
//! `qwen25/errors.py` (so they can inherit from two builtins, e.g. KeyError and ValueError);
//! each keeps the builtin meaning: ValueError for bad values, TypeError for arguments of the
//! wrong type, KeyError for unknown ids, OSError/FileNotFoundError for files. The bindings raise
//! their own argument errors through [`type_error`] and [`value_error`].

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;
use qwen25_core::Error;
use std::io::ErrorKind;

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    Ok(py
        .import("qwen25.errors")?
        .getattr(name)?
        .cast_into::<PyType>()?)
}

/// The package's exception `name` with the message `msg`, or `builtin(msg)` (the builtin it
/// derives from) where the class cannot be found.
fn package_error(name: &str, msg: String, builtin: fn(String) -> PyErr) -> PyErr {
    Python::attach(|py| match class(py, name) {
        Ok(cls) => PyErr::from_type(cls, (msg,)),
        Err(_) => builtin(msg),
    })
}

/// A `Qwen25TypeError(msg)` (a `TypeError`): a Python argument of the wrong type.
pub fn type_error(msg: String) -> PyErr {
    package_error("Qwen25TypeError", msg, PyTypeError::new_err)
}

/// A `Qwen25ValueError(msg)` (a `ValueError`): a Python argument with a bad value.
pub fn value_error(msg: String) -> PyErr {
    package_error("Qwen25ValueError", msg, PyValueError::new_err)
}

/// The name, in Python's `errno` module, of the errno that stands for an I/O error kind, for
/// errors that carry no OS errno of their own (made in Rust, not returned by a system call).
fn errno_name(kind: ErrorKind) -> Option<&'static str> {
    Some(match kind {
        ErrorKind::NotFound => "ENOENT",
        ErrorKind::PermissionDenied => "EACCES",
        ErrorKind::AlreadyExists => "EEXIST",
        ErrorKind::IsADirectory => "EISDIR",
        ErrorKind::NotADirectory => "ENOTDIR",
        ErrorKind::DirectoryNotEmpty => "ENOTEMPTY",
        ErrorKind::StorageFull => "ENOSPC",
        ErrorKind::QuotaExceeded => "EDQUOT",
        ErrorKind::ReadOnlyFilesystem => "EROFS",
        ErrorKind::FileTooLarge => "EFBIG",
        ErrorKind::CrossesDevices => "EXDEV",
        ErrorKind::TooManyLinks => "EMLINK",
        ErrorKind::ResourceBusy => "EBUSY",
        ErrorKind::ExecutableFileBusy => "ETXTBSY",
        ErrorKind::NotSeekable => "ESPIPE",
        ErrorKind::InvalidFilename => "ENAMETOOLONG",
        ErrorKind::BrokenPipe => "EPIPE",
        ErrorKind::WouldBlock => "EAGAIN",
        ErrorKind::TimedOut => "ETIMEDOUT",
        ErrorKind::Interrupted => "EINTR",
        ErrorKind::OutOfMemory => "ENOMEM",
        ErrorKind::Unsupported => "EOPNOTSUPP",
        _ => return None,
    })
}

/// The `Qwen25IOError` (or `Qwen25FileNotFoundError`) of an I/O error on `path`, as Python's
/// `OSError(errno, strerror, filename)`: the OS errno when the error came from a system call, else
/// the errno that stands for its kind (`NotFound` is ENOENT ...), and EIO (the generic I/O error)
/// for kinds that have none (corrupt data, an early end of file): never a meaningless
/// `[Errno 0]`, and `errno`, `strerror` and `filename` are always set.
fn io_err(py: Python<'_>, path: &str, source: &std::io::Error) -> PyResult<PyErr> {
    let name = if source.kind() == ErrorKind::NotFound {
        "Qwen25FileNotFoundError"
    } else {
        "Qwen25IOError"
    };
    let cls = class(py, name)?;
    let errno = match source.raw_os_error() {
        Some(n) => n,
        None => {
            // a name this platform's `errno` lacks (EDQUOT on Windows) is EIO too
            let errno = py.import("errno")?;
            let code = |name: &str| errno.getattr(name).and_then(|v| v.extract::<i32>());
            match errno_name(source.kind()).map(code) {
                Some(Ok(n)) => n,
                _ => code("EIO")?,
            }
        }
    };
    Ok(PyErr::from_type(
        cls,
        (errno, source.to_string(), path.to_owned()),
    ))
}

pub fn to_pyerr(e: Error) -> PyErr {
    Python::attach(|py| {
        let (name, args): (&str, Py<PyAny>) = match &e {
            Error::Io { path, source } => {
                return io_err(py, path, source)
                    .unwrap_or_else(|_| PyRuntimeError::new_err(e.to_string()));
            }
            Error::Format { path, line, .. } => {
                match (e.to_string(), path.clone(), *line).into_pyobject(py) {
                    Ok(t) => ("FormatError", t.into_any().unbind()),
                    Err(err) => return err,
                }
            }
            Error::Value(_) => (
                "Qwen25ValueError",
                (e.to_string(),)
                    .into_pyobject(py)
                    .map(|t| t.into_any().unbind())
                    .unwrap_or_else(|_| py.None()),
            ),
            Error::UnknownId(id) => match (e.to_string(), *id).into_pyobject(py) {
                Ok(t) => ("UnknownTokenError", t.into_any().unbind()),
                Err(err) => return err,
            },
            Error::DisallowedSpecial(tok) => match (e.to_string(), tok.clone()).into_pyobject(py) {
                Ok(t) => ("DisallowedSpecialTokenError", t.into_any().unbind()),
                Err(err) => return err,
            },
        };
        match class(py, name) {
            Ok(cls) => PyErr::from_type(cls, args),
            Err(_) => PyRuntimeError::new_err(e.to_string()),
        }
    })
}

pub trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_pyerr)
    }
}
