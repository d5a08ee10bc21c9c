//! Heuristic quality filters: Gopher repetition, Gopher quality, C4 and FineWeb's three extra
//! filters, in that order (FineWeb's), each datatrove 0.10.1's definition with its default
//! thresholds; decisions equal datatrove's on real prose and code
//! (tests/parity/test_filters_datatrove.py). Words are datatrove's English words, spaCy's
//! tokenizer rules ported in [`spacy`]; C4 counts sentences with spaCy's sentencizer rule.
//!
//! Deliberate differences are options ([`Words::Simple`], [`LineSplit::Splitlines`],
//! [`Sentences::Simple`], any threshold), documented where they are defined (`config.rs`).
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
pub mod spacy;
mod spacy_data;
mod table;
pub mod text;

use std::borrow::Cow;

pub use c4::{c4, count_sentences};
pub use config::{
    C4Config, FilterConfig, FineWebConfig, GopherQualityConfig, GopherRepetitionConfig,
};
pub use config::{LineSplit, Sentences, Words};
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

/// Whether `c` is in datatrove's `PUNCTUATION_SET` (`PUNCTUATION` plus `TERMINAL_PUNCTUATION`):
/// a word made only of these is a symbol for Gopher quality.
pub(crate) fn is_datatrove_punct(c: char) -> bool {
    let u = c as u32;
    if c.is_ascii() {
        return c.is_ascii_punctuation() || u < 9 || (11..32).contains(&u) || u == 127;
    }
    if (128..160).contains(&u) {
        return true;
    }
    static SET: std::sync::OnceLock<rustc_hash::FxHashSet<char>> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        spacy_data::PUNCTUATION
            .chars()
            .chain(spacy_data::TERMINAL_PUNCTUATION.iter().copied())
            .collect()
    })
    .contains(&c)
}

/// Whether `c` is in datatrove's `PUNCTUATION` string (what its `simplify_text` turns into
/// spaces for MinHash).
pub(crate) fn in_datatrove_punctuation(c: char) -> bool {
    static SET: std::sync::OnceLock<rustc_hash::FxHashSet<char>> = std::sync::OnceLock::new();
    SET.get_or_init(|| spacy_data::PUNCTUATION.chars().collect())
        .contains(&c)
}

/// The words of `text` under `mode`.
pub fn words_of(text: &str, mode: Words) -> Vec<&str> {
    match mode {
        Words::Spacy => spacy::words(text),
        Words::Simple => text::words(text),
    }
}
