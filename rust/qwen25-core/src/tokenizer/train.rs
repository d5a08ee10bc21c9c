//! Training a byte-level BPE vocabulary with the Qwen2 pre-tokenization (`qwen25.train_bpe`).
//!
//! Two phases:
//! 1. [`WordCounter`] streams over texts chunk by chunk. Each text is cut at the special tokens
//!    (leftmost-longest, as `encode` finds them: their text never feeds the BPE), every stretch
//!    is NFC-normalised and split by the Qwen2 pattern, and each pre-token's bytes are counted.
//!    A chunk is counted on several threads into sharded local maps, which are then added to the
//!    global (sharded) map in parallel. Only distinct pre-tokens are kept, never the corpus.
//! 2. [`WordCounter::train`] runs the classic BPE trainer on the counted words: pair counts
//!    weighted by word counts, an index pair -> words, and a max-heap with lazy invalidation;
//!    each step merges the most frequent pair in every word holding it and updates the counts of
//!    the neighbouring pairs incrementally.
//!
//! ## Ids and the tie-break rule
//! - Ids 0..=255 are the 256 byte symbols ordered by the code point of their byte-level char
//!   (GPT-2's alphabet, see [`super::bytelevel`]): `!`..`~`, `¡`..`¬`, `®`..`ÿ`, then the 68
//!   remapped bytes (`Ā` = byte 0, ..., `Ġ` = space, ...). This is the order HF tokenizers'
//!   `BpeTrainer` gives `ByteLevel.alphabet()`.
//! - Each merge whose result is a new byte string gives it the next id (256, 257, ... in rank
//!   order); a merge whose result already exists (`a`+`bc` after `ab`+`c`) reuses that id.
//! - Special tokens take the ids after the BPE tokens, in the order given.
//! - Among pairs of equal count, the one with the smaller `(left id, right id)` wins: the same
//!   rule as HF's `BpeTrainer`, so on the same corpus both learn the same merges.
//! - Training stops when the vocabulary (BPE tokens + special tokens) reaches `vocab_size`, or
//!   when the most frequent pair occurs fewer than `min_frequency` times.
//!
//! Pair counts are exact sums over distinct words, so the result depends neither on the order of
//! the words, nor on how the stream was chunked, nor on the thread count.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use rayon::prelude::*;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

use super::bpe::Bpe;
use super::bytelevel::byte_to_char;
use super::pretok::{self, Pattern};
use super::{nfc, AddedToken, Tokenizer};
use crate::error::{Error, Result};
use crate::parallel;

/// Number of shards of the word-count map (a power of two).
const SHARDS: usize = 64;

/// `ALPHABET[i]` is the byte whose symbol has id `i` (byte-level char code point order).
pub fn alphabet() -> [u8; 256] {
    let t = byte_to_char();
    let mut bytes: [u8; 256] = std::array::from_fn(|b| b as u8);
    bytes.sort_by_key(|&b| t[b as usize] as u32);
    bytes
}

type Shard = FxHashMap<Box<[u8]>, u64>;

fn shard_of(word: &[u8]) -> usize {
    let h = FxBuildHasher.hash_one(word);
    (h >> 58) as usize & (SHARDS - 1)
}

/// Distinct pre-tokens of a corpus with their counts, fed chunk by chunk.
pub struct WordCounter {
    shards: Vec<Shard>,
    special_tokens: Vec<String>,
    matcher: Option<AhoCorasick>,
}

impl WordCounter {
    /// A counter that cuts texts at `special_tokens` (which must be non-empty and distinct).
    pub fn new(special_tokens: Vec<String>) -> Result<WordCounter> {
        let mut seen = FxHashSet::default();
        for s in &special_tokens {
            if s.is_empty() {
                return Err(Error::Value(
                    "special_tokens contains an empty string".into(),
                ));
            }
            if !seen.insert(s.as_str()) {
                return Err(Error::Value(format!("special token {s:?} is given twice")));
            }
        }
        let matcher = if special_tokens.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(special_tokens.iter().map(|s| s.as_bytes()))
                    .map_err(|e| Error::Value(format!("cannot index special tokens: {e}")))?,
            )
        };
        Ok(WordCounter {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            special_tokens,
            matcher,
        })
    }

    pub fn special_tokens(&self) -> &[String] {
        &self.special_tokens
    }

    /// Number of distinct pre-tokens seen so far.
    pub fn n_words(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// The count of one pre-token (its raw bytes).
    pub fn count(&self, word: &[u8]) -> u64 {
        self.shards[shard_of(word)].get(word).copied().unwrap_or(0)
    }

    /// Count the pre-tokens of `texts` on `n_threads` threads.
    pub fn add_texts<S: AsRef<str> + Sync>(&mut self, texts: &[S], n_threads: usize) {
        if texts.is_empty() {
            return;
        }
        let matcher = self.matcher.as_ref();
        let total: usize = texts.iter().map(|t| t.as_ref().len()).sum();
        // A few pieces per thread, so that one long text does not hold up the others much.
        let pieces = if n_threads <= 1 {
            1
        } else {
            (n_threads * 4).min(texts.len())
        };
        let per = (total / pieces).max(1);
        let mut ranges = Vec::with_capacity(pieces + 1);
        let (mut start, mut acc) = (0, 0);
        for (i, t) in texts.iter().enumerate() {
            acc += t.as_ref().len();
            if acc >= per {
                ranges.push(start..i + 1);
                start = i + 1;
                acc = 0;
            }
        }
        if start < texts.len() {
            ranges.push(start..texts.len());
        }
        let locals: Vec<Vec<FxHashMap<Vec<u8>, u64>>> = parallel::map(&ranges, n_threads, |r| {
            count_local(&texts[r.clone()], matcher)
        });
        let shards = &mut self.shards;
        let merge = |(s, shard): (usize, &mut Shard)| {
            for local in &locals {
                for (w, &c) in &local[s] {
                    if let Some(v) = shard.get_mut(w.as_slice()) {
                        *v += c;
                    } else {
                        shard.insert(w.clone().into_boxed_slice(), c);
                    }
                }
            }
        };
        parallel::install(n_threads, || {
            if n_threads <= 1 {
                shards.iter_mut().enumerate().for_each(merge)
            } else {
                shards.par_iter_mut().enumerate().for_each(merge)
            }
        });
    }

    /// Learn merges until the vocabulary (BPE tokens + special tokens) has `vocab_size` tokens
    /// or no pair occurs `min_frequency` times, and build the tokenizer.
    pub fn train(
        self,
        vocab_size: usize,
        min_frequency: u64,
        n_threads: usize,
    ) -> Result<Tokenizer> {
        let n_special = self.special_tokens.len();
        let min_size = 256 + n_special;
        if vocab_size < min_size {
            return Err(Error::Value(format!(
                "vocab_size={vocab_size} is too small: it counts the 256 byte tokens and the \
                 {n_special} special tokens, so it must be at least {min_size}"
            )));
        }
        let WordCounter {
            shards,
            special_tokens,
            ..
        } = self;
        let learned = learn(shards, vocab_size - n_special, min_frequency, n_threads);
        build(learned, special_tokens)
    }
}

fn count_local<S: AsRef<str>>(
    texts: &[S],
    matcher: Option<&AhoCorasick>,
) -> Vec<FxHashMap<Vec<u8>, u64>> {
    let mut local: Vec<FxHashMap<Vec<u8>, u64>> =
        (0..SHARDS).map(|_| FxHashMap::default()).collect();
    let mut add_stretch = |s: &str| {
        if s.is_empty() {
            return;
        }
        let s = nfc(s);
        for piece in pretok::split(&s, Pattern::Qwen2) {
            let h = FxBuildHasher.hash_one(piece);
            let map = &mut local[(h >> 58) as usize & (SHARDS - 1)];
            if let Some(v) = map.get_mut(piece) {
                *v += 1;
            } else {
                map.insert(piece.to_vec(), 1);
            }
        }
    };
    for t in texts {
        let t = t.as_ref();
        match matcher {
            None => add_stretch(t),
            Some(m) => {
                let mut last = 0;
                for hit in m.find_iter(t) {
                    add_stretch(&t[last..hit.start()]);
                    last = hit.end();
                }
                add_stretch(&t[last..]);
            }
        }
    }
    local
}

/// What training learned: token bytes by id (0..256 the alphabet) and merges as id pairs.
pub struct Learned {
    pub tokens: Vec<Vec<u8>>,
    pub merges: Vec<(u32, u32)>,
}

#[inline(always)]
fn key(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

/// Merge every (non-overlapping, leftmost first) occurrence of `(a, b)` in `syms` into `new`,
/// reporting each change of a neighbouring pair as `(pair, +1 | -1)`.
#[inline]
fn merge_word(syms: &mut Vec<u32>, a: u32, b: u32, new: u32, mut change: impl FnMut(u64, i64)) {
    let n = syms.len();
    let (mut i, mut j) = (0, 0);
    while i < n {
        if i + 1 < n && syms[i] == a && syms[i + 1] == b {
            if j > 0 {
                let p = syms[j - 1];
                change(key(p, a), -1);
                change(key(p, new), 1);
            }
            if i + 2 < n {
                let nx = syms[i + 2];
                change(key(b, nx), -1);
                change(key(new, nx), 1);
            }
            syms[j] = new;
            i += 2;
        } else {
            syms[j] = syms[i];
            i += 1;
        }
        j += 1;
    }
    syms.truncate(j);
}

/// The BPE trainer proper: learn merges until there are `max_tokens` tokens.
pub fn learn(
    shards: Vec<Shard>,
    max_tokens: usize,
    min_frequency: u64,
    n_threads: usize,
) -> Learned {
    let alpha = alphabet();
    let mut sym_of = [0u32; 256];
    for (i, &b) in alpha.iter().enumerate() {
        sym_of[b as usize] = i as u32;
    }
    let mut tokens: Vec<Vec<u8>> = alpha.iter().map(|&b| vec![b]).collect();
    let mut merges: Vec<(u32, u32)> = Vec::new();
    if tokens.len() >= max_tokens {
        return Learned { tokens, merges };
    }

    // Words of two bytes or more (shorter ones hold no pair), as symbol ids.
    let mut words: Vec<Vec<u32>> = Vec::new();
    let mut counts: Vec<i64> = Vec::new();
    for shard in shards {
        for (w, c) in shard {
            if w.len() >= 2 {
                words.push(w.iter().map(|&b| sym_of[b as usize]).collect());
                counts.push(c.min(i64::MAX as u64) as i64);
            }
        }
    }

    // Initial pair counts and index pair -> words, counted on threads in word ranges.
    let n_words = words.len();
    let n_chunks = if n_threads <= 1 { 1 } else { n_threads * 4 };
    let per = n_words.div_ceil(n_chunks).max(1);
    let ranges: Vec<std::ops::Range<usize>> = (0..n_words)
        .step_by(per)
        .map(|s| s..(s + per).min(n_words))
        .collect();
    type Local = (FxHashMap<u64, i64>, FxHashMap<u64, Vec<u32>>);
    let locals: Vec<Local> = parallel::map(&ranges, n_threads, |r| {
        let mut pc: FxHashMap<u64, i64> = FxHashMap::default();
        let mut ix: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
        for w in r.clone() {
            let syms = &words[w];
            let c = counts[w];
            for p in syms.windows(2) {
                let k = key(p[0], p[1]);
                *pc.entry(k).or_insert(0) += c;
                let list = ix.entry(k).or_default();
                if list.last() != Some(&(w as u32)) {
                    list.push(w as u32);
                }
            }
        }
        (pc, ix)
    });
    let mut pair_counts: FxHashMap<u64, i64> = FxHashMap::default();
    let mut index: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
    for (pc, ix) in locals {
        if pair_counts.is_empty() {
            pair_counts = pc;
            index = ix;
            continue;
        }
        for (k, c) in pc {
            *pair_counts.entry(k).or_insert(0) += c;
        }
        for (k, mut l) in ix {
            index.entry(k).or_default().append(&mut l);
        }
    }

    let min_count = min_frequency.max(1).min(i64::MAX as u64) as i64;
    // Max-heap on (count, smaller pair first); entries may be stale (checked when popped).
    let mut heap: BinaryHeap<(i64, Reverse<u64>)> = pair_counts
        .iter()
        .filter(|&(_, &c)| c >= min_count)
        .map(|(&k, &c)| (c, Reverse(k)))
        .collect();
    let mut vocab: FxHashMap<Vec<u8>, u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let mut merged: FxHashSet<u64> = FxHashSet::default();
    let mut touched: Vec<u64> = Vec::new();

    while tokens.len() < max_tokens {
        let Some((c, Reverse(k))) = heap.pop() else {
            break;
        };
        let now = pair_counts.get(&k).copied().unwrap_or(0);
        if c != now {
            if now >= min_count {
                heap.push((now, Reverse(k)));
            }
            continue;
        }
        if c < min_count {
            break;
        }
        let (a, b) = ((k >> 32) as u32, k as u32);
        let mut bytes = tokens[a as usize].clone();
        bytes.extend_from_slice(&tokens[b as usize]);
        let new = match vocab.get(&bytes) {
            Some(&id) => id,
            None => {
                let id = tokens.len() as u32;
                vocab.insert(bytes.clone(), id);
                tokens.push(bytes);
                id
            }
        };
        if merged.insert(k) {
            merges.push((a, b));
        }
        let list = index.remove(&k).unwrap_or_default();
        touched.clear();
        for &w in &list {
            let wc = counts[w as usize];
            let syms = &mut words[w as usize];
            merge_word(syms, a, b, new, |p, d| {
                if p == k {
                    return;
                }
                *pair_counts.entry(p).or_insert(0) += d * wc;
                if d > 0 {
                    let l = index.entry(p).or_default();
                    if l.last() != Some(&w) {
                        l.push(w);
                    }
                    touched.push(p);
                }
            });
        }
        pair_counts.remove(&k);
        touched.sort_unstable();
        touched.dedup();
        for &p in &touched {
            let c = pair_counts.get(&p).copied().unwrap_or(0);
            if c >= min_count {
                heap.push((c, Reverse(p)));
            }
        }
    }
    Learned { tokens, merges }
}

/// Assemble the tokenizer: BPE tokens by id, then the special tokens.
pub fn build(learned: Learned, special_tokens: Vec<String>) -> Result<Tokenizer> {
    let Learned { tokens, merges } = learned;
    let merge_bytes: Vec<(Vec<u8>, Vec<u8>)> = merges
        .iter()
        .map(|&(a, b)| (tokens[a as usize].clone(), tokens[b as usize].clone()))
        .collect();
    let n = tokens.len() as u32;
    let entries: Vec<(Vec<u8>, u32)> = tokens.into_iter().zip(0u32..).collect();
    let bpe = Bpe::new(entries, &merge_bytes).map_err(|e| {
        Error::Value(format!(
            "internal error: trained vocabulary is inconsistent: {e:?}"
        ))
    })?;
    let added = special_tokens
        .into_iter()
        .zip(n..)
        .map(|(content, id)| AddedToken {
            content,
            id,
            special: true,
        })
        .collect();
    Tokenizer::new(bpe, Pattern::Qwen2, true, added, None)
}

/// One-shot training over an in-memory list of texts.
pub fn train_bpe<S: AsRef<str> + Sync>(
    texts: &[S],
    vocab_size: usize,
    special_tokens: Vec<String>,
    min_frequency: u64,
    n_threads: usize,
) -> Result<Tokenizer> {
    let mut counter = WordCounter::new(special_tokens)?;
    counter.add_texts(texts, n_threads);
    counter.train(vocab_size, min_frequency, n_threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merges_of(tok: &Tokenizer) -> Vec<(String, String)> {
        let bpe = tok.bpe();
        bpe.merges()
            .iter()
            .map(|&(a, b, _)| {
                (
                    String::from_utf8_lossy(bpe.token_bytes(a).unwrap()).into_owned(),
                    String::from_utf8_lossy(bpe.token_bytes(b).unwrap()).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn alphabet_starts_with_printables_and_ends_with_remapped_bytes() {
        let a = alphabet();
        assert_eq!(a[0], b'!');
        assert_eq!(a[93], b'~');
        assert_eq!(a[188], 0); // 'Ā'
        assert_eq!(a[188 + 32], b' '); // 'Ġ'
        let mut s = a.to_vec();
        s.sort();
        assert_eq!(s, (0..=255).collect::<Vec<u8>>());
    }

    #[test]
    fn learns_frequent_pairs_first_with_the_tie_break() {
        // "ab" x3 and "cd" x3 tie; 'a' < 'c' so (a, b) goes first; "xy" x1 is below min_frequency.
        let texts = ["ab ab ab cd cd cd xy"];
        let tok = train_bpe(&texts, 1000, vec!["<|endoftext|>".into()], 2, 1).unwrap();
        let m = merges_of(&tok);
        assert_eq!(
            &m[..2],
            &[("a".into(), "b".into()), ("c".into(), "d".into())]
        );
        // then " cd" (3 times) before " ab" (twice: the first "ab" has no space)
        assert_eq!(m[2], (" ".into(), "cd".into()));
        assert_eq!(m[3], (" ".into(), "ab".into()));
        assert!(!m.contains(&("x".into(), "y".into())));
        assert_eq!(tok.added_tokens()[0].id as usize, tok.bpe().n_ids());
    }

    #[test]
    fn overlapping_pairs_merge_leftmost_and_counts_stay_exact() {
        let mut syms = vec![1, 1, 1, 1, 1];
        let mut ch = FxHashMap::default();
        merge_word(&mut syms, 1, 1, 9, |p, d| *ch.entry(p).or_insert(0) += d);
        assert_eq!(syms, vec![9, 9, 1]);
        assert_eq!(ch.get(&key(9, 9)), Some(&1));
        assert_eq!(ch.get(&key(9, 1)), Some(&1));
    }

    #[test]
    fn chunking_and_threads_do_not_change_the_result() {
        let texts: Vec<String> = (0..300)
            .map(|i| {
                format!(
                    "def f{i}(x):\n    return x * {i} # 你好 wörld {}",
                    "ab".repeat(i % 7)
                )
            })
            .collect();
        let one = train_bpe(&texts, 280, vec![], 2, 1).unwrap();
        let mut counter = WordCounter::new(vec![]).unwrap();
        for chunk in texts.chunks(37) {
            counter.add_texts(chunk, 3);
        }
        let other = counter.train(280, 2, 2).unwrap();
        assert_eq!(merges_of(&one), merges_of(&other));
        assert_eq!(one.vocab_size(), 280);
    }

    #[test]
    fn special_tokens_are_cut_out_and_vocab_size_is_checked() {
        let mut c = WordCounter::new(vec!["<|endoftext|>".into()]).unwrap();
        c.add_texts(&["hello<|endoftext|>world"], 1);
        assert_eq!(c.count(b"hello"), 1);
        assert_eq!(c.count(b"world"), 1);
        assert_eq!(c.n_words(), 2);
        assert!(matches!(c.train(256, 2, 1), Err(Error::Value(m)) if m.contains("vocab_size=256")));
        assert!(WordCounter::new(vec!["x".into(), "x".into()]).is_err());
    }
}
