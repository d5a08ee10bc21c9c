//! Binding of `qwen25_core::tokenizer::train`: the streaming word counter and the BPE trainer.
//! `qwen25/_train.py` (`qwen25.train_bpe`) drives it chunk by chunk.

use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use qwen25_core::tokenizer::train::WordCounter;

use crate::call;
use crate::errors::IntoPy;
use crate::tokenizer::Tokenizer;

/// Counts the pre-tokens of texts fed chunk by chunk, then trains a BPE on them.
#[pyclass(module = "qwen25._native", name = "BpeTrainer")]
pub struct BpeTrainer {
    /// `None` once `train` has consumed the counts.
    counter: Mutex<Option<WordCounter>>,
}

#[pymethods]
impl BpeTrainer {
    #[new]
    fn new(special_tokens: Vec<String>) -> PyResult<Self> {
        Ok(BpeTrainer {
            counter: Mutex::new(Some(WordCounter::new(special_tokens).py_err()?)),
        })
    }

    /// Count the pre-tokens of `texts`; `offset` is the index of `texts[0]` in the whole stream
    /// (for error messages).
    #[pyo3(signature = (texts, num_threads=None, offset=0))]
    fn feed(
        &self,
        py: Python<'_>,
        texts: Vec<Bound<'_, PyAny>>,
        num_threads: Option<usize>,
        offset: usize,
    ) -> PyResult<()> {
        // The lock is taken and released without the GIL: a thread holding the GIL while it
        // waits for the lock cannot deadlock with this one.
        let fed = call::on_texts_at(py, &texts, offset, num_threads, |strs, n| {
            let mut guard = call::lock_any(&self.counter);
            Ok(guard
                .as_mut()
                .map(|counter| counter.add_texts(strs, n))
                .is_some())
        })?;
        if fed {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err(
                "this BpeTrainer has already trained",
            ))
        }
    }

    /// Number of distinct pre-tokens counted so far.
    #[getter]
    fn n_words(&self, py: Python<'_>) -> usize {
        py.detach(|| {
            call::lock_any(&self.counter)
                .as_ref()
                .map_or(0, |c| c.n_words())
        })
    }

    /// Learn the merges and build the tokenizer (consumes the counts).
    #[pyo3(signature = (vocab_size, min_frequency=2, num_threads=None))]
    fn train(
        &self,
        py: Python<'_>,
        vocab_size: usize,
        min_frequency: u64,
        num_threads: Option<usize>,
    ) -> PyResult<Tokenizer> {
        let counter = py
            .detach(|| call::lock_any(&self.counter).take())
            .ok_or_else(|| PyRuntimeError::new_err("this BpeTrainer has already trained"))?;
        call::run(py, num_threads, |n| {
            counter.train(vocab_size, min_frequency, n)
        })
        .map(|inner| Tokenizer { inner })
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<BpeTrainer>()?;
    Ok(())
}
