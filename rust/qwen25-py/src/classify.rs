//! Binding of `qwen25_core::classify`. `qwen25/data/classify.py` holds the public API.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qwen25_core::classify::{features as core_features, Classifier, ClassifierConfig};
use qwen25_core::Error;

use crate::call;
use crate::convert::{borrow_texts, le_bytes};
use crate::errors::IntoPy;

fn config(json: &str) -> PyResult<ClassifierConfig> {
    serde_json::from_str(json)
        .map_err(|e| Error::Value(format!("bad classifier config: {e}")))
        .py_err()
}

#[pyclass(module = "qwen25._native", name = "HashedLinearClassifier", frozen)]
pub struct HashedLinearClassifier {
    inner: Classifier,
}

#[pymethods]
impl HashedLinearClassifier {
    #[staticmethod]
    #[pyo3(signature = (texts, labels, config_json="{}", num_threads=None))]
    fn train(
        py: Python<'_>,
        texts: Vec<Bound<'_, PyAny>>,
        labels: Vec<Bound<'_, PyAny>>,
        config_json: &str,
        num_threads: Option<usize>,
    ) -> PyResult<Self> {
        let l = borrow_texts(&labels)?;
        let cfg = config(config_json)?;
        let inner = call::on_texts(py, &texts, num_threads, |t, n| {
            Classifier::train(t, &l, cfg, n)
        })?;
        Ok(HashedLinearClassifier { inner })
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        Ok(HashedLinearClassifier {
            inner: call::job(py, || Classifier::load(&path))?,
        })
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        call::job(py, || self.inner.save(&path))
    }

    /// Probabilities as little-endian float32 bytes, row-major (n x k).
    #[pyo3(signature = (texts, num_threads=None))]
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<Bound<'py, PyAny>>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let p = call::on_texts(py, &texts, num_threads, |t, n| {
            Ok(self.inner.predict_proba(t, n))
        })?;
        Ok(PyBytes::new(py, &le_bytes(&p)))
    }

    #[getter]
    fn labels(&self) -> Vec<String> {
        self.inner.labels.clone()
    }

    fn config_json(&self) -> String {
        serde_json::to_string(&self.inner.config).unwrap_or_default()
    }
}

/// The sparse features (bucket, value) of one text under `config_json`.
#[pyfunction]
#[pyo3(signature = (text, config_json="{}"))]
fn classifier_features(text: &str, config_json: &str) -> PyResult<Vec<(u32, f32)>> {
    Ok(core_features(text, &config(config_json)?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<HashedLinearClassifier>()?;
    m.add_function(wrap_pyfunction!(classifier_features, m)?)?;
    Ok(())
}
