//! qwen25-core: the pure-Rust engine of qwen25. No Python here: `cargo test -p qwen25-core`
//! runs without an interpreter. The PyO3 binding lives in `rust/qwen25-py`.

pub mod decontam;
pub mod error;
pub mod io;
pub mod lcg;
pub mod parallel;
pub mod tokenizer;
pub mod unicode;
// data pipeline (issue 4)
pub mod classify;
pub mod dedup;
pub mod filter;
pub mod pack;

pub use error::{Error, Result};
