//! Words interned as ids, n-grams interned level by level, and datatrove's n-gram repetition
//! measures on them.

use rustc_hash::FxHashMap;

use super::is_datatrove_punct;
use super::table::Table;
use super::text::{self, clen, is_alpha};

/// Words as interned ids with char lengths; n-grams get ids level by level (the id of the n-gram
/// at i interns the pair (id of the (n-1)-gram at i, id of word i+n-1)), so equal ids <=> equal
/// n-grams (words hold no whitespace, so that is also equality of the space-joined strings).
/// An n-gram known to occur once (so are all longer ones starting there) leaves the `live` list
/// and is never looked at again: it counts 1 wherever it is.
///
/// Kept across the documents a thread filters (see [`Scratch`]) so that its buffers are reused;
/// every field is cleared or overwritten when the next document is interned.
#[derive(Default)]
pub(super) struct Interned {
    /// ids of the n-grams at the current level, by start position; meaningful at `live` ones
    pub(super) grams: Vec<u32>,
    /// start positions (ascending) of n-grams that may occur more than once
    pub(super) live: Vec<u32>,
    /// number of n-grams at the current level
    pub(super) len: usize,
    pub(super) n: usize,
    pub(super) words: Vec<u32>,
    /// number of distinct words
    pub(super) n_words: usize,
    /// prefix[i] = total chars of words[..i]
    pub(super) prefix: Vec<usize>,
    /// ids at the current level are < n_ids
    pub(super) n_ids: usize,
    pub(super) map: Table<u64, u32>,
    /// per distinct word: chars, and the Gopher quality flags (bit 0 non-symbol, 1 alpha, 2 stop)
    pub(super) wchars: Vec<u32>,
    pub(super) wflags: Vec<u8>,
    /// per distinct word: occurrences
    pub(super) wcount: Vec<u32>,
    /// per id at the current level: occurrences at `live` positions (then equal to the
    /// n-gram's count whenever it is above 1)
    pub(super) count: Vec<u32>,
    /// the next level's `count`, built as its ids are handed out
    pub(super) count_next: Vec<u32>,
    /// per id: seen yet ([`find_all_duplicate`])
    pub(super) seen: Vec<bool>,
    /// words of up to 15 bytes, keyed by their bytes and length (exact), to their ids
    pub(super) table: Table<(u64, u64), u32>,
    /// the keys of the stop words
    pub(super) stop_keys: Vec<(u64, u64)>,
}

pub(super) const NON_SYM: u8 = 1;
pub(super) const ALPHA: u8 = 2;
pub(super) const STOP: u8 = 4;

fn word_flags(w: &str, stop_words: &[String]) -> u8 {
    let (mut non_sym, mut alpha) = (false, false);
    for ch in w.chars() {
        non_sym |= !is_datatrove_punct(ch);
        alpha |= is_alpha(ch);
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

impl Interned {
    pub(super) fn new(ws: &[&str], stop_words: &[String]) -> Self {
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
        // at least 64 slots: most documents have more than 32 distinct words
        self.table.reset(distinct.max(32));
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
    pub(super) fn fill_words(&mut self, ws: &[&str], stop_words: &[String]) {
        self.begin(ws.len(), ws.len());
        let mut long: FxHashMap<&str, u32> = FxHashMap::default();
        for w in ws {
            let next = self.wchars.len() as u32;
            let b = w.as_bytes();
            let id = match word_key(b, 0, b.len()) {
                Some(k) => self.table.id(k, next),
                None => *long.entry(w).or_insert(next),
            };
            self.add(id, clen(w), || word_flags(w, stop_words));
        }
        self.end();
    }

    /// The words of the ASCII `text` ([`words`]), interned as they are split; `masks` holds the
    /// text's byte classes.
    pub(super) fn fill_ascii(
        &mut self,
        text: &str,
        masks: &text::AsciiMasks,
        stop_words: &[String],
    ) {
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
                Some(k) => self.table.id(k, next),
                None => *long.entry(w).or_insert(next),
            };
            self.add(id, e - s, || {
                let (mut non_sym, mut alpha) = (false, false);
                for c in w.chars() {
                    non_sym |= !is_datatrove_punct(c);
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
                        let id = self.map.id(key, next_id);
                        if id == next_id {
                            next_id += 1;
                        }
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
pub(super) fn find_top_duplicate(w: &mut Interned, n: usize) -> Option<usize> {
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

/// datatrove's `find_all_duplicate`: scan left to right, a repeated n-gram adds its length (its
/// words' chars, no spaces: datatrove joins them with "") and jumps n words ahead. One known
/// difference: n-grams are equal when their words are, where datatrove compares the joined
/// strings (so for it `ab c` repeats `a bc`); on the parity corpus this never changed a decision. Unique n-grams never repeat, so only live positions past the last jump
/// matter.
pub(super) fn find_all_duplicate(w: &mut Interned, n: usize) -> usize {
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
            // "".join of the words: their chars, no spaces
            rep += w.prefix[p + n] - w.prefix[p];
            next = p + n;
        } else {
            w.seen[g] = true;
        }
    }
    rep
}
