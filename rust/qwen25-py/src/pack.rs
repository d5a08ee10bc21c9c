//! Binding of `qwen25_core::pack`. `qwen25/data/pack.py` writes the manifest and holds the
//! numpy reader.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use qwen25_core::pack::{PackSummary, Packer as CorePacker};

use crate::call;
use crate::convert::{from_le_bytes, le_u32s};
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
        let tok = &self.tok.get().inner;
        call::on_texts(py, &texts, num_threads, |strs, n| {
            call::lock(&self.inner)?.add_texts(tok, strs, &sources, n)
        })
    }

    /// Append one already tokenized document.
    fn add_tokens(&self, tokens: Vec<u32>, source: u64) -> PyResult<()> {
        call::lock(&self.inner)
            .and_then(|mut g| g.add_doc(&tokens, source))
            .py_err()
    }

    /// Append many tokenized documents at once: `tokens` holds their ids back to back as
    /// little-endian uint32 bytes, `lengths` one little-endian uint64 token count per document,
    /// `sources` one source id per document. Returns the document tokens added.
    fn add_token_batch(
        &self,
        py: Python<'_>,
        tokens: &[u8],
        lengths: &[u8],
        sources: Vec<u64>,
    ) -> PyResult<u64> {
        let lens = match from_le_bytes::<u64>(lengths) {
            Some(lens) if tokens.len().is_multiple_of(4) => lens,
            _ => {
                return Err(call::bad_value(
                    "tokens must be uint32 bytes and lengths uint64 bytes",
                ))
            }
        };
        if lens.len() != sources.len() {
            return Err(call::bad_value(format!(
                "{} lengths but {} sources",
                lens.len(),
                sources.len()
            )));
        }
        let ntok = tokens.len() / 4;
        let total: u128 = lens.iter().map(|&n| n as u128).sum();
        if total != ntok as u128 {
            return Err(call::bad_value(format!(
                "lengths add up to {total} tokens but {ntok} were given"
            )));
        }
        call::job(py, || {
            // the ids are read where they are (no copy) on a little-endian machine
            let owned: Vec<u32>;
            let toks = match le_u32s(tokens) {
                Some(t) => t,
                None => {
                    owned = from_le_bytes::<u32>(tokens).unwrap_or_default();
                    &owned
                }
            };
            let mut g = call::lock(&self.inner)?;
            let mut pos = 0usize;
            for (&n, &s) in lens.iter().zip(&sources) {
                let end = pos + n as usize;
                g.add_doc(&toks[pos..end], s)?;
                pos = end;
            }
            Ok(ntok as u64)
        })
    }

    /// (n_docs, n_doc_tokens, n_tokens, n_sequences, n_pad, [(shard, tokens)])
    fn finish(&self, py: Python<'_>) -> PyResult<Summary> {
        call::job(py, || call::lock(&self.inner)?.finish().map(summary))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Packer>()?;
    Ok(())
}
