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

pub mod text;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::parallel;
use rustc_hash::FxHashMap;
use text::{clen, is_alpha, is_punct_or_symbol, py_split, py_strip, splitlines, words};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GopherQualityConfig {
    pub min_doc_words: Option<usize>,
    pub max_doc_words: Option<usize>,
    pub min_avg_word_length: Option<f64>,
    pub max_avg_word_length: Option<f64>,
    pub max_symbol_word_ratio: Option<f64>,
    pub max_bullet_lines_ratio: Option<f64>,
    pub max_ellipsis_lines_ratio: Option<f64>,
    pub max_non_alpha_words_ratio: Option<f64>,
    pub min_stop_words: Option<usize>,
    pub stop_words: Vec<String>,
}

impl Default for GopherQualityConfig {
    fn default() -> Self {
        GopherQualityConfig {
            min_doc_words: Some(50),
            max_doc_words: Some(100_000),
            min_avg_word_length: Some(3.0),
            max_avg_word_length: Some(10.0),
            max_symbol_word_ratio: Some(0.1),
            max_bullet_lines_ratio: Some(0.9),
            max_ellipsis_lines_ratio: Some(0.3),
            max_non_alpha_words_ratio: Some(0.8),
            min_stop_words: Some(2),
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GopherRepetitionConfig {
    pub dup_line_frac: Option<f64>,
    pub dup_para_frac: Option<f64>,
    pub dup_line_char_frac: Option<f64>,
    pub dup_para_char_frac: Option<f64>,
    pub top_n_grams: Vec<(usize, f64)>,
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetitionConfig {
    fn default() -> Self {
        GopherRepetitionConfig {
            dup_line_frac: Some(0.3),
            dup_para_frac: Some(0.3),
            dup_line_char_frac: Some(0.2),
            dup_para_char_frac: Some(0.2),
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10),
            ],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct C4Config {
    pub remove_citations: bool,
    pub filter_no_terminal_punct: bool,
    /// -1 disables
    pub min_num_sentences: i64,
    /// -1 disables
    pub min_words_per_line: i64,
    /// -1 disables
    pub max_word_length: i64,
    pub filter_lorem_ipsum: bool,
    pub filter_javascript: bool,
    pub filter_curly_bracket: bool,
    pub filter_policy: bool,
}

impl Default for C4Config {
    fn default() -> Self {
        C4Config {
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: 5,
            min_words_per_line: 3,
            max_word_length: 1000,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FineWebConfig {
    pub line_punct_thr: f64,
    pub line_punct_exclude_zero: bool,
    pub short_line_thr: f64,
    pub short_line_length: usize,
    pub char_duplicates_ratio: f64,
    pub new_line_ratio: f64,
}

impl Default for FineWebConfig {
    fn default() -> Self {
        FineWebConfig {
            line_punct_thr: 0.12,
            line_punct_exclude_zero: false,
            short_line_thr: 0.67,
            short_line_length: 30,
            char_duplicates_ratio: 0.1,
            new_line_ratio: 0.3,
        }
    }
}

/// Which filters run, with their thresholds (`None` switches a filter off).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    pub gopher_repetition: Option<GopherRepetitionConfig>,
    pub gopher_quality: Option<GopherQualityConfig>,
    pub c4: Option<C4Config>,
    pub fineweb: Option<FineWebConfig>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            gopher_repetition: Some(Default::default()),
            gopher_quality: Some(Default::default()),
            c4: Some(Default::default()),
            fineweb: Some(Default::default()),
        }
    }
}

impl FilterConfig {
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error::Value(format!("bad filter config: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

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

fn top_name(n: usize) -> Cow<'static, str> {
    const T: [&str; 11] = [
        "",
        "gopher_repetition.top_1_gram",
        "gopher_repetition.top_2_gram",
        "gopher_repetition.top_3_gram",
        "gopher_repetition.top_4_gram",
        "gopher_repetition.top_5_gram",
        "gopher_repetition.top_6_gram",
        "gopher_repetition.top_7_gram",
        "gopher_repetition.top_8_gram",
        "gopher_repetition.top_9_gram",
        "gopher_repetition.top_10_gram",
    ];
    match T.get(n) {
        Some(s) if n > 0 => Cow::Borrowed(s),
        _ => Cow::Owned(format!("gopher_repetition.top_{n}_gram")),
    }
}

fn dup_name(n: usize) -> Cow<'static, str> {
    const T: [&str; 11] = [
        "",
        "gopher_repetition.duplicated_1_n_grams",
        "gopher_repetition.duplicated_2_n_grams",
        "gopher_repetition.duplicated_3_n_grams",
        "gopher_repetition.duplicated_4_n_grams",
        "gopher_repetition.duplicated_5_n_grams",
        "gopher_repetition.duplicated_6_n_grams",
        "gopher_repetition.duplicated_7_n_grams",
        "gopher_repetition.duplicated_8_n_grams",
        "gopher_repetition.duplicated_9_n_grams",
        "gopher_repetition.duplicated_10_n_grams",
    ];
    match T.get(n) {
        Some(s) if n > 0 => Cow::Borrowed(s),
        _ => Cow::Owned(format!("gopher_repetition.duplicated_{n}_n_grams")),
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b as f64
}

/// Whether each string equals an earlier one (datatrove's `find_duplicates` counts those), with
/// memory kept from one call to the next: open addressing of (hash, index of the first
/// occurrence), the strings compared on equal hashes.
#[derive(Default)]
struct DupTable {
    slots: Vec<(u64, usize)>,
}

impl DupTable {
    /// `dup[i]`: whether `xs[i]` equals one of `xs[..i]`.
    fn flags(&mut self, xs: &[&str], dup: &mut Vec<bool>) {
        use std::hash::BuildHasher;
        let cap = (2 * xs.len()).next_power_of_two().max(16);
        self.slots.clear();
        self.slots.resize(cap, (0, usize::MAX));
        let (mask, shift) = (cap - 1, 64 - cap.trailing_zeros());
        dup.clear();
        for (j, x) in xs.iter().enumerate() {
            let h = rustc_hash::FxBuildHasher.hash_one(x);
            let mut i = (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize;
            let d = loop {
                let (kh, k) = self.slots[i];
                if k == usize::MAX {
                    self.slots[i] = (h, j);
                    break false;
                }
                if kh == h && xs.get(k) == Some(x) {
                    break true;
                }
                i = (i + 1) & mask;
            };
            dup.push(d);
        }
    }
}

/// (duplicate elements, duplicate chars) as datatrove's `find_duplicates`, from the flags.
fn dup_counts(xs: &[&str], dup: &[bool]) -> (usize, usize) {
    let (mut n, mut chars) = (0, 0);
    for (x, &d) in xs.iter().zip(dup) {
        if d {
            n += 1;
            chars += clen(x);
        }
    }
    (n, chars)
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

/// Buffers one thread reuses from one document to the next (each is cleared before use, so
/// nothing carries over between documents).
#[derive(Default)]
struct Scratch {
    ws: Interned,
    masks: text::AsciiMasks,
    lines: Vec<&'static str>,
    fw_lines: Vec<&'static str>,
    dups: DupBufs,
    lower: Vec<u8>,
}

/// (n-1)-gram id and next word id -> n-gram id: open addressing with linear probing, sized to at
/// most half full, no deletions; `reset` empties it for the next level.
#[derive(Default)]
struct PairTable {
    keys: Vec<u64>,
    vals: Vec<u32>,
    shift: u32,
}

/// Never a key: a key is (n-gram id << 32 | word id), and ids are below the number of words.
const EMPTY: u64 = u64::MAX;

impl PairTable {
    /// Room for `n` keys.
    fn reset(&mut self, n: usize) {
        let cap = (2 * n).next_power_of_two().max(16);
        self.keys.clear();
        self.keys.resize(cap, EMPTY);
        self.vals.resize(cap, 0);
        self.shift = 64 - cap.trailing_zeros();
    }

    /// The id of `key`, a fresh one (`*next`, then incremented) when it is new.
    #[inline]
    fn id(&mut self, key: u64, next: &mut u32) -> u32 {
        let mask = self.keys.len() - 1;
        let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
        loop {
            let k = self.keys[i];
            if k == key {
                return self.vals[i];
            }
            if k == EMPTY {
                self.keys[i] = key;
                self.vals[i] = *next;
                *next += 1;
                return *next - 1;
            }
            i = (i + 1) & mask;
        }
    }
}

/// Words as interned ids with char lengths; n-grams get ids level by level (the id of the n-gram
/// at i interns the pair (id of the (n-1)-gram at i, id of word i+n-1)), so equal ids <=> equal
/// n-grams (words hold no whitespace, so that is also equality of the space-joined strings).
/// An n-gram known to occur once (so are all longer ones starting there) leaves the `live` list
/// and is never looked at again: it counts 1 wherever it is.
///
/// Kept across the documents a thread filters (see [`Scratch`]) so that its buffers are reused;
/// every field is cleared or overwritten when the next document is interned.
#[derive(Default)]
struct Interned {
    /// ids of the n-grams at the current level, by start position; meaningful at `live` ones
    grams: Vec<u32>,
    /// start positions (ascending) of n-grams that may occur more than once
    live: Vec<u32>,
    /// number of n-grams at the current level
    len: usize,
    n: usize,
    words: Vec<u32>,
    /// number of distinct words
    n_words: usize,
    /// prefix[i] = total chars of words[..i]
    prefix: Vec<usize>,
    /// ids at the current level are < n_ids
    n_ids: usize,
    map: PairTable,
    /// per distinct word: chars, and the Gopher quality flags (bit 0 non-symbol, 1 alpha, 2 stop)
    wchars: Vec<u32>,
    wflags: Vec<u8>,
    /// per distinct word: occurrences
    wcount: Vec<u32>,
    /// per id at the current level: occurrences at `live` positions (then equal to the
    /// n-gram's count whenever it is above 1)
    count: Vec<u32>,
    /// the next level's `count`, built as its ids are handed out
    count_next: Vec<u32>,
    /// per id: seen yet ([`find_all_duplicate`])
    seen: Vec<bool>,
    /// words of up to 15 bytes, keyed by their bytes and length (exact), to their ids
    table: WordTable,
    /// the keys of the stop words
    stop_keys: Vec<(u64, u64)>,
}

const NON_SYM: u8 = 1;
const ALPHA: u8 = 2;
const STOP: u8 = 4;

fn word_flags(w: &str, stop_words: &[String]) -> u8 {
    let (mut non_sym, mut alpha) = (false, false);
    if w.is_ascii() {
        for b in w.bytes() {
            non_sym |= !b.is_ascii_punctuation();
            alpha |= b.is_ascii_alphabetic();
        }
    } else {
        for ch in w.chars() {
            non_sym |= !is_punct_or_symbol(ch);
            alpha |= is_alpha(ch);
        }
    }
    let stop = stop_words.iter().any(|s| s == w);
    (if non_sym { NON_SYM } else { 0 })
        | (if alpha { ALPHA } else { 0 })
        | (if stop { STOP } else { 0 })
}

/// The 8 bytes of `b` from `p` as a little-endian u64, zeros past the end.
#[inline(always)]
fn load8(b: &[u8], p: usize) -> u64 {
    match b.get(p..p + 8) {
        Some(s) => {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(s);
            u64::from_le_bytes(buf)
        }
        None => {
            let mut buf = [0u8; 8];
            let t = b.get(p..).unwrap_or(&[]);
            let k = t.len().min(8);
            buf[..k].copy_from_slice(&t[..k]);
            u64::from_le_bytes(buf)
        }
    }
}

/// The low `k` bytes (k <= 8).
#[inline(always)]
fn low_bytes(x: u64, k: usize) -> u64 {
    if k >= 8 {
        x
    } else {
        x & ((1u64 << (8 * k)) - 1)
    }
}

/// The exact key of the word `b[s..e]` when it has 1 to 15 bytes: (bytes 0..8, bytes 8..15 with
/// the length in the top byte).
#[inline(always)]
fn word_key(b: &[u8], s: usize, e: usize) -> Option<(u64, u64)> {
    let l = e - s;
    if l == 0 || l > 15 {
        return None;
    }
    let lo = low_bytes(load8(b, s), l);
    let hi = if l > 8 {
        low_bytes(load8(b, s + 8), l - 8)
    } else {
        0
    };
    Some((lo, hi | (l as u64) << 56))
}

/// Open addressing (linear probing, at most half full) from word keys to ids.
#[derive(Default)]
struct WordTable {
    slots: Vec<(u64, u64, u32)>,
    shift: u32,
    used: usize,
}

/// Never the second half of a word key (its top byte holds a length below 16).
const NO_WORD: u64 = u64::MAX;

impl WordTable {
    /// Empty, with room for about `n` keys.
    fn reset(&mut self, n: usize) {
        let cap = (2 * n).next_power_of_two().max(64);
        self.slots.clear();
        self.slots.resize(cap, (0, NO_WORD, 0));
        self.shift = 64 - cap.trailing_zeros();
        self.used = 0;
    }

    #[inline(always)]
    fn slot(&self, lo: u64, hi: u64) -> usize {
        ((lo ^ hi.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.reset(old.len());
        let mask = self.slots.len() - 1;
        for (lo, hi, id) in old {
            if hi == NO_WORD {
                continue;
            }
            let mut i = self.slot(lo, hi);
            while self.slots[i].1 != NO_WORD {
                i = (i + 1) & mask;
            }
            self.slots[i] = (lo, hi, id);
            self.used += 1;
        }
    }

    /// The id of the key, or `next` (then stored) when it is new.
    #[inline(always)]
    fn id(&mut self, lo: u64, hi: u64, next: u32) -> u32 {
        if 2 * (self.used + 1) > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(lo, hi);
        loop {
            let (klo, khi, id) = self.slots[i];
            if khi == hi && klo == lo {
                return id;
            }
            if khi == NO_WORD {
                self.slots[i] = (lo, hi, next);
                self.used += 1;
                return next;
            }
            i = (i + 1) & mask;
        }
    }
}

impl Interned {
    fn new(ws: &[&str], stop_words: &[String]) -> Self {
        let mut s = Interned::default();
        s.fill_words(ws, stop_words);
        s
    }

    /// Start a document of about `n` words, `distinct` of them distinct.
    fn begin(&mut self, n: usize, distinct: usize) {
        self.words.clear();
        self.words.reserve(n);
        self.prefix.clear();
        self.prefix.reserve(n + 1);
        self.prefix.push(0);
        self.wchars.clear();
        self.wflags.clear();
        self.wcount.clear();
        self.table.reset(distinct);
    }

    /// Append a word (with `chars` chars) whose id is `id`; `id == n_distinct` when new, then
    /// `flags` gives its [`word_flags`].
    #[inline(always)]
    fn add(&mut self, id: u32, chars: usize, flags: impl FnOnce() -> u8) {
        if id as usize == self.wchars.len() {
            self.wchars.push(chars as u32);
            self.wflags.push(flags());
            self.wcount.push(0);
        }
        if let Some(c) = self.wcount.get_mut(id as usize) {
            *c += 1;
        }
        self.words.push(id);
        let total = self.prefix.last().copied().unwrap_or(0) + chars;
        self.prefix.push(total);
    }

    /// The words are in: set up level 1.
    fn end(&mut self) {
        self.n_words = self.wchars.len();
        self.level1();
    }

    /// Level 1: the words; live where a word occurs more than once.
    fn level1(&mut self) {
        let count = &self.wcount;
        self.grams.clear();
        self.grams.extend_from_slice(&self.words);
        self.live.clear();
        self.live.extend(
            (0..self.words.len() as u32).filter(|&p| count[self.words[p as usize] as usize] > 1),
        );
        self.count.clear();
        self.count.extend_from_slice(&self.wcount);
        self.len = self.words.len();
        self.n = 1;
        self.n_ids = self.n_words;
    }

    /// Intern the words `ws`.
    fn fill_words(&mut self, ws: &[&str], stop_words: &[String]) {
        self.begin(ws.len(), ws.len());
        let mut long: FxHashMap<&str, u32> = FxHashMap::default();
        for w in ws {
            let next = self.wchars.len() as u32;
            let b = w.as_bytes();
            let id = match word_key(b, 0, b.len()) {
                Some((lo, hi)) => self.table.id(lo, hi, next),
                None => *long.entry(w).or_insert(next),
            };
            self.add(id, clen(w), || word_flags(w, stop_words));
        }
        self.end();
    }

    /// The words of the ASCII `text` ([`words`]), interned as they are split; `masks` holds the
    /// text's byte classes.
    fn fill_ascii(&mut self, text: &str, masks: &text::AsciiMasks, stop_words: &[String]) {
        // the word table holds distinct words only: start small, it grows
        self.begin(text.len() / 4, text.len() / 16 + 8);
        let b = text.as_bytes();
        let mut long: FxHashMap<&str, u32> = FxHashMap::default();
        // a word of up to 15 bytes is a stop word iff its key is one's
        let mut stop_keys = std::mem::take(&mut self.stop_keys);
        stop_keys.clear();
        stop_keys.extend(
            stop_words
                .iter()
                .filter_map(|w| word_key(w.as_bytes(), 0, w.len())),
        );
        masks.words_each(|s, e| {
            let next = self.wchars.len() as u32;
            let w = text.get(s..e).unwrap_or("");
            let key = word_key(b, s, e);
            let id = match key {
                Some((lo, hi)) => self.table.id(lo, hi, next),
                None => *long.entry(w).or_insert(next),
            };
            self.add(id, e - s, || {
                let (mut non_sym, mut alpha) = (false, false);
                for c in w.bytes() {
                    non_sym |= !c.is_ascii_punctuation();
                    alpha |= c.is_ascii_alphabetic();
                }
                let stop = match key {
                    Some(k) => stop_keys.contains(&k),
                    None => stop_words.iter().any(|s| s == w),
                };
                (if non_sym { NON_SYM } else { 0 })
                    | (if alpha { ALPHA } else { 0 })
                    | (if stop { STOP } else { 0 })
            });
        });
        self.stop_keys = stop_keys;
        self.end();
    }
    /// Advance to n-grams of length `n`; false when there are none.
    fn level(&mut self, n: usize) -> bool {
        if n < self.n {
            self.level1();
        }
        while self.n < n {
            let next_len = self.words.len().saturating_sub(self.n);
            // an n-gram whose (n-1)-gram prefix occurs once is unique: it leaves `live`; only
            // prefixes seen more than once go through the map. Ids are handed out in the order
            // of first occurrence, and counted as they are.
            self.count_next.clear();
            let mut next_id = 0u32;
            let mut kept = 0usize;
            if !self.live.is_empty() {
                self.map.reset(self.live.len());
                for k in 0..self.live.len() {
                    let p = self.live[k] as usize;
                    if p >= next_len {
                        continue;
                    }
                    let g = self.grams[p];
                    if self.count[g as usize] > 1 {
                        let key = ((g as u64) << 32) | self.words[p + self.n] as u64;
                        let id = self.map.id(key, &mut next_id);
                        if id as usize == self.count_next.len() {
                            self.count_next.push(0);
                        }
                        self.count_next[id as usize] += 1;
                        self.grams[p] = id;
                        self.live[kept] = p as u32;
                        kept += 1;
                    }
                }
            }
            self.live.truncate(kept);
            std::mem::swap(&mut self.count, &mut self.count_next);
            self.len = next_len;
            self.n_ids = next_id as usize;
            self.n += 1;
        }
        self.len > 0
    }

    /// chars of the space-joined n-gram starting at word i
    fn gram_len(&self, i: usize, n: usize) -> usize {
        self.prefix[i + n] - self.prefix[i] + n - 1
    }
}

/// datatrove's `find_top_duplicate`: len(top n-gram) * count, ties to the first seen.
fn find_top_duplicate(w: &mut Interned, n: usize) -> Option<usize> {
    if n == 0 || !w.level(n) {
        return None;
    }
    // Ids go by first occurrence, so the first seen of the most frequent is the smallest id
    // with the top count. When none repeats, the n-gram at 0 wins with a count of 1.
    let (mut best_c, mut best) = (1u32, None);
    for (g, &c) in w.count.iter().enumerate() {
        if c > best_c {
            best_c = c;
            best = Some(g as u32);
        }
    }
    let first = match best {
        Some(b) => w
            .live
            .iter()
            .find(|&&p| w.grams[p as usize] == b)
            .map_or(0, |&p| p as usize),
        None => 0,
    };
    Some(w.gram_len(first, n) * best_c as usize)
}

/// datatrove's `find_all_duplicate`: scan left to right, a repeated n-gram adds its length and
/// jumps n words ahead. Unique n-grams never repeat, so only live positions past the last jump
/// matter.
fn find_all_duplicate(w: &mut Interned, n: usize) -> usize {
    if n == 0 || !w.level(n) {
        return 0;
    }
    w.seen.clear();
    w.seen.resize(w.n_ids, false);
    let (mut rep, mut next) = (0, 0usize);
    for &p in &w.live {
        let p = p as usize;
        if p < next {
            continue;
        }
        let g = w.grams[p] as usize;
        if w.seen[g] {
            rep += w.gram_len(p, n);
            next = p + n;
        } else {
            w.seen[g] = true;
        }
    }
    rep
}

/// `re.split(r"\n{2,}", text.strip())` into `out`.
fn split_paragraphs<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let t = py_strip(text);
    out.clear();
    let b = t.as_bytes();
    let (mut start, mut i) = (0, 0);
    while let Some(k) = memchr::memchr(b'\n', &b[i..]) {
        i += k;
        if i + 1 < b.len() && b[i + 1] == b'\n' {
            out.push(&t[start..i]);
            while i < b.len() && b[i] == b'\n' {
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&t[start..]);
}

/// The duplicate search's buffers, kept across documents.
#[derive(Default)]
struct DupBufs {
    table: DupTable,
    paras: Vec<&'static str>,
    para_dup: Vec<bool>,
    /// per line of the last document: whether it repeats an earlier line
    line_dup: Vec<bool>,
}

pub fn gopher_repetition(text: &str, c: &GopherRepetitionConfig, st: &mut Stats) -> Verdict {
    gopher_repetition_pre(
        text,
        &mut Interned::new(&words(text), &[]),
        &splitlines(text),
        c,
        st,
        &mut DupBufs::default(),
    )
}

/// Leaves the duplicate flags of `lines` in `bufs.line_dup` once it got to them.
fn gopher_repetition_pre(
    text: &str,
    ws: &mut Interned,
    lines: &[&str],
    c: &GopherRepetitionConfig,
    st: &mut Stats,
    bufs: &mut DupBufs,
) -> Verdict {
    let n_chars = clen(text);
    let mut paras = reuse(&mut bufs.paras);
    split_paragraphs(text, &mut paras);
    bufs.table.flags(&paras, &mut bufs.para_dup);
    let (pd, pc) = dup_counts(&paras, &bufs.para_dup);
    let n_paras = paras.len();
    give_back(paras, &mut bufs.paras);
    let (r1, r2) = (ratio(pd, n_paras), ratio(pc, n_chars));
    st.push(("gopher_repetition.dup_para_frac".into(), r1));
    st.push(("gopher_repetition.dup_para_char_frac".into(), r2));
    if c.dup_para_frac.is_some_and(|t| t != 0.0 && r1 > t) {
        return Err("dup_para_frac".into());
    }
    if c.dup_para_char_frac.is_some_and(|t| t != 0.0 && r2 > t) {
        return Err("dup_para_char_frac".into());
    }
    bufs.table.flags(lines, &mut bufs.line_dup);
    let (ld, lc) = dup_counts(lines, &bufs.line_dup);
    let (r1, r2) = (ratio(ld, lines.len().max(1)), ratio(lc, n_chars));
    st.push(("gopher_repetition.dup_line_frac".into(), r1));
    st.push(("gopher_repetition.dup_line_char_frac".into(), r2));
    if c.dup_line_frac.is_some_and(|t| t != 0.0 && r1 > t) {
        return Err("dup_line_frac".into());
    }
    if c.dup_line_char_frac.is_some_and(|t| t != 0.0 && r2 > t) {
        return Err("dup_line_char_frac".into());
    }
    for &(n, t) in &c.top_n_grams {
        if n == 0 {
            continue;
        }
        let Some(top) = find_top_duplicate(ws, n) else {
            continue;
        };
        let r = ratio(top, n_chars);
        st.push((top_name(n), r));
        if r > t {
            return Err(format!("top_{n}_gram"));
        }
    }
    for &(n, t) in &c.dup_n_grams {
        if n == 0 {
            continue;
        }
        let r = ratio(find_all_duplicate(ws, n), n_chars);
        st.push((dup_name(n), r));
        if r > t {
            return Err(format!("duplicated_{n}_n_grams"));
        }
    }
    Ok(())
}

fn on(x: Option<f64>) -> Option<f64> {
    x.filter(|t| *t != 0.0)
}

pub fn gopher_quality(text: &str, c: &GopherQualityConfig, st: &mut Stats) -> Verdict {
    gopher_quality_pre(
        text,
        &Interned::new(&words(text), &c.stop_words),
        &splitlines(text),
        c,
        st,
    )
}

fn gopher_quality_pre(
    text: &str,
    ws: &Interned,
    lines: &[&str],
    c: &GopherQualityConfig,
    st: &mut Stats,
) -> Verdict {
    let n_words = ws.words.len();
    // one pass: non-symbol words (and their chars), words with a letter, stop words; the flags
    // were computed once per distinct word
    let (mut n_ns, mut ns_chars, mut n_alpha, mut stops) = (0usize, 0usize, 0usize, 0usize);
    for &id in &ws.words {
        let f = ws.wflags[id as usize];
        if f & NON_SYM != 0 {
            n_ns += 1;
            ns_chars += ws.wchars[id as usize] as usize;
        }
        n_alpha += (f & ALPHA != 0) as usize;
        stops += (f & STOP != 0) as usize;
    }
    st.push(("gopher_quality.n_non_symbol_words".into(), n_ns as f64));
    if c.min_doc_words.is_some_and(|t| t != 0 && n_ns < t) {
        return Err("gopher_short_doc".into());
    }
    if c.max_doc_words.is_some_and(|t| t != 0 && n_ns > t) {
        return Err("gopher_long_doc".into());
    }
    let avg = if n_ns == 0 {
        0.0
    } else {
        ratio(ns_chars, n_ns)
    };
    st.push(("gopher_quality.avg_word_length".into(), avg));
    if on(c.min_avg_word_length).is_some_and(|t| avg < t) {
        return Err("gopher_below_avg_threshold".into());
    }
    if on(c.max_avg_word_length).is_some_and(|t| avg > t) {
        return Err("gopher_above_avg_threshold".into());
    }
    let nw = n_words.max(1);
    let b = text.as_bytes();
    let hash_r = ratio(memchr::memchr_iter(b'#', b).count(), nw);
    // non-overlapping "...", as str.count; '…' is E2 80 A6, never inside another char
    let n_ell = memchr::memmem::find_iter(b, b"...").count()
        + if text.is_ascii() {
            0
        } else {
            memchr::memmem::find_iter(b, "…".as_bytes()).count()
        };
    let ell_r = ratio(n_ell, nw);
    st.push(("gopher_quality.hash_word_ratio".into(), hash_r));
    st.push(("gopher_quality.ellipsis_word_ratio".into(), ell_r));
    if on(c.max_symbol_word_ratio).is_some_and(|t| hash_r > t) {
        return Err("gopher_too_many_hashes".into());
    }
    if on(c.max_symbol_word_ratio).is_some_and(|t| ell_r > t) {
        return Err("gopher_too_many_ellipsis".into());
    }
    let nl = lines.len().max(1);
    let bullets = lines
        .iter()
        .filter(|l| {
            let s = l.trim_start_matches(text::is_py_space);
            s.starts_with('•') || s.starts_with('-')
        })
        .count();
    let end_ell = lines
        .iter()
        .filter(|l| {
            let s = l.trim_end_matches(text::is_py_space);
            s.ends_with("...") || s.ends_with('…')
        })
        .count();
    let (rb, re) = (ratio(bullets, nl), ratio(end_ell, nl));
    st.push(("gopher_quality.bullet_lines_ratio".into(), rb));
    st.push(("gopher_quality.end_ellipsis_lines_ratio".into(), re));
    if on(c.max_bullet_lines_ratio).is_some_and(|t| rb > t) {
        return Err("gopher_too_many_bullets".into());
    }
    if on(c.max_ellipsis_lines_ratio).is_some_and(|t| re > t) {
        return Err("gopher_too_many_end_ellipsis".into());
    }
    let alpha = ratio(n_alpha, nw);
    st.push(("gopher_quality.alpha_words_ratio".into(), alpha));
    if on(c.max_non_alpha_words_ratio).is_some_and(|t| alpha < t) {
        return Err("gopher_below_alpha_threshold".into());
    }
    st.push(("gopher_quality.stop_words".into(), stops as f64));
    if c.min_stop_words.is_some_and(|t| t != 0 && stops < t) {
        return Err("gopher_enough_stop_words".into());
    }
    Ok(())
}

/// Sentences in a line: pieces between runs of `.!?` (+ closing `"')]`) followed by whitespace.
pub fn count_sentences(line: &str) -> usize {
    if line.is_ascii() {
        return count_sentences_ascii(line.as_bytes());
    }
    count_sentences_chars(line)
}

fn count_sentences_chars(line: &str) -> usize {
    let cs: Vec<(usize, char)> = line.char_indices().collect();
    let (mut count, mut piece_start, mut i) = (0, 0, 0);
    let is_term = |c: char| matches!(c, '.' | '!' | '?');
    let is_close = |c: char| matches!(c, '"' | '\'' | ')' | ']');
    while i < cs.len() {
        if is_term(cs[i].1) {
            let mut j = i;
            while j < cs.len() && is_term(cs[j].1) {
                j += 1;
            }
            while j < cs.len() && is_close(cs[j].1) {
                j += 1;
            }
            if j < cs.len() && text::is_py_space(cs[j].1) {
                let piece = &line[piece_start..cs[i].0];
                if !py_strip(piece).is_empty() {
                    count += 1;
                }
                while j < cs.len() && text::is_py_space(cs[j].1) {
                    j += 1;
                }
                piece_start = if j < cs.len() { cs[j].0 } else { line.len() };
                i = j;
                continue;
            }
        }
        i += 1;
    }
    if !py_strip(&line[piece_start..]).is_empty() {
        count += 1;
    }
    count
}

fn count_sentences_ascii(b: &[u8]) -> usize {
    let is_term = |c: u8| matches!(c, b'.' | b'!' | b'?');
    let is_close = |c: u8| matches!(c, b'"' | b'\'' | b')' | b']');
    let is_sp = |c: u8| matches!(c, 9..=13 | 0x1c..=0x1f | b' ');
    let non_blank = |s: &[u8]| s.iter().any(|&c| !is_sp(c));
    let (mut count, mut piece_start, mut i) = (0, 0, 0);
    while i < b.len() {
        // jump to the next terminator
        match memchr::memchr3(b'.', b'!', b'?', &b[i..]) {
            Some(k) => i += k,
            None => break,
        }
        {
            let mut j = i;
            while j < b.len() && is_term(b[j]) {
                j += 1;
            }
            while j < b.len() && is_close(b[j]) {
                j += 1;
            }
            if j < b.len() && is_sp(b[j]) {
                if non_blank(&b[piece_start..i]) {
                    count += 1;
                }
                while j < b.len() && is_sp(b[j]) {
                    j += 1;
                }
                piece_start = j;
                i = j;
                continue;
            }
        }
        i += 1;
    }
    if non_blank(&b[piece_start..]) {
        count += 1;
    }
    count
}

fn remove_citations(line: &str) -> std::borrow::Cow<'_, str> {
    // \[\d*]|\[edit]|\[citation needed]
    if !line.contains('[') {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(p) = rest.find('[') {
        out.push_str(&rest[..p]);
        let tail = &rest[p..];
        let digits = tail[1..].bytes().take_while(|b| b.is_ascii_digit()).count();
        let skip = if tail[1 + digits..].starts_with(']') {
            2 + digits
        } else if tail.starts_with("[edit]") {
            6
        } else if tail.starts_with("[citation needed]") {
            17
        } else {
            0
        };
        if skip > 0 {
            rest = &tail[skip..];
        } else {
            out.push('[');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

const POLICY: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// C4: drops lines, maybe the whole document; returns the kept text.
pub fn c4(text: &str, c: &C4Config, st: &mut Stats) -> std::result::Result<String, String> {
    c4_pre(
        text,
        text.is_ascii(),
        &splitlines(text),
        c,
        st,
        &mut Vec::new(),
    )
}

/// The C4 phrases, lorem ipsum and javascript first, for an ASCII case-insensitive search (on an
/// ASCII line, `lower.contains(p)` is exactly a case-insensitive match of `p`).
fn c4_phrases() -> Option<&'static aho_corasick::AhoCorasick> {
    static AC: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>> = std::sync::OnceLock::new();
    AC.get_or_init(|| {
        let pats = ["lorem ipsum", "javascript"].iter().chain(POLICY.iter());
        // a DFA: eight short phrases make a small one, and it scans a byte per step
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(pats)
            .ok()
    })
    .as_ref()
}

/// The C4 phrases (all lowercase) for a plain search of an ASCII-lowercased text: a packed
/// (SIMD, Teddy) searcher where the CPU has one, else an automaton. Several times faster than
/// the case-insensitive DFA on a whole document.
enum LowerPhrases {
    Packed(aho_corasick::packed::Searcher),
    Automaton(aho_corasick::AhoCorasick),
}

fn c4_phrases_lower() -> Option<&'static LowerPhrases> {
    static S: std::sync::OnceLock<Option<LowerPhrases>> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let pats = || ["lorem ipsum", "javascript"].iter().chain(POLICY.iter());
        aho_corasick::packed::Searcher::new(pats())
            .map(LowerPhrases::Packed)
            .or_else(|| {
                aho_corasick::AhoCorasick::new(pats())
                    .ok()
                    .map(LowerPhrases::Automaton)
            })
    })
    .as_ref()
}

/// Whether an ASCII `text` holds none of the C4 phrases, case-insensitively (`lower` is a
/// buffer for its lowercase copy); None when no searcher could be built.
fn no_c4_phrase(text: &str, lower: &mut Vec<u8>) -> Option<bool> {
    let s = c4_phrases_lower()?;
    lower.clear();
    lower.extend(text.bytes().map(|c| c.to_ascii_lowercase()));
    Some(match s {
        LowerPhrases::Packed(p) => p.find(lower.as_slice()).is_none(),
        LowerPhrases::Automaton(a) => !a.is_match(lower.as_slice()),
    })
}

/// (contains "lorem ipsum", contains "javascript", contains a policy phrase), lowercased.
fn c4_phrase_flags(line: &str, ascii: bool) -> (bool, bool, bool) {
    if ascii || line.is_ascii() {
        if let Some(ac) = c4_phrases() {
            // most lines hold no phrase: one plain search (prefiltered) settles those
            if ac.find(line).is_none() {
                return (false, false, false);
            }
            let mut mask = 0u32;
            for m in ac.find_overlapping_iter(line) {
                mask |= 1 << m.pattern().as_usize();
            }
            return (mask & 1 != 0, mask & 2 != 0, mask & !3 != 0);
        }
    }
    let lower = line.to_lowercase();
    (
        lower.contains("lorem ipsum"),
        lower.contains("javascript"),
        POLICY.iter().any(|p| lower.contains(p)),
    )
}

/// (words of `str.split()`, whether one is longer than `max` chars). The count stops at `enough`
/// (it is only compared with it) unless a long word is possible.
fn c4_words(line: &str, ascii: bool, max: i64, enough: i64) -> (usize, bool) {
    // a word has no more chars than the line has bytes
    if (line.len() as i64) <= max {
        if enough <= 0 {
            return (0, false);
        }
        if ascii || line.is_ascii() {
            let (mut n, mut prev_sp) = (0usize, true);
            for &c in line.as_bytes() {
                let sp = text::is_ascii_space(c);
                if prev_sp && !sp {
                    n += 1;
                    if n as i64 >= enough {
                        break;
                    }
                }
                prev_sp = sp;
            }
            return (n, false);
        }
        return (py_split(line).count(), false);
    }
    if ascii || line.is_ascii() {
        let b = line.as_bytes();
        let is_sp = |c: u8| matches!(c, 9..=13 | 0x1c..=0x1f | b' ');
        let (mut n, mut long, mut i) = (0usize, false, 0usize);
        while i < b.len() {
            if is_sp(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !is_sp(b[i]) {
                i += 1;
            }
            n += 1;
            long |= (i - start) as i64 > max;
        }
        return (n, long);
    }
    let n = py_split(line).count();
    let long = py_split(line).any(|w| clen(w) as i64 > max);
    (n, long)
}

/// `lines`: the `splitlines` of `text`; `ascii`: whether `text` is ASCII.
fn c4_pre(
    text: &str,
    ascii: bool,
    lines: &[&str],
    c: &C4Config,
    st: &mut Stats,
    lower: &mut Vec<u8>,
) -> std::result::Result<String, String> {
    // Whole-document checks that settle every line at once: a line is a substring of the text,
    // and the phrases hold no line break, so no match in the text means none in a line, unless
    // citation removal changed the line (it can join a phrase). ASCII only, where lowercasing is
    // ASCII case folding.
    let no_phrase = ascii && no_c4_phrase(text, lower).unwrap_or(false);
    let no_curly = memchr::memchr(b'{', text.as_bytes()).is_none();
    let no_bracket = memchr::memchr(b'[', text.as_bytes()).is_none();
    let mut out = String::with_capacity(text.len());
    let mut n_kept = 0usize;
    let mut n_sent = 0usize;
    let mut n_lines = 0usize;
    for &raw in lines {
        n_lines += 1;
        let line = py_strip(raw);
        let (n_words, long) = c4_words(line, ascii, c.max_word_length, c.min_words_per_line);
        if c.max_word_length != -1 && long {
            continue;
        }
        let line = if c.remove_citations && !no_bracket {
            remove_citations(line)
        } else {
            std::borrow::Cow::Borrowed(line)
        };
        let changed = matches!(line, std::borrow::Cow::Owned(_));
        let line = line.as_ref();
        if c.filter_no_terminal_punct
            && (!(line.ends_with(['.', '?', '!', '"', '\''])) || line.ends_with("..."))
        {
            continue;
        }
        if (n_words as i64) < c.min_words_per_line {
            continue;
        }
        let (lorem, js, policy) = if no_phrase && !changed {
            (false, false, false)
        } else {
            c4_phrase_flags(line, ascii)
        };
        if c.filter_lorem_ipsum && lorem {
            return Err("lorem_ipsum".into());
        }
        if c.filter_javascript && js {
            continue;
        }
        if c.filter_curly_bracket && !no_curly && memchr::memchr(b'{', line.as_bytes()).is_some() {
            return Err("curly_bracket".into());
        }
        if c.filter_policy && policy {
            continue;
        }
        n_sent += if ascii {
            count_sentences_ascii(line.as_bytes())
        } else {
            count_sentences(line)
        };
        if n_kept > 0 {
            out.push('\n');
        }
        out.push_str(line);
        n_kept += 1;
    }
    st.push(("c4.lines".into(), n_lines as f64));
    st.push(("c4.kept_lines".into(), n_kept as f64));
    st.push(("c4.sentences".into(), n_sent as f64));
    if (n_sent as i64) < c.min_num_sentences {
        return Err("too_few_sentences".into());
    }
    let s = py_strip(&out);
    Ok(if s.len() == out.len() {
        out
    } else {
        s.to_string()
    })
}

pub fn fineweb(text: &str, c: &FineWebConfig, st: &mut Stats) -> Verdict {
    fineweb_pre(
        text,
        None,
        None,
        c,
        st,
        &mut Vec::new(),
        &mut DupBufs::default(),
    )
}

/// `n_words`: the word count of `text` when already known; `known`: `text.split('\n')` and
/// whether each piece repeats an earlier one, when already known (`lines` and `bufs` are
/// buffers for them otherwise).
fn fineweb_pre(
    text: &str,
    n_words: Option<usize>,
    known: Option<(&[&str], &[bool])>,
    c: &FineWebConfig,
    st: &mut Stats,
    lines: &mut Vec<&'static str>,
    bufs: &mut DupBufs,
) -> Verdict {
    let mut own = reuse(lines);
    let v = fineweb_lines(text, n_words, known, c, st, &mut own, bufs);
    give_back(own, lines);
    v
}

fn fineweb_lines<'a>(
    text: &'a str,
    n_words: Option<usize>,
    known: Option<(&[&'a str], &[bool])>,
    c: &FineWebConfig,
    st: &mut Stats,
    own: &mut Vec<&'a str>,
    bufs: &mut DupBufs,
) -> Verdict {
    let (lines, dup): (&[&str], &[bool]) = match known {
        Some(k) => k,
        None => {
            own.clear();
            let b = text.as_bytes();
            let mut start = 0;
            for p in memchr::memchr_iter(b'\n', b) {
                own.push(text.get(start..p).unwrap_or(""));
                start = p + 1;
            }
            own.push(text.get(start..).unwrap_or(""));
            bufs.table.flags(own, &mut bufs.line_dup);
            (own, &bufs.line_dup)
        }
    };
    let (mut n_punct, mut n_short) = (0usize, 0usize);
    let short_len = c.short_line_length;
    for l in lines {
        n_punct += l.ends_with(['.', '\'', '"', '!', '?']) as usize;
        // chars <= bytes <= 4 * chars: count chars only when the bytes leave it open
        n_short += (l.len() <= short_len
            || (l.len() <= short_len.saturating_mul(4) && clen(l) <= short_len))
            as usize;
    }
    let nl = lines.len().max(1);
    let n_newlines = nl - 1;
    let punct = ratio(n_punct, nl);
    st.push(("fineweb.line_punct_ratio".into(), punct));
    if punct <= c.line_punct_thr && !(punct == 0.0 && c.line_punct_exclude_zero) {
        return Err("line_punct_ratio".into());
    }
    let short = ratio(n_short, nl);
    st.push(("fineweb.short_line_ratio".into(), short));
    if short >= c.short_line_thr {
        return Err("short_line_ratio".into());
    }
    // a blank line never counts; a non-blank one repeats iff an equal (so non-blank) one came
    // before
    let mut dup_chars = 0usize;
    for (l, &d) in lines.iter().zip(dup) {
        if d && !py_strip(l).is_empty() {
            dup_chars += clen(l);
        }
    }
    let denom = clen(text) - n_newlines;
    let dup = ratio(dup_chars, denom.max(1));
    st.push(("fineweb.char_dup_ratio".into(), dup));
    if dup >= c.char_duplicates_ratio {
        return Err("char_dup_ratio".into());
    }
    let nw = n_words.unwrap_or_else(|| words(text).len()).max(1);
    let list = ratio(n_newlines, nw);
    st.push(("fineweb.list_ratio".into(), list));
    if list > c.new_line_ratio {
        return Err("list_ratio".into());
    }
    Ok(())
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Documents above this size do not leave their buffers behind in the thread's scratch.
const KEEP_SCRATCH_BELOW: usize = 1 << 20;

/// Run the configured filters on one document.
pub fn apply(text: &str, cfg: &FilterConfig) -> FilterResult {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut sc) => {
            let r = apply_with(text, cfg, &mut sc, true);
            if text.len() >= KEEP_SCRATCH_BELOW {
                *sc = Scratch::default();
            }
            r
        }
        Err(_) => apply_with(text, cfg, &mut Scratch::default(), true),
    })
}

fn drop_as(r: &mut FilterResult, name: &'static str, reason: String) {
    r.keep = false;
    r.filter = Some(name);
    r.reason = Some(reason);
}

/// [`apply`] with the thread's buffers; `fast`: use the ASCII byte-class pass (false runs the
/// general path on every text, for the tests that compare the two).
fn apply_with(text: &str, cfg: &FilterConfig, sc: &mut Scratch, fast: bool) -> FilterResult {
    let mut r = FilterResult {
        keep: true,
        stats: Vec::with_capacity(32),
        ..Default::default()
    };
    if py_strip(text).is_empty() {
        drop_as(&mut r, "empty", "empty_document".into());
        return r;
    }
    let gopher = cfg.gopher_repetition.is_some() || cfg.gopher_quality.is_some();
    let ascii = text.is_ascii();
    let fast = fast && ascii;
    let need_lines = gopher || cfg.c4.is_some();
    if fast && need_lines {
        sc.masks.fill(text.as_bytes());
    }
    let ws = &mut sc.ws;
    if gopher {
        let stop: &[String] = cfg.gopher_quality.as_ref().map_or(&[], |q| &q.stop_words);
        if fast {
            ws.fill_ascii(text, &sc.masks, stop);
        } else {
            ws.fill_words(&words(text), stop);
        }
    }
    let mut lines = reuse(&mut sc.lines);
    // whether the lines are also text.split('\n') (less a last empty one)
    let mut only_nl = false;
    if need_lines {
        if fast {
            only_nl = sc.masks.lines_into(text, &mut lines);
        } else {
            lines.extend(splitlines(text));
        }
    }
    run_filters(text, ascii, cfg, &mut lines, only_nl, sc, &mut r);
    give_back(lines, &mut sc.lines);
    r
}

/// The filters in order, after the words (`sc.ws`, when a Gopher filter runs) and `lines` (the
/// `splitlines`, when Gopher or C4 runs) are in; stops at the first that drops the document.
fn run_filters<'a>(
    text: &'a str,
    ascii: bool,
    cfg: &FilterConfig,
    lines: &mut Vec<&'a str>,
    only_nl: bool,
    sc: &mut Scratch,
    r: &mut FilterResult,
) {
    let st = &mut r.stats;
    let mut line_dups = false;
    if let Some(c) = &cfg.gopher_repetition {
        if let Err(e) = gopher_repetition_pre(text, &mut sc.ws, lines, c, st, &mut sc.dups) {
            return drop_as(r, "gopher_repetition", e);
        }
        line_dups = true;
    }
    if let Some(c) = &cfg.gopher_quality {
        if let Err(e) = gopher_quality_pre(text, &sc.ws, lines, c, st) {
            return drop_as(r, "gopher_quality", e);
        }
    }
    let mut cur = std::borrow::Cow::Borrowed(text);
    if let Some(c) = &cfg.c4 {
        match c4_pre(text, ascii, lines, c, st, &mut sc.lower) {
            Err(e) => return drop_as(r, "c4", e),
            Ok(t) => {
                if t != text {
                    cur = std::borrow::Cow::Owned(t);
                }
            }
        }
    }
    if let Some(c) = &cfg.fineweb {
        let gopher = cfg.gopher_repetition.is_some() || cfg.gopher_quality.is_some();
        let same = matches!(cur, std::borrow::Cow::Borrowed(_));
        let n_words = (gopher && same).then_some(sc.ws.words.len());
        // the lines and their duplicate flags from Gopher repetition, when the text is the
        // same and its only line break is \n: split('\n') has one more, empty, piece when the
        // text ends with \n
        let known = same && only_nl && line_dups;
        if known && text.ends_with('\n') {
            lines.push("");
            sc.dups.line_dup.push(false);
        }
        let mut dup = std::mem::take(&mut sc.dups.line_dup);
        let v = fineweb_pre(
            &cur,
            n_words,
            known.then_some((lines.as_slice(), dup.as_slice())),
            c,
            st,
            &mut sc.fw_lines,
            &mut sc.dups,
        );
        if known {
            dup.clear();
            sc.dups.line_dup = dup;
        }
        if let Err(e) = v {
            if let std::borrow::Cow::Owned(t) = cur {
                r.text = Some(t);
            }
            return drop_as(r, "fineweb", e);
        }
    }
    if let std::borrow::Cow::Owned(t) = cur {
        r.text = Some(t);
    }
}
/// Run the filters over a batch, in input order, on `threads` threads.
pub fn apply_batch<S: AsRef<str> + Sync>(
    texts: &[S],
    cfg: &FilterConfig,
    threads: usize,
) -> Vec<FilterResult> {
    parallel::map(texts, threads, |t| apply(t.as_ref(), cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences() {
        assert_eq!(count_sentences("One. Two! Three?"), 3);
        assert_eq!(count_sentences("e.g. this"), 2);
        assert_eq!(count_sentences("No end"), 1);
        assert_eq!(count_sentences("He said \"hi.\" Then left."), 2);
        assert_eq!(count_sentences(""), 0);
        for s in [
            "One. Two! Three?",
            "e.g. this",
            "a.) b",
            "x?!\" y. ",
            "  . . ",
            "end.",
            "a\x1c. b",
        ] {
            assert_eq!(count_sentences(s), count_sentences_chars(s), "{s:?}");
        }
    }

    #[test]
    fn citations() {
        assert_eq!(
            remove_citations("a[1] b[edit] c[citation needed] d[x]"),
            "a b c d[x]"
        );
        assert_eq!(remove_citations("[]["), "[");
    }

    #[test]
    fn empty_dropped() {
        let r = apply("  \n ", &FilterConfig::default());
        assert_eq!(r.filter, Some("empty"));
    }

    /// ASCII documents from fragments that stress the byte-class pass: every line break and
    /// whitespace byte, CRLF, empty and blank lines, punctuation runs, words of 7/8/9/15/16+
    /// bytes, stop words, C4 phrases in mixed case, braces, citations, repeated n-grams.
    fn adversarial_docs(n: usize, seed: u64) -> Vec<String> {
        const FRAG: [&str; 40] = [
            "the",
            "of",
            "and",
            "to",
            "be",
            "with",
            "cat",
            "sat",
            "on",
            "mat",
            "end.",
            "x.",
            "(y)",
            "...",
            "#",
            "-",
            "\"q\"",
            "'",
            "?!",
            ".",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmno",
            "abcdefghijklmnop",
            "abcdefghijklmnopqrstuvwxyz0123456789",
            "Lorem Ipsum",
            "JavaScript",
            "PRIVACY policy",
            "use Cookies",
            "{",
            "[1]",
            "[edit]",
            "[citation needed]",
            "e.g.",
            "a\x00b",
            "\x7f",
            "~~~~",
            "w1",
            "Hello,",
        ];
        const SEP: [&str; 16] = [
            " ",
            " ",
            " ",
            " ",
            "  ",
            "\t",
            "\n",
            "\n",
            "\n\n",
            "\r\n",
            "\r",
            "\x0b",
            "\x0c",
            "\x1c\x1d\x1e",
            "\x1f",
            " \n ",
        ];
        let mut x = seed;
        let mut next = move |m: usize| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) as usize) % m
        };
        (0..n)
            .map(|_| {
                let mut d = String::new();
                let len = next(400);
                let mut k = 0;
                while k < len {
                    // sometimes repeat a recent stretch (at most 60 bytes), to make n-grams and
                    // lines repeat
                    if next(12) == 0 && d.len() > 10 {
                        let start = d.len() - 1 - next(d.len().min(60));
                        let piece = d[start..].to_string();
                        d.push_str(&piece);
                        k += 5;
                        continue;
                    }
                    d.push_str(FRAG[next(FRAG.len())]);
                    d.push_str(SEP[next(SEP.len())]);
                    k += 1;
                }
                d
            })
            .collect()
    }

    fn all_stats_config() -> FilterConfig {
        // nothing drops: every statistic is computed, n-gram sizes out of order
        FilterConfig::from_json(
            r#"{"gopher_repetition": {"dup_line_frac": null, "dup_para_frac": null,
                "dup_line_char_frac": null, "dup_para_char_frac": null,
                "top_n_grams": [[1, 9.0], [3, 9.0], [2, 9.0], [16, 9.0]],
                "dup_n_grams": [[5, 9.0], [2, 9.0], [10, 9.0], [7, 9.0]]},
              "gopher_quality": {"min_doc_words": null, "max_doc_words": null,
                "min_avg_word_length": null, "max_avg_word_length": null,
                "max_symbol_word_ratio": null, "max_bullet_lines_ratio": null,
                "max_ellipsis_lines_ratio": null, "max_non_alpha_words_ratio": null,
                "min_stop_words": null, "stop_words": ["the", "of", "abcdefghijklmnop", "w1"]},
              "c4": {"min_num_sentences": -1, "filter_lorem_ipsum": false,
                "filter_curly_bracket": false},
              "fineweb": {"line_punct_thr": -1.0, "short_line_thr": 9.0,
                "char_duplicates_ratio": 9.0, "new_line_ratio": 9.0}}"#,
        )
        .unwrap()
    }

    #[test]
    fn ascii_fast_path_matches_general_path() {
        let docs = adversarial_docs(1500, 7);
        for cfg in [
            FilterConfig::default(),
            all_stats_config(),
            FilterConfig {
                gopher_repetition: None,
                ..all_stats_config()
            },
            FilterConfig {
                gopher_quality: None,
                c4: None,
                ..all_stats_config()
            },
        ] {
            // one scratch for every document, as a thread keeps it
            let mut shared = Scratch::default();
            for d in &docs {
                let want = apply_with(d, &cfg, &mut Scratch::default(), false);
                assert_eq!(apply_with(d, &cfg, &mut shared, true), want, "{d:?}");
                assert_eq!(apply(d, &cfg), want, "{d:?}");
            }
            // thread count and batch size do not matter
            let one = apply_batch(&docs, &cfg, 1);
            assert_eq!(apply_batch(&docs, &cfg, 3), one);
            assert_eq!(apply_batch(&docs[..7], &cfg, 2), one[..7]);
        }
    }

    #[test]
    fn config_json_roundtrip() {
        let c = FilterConfig::default();
        assert_eq!(FilterConfig::from_json(&c.to_json()).unwrap(), c);
        assert!(FilterConfig::from_json("{\"gopher\": 1}").is_err());
        let partial =
            FilterConfig::from_json("{\"c4\": null, \"fineweb\": {\"new_line_ratio\": 0.5}}")
                .unwrap();
        assert!(partial.c4.is_none());
        assert_eq!(partial.fineweb.unwrap().short_line_length, 30);
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    #[test]
    #[ignore]
    fn filter_speed() {
        let vocab = [
            "the", "of", "and", "river", "market", "garden", "bread", "winter", "children", "story",
        ];
        let mut docs = Vec::new();
        let mut x = 1u64;
        for _ in 0..1000 {
            let mut d = String::new();
            for _ in 0..15 {
                for _ in 0..15 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    d.push_str(vocab[(x >> 33) as usize % vocab.len()]);
                    d.push(' ');
                }
                d.push_str("end.\n");
            }
            docs.push(d);
        }
        if let Ok(p) = std::env::var("QWEN25_FILTER_BENCH") {
            docs = std::fs::read_to_string(p)
                .unwrap()
                .split('\0')
                .map(|s| s.to_string())
                .collect();
        }
        let mb = docs.iter().map(|d| d.len()).sum::<usize>() as f64 / 1e6;
        let cfg = FilterConfig::default();
        let only = std::env::var("QWEN25_FILTER_BENCH_ONLY").ok();
        for name in ["all", "rep", "quality", "c4", "fineweb"] {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let c = match name {
                "all" => cfg.clone(),
                "rep" => FilterConfig {
                    gopher_quality: None,
                    c4: None,
                    fineweb: None,
                    ..cfg.clone()
                },
                "quality" => FilterConfig {
                    gopher_repetition: None,
                    c4: None,
                    fineweb: None,
                    ..cfg.clone()
                },
                "c4" => FilterConfig {
                    gopher_repetition: None,
                    gopher_quality: None,
                    fineweb: None,
                    ..cfg.clone()
                },
                _ => FilterConfig {
                    gopher_repetition: None,
                    gopher_quality: None,
                    c4: None,
                    ..cfg.clone()
                },
            };
            let t = std::time::Instant::now();
            for _ in 0..5 {
                for d in &docs {
                    std::hint::black_box(apply(d, &c));
                }
            }
            eprintln!(
                "apply[{name}] {:.1} MB/s",
                5.0 * mb / t.elapsed().as_secs_f64()
            );
        }
        if only.is_some() {
            return;
        }
        let mut st = Vec::new();
        let t = std::time::Instant::now();
        for d in &docs {
            let _ = gopher_repetition(d, &GopherRepetitionConfig::default(), &mut st);
        }
        eprintln!("rep {:.1} MB/s", mb / t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        for d in &docs {
            let _ = words(d);
        }
        eprintln!("words {:.1} MB/s", mb / t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        for d in &docs {
            let _ = splitlines(d);
        }
        eprintln!("splitlines {:.1} MB/s", mb / t.elapsed().as_secs_f64());
        let wss: Vec<Vec<&str>> = docs.iter().map(|d| words(d)).collect();
        let t = std::time::Instant::now();
        for w in &wss {
            std::hint::black_box(Interned::new(w, &[]));
        }
        eprintln!("intern {:.1} MB/s", mb / t.elapsed().as_secs_f64());
        let lss: Vec<Vec<&str>> = docs.iter().map(|d| splitlines(d)).collect();
        let t = std::time::Instant::now();
        let (mut bufs, mut paras) = (DupBufs::default(), Vec::new());
        for (d, l) in docs.iter().zip(&lss) {
            bufs.table.flags(l, &mut bufs.line_dup);
            split_paragraphs(d, &mut paras);
            bufs.table.flags(&paras, &mut bufs.para_dup);
        }
        eprintln!("line+para dups {:.1} MB/s", mb / t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        for d in &docs {
            let mut st = Vec::new();
            std::hint::black_box(fineweb(d, &FineWebConfig::default(), &mut st).is_ok());
        }
        eprintln!("fineweb fn {:.1} MB/s", mb / t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        for (d, l) in docs.iter().zip(&lss) {
            let mut st = Vec::new();
            std::hint::black_box(
                c4_pre(
                    d,
                    d.is_ascii(),
                    l,
                    &C4Config::default(),
                    &mut st,
                    &mut Vec::new(),
                )
                .is_ok(),
            );
        }
        eprintln!("c4 pre {:.1} MB/s", mb / t.elapsed().as_secs_f64());
        let mut ws: Vec<Interned> = docs.iter().map(|d| Interned::new(&words(d), &[])).collect();
        let t = std::time::Instant::now();
        for w in ws.iter_mut() {
            let _ = find_all_duplicate(w, 5);
        }
        eprintln!("find_all_dup {:.1} MB/s", mb / t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        for w in ws.iter_mut() {
            let _ = find_top_duplicate(w, 2);
        }
        eprintln!("find_top {:.1} MB/s", mb / t.elapsed().as_secs_f64());
    }
}
