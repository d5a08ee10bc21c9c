//! The one place where core errors become Python exceptions. The classes live in
//! `qwen25/errors.py` (so they can inherit from two builtins, e.g. KeyError and ValueError);
//! each keeps the builtin meaning: ValueError for bad values, KeyError for unknown ids,
//! OSError/FileNotFoundError for files.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;
use qwen25_core::Error;

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    Ok(py
        .import("qwen25.errors")?
        .getattr(name)?
        .cast_into::<PyType>()?)
}

pub fn to_pyerr(e: Error) -> PyErr {
    Python::attach(|py| {
        let (name, args): (&str, Py<PyAny>) = match &e {
            Error::Io { path, source } => {
                let name = if source.kind() == std::io::ErrorKind::NotFound {
                    "Qwen25FileNotFoundError"
                } else {
                    "Qwen25IOError"
                };
                let errno = source.raw_os_error().unwrap_or(0);
                let args = (errno, source.to_string(), path.clone());
                match args.into_pyobject(py) {
                    Ok(t) => (name, t.into_any().unbind()),
                    Err(err) => return err,
                }
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
