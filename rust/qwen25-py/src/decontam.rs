//! Binding of `qwen25_core::decontam`. `qwen25/data/decontam.py` wraps it with the public
//! `Decontaminator` (record formats, streaming, `Match` objects).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyList, PyString, PyTuple};
use qwen25_core::decontam::{self, normalize, Config, Input, Mode, Window};

use crate::call;
use crate::errors::IntoPy;
use crate::tokenizer::Tokenizer;

enum Item<'a> {
    Text(&'a str),
    Ids(Vec<u32>),
}

fn extract<'a>(objs: &'a [Bound<'_, PyAny>], what: &str) -> PyResult<Vec<Item<'a>>> {
    objs.iter()
        .enumerate()
        .map(|(i, o)| {
            if let Ok(s) = o.cast::<PyString>() {
                return Ok(Item::Text(s.to_str()?));
            }
            ids(o).map(Item::Ids).map_err(|j| match j {
                Some(j) => {
                    let x = o
                        .get_item(j)
                        .ok()
                        .and_then(|x| x.repr().ok().map(|r| r.to_string()))
                        .unwrap_or_default();
                    crate::errors::type_error(format!(
                        "{what}[{i}][{j}] = {x} is not a token id (an int in 0..2**32, not a bool)"
                    ))
                }
                None => crate::errors::type_error(format!(
                    "{what}[{i}] is {}, not str or a list of token ids (ints in 0..2**32)",
                    o.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                )),
            })
        })
        .collect()
}

/// A list or tuple of token ids (ints in 0..2**32, bools refused); on failure the index of
/// the offending element (None: not a list or tuple).
fn ids(o: &Bound<'_, PyAny>) -> Result<Vec<u32>, Option<usize>> {
    fn collect<'py>(
        it: impl ExactSizeIterator<Item = Bound<'py, PyAny>>,
    ) -> Result<Vec<u32>, Option<usize>> {
        let mut v = Vec::with_capacity(it.len());
        for (j, x) in it.enumerate() {
            if x.is_instance_of::<PyBool>() {
                return Err(Some(j));
            }
            v.push(x.extract::<u32>().map_err(|_| Some(j))?);
        }
        Ok(v)
    }
    if let Ok(l) = o.cast::<PyList>() {
        collect(l.iter())
    } else if let Ok(t) = o.cast::<PyTuple>() {
        collect(t.iter())
    } else {
        Err(None)
    }
}

fn inputs<'a>(items: &'a [Item<'_>]) -> Vec<Input<'a>> {
    items
        .iter()
        .map(|it| match it {
            Item::Text(s) => Input::Text(s),
            Item::Ids(v) => Input::Ids(v),
        })
        .collect()
}

/// (test_index, lcs, ngram_hits, spans, token window, character window)
type PyMatch = (
    usize,
    Option<usize>,
    Vec<usize>,
    Vec<(usize, usize)>,
    Option<(usize, usize)>,
    Option<(usize, usize)>,
);

/// The engine's matches as the tuples `Decontaminator._matches` reads.
fn py_matches(res: Vec<Vec<decontam::Match>>) -> Vec<Vec<PyMatch>> {
    res.into_iter()
        .map(|ms| {
            ms.into_iter()
                .map(|m| {
                    (
                        m.test_index,
                        m.lcs,
                        m.ngram_hits,
                        m.spans,
                        m.window,
                        m.char_window,
                    )
                })
                .collect()
        })
        .collect()
}

/// `window`: None (the whole record), an int k >= 1, or "auto" (aligned to each hit).
fn parse_window(w: Option<&Bound<'_, PyAny>>) -> PyResult<Window> {
    let Some(w) = w else {
        return Ok(Window::Whole);
    };
    if w.is_none() {
        return Ok(Window::Whole);
    }
    if let Ok(s) = w.cast::<PyString>() {
        return match s.to_str()? {
            "auto" => Ok(Window::Aligned),
            other => Err(crate::errors::value_error(format!(
                "window must be 'auto', None or an int >= 1, not {other:?}"
            ))),
        };
    }
    match w.extract::<usize>() {
        Ok(k) if !w.is_instance_of::<pyo3::types::PyBool>() => Ok(Window::Fixed(k)),
        _ => Err(crate::errors::type_error(format!(
            "window must be 'auto', None or an int >= 1, not {w}"
        ))),
    }
}

#[pyclass(module = "qwen25._native", name = "Decontaminator", frozen)]
pub struct Decontaminator {
    inner: decontam::Decontaminator,
    tok: Option<Py<Tokenizer>>,
}

impl Decontaminator {
    /// `check` and `check_records`: the engine's matches for `ins`, with the GIL released.
    fn decide(
        &self,
        py: Python<'_>,
        ins: &[Input<'_>],
        all: bool,
        num_threads: Option<usize>,
    ) -> PyResult<Vec<Vec<PyMatch>>> {
        let tok_ref = self.tok.as_ref().map(|t| &t.get().inner);
        let inner = &self.inner;
        let res = call::run(py, num_threads, |n| inner.check(ins, tok_ref, all, n))?;
        Ok(py_matches(res))
    }
}

#[pymethods]
impl Decontaminator {
    #[new]
    #[pyo3(signature = (test, mode="qwen", ngram=13, lcs_min=13, lcs_ratio=0.6, window=None, tokenizer=None, num_threads=None, prefilter=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        test: Vec<Bound<'_, PyAny>>,
        mode: &str,
        ngram: usize,
        lcs_min: usize,
        lcs_ratio: f64,
        window: Option<Bound<'_, PyAny>>,
        tokenizer: Option<Py<Tokenizer>>,
        num_threads: Option<usize>,
        prefilter: bool,
    ) -> PyResult<Self> {
        let cfg = Config {
            mode: Mode::parse(mode).py_err()?,
            ngram,
            lcs_min,
            lcs_ratio,
            window: parse_window(window.as_ref())?,
            prefilter,
        };
        let items = extract(&test, "test")?;
        let ins = inputs(&items);
        let tok_ref = tokenizer.as_ref().map(|t| &t.get().inner);
        let inner = call::run(py, num_threads, |n| {
            decontam::Decontaminator::new(cfg, &ins, tok_ref, n)
        })?;
        Ok(Decontaminator {
            inner,
            tok: tokenizer,
        })
    }

    /// Decide a batch: per item, its witnesses (the lowest test index only unless `all`).
    #[pyo3(signature = (batch, all=false, num_threads=None))]
    fn check(
        &self,
        py: Python<'_>,
        batch: Vec<Bound<'_, PyAny>>,
        all: bool,
        num_threads: Option<usize>,
    ) -> PyResult<Vec<Vec<PyMatch>>> {
        let items = extract(&batch, "batch")?;
        self.decide(py, &inputs(&items), all, num_threads)
    }

    /// As `check`, for the records of a `RecordBatch` (`qwen25.data.records.read_batches`): their
    /// texts go to the engine from Rust, with no Python string built.
    #[pyo3(signature = (batch, all=false, num_threads=None))]
    fn check_records(
        &self,
        py: Python<'_>,
        batch: &crate::io::RecordBatch,
        all: bool,
        num_threads: Option<usize>,
    ) -> PyResult<Vec<Vec<PyMatch>>> {
        let ins: Vec<Input> = batch.batch().items.iter().map(Input::from).collect();
        self.decide(py, &ins, all, num_threads)
    }

    /// Mode qwen: per text, does the exact prefilter let it through to the tokenizer (False:
    /// clean without being tokenized)? None when `check` would not use the prefilter.
    #[pyo3(signature = (texts, num_threads=None))]
    fn prefilter_passes(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        num_threads: Option<usize>,
    ) -> PyResult<Option<Vec<bool>>> {
        let Some(tok) = self.tok.as_ref().map(|t| &t.get().inner) else {
            return Ok(None);
        };
        let inner = &self.inner;
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        call::run(py, num_threads, |n| {
            Ok::<_, qwen25_core::error::Error>(inner.prefilter_passes(&refs, tok, n))
        })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Test item `i` as the engine sees it: token ids (word ids in ngram mode).
    fn item(&self, i: usize) -> Option<Vec<u32>> {
        self.inner.item(i).map(|s| s.to_vec())
    }

    /// Approximate heap bytes held by the index.
    fn heap_bytes(&self) -> usize {
        self.inner.heap_bytes()
    }

    #[getter]
    fn mode(&self) -> &'static str {
        match self.inner.config().mode {
            Mode::Qwen => "qwen",
            Mode::Lcs => "lcs",
            Mode::Ngram => "ngram",
        }
    }
}

/// The text normalisation of modes qwen and lcs (drop P*/S*, collapse whitespace).
#[pyfunction]
fn decontam_normalize(text: &str) -> String {
    normalize::normalize_qwen(text)
}

/// The normalised words of ngram mode with their character spans.
#[pyfunction]
fn decontam_words(text: &str) -> Vec<(String, usize, usize)> {
    normalize::words(text)
}

/// Exact LCS length of two id sequences (bit-parallel); the GIL is released when the table is big
/// enough (about 2**20 cells, 2**14 word steps) for that to pay off.
#[pyfunction]
fn lcs_length(py: Python<'_>, a: Vec<u32>, b: Vec<u32>) -> usize {
    let big = a.len().saturating_mul(b.len()) >= 1 << 20;
    call::detach_if(py, big, || decontam::lcs::Pattern::new(&a).lcs(&b))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Decontaminator>()?;
    m.add_function(wrap_pyfunction!(decontam_normalize, m)?)?;
    m.add_function(wrap_pyfunction!(decontam_words, m)?)?;
    m.add_function(wrap_pyfunction!(lcs_length, m)?)?;
    Ok(())
}
