//! Heuristic quality filters: Gopher repetition, Gopher quality, C4 and FineWeb's three extra
//! filters, in that order (FineWeb's), with the thresholds of datatrove's defaults except
//! FineWeb's duplicated-line-character ratio, pinned at 0.1 as FineWeb ran it.
//!
//! Each check mirrors datatrove's definition, with two stated departures (no NLTK in Rust):
//! - words come from [`text::words`] (whitespace split, leading/trailing punctuation peeled off)
//!   instead of NLTK's `word_tokenize`;
//! - C4's sentence count splits a line after a run of `.!?` (plus closing quotes/brackets)
//!   followed by whitespace, instead of NLTK's punkt `sent_tokenize`.
//!
//! A whitespace-only document is dropped first with filter "empty" (datatrove would divide by
//! zero). Every document gets the statistics each filter computed until it decided, and a
//! dropped one names the filter and the reason (datatrove's reason strings).

mod c4;
mod config;
mod dups;
mod fineweb;
mod gopher_quality;
mod gopher_repetition;
mod ngrams;
mod run;
mod table;
pub mod text;

use std::borrow::Cow;

pub use c4::{c4, count_sentences};
pub use config::{
    C4Config, FilterConfig, FineWebConfig, GopherQualityConfig, GopherRepetitionConfig,
};
pub use fineweb::fineweb;
pub use gopher_quality::gopher_quality;
pub use gopher_repetition::gopher_repetition;
pub use run::{apply, apply_batch};

/// The outcome for one document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FilterResult {
    pub keep: bool,
    /// The filter that dropped it ("empty", "gopher_repetition", "gopher_quality", "c4", "fineweb").
    pub filter: Option<&'static str>,
    /// datatrove's reason string.
    pub reason: Option<String>,
    /// (name, value) statistics, prefixed by filter.
    pub stats: Stats,
    /// The text after C4's line removal, when it changed.
    pub text: Option<String>,
}

type Verdict = std::result::Result<(), String>;

/// (name, value) statistics; names are static except for unusual n-gram sizes.
pub type Stats = Vec<(Cow<'static, str>, f64)>;

fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b as f64
}

/// An empty `Vec<&str>` that reuses the memory of `v` (left empty); [`give_back`] returns it.
fn reuse<'a>(v: &mut Vec<&'static str>) -> Vec<&'a str> {
    let mut v = std::mem::take(v);
    v.clear();
    // an in-place collect (same element layout): no allocation
    v.into_iter().map(|s| -> &'a str { s }).collect()
}

fn give_back(v: Vec<&str>, into: &mut Vec<&'static str>) {
    let mut v = v;
    v.clear();
    *into = v.into_iter().map(|_| "").collect();
}
