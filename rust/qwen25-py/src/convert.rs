//! Python -> Rust argument conversions shared by the bindings.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Borrow the UTF-8 of every str in `texts` (TypeError naming the index otherwise).
pub(crate) fn borrow_texts<'a>(texts: &'a [Bound<'_, PyAny>]) -> PyResult<Vec<&'a str>> {
    borrow_texts_at(texts, 0)
}

/// As [`borrow_texts`], for a batch whose first text is `texts[offset]` of a longer stream (the
/// index in the error counts from the stream's start).
pub(crate) fn borrow_texts_at<'a>(
    texts: &'a [Bound<'_, PyAny>],
    offset: usize,
) -> PyResult<Vec<&'a str>> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let s = t.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "texts[{}] is {}, not str",
                    offset + i,
                    t.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            s.to_str()
        })
        .collect()
}
