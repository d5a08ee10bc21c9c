//! Binding of `qwen25_core::filter`. `qwen25/data/filters.py` holds the public API (configs as
//! dataclasses, per-domain thresholds); the config crosses as JSON.

use pyo3::prelude::*;
use qwen25_core::filter::{apply_batch, FilterConfig};
use qwen25_core::parallel;

use crate::dedup::borrow_texts;
use crate::errors::IntoPy;

type Row = (bool, Option<&'static str>, Option<String>, qwen25_core::filter::Stats, Option<String>);

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
        Ok(QualityFilters { cfg: FilterConfig::from_json(config_json).py_err()? })
    }

    /// The effective configuration as JSON (defaults filled in).
    fn config_json(&self) -> String {
        self.cfg.to_json()
    }

    /// Per text: (keep, filter, reason, stats, new_text).
    #[pyo3(signature = (texts, num_threads=None))]
    fn apply(&self, py: Python<'_>, texts: Vec<Bound<'_, PyAny>>, num_threads: Option<usize>) -> PyResult<Vec<Row>> {
        let strs = borrow_texts(&texts)?;
        let n = parallel::threads(num_threads);
        let cfg = &self.cfg;
        let res = py.detach(|| apply_batch(&strs, cfg, n));
        Ok(res.into_iter().map(|r| (r.keep, r.filter, r.reason, r.stats, r.text)).collect())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<QualityFilters>()?;
    Ok(())
}
