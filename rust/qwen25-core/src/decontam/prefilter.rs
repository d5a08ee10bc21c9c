//! An exact byte-level prefilter for mode `qwen`: most records are judged clean without being
//! tokenized.
//!
//! Why it is exact. The tokenizer is byte-level BPE: the ids `encode_ordinary` gives for a text
//! decode, back to back, to exactly the string its BPE saw, `S = NFC(normalize_qwen(text))` (NFC
//! only when the tokenizer normalises; the pre-tokenizer's pieces tile the text, every byte has a
//! token, and every merge's bytes are its parts' bytes). In mode `qwen` a record can be removed
//! only if its ids share a contiguous `n`-gram with a test item, `t[p..p+n] == e[q..q+n]`. Then
//! the bytes `B` of `e[q..q+n]` are the bytes of `t[p..p+n]`, a contiguous substring of `S`, and
//! so is every substring of `B`. So it is enough to find, for every n-gram of every test item,
//! one substring of its bytes (a *pattern*) and to tokenize only the records whose `S` contains
//! some pattern: the others share no n-gram with any test item and have no match.
//!
//! The patterns. The normalised text is words joined by single spaces, so most n-grams' bytes
//! hold a space. An *anchored* pattern is up to `max_bytes` bytes of `B` that hold a space of
//! `B` and the *key* after it, the next `anchor` bytes (or `anchor / 2`, `/ 4`, ... 1 where `B`
//! has fewer after the space). A record holding `B` holds the pattern, so the record is looked at
//! only at its spaces (found with `memchr`): for each key length, the hash of the bytes after the
//! space is looked up (a bitset, then the sorted hashes) and the patterns with that hash are
//! compared in full. The n-grams of an item are covered in order: one whose bytes hold the last
//! pattern (it starts at or after the n-gram's first byte) needs no other; otherwise the
//! n-gram's first space (the most bytes after it) gets a new pattern, `max_bytes` long, as early
//! in the n-gram as it goes (its first bytes, as long as the key fits). Above the byte budget
//! the patterns are placed as late as they go instead (at the last space with a full key), so
//! each lies in more n-grams and fewer are needed. An n-gram with no space before its last byte
//! (CJK, a long word) gives its first `max_bytes` bytes as a pattern of an Aho-Corasick
//! automaton, scanned over all of `S`.
//!
//! Left out: test items shorter than `n` tokens (they can never match; the n-gram index skips
//! them too) and n-grams holding an id that BPE never emits (no vocabulary bytes: an added-only
//! token, an unused id), since no record's ids contain them.
//!
//! The tokenizer. The patterns are the bytes of the test ids under the tokenizer given when the
//! index was built. That tokenizer, given again to `check`, is known by its
//! [`Tokenizer::instance`] and needs no confirming. For any other, [`Prefilter::same_bytes`]
//! confirms, exactly, that it gives every test id the same bytes and normalises the same way;
//! otherwise the prefilter is not used (the result is the same, only slower).

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};
use rustc_hash::FxHashSet;

use crate::tokenizer::{nfc, Tokenizer};

/// How the patterns are cut (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// the longest key after a space (>= 1); shorter keys are `anchor / 2`, `anchor / 4`, ...
    /// down to 1 byte, for n-grams with fewer bytes after their first space
    pub anchor: usize,
    /// a pattern holds at most this many bytes (more than `anchor`)
    pub max_bytes: usize,
    /// the same when the patterns are placed late (more than `anchor`): shorter patterns lie in
    /// more n-grams, so fewer are needed
    pub late_bytes: usize,
}

impl Default for Shape {
    /// Keys of 16 bytes (8, 4, 2, 1 where an n-gram has fewer after its space); patterns of up to
    /// 64 bytes (in practice the whole n-gram), 24 placed late. Measured on 40 MB of real code
    /// and docs against HumanEval (benches/RESULTS.md): up to 16, 24, 32 and 48 bytes let 43%,
    /// 13%, 4.5% and 3.1% of the files through; keys of 4 or 8 bytes filter the same but scan
    /// slower.
    fn default() -> Self {
        Shape {
            anchor: 16,
            max_bytes: 64,
            late_bytes: 24,
        }
    }
}

/// At most this many bytes of distinct patterns (anchored and not): the patterns are placed early
/// while one per n-gram fits, else late; above it even late no prefilter is built (the check is
/// the same, without the speed-up). The prefilter's heap is about 1.5 times its pattern bytes.
pub const BUDGET_BYTES: usize = 32 << 20;

/// The anchored patterns whose key (the bytes after their space) has one length.
struct Level {
    key: usize,
    /// a bitset indexed by the top `64 - shift` bits of the keys' hashes, then (hash, offset in
    /// `keys`, length, where the space is) sorted by hash
    bits: Vec<u64>,
    shift: u32,
    index: Vec<(u64, u32, u16, u16)>,
}

pub struct Prefilter {
    nfc: bool,
    /// the [`Tokenizer::instance`] the patterns were cut with
    built_with: u64,
    /// the patterns were placed late (the early ones did not fit the budget)
    late: bool,
    /// by key length, longest first; the pattern bytes back to back
    levels: Vec<Level>,
    keys: Vec<u8>,
    /// the n-grams without an anchor (None: there are none)
    ac: Option<AhoCorasick>,
    /// the distinct test ids, ascending, and their bytes (`(MAX, MAX)`: no vocabulary bytes), to
    /// confirm a tokenizer given later gives them the same bytes
    ids: Vec<u32>,
    spans: Vec<(u32, u32)>,
    bytes: Vec<u8>,
}

/// The longest key.
pub const MAX_KEY: usize = 16;

/// The little-endian word of up to 8 bytes (zero above them).
#[inline]
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(w)
}

/// The hash of a key of `len` (1..=16) bytes given as its two little-endian words (zero above
/// the key); its top bits index the bitset.
#[inline]
fn key_hash(w0: u64, w1: u64, len: usize) -> u64 {
    let h = (w0 ^ (len as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ w1.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    (h ^ (h >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB)
}

/// [`key_hash`] of a key given as bytes.
fn key_hash_of(k: &[u8]) -> u64 {
    let (a, b) = k.split_at(k.len().min(8));
    key_hash(word(a), word(b), k.len())
}

/// The mask of the low `n` bytes of a word (`n` <= 8).
#[inline]
fn low(n: usize) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    }
}

/// An anchored pattern: its bytes, where in them its space is, and its key length.
type Anchored = (Vec<u8>, u16, u16);

/// The key lengths of `shape`, longest first.
fn key_lengths(shape: Shape) -> Vec<usize> {
    std::iter::successors(Some(shape.anchor), |&k| (k > 1).then_some(k / 2)).collect()
}

/// The patterns of `items`: (anchored, the others), each distinct. `late`: place each anchored
/// pattern as late in its n-gram as it goes (at the last space with a full key after it), so
/// that it lies in more of the n-grams that follow (fewer patterns); otherwise at the n-gram's
/// first space, as early as it goes (longer, rarer patterns).
fn patterns(
    items: &[Vec<u32>],
    n: usize,
    shape: Shape,
    tok: &Tokenizer,
    late: bool,
) -> (FxHashSet<Anchored>, FxHashSet<Vec<u8>>) {
    let (l, k) = (
        shape.anchor,
        if late {
            shape.late_bytes
        } else {
            shape.max_bytes
        },
    );
    let lens = key_lengths(shape);
    let bpe = tok.bpe();
    let mut anchored: FxHashSet<Anchored> = FxHashSet::default();
    let mut others: FxHashSet<Vec<u8>> = FxHashSet::default();
    let (mut s, mut off, mut bad, mut spaces) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in items {
        if e.len() < n {
            continue;
        }
        // the item's bytes, the byte offset of each token, and how many tokens before each
        // position have no bytes
        s.clear();
        off.clear();
        bad.clear();
        off.push(0usize);
        bad.push(0usize);
        for &id in e {
            let b = bpe.token_bytes(id);
            s.extend_from_slice(b.unwrap_or(&[]));
            off.push(s.len());
            bad.push(bad[bad.len() - 1] + b.is_none() as usize);
        }
        spaces.clear();
        spaces.extend(memchr::memchr_iter(b' ', &s));
        // the start of the last anchored pattern: it lies in every later n-gram that starts
        // at or before it (the n-grams' ends only grow)
        let mut cur: Option<usize> = None;
        for q in 0..=e.len() - n {
            if bad[q + n] != bad[q] {
                continue; // an id BPE never emits: no record shares this n-gram
            }
            let (lo, hi) = (off[q], off[q + n]);
            if cur.is_some_and(|x| x >= lo) {
                continue;
            }
            // the first space of the n-gram with a byte after it in the n-gram (the most bytes
            // after it), or in `late` mode the last one with a full key after it
            let a = spaces.partition_point(|&x| x < lo);
            let first = spaces.get(a).copied().filter(|&sp| sp + 1 < hi);
            let sp = if late && first.is_some_and(|sp| sp + 1 + l <= hi) {
                let b = spaces.partition_point(|&x| x + 1 + l <= hi);
                Some(spaces[b - 1])
            } else {
                first
            };
            match sp {
                Some(sp) => {
                    let key = lens
                        .iter()
                        .copied()
                        .find(|&kl| sp + 1 + kl <= hi)
                        .unwrap_or(1);
                    // up to `k` bytes of the n-gram holding the space and its key
                    let x = if late {
                        sp.min(hi.saturating_sub(k)).max(lo)
                    } else {
                        (sp + 1 + key).saturating_sub(k).max(lo)
                    };
                    let y = hi.min(x + k);
                    cur = Some(x);
                    anchored.insert((s[x..y].to_vec(), (sp - x) as u16, key as u16));
                }
                None => {
                    let pat = &s[lo..hi.min(lo + shape.max_bytes)];
                    if !others.contains(pat) {
                        others.insert(pat.to_vec());
                    }
                }
            }
        }
    }
    (anchored, others)
}

impl Prefilter {
    /// Build the prefilter for the n-grams of `items` (token ids under `tok`). `None` when the
    /// distinct patterns hold more than `budget` bytes, even placed late, or the automaton
    /// cannot be built.
    pub fn build(
        items: &[Vec<u32>],
        n: usize,
        tok: &Tokenizer,
        shape: Shape,
        budget: usize,
    ) -> Option<Prefilter> {
        let anchor = shape.anchor.clamp(1, MAX_KEY);
        let shape = Shape {
            anchor,
            max_bytes: shape.max_bytes.clamp(anchor + 1, u16::MAX as usize),
            late_bytes: shape.late_bytes.clamp(anchor + 1, u16::MAX as usize),
        };
        let size = |(a, o): &(FxHashSet<Anchored>, FxHashSet<Vec<u8>>)| -> usize {
            a.iter()
                .map(|p| p.0.len())
                .chain(o.iter().map(|p| p.len()))
                .sum()
        };
        // early placement gives about one pattern per n-gram: skip it when that cannot fit
        let windows: usize = items.iter().map(|e| (e.len() + 1).saturating_sub(n)).sum();
        let mut pats = None;
        if windows.saturating_mul(shape.max_bytes) <= budget {
            pats = Some(patterns(items, n, shape, tok, false)).filter(|p| size(p) <= budget);
        }
        let late = pats.is_none();
        let pats = match pats {
            Some(p) => p,
            None => Some(patterns(items, n, shape, tok, true)).filter(|p| size(p) <= budget)?,
        };
        let (anchored, others) = pats;
        let mut keys: Vec<u8> = Vec::new();
        let mut levels: Vec<Level> = Vec::new();
        for key in key_lengths(shape) {
            let mut index: Vec<(u64, u32, u16, u16)> = Vec::new();
            for (pat, sp, kl) in &anchored {
                if *kl as usize == key {
                    let at = *sp as usize + 1;
                    let h = key_hash_of(&pat[at..at + key]);
                    index.push((h, keys.len() as u32, pat.len() as u16, *sp));
                    keys.extend_from_slice(pat);
                }
            }
            if index.is_empty() {
                continue;
            }
            index.sort_unstable();
            let nbits = (index.len() * 32).next_power_of_two().max(1 << 12);
            let mut bits = vec![0u64; nbits / 64];
            let shift = 64 - nbits.trailing_zeros();
            for &(h, ..) in &index {
                let i = h >> shift;
                bits[(i / 64) as usize] |= 1u64 << (i & 63);
            }
            levels.push(Level {
                key,
                bits,
                shift,
                index,
            });
        }
        let ac = if others.is_empty() {
            None
        } else {
            let mut pats: Vec<Vec<u8>> = others.into_iter().collect();
            pats.sort_unstable(); // a set's order is not fixed; the automaton's need not vary
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&pats)
                    .ok()?,
            )
        };
        let mut ids: Vec<u32> = items
            .iter()
            .filter(|e| e.len() >= n)
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let (spans, bytes) = id_bytes(&ids, tok);
        Some(Prefilter {
            nfc: tok.nfc(),
            built_with: tok.instance(),
            late,
            levels,
            keys,
            ac,
            ids,
            spans,
            bytes,
        })
    }

    /// Were the patterns placed late (fewer, shorter in reach) to fit the budget?
    pub fn late(&self) -> bool {
        self.late
    }

    /// The number of distinct anchored patterns, per key length (longest first), and of the
    /// others.
    pub fn patterns(&self) -> (Vec<(usize, usize)>, usize) {
        let a = self.levels.iter().map(|v| (v.key, v.index.len())).collect();
        (a, self.ac.as_ref().map_or(0, |a| a.patterns_len()))
    }

    pub fn heap_bytes(&self) -> usize {
        let levels: usize = self
            .levels
            .iter()
            .map(|v| v.bits.capacity() * 8 + v.index.capacity() * 16)
            .sum();
        levels
            + self.keys.capacity()
            + self.ac.as_ref().map_or(0, |a| a.memory_usage())
            + self.ids.capacity() * 4
            + self.spans.capacity() * 8
            + self.bytes.capacity()
    }

    /// The work of [`Self::same_bytes`]: one vocabulary lookup per distinct test id, about what
    /// tokenizing one byte of text costs (a batch with less text skips the prefilter).
    pub fn confirm_cost(&self) -> usize {
        self.ids.len()
    }

    /// Does the prefilter apply to a batch of `text` bytes tokenized by `tok`? With the tokenizer
    /// it was built with, always (nothing to confirm); with another, when [`Self::same_bytes`]
    /// confirms it, asked only of a batch with at least [`Self::confirm_cost`] bytes of text
    /// (for less, the confirmation would cost more than the prefilter saves).
    pub fn usable_with(&self, tok: &Tokenizer, text: usize) -> bool {
        tok.instance() == self.built_with || (text >= self.confirm_cost() && self.same_bytes(tok))
    }

    /// Does `tok` normalise as the tokenizer the patterns were cut with, and give every test id
    /// the same bytes (or none where it had none)? Exact.
    pub fn same_bytes(&self, tok: &Tokenizer) -> bool {
        if tok.nfc() != self.nfc {
            return false;
        }
        let bpe = tok.bpe();
        self.ids.iter().zip(&self.spans).all(|(&id, &(s, e))| {
            let want = (s != u32::MAX).then(|| &self.bytes[s as usize..e as usize]);
            bpe.token_bytes(id) == want
        })
    }

    /// The string the tokenizer's BPE sees for the normalised text `norm`.
    pub fn bpe_input<'a>(&self, norm: &'a str) -> Cow<'a, str> {
        if self.nfc {
            nfc(norm)
        } else {
            Cow::Borrowed(norm)
        }
    }

    /// Does a pattern of `v` hold the space at `b[sp]`? `w0`, `w1`: the 16 bytes after the
    /// space as words (zero past the end of `b`), which holds at least `v.key` of them.
    #[inline]
    fn anchored(&self, v: &Level, b: &[u8], sp: usize, w0: u64, w1: u64) -> bool {
        let k = v.key;
        let h = key_hash(w0 & low(k), if k > 8 { w1 & low(k - 8) } else { 0 }, k);
        let i = h >> v.shift;
        if v.bits[(i / 64) as usize] & (1u64 << (i & 63)) == 0 {
            return false;
        }
        let from = v.index.partition_point(|&(x, ..)| x < h);
        v.index[from..]
            .iter()
            .take_while(|&&(x, ..)| x == h)
            .any(|&(_, o, l, at)| {
                let (o, l, at) = (o as usize, l as usize, at as usize);
                sp >= at && b.get(sp - at..sp - at + l) == Some(&self.keys[o..o + l])
            })
    }

    /// Can a text whose BPE input is `s` share an n-gram with a test item? `false` is certain.
    pub fn may_match(&self, s: &str) -> bool {
        let b = s.as_bytes();
        if let Some(short) = self.levels.last() {
            if b.len() > short.key {
                let end = b.len() - short.key; // a space at or after it has no key after it
                for sp in memchr::memchr_iter(b' ', &b[..end]) {
                    let (w0, w1) = if sp + 17 <= b.len() {
                        let w = |at: usize| {
                            let mut x = [0u8; 8];
                            x.copy_from_slice(&b[at..at + 8]);
                            u64::from_le_bytes(x)
                        };
                        (w(sp + 1), w(sp + 9))
                    } else {
                        let rest = &b[sp + 1..];
                        let (a, c) = rest.split_at(rest.len().min(8));
                        (word(a), word(&c[..c.len().min(8)]))
                    };
                    let left = b.len() - sp - 1;
                    for v in &self.levels {
                        if v.key <= left && self.anchored(v, b, sp, w0, w1) {
                            return true;
                        }
                    }
                }
            }
        }
        self.ac.as_ref().is_some_and(|a| a.is_match(b))
    }
}

/// The vocabulary bytes of each id in `ids` (`(u32::MAX, u32::MAX)`: none), back to back.
fn id_bytes(ids: &[u32], tok: &Tokenizer) -> (Vec<(u32, u32)>, Vec<u8>) {
    let bpe = tok.bpe();
    let mut bytes = Vec::new();
    let spans = ids
        .iter()
        .map(|&id| match bpe.token_bytes(id) {
            Some(b) => {
                let s = bytes.len() as u32;
                bytes.extend_from_slice(b);
                (s, bytes.len() as u32)
            }
            None => (u32::MAX, u32::MAX),
        })
        .collect();
    (spans, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decontam::{normalize::normalize_qwen, tokenize, Config, Decontaminator, Input};
    use crate::decontam::{TestRng as Rng, Window};
    use std::collections::HashSet;

    /// Pieces of text that stress the byte view: NFC-changing sequences (e + U+0301, Hangul
    /// jamo), digits (one token each), punctuation (dropped by the normaliser), whitespace runs,
    /// CJK, emoji, code.
    const PIECES: &[&str] = &[
        "def ",
        "return ",
        "x",
        "y1",
        " = ",
        "(a, b)",
        ":\n    ",
        "if n < 0:",
        "for i in range(",
        "12345",
        "3.14159",
        "0",
        "42",
        "e\u{301}",
        "caf\u{e9}",
        "cafe\u{301}",
        "\u{1100}\u{1161}",
        "\u{ac00}",
        "Ω",
        "\u{2126}",
        "–",
        "...",
        "!!",
        "\"\"\"",
        "#",
        "    ",
        "\t\t",
        "\n\n\n",
        " ",
        "数据",
        "🙂",
        "Straße",
        "ﬁ",
        "A\u{30a}",
        "\u{c5}",
        "the ",
        "quick ",
        "brown ",
        "fox ",
        "lambda",
        "[1, 2, 3]",
        "{k: v}",
        "print(",
        ")",
        "None",
        "True",
        "¿",
        "·",
        "\u{200b}",
    ];

    /// `lo + (random below span)` pieces (span 0: exactly `lo`).
    fn text(r: &mut Rng, lo: usize, span: u64) -> String {
        let pieces = lo
            + if span == 0 {
                0
            } else {
                (r.next() % span) as usize
            };
        (0..pieces)
            .map(|_| PIECES[(r.next() % PIECES.len() as u64) as usize])
            .collect()
    }

    /// A record: noise, then a piece of a test item (edited a little) or not, then noise.
    fn record(r: &mut Rng, test: &[String]) -> String {
        let mut s = text(r, 0, 30);
        if !r.next().is_multiple_of(3) {
            let e = &test[(r.next() % test.len() as u64) as usize];
            let cs: Vec<char> = e.chars().collect();
            let a = (r.next() % (cs.len() as u64 + 1)) as usize;
            let b = a + (r.next() % (cs.len() - a + 1) as u64) as usize;
            let mut piece: Vec<char> = cs[a..b].to_vec();
            if r.next().is_multiple_of(2) && !piece.is_empty() {
                let at = (r.next() % piece.len() as u64) as usize;
                piece.remove(at); // an edit
            }
            s.extend(piece);
        }
        s + &text(r, 0, 30)
    }

    /// Every n-gram of ids of `t` that occurs in a test item of at least n ids, by brute force.
    fn shares(t: &[u32], test: &[Vec<u32>], n: usize) -> bool {
        let grams: HashSet<&[u32]> = test
            .iter()
            .filter(|e| e.len() >= n)
            .flat_map(|e| e.windows(n))
            .collect();
        t.len() >= n && t.windows(n).any(|w| grams.contains(w))
    }

    #[test]
    fn tokens_decode_to_the_bpe_input() {
        // the premise: the ids of a text decode, back to back, to exactly the scanned string
        let tok = Tokenizer::qwen25().unwrap();
        let test = [tokenize(&tok, "def f(x):\n    return x + 1")];
        let pf = Prefilter::build(&test, 3, &tok, Shape::default(), BUDGET_BYTES).unwrap();
        let mut r = Rng(7);
        let mut changed = 0;
        for _ in 0..500 {
            let t = text(&mut r, 40, 0);
            let norm = normalize_qwen(&t);
            let bytes = tok.decode_to_bytes(&tokenize(&tok, &t), false).unwrap();
            let seen = pf.bpe_input(&norm);
            changed += (seen.as_bytes() != norm.as_bytes()) as usize;
            assert_eq!(bytes, seen.as_bytes(), "{t:?}");
        }
        assert!(changed > 50, "NFC changed only {changed} texts");
    }

    #[test]
    fn rejects_only_records_without_a_shared_ngram() {
        let tok = Tokenizer::qwen25().unwrap();
        let mut placed_late = 0;
        let mut passed_rejected = (0, 0); // default shape, n >= 8
        let mut r = Rng(0x5eed_1234_abcd_0001);
        for trial in 0..60 {
            let n = [1usize, 2, 3, 5, 8, 13][trial % 6];
            let test: Vec<String> = (0..4).map(|_| text(&mut r, 5, 40)).collect();
            let ids: Vec<Vec<u32>> = test.iter().map(|t| tokenize(&tok, t)).collect();
            let shapes = [
                Shape::default(),
                Shape {
                    anchor: 1,
                    max_bytes: 64,
                    late_bytes: 64,
                },
                Shape {
                    anchor: 4,
                    max_bytes: 3,
                    late_bytes: 3,
                },
                Shape {
                    anchor: 7,
                    max_bytes: 1,
                    late_bytes: 1,
                },
                Shape {
                    anchor: 40,
                    max_bytes: 8,
                    late_bytes: 8,
                },
            ];
            // the default shape placed early, then placed late (a budget the early patterns
            // exceed), then the other shapes
            let early = patterns(&ids, n, Shape::default(), &tok, false);
            let early_bytes: usize = early.0.iter().map(|p| p.0.len()).sum::<usize>()
                + early.1.iter().map(|p| p.len()).sum::<usize>();
            let late = patterns(&ids, n, Shape::default(), &tok, true);
            let late_bytes: usize = late.0.iter().map(|p| p.0.len()).sum::<usize>()
                + late.1.iter().map(|p| p.len()).sum::<usize>();
            assert!(late.0.len() <= early.0.len() && late.1 == early.1);
            let mut budgets = vec![(Shape::default(), BUDGET_BYTES)];
            if late_bytes < early_bytes {
                budgets.push((Shape::default(), early_bytes - 1));
                placed_late += 1;
            }
            budgets.extend(shapes.iter().skip(1).map(|&sh| (sh, BUDGET_BYTES)));
            for (shape, budget) in budgets {
                let pf = Prefilter::build(&ids, n, &tok, shape, budget).unwrap();
                let (mut pass, mut reject) = (0, 0);
                for _ in 0..40 {
                    let t = record(&mut r, &test);
                    let tids = tokenize(&tok, &t);
                    let may = pf.may_match(&pf.bpe_input(&normalize_qwen(&t)));
                    if shares(&tids, &ids, n) {
                        assert!(
                            may,
                            "n={n} {shape:?}: rejected {t:?}, which shares an n-gram"
                        );
                    }
                    pass += may as usize;
                    reject += !may as usize;
                }
                if shape == Shape::default() && n >= 8 {
                    passed_rejected.0 += pass;
                    passed_rejected.1 += reject;
                }
            }
        }
        assert!(placed_late >= 8, "placed late in {placed_late} trials");
        assert!(
            passed_rejected.0 > 100 && passed_rejected.1 > 100,
            "{passed_rejected:?}"
        );
    }

    #[test]
    fn matches_equal_with_and_without() {
        let tok = Tokenizer::qwen25().unwrap();
        let mut r = Rng(0xfeed_0bad_f00d_0003);
        let mut rejected = 0usize;
        let mut matched = 0usize;
        for trial in 0..48 {
            let ngram = [1usize, 2, 4, 13][trial % 4];
            let window = [Window::Aligned, Window::Whole, Window::Fixed(20)][(trial / 4) % 3];
            let mut test: Vec<String> = (0..6).map(|_| text(&mut r, 3, 60)).collect();
            test.push("x".into()); // shorter than n tokens (for n > 1)
            test.push("12".into());
            let cfg = |prefilter| Config {
                ngram,
                lcs_min: ngram.min(5),
                window,
                prefilter,
                ..Config::default()
            };
            let ins: Vec<Input> = test.iter().map(|t| Input::Text(t)).collect();
            let on = Decontaminator::new(cfg(true), &ins, Some(&tok), 2).unwrap();
            let off = Decontaminator::new(cfg(false), &ins, Some(&tok), 2).unwrap();
            assert!(on.prefilter().is_some() && off.prefilter().is_none());
            let recs: Vec<String> = (0..60)
                .map(|i| match i % 10 {
                    0 => String::new(),
                    1 => "!!! ... ---".into(),
                    2 => "   \n\t ".into(),
                    3 => test[(r.next() % test.len() as u64) as usize].clone(),
                    _ => record(&mut r, &test),
                })
                .collect();
            let batch: Vec<Input> = recs.iter().map(|t| Input::Text(t)).collect();
            let passes = on.prefilter_passes(
                &recs.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                &tok,
                1,
            );
            rejected += passes.unwrap().iter().filter(|&&p| !p).count();
            for all in [false, true] {
                let a = on.check(&batch, Some(&tok), all, 2).unwrap();
                let b = off.check(&batch, Some(&tok), all, 2).unwrap();
                assert_eq!(a, b, "ngram={ngram} {window:?} all={all}");
                matched += a.iter().filter(|m| !m.is_empty()).count();
            }
        }
        assert!(
            rejected > 500 && matched > 200,
            "rejected {rejected}, matched {matched}"
        );
    }

    /// Mode qwen on 3-grams (an LCS of 3 at least), with the prefilter or without.
    fn trigrams(prefilter: bool) -> Config {
        Config {
            ngram: 3,
            prefilter,
            lcs_min: 3,
            ..Config::default()
        }
    }

    /// The [`trigrams`] index over `ins`, with the prefilter and without.
    fn on_off(ins: &[Input], tok: &Tokenizer) -> (Decontaminator, Decontaminator) {
        let build = |p| Decontaminator::new(trigrams(p), ins, Some(tok), 1).unwrap();
        (build(true), build(false))
    }

    #[test]
    fn id_items_and_special_ids() {
        // test items given as ids, with an added-only token and an unknown id in them: the
        // blocks holding those are left out (BPE never emits them), the rest still filter
        let tok = Tokenizer::qwen25().unwrap();
        let mut e = tokenize(&tok, "def add(a, b): return a + b and more words after it");
        e.insert(4, 151_644); // <|im_start|>
        e.push(999_999_999);
        let ins = [Input::Ids(&e)];
        let (on, off) = on_off(&ins, &tok);
        let recs = [
            "def add(a, b): return a + b",
            "return a + b and more words after it",
            "unrelated text entirely, nothing shared here at all",
        ];
        let batch: Vec<Input> = recs.iter().map(|t| Input::Text(t)).collect();
        let a = on.check(&batch, Some(&tok), true, 1).unwrap();
        assert_eq!(a, off.check(&batch, Some(&tok), true, 1).unwrap());
        assert!(!a[0].is_empty() && !a[1].is_empty() && a[2].is_empty());
        assert_eq!(
            on.prefilter_passes(&recs, &tok, 1),
            Some(vec![true, true, false])
        );
        // ids in the batch skip the prefilter
        let ids = tokenize(&tok, recs[1]);
        let x = on.check(&[Input::Ids(&ids)], Some(&tok), true, 1).unwrap();
        assert_eq!(
            x,
            off.check(&[Input::Ids(&ids)], Some(&tok), true, 1).unwrap()
        );
        // no tokenizer when built (ids only): no prefilter
        let none = Decontaminator::new(trigrams(true), &ins, None, 1).unwrap();
        assert!(none.prefilter().is_none());
        let c = none.check(&batch, Some(&tok), true, 1).unwrap();
        assert_eq!(c, a);
    }

    #[test]
    fn the_build_tokenizer_needs_no_confirming() {
        // the tokenizer the index was built with uses the prefilter on any batch, even one with
        // less text than confirming costs; another instance of the same tokenizer is confirmed
        // on a batch big enough; one that gives the test ids other bytes is refused; the matches
        // are those without the prefilter every time
        let tok = Tokenizer::qwen25().unwrap();
        let other = Tokenizer::qwen25().unwrap();
        let corpus = ["plain words about gardening, weather and small boats on the lake"; 4];
        let trained = crate::tokenizer::train::train_bpe(&corpus, 300, vec![], 1, 1).unwrap();
        let item = "The quick brown fox jumps over the lazy dog while seventeen purple \
                    elephants recite Shakespearean sonnets beneath a crimson aurora.";
        let ins = [Input::Text(item)];
        let (on, off) = on_off(&ins, &tok);
        let pf = on.prefilter().unwrap();
        let small = ["purple elephants recite"];
        assert!(small[0].len() < pf.confirm_cost(), "{}", pf.confirm_cost());
        let filler = "unrelated words ".repeat(pf.confirm_cost() / 16 + 1);
        let big = [small[0], filler.as_str()];
        assert_eq!(on.prefilter_passes(&small, &tok, 1), Some(vec![true]));
        assert_eq!(on.prefilter_passes(&small, &other, 1), None);
        assert_eq!(
            on.prefilter_passes(&big, &other, 1),
            Some(vec![true, false])
        );
        assert_eq!(on.prefilter_passes(&big, &trained, 1), None);
        assert!(pf.usable_with(&tok, 0) && !pf.usable_with(&other, 0));
        assert!(pf.same_bytes(&other) && !pf.same_bytes(&trained));
        for k in [&tok, &other, &trained] {
            for batch in [&small[..], &big[..]] {
                let b: Vec<Input> = batch.iter().map(|t| Input::Text(t)).collect();
                let a = on.check(&b, Some(k), true, 1).unwrap();
                assert_eq!(a, off.check(&b, Some(k), true, 1).unwrap());
                if std::ptr::eq(k, &tok) {
                    assert!(!a[0].is_empty());
                }
            }
        }
    }

    #[test]
    fn anchors_cover_and_budget() {
        let tok = Tokenizer::qwen25().unwrap();
        let mut r = Rng(99);
        let ids: Vec<Vec<u32>> = (0..20)
            .map(|_| tokenize(&tok, &text(&mut r, 200, 0)))
            .collect();
        let pf = Prefilter::build(&ids, 13, &tok, Shape::default(), BUDGET_BYTES).unwrap();
        let (levels, others) = pf.patterns();
        let anchored: usize = levels.iter().map(|x| x.1).sum();
        let windows: usize = ids.iter().map(|e| e.len().saturating_sub(12)).sum();
        // placed early: at most one pattern per n-gram; placed late: one covers several
        assert!(!pf.late() && anchored > 0 && anchored + others <= windows);
        let late = Prefilter::build(&ids, 13, &tok, Shape::default(), 64 * windows / 3).unwrap();
        let (levels, _) = late.patterns();
        let fewer: usize = levels.iter().map(|x| x.1).sum();
        assert!(
            late.late() && fewer * 2 < anchored,
            "{fewer} {anchored} {windows}"
        );
        assert!(pf.same_bytes(&tok));
        assert!(Prefilter::build(&ids, 13, &tok, Shape::default(), 10).is_none());
        // CJK without spaces: every n-gram goes to the automaton
        let cjk = [tokenize(&tok, &"数据集的测试项目没有空格".repeat(4))];
        let pf = Prefilter::build(&cjk, 5, &tok, Shape::default(), BUDGET_BYTES).unwrap();
        assert!(pf.patterns().0.is_empty());
        assert!(pf.patterns().1 > 0);
        assert!(pf.may_match(&normalize_qwen("前文 数据集的测试项目没有空格 后文")));
        assert!(!pf.may_match(&normalize_qwen("数据 集的测试")));
    }
}
