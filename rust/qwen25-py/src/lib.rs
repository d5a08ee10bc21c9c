//! `qwen25._native`: the thin PyO3 layer over `qwen25-core`. One file per core area; inputs are
//! extracted into owned or borrowed Rust values, the GIL is released once around the whole job
//! and every error goes through `errors::to_pyerr`, all by the one helper in [`call`].

mod call;
mod convert;
mod decontam;
mod errors;
mod io;
mod tokenizer;
mod train;
// data pipeline (issue 4)
mod classify;
mod dedup;
mod filter;
mod pack;

use pyo3::prelude::*;

/// Called from an `os.register_at_fork` hook: a forked child runs everything serially.
#[pyfunction]
fn _set_forked() {
    qwen25_core::parallel::set_forked();
}

/// The thread count a call with `num_threads` would use.
#[pyfunction]
#[pyo3(signature = (num_threads=None))]
fn effective_threads(num_threads: Option<usize>) -> usize {
    qwen25_core::parallel::threads(num_threads)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(_set_forked, m)?)?;
    m.add_function(wrap_pyfunction!(effective_threads, m)?)?;
    tokenizer::register(m)?;
    train::register(m)?;
    decontam::register(m)?;
    dedup::register(m)?;
    classify::register(m)?;
    filter::register(m)?;
    pack::register(m)?;
    io::register(m)?;
    Ok(())
}
