//! An exact byte-level prefilter for mode `qwen`: most records are judged clean without being
//! tokenized.
//!
//! Why it is exact. The tokenizer is byte-level BPE: the ids `encode_ordinary` gives for a text
//! decode, concatenated, to exactly the string its BPE saw, `S = NFC(normalize_qwen(text))` (NFC
//! only when the tokenizer normalises; every byte has a token, and every merge's bytes are the
//! concatenation of its parts). In mode `qwen` a record can be removed only if its ids share a
//! contiguous `n`-gram with a test item: `t[p..p+n] == e[q..q+n]`. Then the bytes of
//! `e[q..q+n]` are the bytes of `t[p..p+n]`, a contiguous substring of `S`, and so is every
//! substring of them.
//!
//! The patterns. Each test item of at least `n` tokens is cut into blocks of `m` tokens at every
//! `s`-th position (`s = n - m + 1`); every `n`-gram of the item contains a whole block (the
//! first block at or after its start, `a <= q + s - 1`, ends by `a + m <= q + n`). A block's
//! pattern is its bytes, cut to the first `max_bytes`. One Aho-Corasick automaton holds the
//! distinct patterns; a record whose `S` contains none of them shares no `n`-gram with any test
//! item and has no match. Blocks holding an id that BPE never emits (no vocabulary bytes: an
//! added-only token, an unused id) are left out: no record's ids contain them. Test items shorter
//! than `n` tokens can never match (the n-gram index skips them) and give no pattern.
//!
//! The tokenizer. The patterns are the bytes of the test ids under the tokenizer given when the
//! index was built. [`Prefilter::same_bytes`] confirms, exactly, that a tokenizer given to `check`
//! gives every test id the same bytes and normalises the same way; otherwise the prefilter is not
//! used (the result is the same, only slower).

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use rustc_hash::FxHashSet;

use crate::tokenizer::{nfc, Tokenizer};

/// Tokens per block when every n-gram gets its own pattern would be too many (see
/// [`Prefilter::build`]); at least this many tokens, or no prefilter.
const MIN_BLOCK: usize = 3;

/// How the patterns are cut (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// tokens per block (1..=n)
    pub block: usize,
    /// at most this many bytes of each block
    pub max_bytes: usize,
}

/// Defaults: patterns of up to 32 bytes, and at most 16 MiB of distinct pattern bytes (the
/// block shrinks, and the patterns get fewer, until they fit; none below [`MIN_BLOCK`] tokens).
pub const MAX_BYTES: usize = 32;
pub const BUDGET_BYTES: usize = 16 << 20;

pub struct Prefilter {
    ac: AhoCorasick,
    nfc: bool,
    shape: Shape,
    patterns: usize,
    /// the distinct test ids, ascending, and their bytes (`None`: no vocabulary bytes), to
    /// confirm a tokenizer given later gives them the same bytes
    ids: Vec<u32>,
    spans: Vec<(u32, u32)>,
    bytes: Vec<u8>,
}

/// The patterns of `items` cut with `shape` (distinct, in first-seen order).
fn patterns(items: &[Vec<u32>], n: usize, shape: Shape, tok: &Tokenizer) -> Vec<Vec<u8>> {
    let m = shape.block.clamp(1, n);
    let s = n - m + 1;
    let bpe = tok.bpe();
    let mut seen: FxHashSet<Vec<u8>> = FxHashSet::default();
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(shape.max_bytes + 64);
    for e in items {
        if e.len() < n {
            continue;
        }
        let mut a = 0;
        while a + m <= e.len() {
            buf.clear();
            let mut ok = true;
            for &id in &e[a..a + m] {
                match bpe.token_bytes(id) {
                    Some(b) => buf.extend_from_slice(b),
                    None => {
                        ok = false;
                        break;
                    }
                }
                if buf.len() >= shape.max_bytes {
                    break;
                }
            }
            if ok {
                buf.truncate(shape.max_bytes);
                if !seen.contains(buf.as_slice()) {
                    seen.insert(buf.clone());
                    out.push(buf.clone());
                }
            }
            a += s;
        }
    }
    out
}

impl Prefilter {
    /// Build the prefilter for the n-grams of `items` (token ids under `tok`). `shape: None`
    /// picks one: every n-gram its own pattern (`block = n`) if the distinct patterns fit in
    /// `budget` bytes, else the largest block that fits; `None` when even [`MIN_BLOCK`]-token
    /// blocks do not fit (or `n < MIN_BLOCK` and they do not), or the automaton cannot be built.
    pub fn build(
        items: &[Vec<u32>],
        n: usize,
        tok: &Tokenizer,
        shape: Option<Shape>,
        budget: usize,
    ) -> Option<Prefilter> {
        let size = |p: &[Vec<u8>]| p.iter().map(|x| x.len()).sum::<usize>();
        let (shape, pats) = match shape {
            Some(sh) => (sh, patterns(items, n, sh, tok)),
            None => {
                let mut block = n;
                loop {
                    let sh = Shape {
                        block,
                        max_bytes: MAX_BYTES,
                    };
                    let p = patterns(items, n, sh, tok);
                    if size(&p) <= budget {
                        break (sh, p);
                    }
                    if block <= MIN_BLOCK.min(n) {
                        return None;
                    }
                    // blocks of m tokens give about 1/(n - m + 1) of the patterns of m = n
                    block = (block * 2 / 3).max(MIN_BLOCK.min(n));
                }
            }
        };
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&pats)
            .ok()?;
        let mut ids: Vec<u32> = items.iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let (spans, bytes) = id_bytes(&ids, tok);
        Some(Prefilter {
            ac,
            nfc: tok.nfc(),
            shape,
            patterns: pats.len(),
            ids,
            spans,
            bytes,
        })
    }

    /// The shape the patterns were cut with.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The number of distinct patterns.
    pub fn patterns(&self) -> usize {
        self.patterns
    }

    pub fn heap_bytes(&self) -> usize {
        self.ac.memory_usage()
            + self.ids.capacity() * 4
            + self.spans.capacity() * 8
            + self.bytes.capacity()
    }

    /// The work of [`Self::same_bytes`]: one vocabulary lookup per distinct test id, about what
    /// tokenizing one byte of text costs (a batch with less text skips the prefilter).
    pub fn confirm_cost(&self) -> usize {
        self.ids.len()
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

    /// Can a text whose BPE input is `s` share an n-gram with a test item? `false` is certain.
    pub fn may_match(&self, s: &str) -> bool {
        self.ac.is_match(s.as_bytes())
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
        let pf = Prefilter::build(&test, 3, &tok, None, BUDGET_BYTES).unwrap();
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
        let mut r = Rng(0x5eed_1234_abcd_0001);
        for trial in 0..60 {
            let n = [1usize, 2, 3, 5, 8, 13][trial % 6];
            let test: Vec<String> = (0..4).map(|_| text(&mut r, 5, 40)).collect();
            let ids: Vec<Vec<u32>> = test.iter().map(|t| tokenize(&tok, t)).collect();
            let shapes = [
                None,
                Some(Shape {
                    block: n,
                    max_bytes: 32,
                }),
                Some(Shape {
                    block: 1,
                    max_bytes: 64,
                }),
                Some(Shape {
                    block: n.div_ceil(2),
                    max_bytes: 3,
                }),
                Some(Shape {
                    block: n,
                    max_bytes: 1,
                }),
            ];
            for shape in shapes {
                let pf = Prefilter::build(&ids, n, &tok, shape, BUDGET_BYTES).unwrap();
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
                if shape.is_none() && n >= 3 {
                    assert!(
                        pass > 0 && reject > 0,
                        "n={n}: {pass} passed, {reject} rejected"
                    );
                }
            }
        }
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

    #[test]
    fn id_items_and_special_ids() {
        // test items given as ids, with an added-only token and an unknown id in them: the
        // blocks holding those are left out (BPE never emits them), the rest still filter
        let tok = Tokenizer::qwen25().unwrap();
        let mut e = tokenize(&tok, "def add(a, b): return a + b and more words after it");
        e.insert(4, 151_644); // <|im_start|>
        e.push(999_999_999);
        let ins = [Input::Ids(&e)];
        let cfg = |prefilter| Config {
            ngram: 3,
            prefilter,
            lcs_min: 3,
            ..Config::default()
        };
        let on = Decontaminator::new(cfg(true), &ins, Some(&tok), 1).unwrap();
        let off = Decontaminator::new(cfg(false), &ins, Some(&tok), 1).unwrap();
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
        let none = Decontaminator::new(cfg(true), &ins, None, 1).unwrap();
        assert!(none.prefilter().is_none());
        let c = none.check(&batch, Some(&tok), true, 1).unwrap();
        assert_eq!(c, a);
    }

    #[test]
    fn budget_shrinks_the_blocks() {
        let tok = Tokenizer::qwen25().unwrap();
        let mut r = Rng(99);
        let ids: Vec<Vec<u32>> = (0..20)
            .map(|_| tokenize(&tok, &text(&mut r, 200, 0)))
            .collect();
        let full = Prefilter::build(&ids, 13, &tok, None, BUDGET_BYTES).unwrap();
        assert_eq!(full.shape().block, 13);
        let small = Prefilter::build(&ids, 13, &tok, None, full.patterns() * 4).unwrap();
        assert!(small.shape().block < 13 && small.patterns() < full.patterns());
        assert!(Prefilter::build(&ids, 13, &tok, None, 10).is_none());
        assert!(full.same_bytes(&tok));
    }
}
