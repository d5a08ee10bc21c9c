//! Python -> Rust argument conversions shared by the bindings.

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
                crate::errors::type_error(format!(
                    "texts[{}] is {}, not str",
                    offset + i,
                    t.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            s.to_str()
                .map_err(|e| surrogate_error(t, e, &format!("texts[{}]", offset + i)))
        })
        .collect()
}

/// `err`, the error of taking the UTF-8 of the str `t`: a UnicodeEncodeError (a lone surrogate,
/// which no UTF-8 text holds) becomes a Qwen25ValueError naming `name`, the surrogate and its
/// index, worded as Python's `qwen25.data.records.surrogate_error`; any other error is returned
/// as it is.
pub(crate) fn surrogate_error(t: &Bound<'_, PyAny>, err: PyErr, name: &str) -> PyErr {
    let py = t.py();
    if !err.is_instance_of::<pyo3::exceptions::PyUnicodeEncodeError>(py) {
        return err;
    }
    let at = err
        .value(py)
        .getattr("start")
        .and_then(|v| v.extract::<usize>())
        .ok();
    // the surrogate's code point: `ord(t[k])` (a lone surrogate is no Rust char)
    let code = at.and_then(|k| {
        let c = t.get_item(k).ok()?;
        let ord = py.import("builtins").ok()?.getattr("ord").ok()?;
        ord.call1((c,)).ok()?.extract::<u32>().ok()
    });
    let what = match (at, code) {
        (Some(k), Some(c)) => format!("a lone surrogate U+{c:04X} at index {k}"),
        _ => "a lone surrogate".to_string(),
    };
    crate::errors::value_error(format!(
        "{name} has {what}, which is not valid Unicode and cannot be encoded as UTF-8 (decode \
         its source with errors='replace' or drop it)"
    ))
}

/// A number that crosses the binding inside little-endian bytes (numpy's `<u4`, `<u8`, `<f4` ...).
pub(crate) trait LeNum: Copy {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    /// `b` holds exactly `SIZE` bytes.
    fn get(b: &[u8]) -> Self;
}

macro_rules! le_num {
    ($($t:ty),*) => {$(
        impl LeNum for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
le_num!(u32, u64, u128, f32);

/// `v` as little-endian bytes, one number after another.
pub(crate) fn le_bytes<T: LeNum>(v: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * T::SIZE);
    for &x in v {
        x.put(&mut out);
    }
    out
}

/// `bytes` as the u32s they hold little-endian, without a copy where that is their memory (a
/// little-endian machine and 4-byte aligned bytes); None otherwise (use [`from_le_bytes`]).
pub(crate) fn le_u32s(bytes: &[u8]) -> Option<&[u32]> {
    if cfg!(target_endian = "big") {
        return None;
    }
    // SAFETY: every bit pattern is a valid u32; align_to only takes the aligned middle
    let (head, mid, tail) = unsafe { bytes.align_to::<u32>() };
    (head.is_empty() && tail.is_empty()).then_some(mid)
}

/// The numbers in little-endian `bytes`; `None` when its length is not a whole number of them.
pub(crate) fn from_le_bytes<T: LeNum>(bytes: &[u8]) -> Option<Vec<T>> {
    if !bytes.len().is_multiple_of(T::SIZE) {
        return None;
    }
    Some(bytes.chunks_exact(T::SIZE).map(T::get).collect())
}
