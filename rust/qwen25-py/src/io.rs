//! Binding of `qwen25_core::io`: the record reader (batches whose raw lines stay in Rust until
//! written) and the atomic writer, both digesting the files' bytes for resume, and the digest of
//! an existing file. `qwen25/data/records.py` wraps them; nothing else uses them.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use qwen25_core::io::{
    digest, AtomicWriter, Batch, BatchStream, Digests, Item, ReadOptions, Rules, Utf8, Written,
};
use qwen25_core::{parallel, Error};

use crate::call::{bad_value, job, run};

fn busy<'a, T>(m: &'a Mutex<T>, what: &str) -> PyResult<MutexGuard<'a, T>> {
    match m.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(format!(
            "{what} is in use by another thread"
        ))),
    }
}

/// A Python `bytes` object's contents, handed to the writer thread without a copy: `bytes` is
/// immutable and the reference keeps it alive; dropped off the GIL, the reference is released by
/// pyo3's pool the next time the GIL is held.
struct SharedBytes {
    _owner: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the pointer is into an immutable object this struct keeps alive; reading it needs no GIL.
unsafe impl Send for SharedBytes {}

impl SharedBytes {
    fn new(b: Bound<'_, PyBytes>) -> Self {
        let s = b.as_bytes();
        let (ptr, len) = (s.as_ptr(), s.len());
        SharedBytes {
            _owner: b.unbind(),
            ptr,
            len,
        }
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr`/`len` are the contents of `_owner`, alive and unchanged while it is held
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Up to `batch_size` records of one file, with the bad lines met on the way.
#[pyclass(module = "qwen25._native", name = "RecordBatch", frozen)]
pub struct RecordBatch {
    b: Arc<Batch>,
}

impl RecordBatch {
    /// The batch as the core holds it (for the bindings that consume records without Python
    /// strings, e.g. `Decontaminator.check_records`).
    pub(crate) fn batch(&self) -> &Batch {
        &self.b
    }
}

#[pymethods]
impl RecordBatch {
    fn __len__(&self) -> usize {
        self.b.len()
    }

    /// The records' texts (str), or token ids (list[int]) where the reader allows them.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for it in &self.b.items {
            match it {
                Item::Text(s) => list.append(s.as_str())?,
                Item::Ids(v) => list.append(v.clone())?,
            }
        }
        Ok(list)
    }

    /// Per record, the raw JSON text of the reader's `extra_field` (the last of duplicate keys;
    /// None when absent); None for each record when the reader has no extra field.
    fn extras(&self) -> Vec<Option<String>> {
        if self.b.extras.len() == self.b.len() {
            self.b.extras.clone()
        } else {
            vec![None; self.b.len()]
        }
    }

    /// 1-based line number of each record.
    #[getter]
    fn lines(&self) -> Vec<usize> {
        self.b.lines.clone()
    }

    /// Index of each record among the file's non-blank lines (bad ones included), from 0.
    #[getter]
    fn records(&self) -> Vec<usize> {
        self.b.records.clone()
    }

    /// `(line, record, reason, raw line without its ending)` per bad line (only with skip_bad).
    #[getter]
    fn bad<'py>(&self, py: Python<'py>) -> Vec<(usize, usize, String, Bound<'py, PyBytes>)> {
        self.b
            .bad
            .iter()
            .map(|x| (x.line, x.record, x.reason.clone(), PyBytes::new(py, &x.raw)))
            .collect()
    }

    /// `(line, records_before, reason)` where a compressed file became unreadable (skip_bad).
    #[getter]
    fn damage(&self) -> Option<(usize, usize, String)> {
        self.b
            .damage
            .as_ref()
            .map(|d| (d.line, d.records_before, d.reason.clone()))
    }

    /// Bytes of the lines read (decompressed), blank and bad ones included.
    #[getter]
    fn nbytes(&self) -> u64 {
        self.b.nbytes
    }

    /// Blank lines met.
    #[getter]
    fn blank(&self) -> u64 {
        self.b.blank
    }

    /// Record `i`'s line as read, with its ending (`\n` added to a last line without one).
    fn raw<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyBytes>> {
        if i >= self.b.len() {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "record {i} of a batch of {}",
                self.b.len()
            )));
        }
        Ok(PyBytes::new(py, self.b.raw(i)))
    }
}

/// A JSONL file (plain, .gz, .zst; "-" is standard input) read in batches on a background thread.
#[pyclass(module = "qwen25._native", name = "RecordReader", frozen)]
pub struct RecordReader {
    inner: Mutex<Option<BatchStream>>,
    digests: Mutex<Digests>,
}

#[pymethods]
impl RecordReader {
    #[new]
    #[pyo3(signature = (path, field="text", *, skip_bad=false, encoding_errors="strict", batch_size=2048, allow_ids=false, hash=false, blake2b=false, extra_field=None, num_threads=None, gz_blocks=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: String,
        field: &str,
        skip_bad: bool,
        encoding_errors: &str,
        batch_size: usize,
        allow_ids: bool,
        hash: bool,
        blake2b: bool,
        extra_field: Option<String>,
        num_threads: Option<usize>,
        gz_blocks: bool,
    ) -> PyResult<Self> {
        let utf8 = match encoding_errors {
            "strict" => Utf8::Strict,
            "replace" => Utf8::Replace,
            other => {
                return Err(bad_value(format!(
                    "encoding_errors must be 'strict' or 'replace', not {other:?}"
                )))
            }
        };
        if batch_size == 0 {
            return Err(bad_value("batch_size must be >= 1"));
        }
        let opts = ReadOptions {
            rules: Rules {
                field: field.to_string(),
                utf8,
                allow_ids,
            },
            skip_bad,
            batch_size,
            hash,
            blake2b,
            extra_field,
            threads: parallel::threads(num_threads),
            gz_blocks,
        };
        let s = job(py, || BatchStream::open(&path, opts))?;
        Ok(RecordReader {
            inner: Mutex::new(Some(s)),
            digests: Mutex::new(Digests::default()),
        })
    }

    /// The next batch, or None after the last. Errors (a bad line without skip_bad, a damaged
    /// compressed file, an unreadable file) are raised here, in order.
    fn next_batch(&self, py: Python<'_>) -> PyResult<Option<RecordBatch>> {
        let mut g = busy(&self.inner, "this RecordReader")?;
        let Some(s) = g.as_mut() else {
            return Ok(None);
        };
        let r = job(py, || match s.next_batch() {
            Ok(Some(b)) => Ok(Ok(b)),
            Ok(None) => s.finish().map(Err),
            Err(e) => Err(e),
        });
        match r {
            Ok(Ok(b)) => Ok(Some(RecordBatch { b: Arc::new(b) })),
            Ok(Err(digests)) => {
                *g = None;
                *busy(&self.digests, "this RecordReader")? = digests;
                Ok(None)
            }
            Err(e) => {
                *g = None; // the stream ends at its first error
                Err(e)
            }
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<RecordBatch>> {
        self.next_batch(py)
    }

    /// The digest (`digest_algorithm`, hex) of every byte of the file as stored, once read to the
    /// end (with hash=True).
    #[getter]
    fn digest(&self) -> PyResult<Option<String>> {
        Ok(busy(&self.digests, "this RecordReader")?.digest.clone())
    }

    /// BLAKE2b-128 (hex, as `hashlib.blake2b(data, digest_size=16)`) of every byte of the file as
    /// stored, once read to the end (with blake2b=True).
    #[getter]
    fn blake2b(&self) -> PyResult<Option<String>> {
        Ok(busy(&self.digests, "this RecordReader")?.blake2b.clone())
    }

    /// Stop reading (the background thread ends).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let s = busy(&self.inner, "this RecordReader")?.take();
        py.detach(|| drop(s));
        Ok(())
    }
}

/// An output file written under `.tmp-<name>` and renamed by `commit()`; compressed by its
/// suffix (`.gz` at `compress_level`, `.zst`) on a background thread.
#[pyclass(module = "qwen25._native", name = "RecordWriter", frozen)]
pub struct RecordWriter {
    path: String,
    inner: Mutex<Option<AtomicWriter>>,
    written: Mutex<Option<Written>>,
}

impl RecordWriter {
    fn send(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut AtomicWriter) -> Result<(), Error> + Send,
    ) -> PyResult<()> {
        let mut g = busy(&self.inner, "this RecordWriter")?;
        let Some(w) = g.as_mut() else {
            return Err(bad_value(format!(
                "{}: written after commit or abort",
                self.path
            )));
        };
        let r = job(py, || f(w));
        if r.is_err() {
            *g = None; // the temporary file is already gone
        }
        r
    }
}

#[pymethods]
impl RecordWriter {
    #[new]
    #[pyo3(signature = (path, compress_level=6, num_threads=None, *, source=None))]
    fn new(
        py: Python<'_>,
        path: String,
        compress_level: u32,
        num_threads: Option<usize>,
        source: Option<String>,
    ) -> PyResult<Self> {
        let w = run(py, num_threads, |n| match &source {
            Some(src) => AtomicWriter::create_spliced(&path, compress_level, n, src),
            None => AtomicWriter::create(&path, compress_level, n),
        })?;
        Ok(RecordWriter {
            path,
            inner: Mutex::new(Some(w)),
            written: Mutex::new(None),
        })
    }

    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Append bytes (not copied: the writer thread writes them from the bytes object).
    fn write(&self, py: Python<'_>, data: Bound<'_, PyBytes>) -> PyResult<()> {
        let buf = SharedBytes::new(data);
        self.send(py, move |w| w.write_owned(buf))
    }

    /// Whether the writer is done (committed or aborted): with `tell`, `flush` and `writable`,
    /// enough of a binary file for writers that take one (pyarrow's `PythonFile`).
    #[getter]
    fn closed(&self) -> PyResult<bool> {
        Ok(busy(&self.inner, "this RecordWriter")?.is_none())
    }

    /// Bytes given to `write` so far (before compression); an error once committed or aborted.
    fn tell(&self) -> PyResult<u64> {
        match busy(&self.inner, "this RecordWriter")?.as_ref() {
            Some(w) => Ok(w.written()),
            None => Err(bad_value(format!(
                "{}: tell after commit or abort",
                self.path
            ))),
        }
    }

    /// No-op (bytes are queued to the writer thread; `commit` finishes them).
    fn flush(&self) {}

    fn writable(&self) -> bool {
        true
    }

    /// Append the raw lines of the batch's records `i` with `bool(pick[i]) == want`.
    #[pyo3(signature = (batch, pick, want=true))]
    fn write_selected(
        &self,
        py: Python<'_>,
        batch: &RecordBatch,
        pick: Vec<bool>,
        want: bool,
    ) -> PyResult<()> {
        if pick.len() != batch.b.len() {
            return Err(bad_value(format!(
                "pick has {} entries for a batch of {} records",
                pick.len(),
                batch.b.len()
            )));
        }
        let b = Arc::clone(&batch.b);
        self.send(py, move |w| w.write_selected(b, pick, want))
    }

    /// After commit: the final file's digest (`digest_algorithm`, hex, of its bytes as stored:
    /// compressed), computed as they were written; None before.
    #[getter]
    fn digest(&self) -> PyResult<Option<String>> {
        Ok(busy(&self.written, "this RecordWriter")?
            .as_ref()
            .map(|w| w.digest.clone()))
    }

    /// After commit: the final file's size in bytes; None before.
    #[getter]
    fn size(&self) -> PyResult<Option<u64>> {
        Ok(busy(&self.written, "this RecordWriter")?
            .as_ref()
            .map(|w| w.size))
    }

    /// Finish, rename to the final name; the final file's size in bytes.
    fn commit(&self, py: Python<'_>) -> PyResult<u64> {
        let w = busy(&self.inner, "this RecordWriter")?.take();
        let Some(w) = w else {
            return Err(bad_value(format!(
                "{}: committed after commit or abort",
                self.path
            )));
        };
        let done = job(py, || w.commit())?;
        let size = done.size;
        *busy(&self.written, "this RecordWriter")? = Some(done);
        Ok(size)
    }

    /// Give up: the temporary file is removed (no-op after commit).
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let w = busy(&self.inner, "this RecordWriter")?.take();
        if let Some(w) = w {
            py.detach(|| w.abort());
        }
        Ok(())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let live = busy(&self.inner, "this RecordWriter")?.is_some();
        if exc_type.is_some_and(|t| !t.is_none()) || !live {
            self.abort(py)?;
        } else {
            self.commit(py)?;
        }
        Ok(false)
    }
}

/// A running digest of bytes (`digest_algorithm`), for fingerprints of data held in memory.
#[pyclass(module = "qwen25._native", name = "Digest")]
pub struct PyDigest(digest::Digest);

#[pymethods]
impl PyDigest {
    #[new]
    fn new() -> Self {
        PyDigest(digest::Digest::new())
    }

    fn update(&mut self, py: Python<'_>, data: &[u8]) {
        crate::call::detach_if(py, data.len() >= 1 << 20, || self.0.update(data));
    }

    fn hexdigest(&self) -> String {
        self.0.hex()
    }
}

/// The digest (`digest_algorithm`, hex) of the file at `path`, streamed with the GIL released.
#[pyfunction]
fn file_digest(py: Python<'_>, path: String) -> PyResult<String> {
    job(py, || digest::file_digest(&path).map(|(_, d)| d))
}

/// As `file_digest`, but a file this process committed through a `RecordWriter` and nobody has
/// changed since (device, inode, size, modification and change times) is not read again: its
/// digest is the one the writer computed.
#[pyfunction]
fn output_digest(py: Python<'_>, path: String) -> PyResult<String> {
    job(py, || digest::output_digest(&path).map(|(_, d)| d))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("digest_algorithm", digest::ALGORITHM)?;
    m.add_class::<PyDigest>()?;
    m.add_function(wrap_pyfunction!(file_digest, m)?)?;
    m.add_function(wrap_pyfunction!(output_digest, m)?)?;
    m.add_class::<RecordBatch>()?;
    m.add_class::<RecordReader>()?;
    m.add_class::<RecordWriter>()?;
    Ok(())
}
