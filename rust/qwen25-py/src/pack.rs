//! Binding of `qwen25_core::pack`. `qwen25/data/pack.py` writes the manifest and holds the
//! numpy reader.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use qwen25_core::pack::{PackSummary, Packer as CorePacker};
use qwen25_core::parallel;
use qwen25_core::Error;

use crate::dedup::borrow_texts;
use crate::errors::IntoPy;
use crate::tokenizer::Tokenizer;

type Summary = (u64, u64, u64, u64, u64, Vec<(String, u64)>);

fn summary(s: PackSummary) -> Summary {
    (
        s.n_docs,
        s.n_doc_tokens,
        s.n_tokens,
        s.n_sequences,
        s.n_pad,
        s.shards,
    )
}

fn lock_err() -> Error {
    Error::Value("internal lock poisoned by an earlier failure".into())
}

#[pyclass(module = "qwen25._native", name = "Packer", frozen)]
pub struct Packer {
    tok: Py<Tokenizer>,
    inner: Mutex<CorePacker>,
}

#[pymethods]
impl Packer {
    #[new]
    fn new(
        tokenizer: Py<Tokenizer>,
        dir: PathBuf,
        seq_len: usize,
        seqs_per_shard: usize,
        sep: u32,
    ) -> PyResult<Self> {
        Ok(Packer {
            tok: tokenizer,
            inner: Mutex::new(CorePacker::new(dir, seq_len, seqs_per_shard, sep).py_err()?),
        })
    }

    /// Tokenize and append a batch; returns the document tokens added.
    #[pyo3(signature = (texts, sources, num_threads=None))]
    fn add_texts(
        &self,
        py: Python<'_>,
        texts: Vec<Bound<'_, PyAny>>,
        sources: Vec<u64>,
        num_threads: Option<usize>,
    ) -> PyResult<u64> {
        let strs = borrow_texts(&texts)?;
        let n = parallel::threads(num_threads);
        let tok = &self.tok.get().inner;
        py.detach(|| -> Result<u64, Error> {
            let mut g = self.inner.lock().map_err(|_| lock_err())?;
            g.add_texts(tok, &strs, &sources, n)
        })
        .py_err()
    }

    /// Append one already tokenized document.
    fn add_tokens(&self, tokens: Vec<u32>, source: u64) -> PyResult<()> {
        self.inner
            .lock()
            .map_err(|_| lock_err())
            .and_then(|mut g| g.add_doc(&tokens, source))
            .py_err()
    }

    /// (n_docs, n_doc_tokens, n_tokens, n_sequences, n_pad, [(shard, tokens)])
    fn finish(&self, py: Python<'_>) -> PyResult<Summary> {
        py.detach(|| -> Result<Summary, Error> {
            let mut g = self.inner.lock().map_err(|_| lock_err())?;
            g.finish().map(summary)
        })
        .py_err()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Packer>()?;
    Ok(())
}
