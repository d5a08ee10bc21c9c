//! Binding of `qwen25_core::dedup`. `qwen25/data/dedup.py` wraps these classes with the public
//! API (`MinHashDeduplicator`, `ExactDeduplicator`) and turns the byte buffers into numpy arrays.
//! Every batch call releases the GIL once and runs on `qwen25_core::parallel`.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qwen25_core::dedup::{
    exact_hash as core_exact_hash, shingle_hash as core_shingle_hash, shingles as core_shingles,
    ExactDedup as CoreExact, MinHashConfig, MinHashDedup, MinHasher as CoreMinHasher, NormConfig,
    Survivor,
};
use qwen25_core::parallel;

use crate::call;
use crate::convert::{from_le_bytes, le_bytes};
use crate::errors::IntoPy;

fn norm(lowercase: bool, strip_punct: bool, collapse_ws: bool) -> NormConfig {
    NormConfig {
        lowercase,
        strip_punct,
        collapse_ws,
    }
}

/// MinHash signer for one configuration.
#[pyclass(module = "qwen25._native", name = "MinHasher", frozen)]
pub struct MinHasher {
    inner: CoreMinHasher,
}

#[pymethods]
impl MinHasher {
    #[new]
    #[pyo3(signature = (num_perm=112, bands=14, rows=8, ngram=5, seed=1, lowercase=true, strip_punct=true, collapse_ws=true, *, datatrove_words=true, sign_short_docs=false, keep="first"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        num_perm: usize,
        bands: usize,
        rows: usize,
        ngram: usize,
        seed: u64,
        lowercase: bool,
        strip_punct: bool,
        collapse_ws: bool,
        datatrove_words: bool,
        sign_short_docs: bool,
        keep: &str,
    ) -> PyResult<Self> {
        let keep = match keep {
            "first" => Survivor::First,
            "representative" => Survivor::Representative,
            other => {
                return Err(call::bad_value(format!(
                    "keep must be 'first' or 'representative', not {other:?}"
                )))
            }
        };
        let cfg = MinHashConfig {
            num_perm,
            bands,
            rows,
            ngram,
            seed,
            norm: norm(lowercase, strip_punct, collapse_ws),
            datatrove_words,
            sign_short_docs,
            keep,
        };
        Ok(MinHasher {
            inner: CoreMinHasher::new(cfg).py_err()?,
        })
    }

    /// The shingles of `text` under this configuration (none for a document it does not sign).
    fn shingles(&self, text: &str) -> Vec<String> {
        self.inner.shingles(text)
    }

    /// Signatures of a batch as little-endian uint32 bytes, row-major (n x num_perm).
    #[pyo3(signature = (texts, num_threads=None))]
    fn signatures<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<Bound<'py, PyAny>>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let h = &self.inner;
        let bytes = call::on_texts(py, &texts, num_threads, |strs, n| {
            Ok(le_bytes(&h.signatures(strs, n)))
        })?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Signature from explicit raw shingle hashes (uint32 each, before the fmix32 pre-mix).
    fn signature_from_hashes(&self, hashes: Vec<u32>) -> Vec<u32> {
        let mut sig = vec![0u32; self.inner.config().num_perm];
        self.inner.signature_from_hashes(&hashes, &mut sig);
        sig
    }

    /// The permutation parameters (a, b).
    fn permutations(&self) -> (Vec<u32>, Vec<u32>) {
        let (a, b) = self.inner.permutations();
        (a.to_vec(), b.to_vec())
    }

    /// The LSH band keys of one signature.
    fn band_keys(&self, signature: Vec<u32>) -> PyResult<Vec<u64>> {
        let c = self.inner.config();
        if signature.len() != c.num_perm {
            return Err(call::bad_value(format!(
                "signature has {} values, expected num_perm = {}",
                signature.len(),
                c.num_perm
            )));
        }
        let mut k = Vec::new();
        self.inner.band_keys(&signature, &mut k);
        Ok(k)
    }
}

/// Streaming MinHash-LSH near-dedup (band records spill to disk past `mem_budget` bytes).
#[pyclass(module = "qwen25._native", name = "MinHashStream", frozen)]
pub struct MinHashStream {
    inner: Mutex<MinHashDedup>,
}

#[pymethods]
impl MinHashStream {
    /// A stream with `hasher`'s configuration (one place defines the MinHash parameters).
    #[new]
    #[pyo3(signature = (hasher, mem_budget=1073741824, spill_dir=None))]
    fn new(hasher: &MinHasher, mem_budget: usize, spill_dir: Option<PathBuf>) -> PyResult<Self> {
        let cfg = hasher.inner.config().clone();
        Ok(MinHashStream {
            inner: Mutex::new(MinHashDedup::new(cfg, mem_budget, spill_dir).py_err()?),
        })
    }

    /// Add a batch of texts; returns their signatures as uint32 bytes when `return_signatures`.
    #[pyo3(signature = (texts, num_threads=None, return_signatures=false))]
    fn add<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<Bound<'py, PyAny>>,
        num_threads: Option<usize>,
        return_signatures: bool,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let sigs = call::on_texts(py, &texts, num_threads, |strs, n| {
            call::lock(&self.inner)?.add_texts(strs, n)
        })?;
        Ok(if return_signatures {
            Some(PyBytes::new(py, &le_bytes(&sigs)))
        } else {
            None
        })
    }

    /// Add precomputed signatures: little-endian uint32 bytes, row-major (n x num_perm).
    #[pyo3(signature = (signatures, num_threads=None))]
    fn add_signatures(
        &self,
        py: Python<'_>,
        signatures: &[u8],
        num_threads: Option<usize>,
    ) -> PyResult<()> {
        let sigs: Vec<u32> = from_le_bytes(signatures)
            .ok_or_else(|| call::bad_value("signature bytes are not a whole number of uint32"))?;
        call::run(py, num_threads, |n| {
            call::lock(&self.inner)?.add_signatures(&sigs, n)
        })
    }

    /// Cluster ids (lowest member index) of every document added, as uint64 bytes.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let ids = call::job(py, || call::lock(&self.inner)?.finish())?;
        Ok(PyBytes::new(py, &le_bytes(&ids)))
    }

    #[getter]
    fn n_docs(&self) -> PyResult<u64> {
        Ok(call::lock(&self.inner).py_err()?.n_docs())
    }

    #[getter]
    fn n_spills(&self) -> PyResult<usize> {
        Ok(call::lock(&self.inner).py_err()?.n_spills())
    }
}

/// Streaming exact dedup.
#[pyclass(module = "qwen25._native", name = "ExactDedup", frozen)]
pub struct ExactDedup {
    inner: Mutex<CoreExact>,
}

#[pymethods]
impl ExactDedup {
    #[new]
    #[pyo3(signature = (lowercase=false, strip_punct=false, collapse_ws=false))]
    fn new(lowercase: bool, strip_punct: bool, collapse_ws: bool) -> Self {
        ExactDedup {
            inner: Mutex::new(CoreExact::new(norm(lowercase, strip_punct, collapse_ws))),
        }
    }

    /// Add a batch; returns the cluster id (global index of the first occurrence) of each text
    /// as uint64 bytes.
    #[pyo3(signature = (texts, num_threads=None))]
    fn add<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<Bound<'py, PyAny>>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ids = call::on_texts(py, &texts, num_threads, |strs, n| {
            Ok(call::lock(&self.inner)?.add_batch(strs, n))
        })?;
        Ok(PyBytes::new(py, &le_bytes(&ids)))
    }

    /// Add precomputed hashes (16 little-endian bytes each, as `exact_hashes` gives them) in
    /// order; returns the cluster ids as uint64 bytes.
    fn add_hashes<'py>(&self, py: Python<'py>, hashes: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let hs: Vec<u128> = from_le_bytes(hashes).ok_or_else(|| {
            call::bad_value("hash bytes are not a whole number of 16-byte hashes")
        })?;
        let ids = call::lock(&self.inner).py_err()?.add_hashes(&hs);
        Ok(PyBytes::new(py, &le_bytes(&ids)))
    }

    /// (first index, size) of every cluster with at least `min_size` members.
    #[pyo3(signature = (min_size=2))]
    fn cluster_sizes(&self, min_size: u64) -> PyResult<Vec<(u64, u64)>> {
        Ok(call::lock(&self.inner).py_err()?.cluster_sizes(min_size))
    }

    #[getter]
    fn n_docs(&self) -> PyResult<u64> {
        Ok(call::lock(&self.inner).py_err()?.len())
    }

    #[getter]
    fn n_unique(&self) -> PyResult<u64> {
        Ok(call::lock(&self.inner).py_err()?.n_unique())
    }
}

/// The word n-gram shingles of `text` after normalisation.
#[pyfunction]
#[pyo3(signature = (text, ngram=5, lowercase=true, strip_punct=true, collapse_ws=true))]
fn shingles(
    text: &str,
    ngram: usize,
    lowercase: bool,
    strip_punct: bool,
    collapse_ws: bool,
) -> PyResult<Vec<String>> {
    if ngram == 0 {
        return Err(call::bad_value("ngram must be >= 1"));
    }
    Ok(core_shingles(
        text,
        ngram,
        &norm(lowercase, strip_punct, collapse_ws),
    ))
}

/// datatrove's `simplify_text` (its MinHash normalisation).
#[pyfunction]
fn simplify_text(text: &str) -> String {
    qwen25_core::dedup::simplify_text(text)
}

/// The 32-bit hash of one shingle's UTF-8 bytes (low 32 bits of xxh3-64).
#[pyfunction]
fn shingle_hash(data: &[u8]) -> u32 {
    core_shingle_hash(data)
}

/// xxh3-128 of each normalised text, 16 little-endian bytes each.
#[pyfunction]
#[pyo3(signature = (texts, lowercase=false, strip_punct=false, collapse_ws=false, num_threads=None))]
fn exact_hashes<'py>(
    py: Python<'py>,
    texts: Vec<Bound<'py, PyAny>>,
    lowercase: bool,
    strip_punct: bool,
    collapse_ws: bool,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let cfg = norm(lowercase, strip_punct, collapse_ws);
    let out = call::on_texts(py, &texts, num_threads, |strs, n| {
        Ok(le_bytes(&parallel::map(strs, n, |t| {
            core_exact_hash(t, &cfg)
        })))
    })?;
    Ok(PyBytes::new(py, &out))
}

/// xxh3-128 of the normalised text.
#[pyfunction]
#[pyo3(signature = (text, lowercase=false, strip_punct=false, collapse_ws=false))]
fn exact_hash(text: &str, lowercase: bool, strip_punct: bool, collapse_ws: bool) -> u128 {
    core_exact_hash(text, &norm(lowercase, strip_punct, collapse_ws))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MinHasher>()?;
    m.add_class::<MinHashStream>()?;
    m.add_class::<ExactDedup>()?;
    m.add_function(wrap_pyfunction!(shingles, m)?)?;
    m.add_function(wrap_pyfunction!(simplify_text, m)?)?;
    m.add_function(wrap_pyfunction!(shingle_hash, m)?)?;
    m.add_function(wrap_pyfunction!(exact_hash, m)?)?;
    m.add_function(wrap_pyfunction!(exact_hashes, m)?)?;
    Ok(())
}
