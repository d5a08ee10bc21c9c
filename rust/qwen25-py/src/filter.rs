//! Binding of `qwen25_core::filter`. `qwen25/data/filters.py` holds the public API (configs as
//! dataclasses, per-domain thresholds); the config crosses as JSON.

use std::borrow::Cow;
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use qwen25_core::filter::{apply_batch, spacy, words_of, FilterConfig, FilterResult, Words};
use qwen25_core::parallel;

use crate::call;
use crate::errors::IntoPy;

/// The last stats dict, to copy, with its key identities (static name address and length), key
/// objects and values (as bits), in order.
struct Template<'py> {
    keys: Vec<(usize, usize)>,
    names: Vec<Bound<'py, PyString>>,
    dict: Bound<'py, PyDict>,
    vals: Vec<u64>,
    /// no key twice (then a value equal to the last row's is already in the copy)
    distinct: bool,
}

/// A compiled filter configuration.
#[pyclass(module = "qwen25._native", name = "QualityFilters", frozen)]
pub struct QualityFilters {
    cfg: FilterConfig,
}

#[pymethods]
impl QualityFilters {
    /// `config_json`: the FilterConfig as JSON ("{}" = every filter with its defaults).
    #[new]
    #[pyo3(signature = (config_json="{}"))]
    fn new(config_json: &str) -> PyResult<Self> {
        Ok(QualityFilters {
            cfg: FilterConfig::from_json(config_json).py_err()?,
        })
    }

    /// The effective configuration as JSON (defaults filled in).
    fn config_json(&self) -> String {
        self.cfg.to_json()
    }

    /// Per text: (keep, filter, reason, stats dict, new_text).
    #[pyo3(signature = (texts, num_threads=None))]
    fn apply<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<Bound<'py, PyAny>>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let cfg = &self.cfg;
        // the statistic names are static strings: one Python string each per call, shared by
        // every row's dict (their hash is then computed once)
        let mut names: HashMap<(usize, usize), Bound<'py, PyString>> = HashMap::new();
        // The last dict, with its keys: a row with the same keys (most rows) copies it, which
        // clones its key table in one block (no insert, no resize), and then overwrites the
        // values that differ from the last row's (many are equal: 0.0, 1.0, small counts).
        let mut template: Option<Template<'py>> = None;
        let out = PyList::empty(py);
        // In chunks: the Rust results of one chunk are freed before the next is made, so their
        // memory is reused instead of freshly mapped (page faults were ~5% of the time).
        // Documents are independent: the chunking changes no result.
        let chunk = 1024 * parallel::threads(num_threads);
        for (i, part) in texts.chunks(chunk).enumerate() {
            let res = call::on_texts_at(py, part, i * chunk, num_threads, |strs, n| {
                Ok(apply_batch(strs, cfg, n))
            })?;
            for r in res {
                self.row(py, r, &mut names, &mut template, &out)?;
            }
        }
        Ok(out)
    }
}

impl QualityFilters {
    /// Append the Python row of `r` to `out` (its stats dict copied from the last one when it
    /// has the same keys).
    fn row<'py>(
        &self,
        py: Python<'py>,
        r: FilterResult,
        names: &mut HashMap<(usize, usize), Bound<'py, PyString>>,
        template: &mut Option<Template<'py>>,
        out: &Bound<'py, PyList>,
    ) -> PyResult<()> {
        {
            let same = template.as_ref().is_some_and(|t| {
                t.keys.len() == r.stats.len()
                    && t.keys
                        .iter()
                        .zip(&r.stats)
                        .all(|(k, (name, _))| match name {
                            Cow::Borrowed(s) => *k == (s.as_ptr() as usize, s.len()),
                            Cow::Owned(_) => false,
                        })
            });
            let d = match (&mut *template, same) {
                (Some(t), true) => {
                    let d = t.dict.copy()?;
                    for ((name, (_, v)), old) in t.names.iter().zip(&r.stats).zip(&mut t.vals) {
                        if !t.distinct || v.to_bits() != *old {
                            d.set_item(name, *v)?;
                            *old = v.to_bits();
                        }
                    }
                    t.dict = d.clone();
                    d
                }
                _ => {
                    let d = PyDict::new(py);
                    let (mut keys, mut objs) = (Vec::new(), Vec::new());
                    let mut all_static = true;
                    for (k, v) in &r.stats {
                        match k {
                            Cow::Borrowed(s) => {
                                let id = (s.as_ptr() as usize, s.len());
                                let name = names.entry(id).or_insert_with(|| PyString::new(py, s));
                                d.set_item(&*name, *v)?;
                                keys.push(id);
                                objs.push(name.clone());
                            }
                            Cow::Owned(s) => {
                                d.set_item(s.as_str(), *v)?;
                                all_static = false;
                            }
                        }
                    }
                    if all_static {
                        let mut sorted = keys.clone();
                        sorted.sort_unstable();
                        sorted.dedup();
                        *template = Some(Template {
                            distinct: sorted.len() == keys.len(),
                            keys,
                            names: objs,
                            dict: d.clone(),
                            vals: r.stats.iter().map(|(_, v)| v.to_bits()).collect(),
                        });
                    }
                    d
                }
            };
            out.append((r.keep, r.filter, r.reason, d, r.text))?;
        }
        Ok(())
    }
}

/// Every filter with its default thresholds, as JSON: the one definition of the defaults, which
/// `qwen25.data.filters` reads instead of declaring them again.
#[pyfunction]
fn filter_default_config_json() -> String {
    FilterConfig::default().to_json()
}

/// The words a filter sees in `text` under `words` ("spacy": datatrove's English words,
/// "simple": whitespace split with punctuation peeled off).
#[pyfunction]
#[pyo3(signature = (text, words="spacy"))]
fn filter_words(text: &str, words: &str) -> PyResult<Vec<String>> {
    let mode: Words =
        serde_json::from_value(serde_json::Value::String(words.into())).map_err(|_| {
            call::bad_value(format!("words must be 'spacy' or 'simple', not {words:?}"))
        })?;
    Ok(words_of(text, mode)
        .into_iter()
        .map(str::to_string)
        .collect())
}

/// The sentences spaCy's sentencizer finds in `text` (what C4 counts per kept line).
#[pyfunction]
fn filter_count_sentences(text: &str) -> usize {
    spacy::count_sentences(text)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<QualityFilters>()?;
    m.add_function(wrap_pyfunction!(filter_words, m)?)?;
    m.add_function(wrap_pyfunction!(filter_count_sentences, m)?)?;
    m.add_function(wrap_pyfunction!(filter_default_config_json, m)?)?;
    Ok(())
}
