//! Binding of `qwen25_core::tokenizer`. `qwen25/tokenizer.py` wraps these classes with the
//! public API; argument checking that needs Python types happens there.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use qwen25_core::parallel;
use qwen25_core::tokenizer::{
    load, pretok, save, IncrementalDecoder as CoreDecoder, Tokenizer as CoreTokenizer,
};
use qwen25_core::Error;

use crate::call::{self, detach_if};
use crate::errors::IntoPy;

/// Work above this many bytes releases the GIL.
const BIG: usize = 4096;

#[pyclass(module = "qwen25._native", name = "Tokenizer", frozen)]
pub struct Tokenizer {
    pub(crate) inner: CoreTokenizer,
}

fn ids_u32(ids: Vec<i64>, tok: &CoreTokenizer) -> PyResult<Vec<u32>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if id < 0 || id > u32::MAX as i64 || !tok.contains_id(id as u32) {
            return Err(crate::errors::to_pyerr(Error::UnknownId(id)));
        }
        out.push(id as u32);
    }
    Ok(out)
}

fn decode_str(bytes: Vec<u8>, strict: bool) -> PyResult<String> {
    if strict {
        String::from_utf8(bytes).map_err(|e| {
            PyValueError::new_err(format!(
                "decoded bytes are not valid UTF-8 at byte {}; use errors=\"replace\"",
                e.utf8_error().valid_up_to()
            ))
        })
    } else {
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

#[pymethods]
impl Tokenizer {
    /// The embedded Qwen2.5 tokenizer.
    #[staticmethod]
    fn qwen25(py: Python<'_>) -> PyResult<Tokenizer> {
        call::job(py, CoreTokenizer::qwen25).map(|inner| Tokenizer { inner })
    }

    /// Load an HF tokenizer folder.
    #[staticmethod]
    fn from_dir(py: Python<'_>, path: PathBuf) -> PyResult<Tokenizer> {
        call::job(py, || load::from_dir(&path)).map(|inner| Tokenizer { inner })
    }

    /// Load one `tokenizer.json` file.
    #[staticmethod]
    fn from_tokenizer_json(py: Python<'_>, path: PathBuf) -> PyResult<Tokenizer> {
        let data = std::fs::read(&path)
            .map_err(|e| Error::io(&path, e))
            .py_err()?;
        let name = path.display().to_string();
        call::job(py, || load::from_tokenizer_json(&data, &name, None))
            .map(|inner| Tokenizer { inner })
    }

    fn encode(
        &self,
        py: Python<'_>,
        text: &str,
        allowed: Vec<bool>,
        disallowed: Vec<bool>,
    ) -> PyResult<Vec<u32>> {
        detach_if(py, text.len() > BIG, || {
            self.inner.encode(text, &allowed, &disallowed)
        })
        .py_err()
    }

    fn encode_ordinary(&self, py: Python<'_>, text: &str) -> Vec<u32> {
        detach_if(py, text.len() > BIG, || self.inner.encode_ordinary(text))
    }

    #[pyo3(signature = (texts, allowed, disallowed, num_threads=None))]
    fn encode_batch(
        &self,
        py: Python<'_>,
        texts: Vec<Bound<'_, PyAny>>,
        allowed: Vec<bool>,
        disallowed: Vec<bool>,
        num_threads: Option<usize>,
    ) -> PyResult<Vec<Vec<u32>>> {
        let tok = &self.inner;
        call::on_texts(py, &texts, num_threads, |strs, n| {
            parallel::map(strs, n, |t| tok.encode(t, &allowed, &disallowed))
                .into_iter()
                .collect()
        })
    }

    /// Encode a batch into one flat little-endian uint32 buffer plus uint64 offsets (n + 1).
    #[pyo3(signature = (texts, allowed, disallowed, num_threads=None))]
    fn encode_batch_flat<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<Bound<'py, PyAny>>,
        allowed: Vec<bool>,
        disallowed: Vec<bool>,
        num_threads: Option<usize>,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let tok = &self.inner;
        let (flat, offsets) = call::on_texts(py, &texts, num_threads, |strs, n| {
            flat_ids(tok, strs, &allowed, &disallowed, n)
        })?;
        Ok((PyBytes::new(py, &flat), PyBytes::new(py, &offsets)))
    }

    /// As `encode_batch_flat`, for the records of a `RecordBatch` (`qwen25.data.records.read_batches`):
    /// their texts go to the tokenizer from Rust, with no Python string built.
    #[pyo3(signature = (batch, allowed, disallowed, num_threads=None))]
    fn encode_records_flat<'py>(
        &self,
        py: Python<'py>,
        batch: &crate::io::RecordBatch,
        allowed: Vec<bool>,
        disallowed: Vec<bool>,
        num_threads: Option<usize>,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let strs = batch
            .batch()
            .items
            .iter()
            .map(|it| match it {
                qwen25_core::io::Item::Text(s) => Ok(s.as_str()),
                qwen25_core::io::Item::Ids(_) => Err(Error::Value(
                    "a batch read with allow_ids holds token ids, not texts to encode".into(),
                )),
            })
            .collect::<Result<Vec<&str>, Error>>()
            .py_err()?;
        let tok = &self.inner;
        let (flat, offsets) = call::run(py, num_threads, |n| {
            flat_ids(tok, &strs, &allowed, &disallowed, n)
        })?;
        Ok((PyBytes::new(py, &flat), PyBytes::new(py, &offsets)))
    }

    #[pyo3(signature = (ids, skip_special_tokens=false, strict=false))]
    fn decode(
        &self,
        py: Python<'_>,
        ids: Vec<i64>,
        skip_special_tokens: bool,
        strict: bool,
    ) -> PyResult<String> {
        let ids = ids_u32(ids, &self.inner)?;
        let bytes = detach_if(py, ids.len() > BIG, || {
            self.inner.decode_to_bytes(&ids, skip_special_tokens)
        })
        .py_err()?;
        decode_str(bytes, strict)
    }

    #[pyo3(signature = (ids, skip_special_tokens=false))]
    fn decode_bytes<'py>(
        &self,
        py: Python<'py>,
        ids: Vec<i64>,
        skip_special_tokens: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let ids = ids_u32(ids, &self.inner)?;
        let bytes = self
            .inner
            .decode_to_bytes(&ids, skip_special_tokens)
            .py_err()?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[pyo3(signature = (batch, skip_special_tokens=false, strict=false, num_threads=None))]
    fn decode_batch(
        &self,
        py: Python<'_>,
        batch: Vec<Vec<i64>>,
        skip_special_tokens: bool,
        strict: bool,
        num_threads: Option<usize>,
    ) -> PyResult<Vec<String>> {
        let batch = batch
            .into_iter()
            .map(|ids| ids_u32(ids, &self.inner))
            .collect::<PyResult<Vec<_>>>()?;
        let tok = &self.inner;
        let res = call::run(py, num_threads, |n| {
            parallel::map(&batch, n, |ids| {
                tok.decode_to_bytes(ids, skip_special_tokens)
            })
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
        })?;
        res.into_iter().map(|b| decode_str(b, strict)).collect()
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    fn id_to_token(&self, id: i64) -> Option<String> {
        if id < 0 || id > u32::MAX as i64 {
            return None;
        }
        self.inner.id_to_token(id as u32)
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// Number of BPE tokens (added tokens not counted).
    #[getter]
    fn n_bpe_tokens(&self) -> usize {
        self.inner.bpe().len()
    }

    #[getter]
    fn n_merges(&self) -> usize {
        self.inner.bpe().merges().len()
    }

    /// [(content, id, special)] in id order.
    fn added_tokens(&self) -> Vec<(String, u32, bool)> {
        self.inner
            .added_tokens()
            .iter()
            .map(|a| (a.content.clone(), a.id, a.special))
            .collect()
    }

    #[getter]
    fn config_json(&self) -> Option<String> {
        self.inner.config_json().map(str::to_string)
    }

    /// "qwen2" or "gpt2".
    #[getter]
    fn pattern(&self) -> &'static str {
        match self.inner.pattern() {
            pretok::Pattern::Qwen2 => "qwen2",
            pretok::Pattern::Gpt2 => "gpt2",
        }
    }

    /// Token string -> id for every token, added ones included.
    fn get_vocab<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for id in 0..self.inner.vocab_size() as u32 {
            if let Some(t) = self.inner.id_to_token(id) {
                d.set_item(t, id)?;
            }
        }
        Ok(d)
    }

    /// The pre-tokens of `text` (after NFC, if the tokenizer normalises).
    fn pre_tokenize(&self, text: &str) -> Vec<String> {
        let norm = if self.inner.nfc() {
            qwen25_core::tokenizer::nfc(text)
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        pretok::split(&norm, self.inner.pattern())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    fn save_pretrained(&self, py: Python<'_>, dir: PathBuf) -> PyResult<()> {
        call::job(py, || save::save_pretrained(&self.inner, &dir))
    }
}

/// Streaming decoder over a tokenizer.
#[pyclass(module = "qwen25._native", name = "IncrementalDecoder")]
pub struct IncrementalDecoder {
    tok: Py<Tokenizer>,
    skip_special_tokens: bool,
    state: Mutex<CoreDecoder>,
}

#[pymethods]
impl IncrementalDecoder {
    #[new]
    #[pyo3(signature = (tokenizer, skip_special_tokens=false))]
    fn new(tokenizer: Py<Tokenizer>, skip_special_tokens: bool) -> Self {
        IncrementalDecoder {
            tok: tokenizer,
            skip_special_tokens,
            state: Mutex::new(CoreDecoder::new()),
        }
    }

    /// Feed ids; returns the text completed by them (possibly "").
    fn step(&self, py: Python<'_>, ids: Vec<i64>) -> PyResult<String> {
        let tok = self.tok.bind(py).get();
        let ids = ids_u32(ids, &tok.inner)?;
        let mut st = call::lock_any(&self.state);
        st.step(&tok.inner, &ids, self.skip_special_tokens).py_err()
    }

    /// End of stream: the pending bytes, incomplete characters replaced by U+FFFD.
    fn flush(&self) -> String {
        call::lock_any(&self.state).flush()
    }

    /// Number of bytes held back.
    #[getter]
    fn pending(&self) -> usize {
        call::lock_any(&self.state).pending().len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Tokenizer>()?;
    m.add_class::<IncrementalDecoder>()?;
    m.add("QWEN2_PATTERN", pretok::QWEN2_REGEX)?;
    m.add("GPT2_PATTERN", pretok::GPT2_REGEX)?;
    m.add("EMBEDDED_QWEN25_CONFIG", load::embedded_qwen25_config())?;
    Ok(())
}

/// The ids of `strs` as one little-endian uint32 buffer, and uint64 offsets (n + 1).
fn flat_ids(
    tok: &CoreTokenizer,
    strs: &[&str],
    allowed: &[bool],
    disallowed: &[bool],
    n: usize,
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let parts = parallel::map(strs, n, |t| tok.encode(t, allowed, disallowed));
    let total: usize = parts
        .iter()
        .map(|p| p.as_ref().map(|v| v.len()).unwrap_or(0))
        .sum();
    let mut flat = Vec::with_capacity(total * 4);
    let mut offsets = Vec::with_capacity((parts.len() + 1) * 8);
    let mut at = 0u64;
    offsets.extend_from_slice(&at.to_le_bytes());
    for p in parts {
        let p = p?;
        for id in &p {
            flat.extend_from_slice(&id.to_le_bytes());
        }
        at += p.len() as u64;
        offsets.extend_from_slice(&at.to_le_bytes());
    }
    Ok((flat, offsets))
}
