//! MinHash signatures over word n-gram shingles.
//!
//! - Shingles, by default as datatrove (FineWeb) makes them: the text goes through datatrove's
//!   `simplify_text` (`normalize::simplify_text`: lowercase, numbers as `0`, punctuation as spaces,
//!   whitespace collapsed, accents dropped), then into datatrove's English words (spaCy's
//!   tokenizer rules, `filter::spacy`), and every run of `ngram` consecutive words (joined by one
//!   space) is a shingle. A text with fewer than `ngram` words has no shingle and no signature,
//!   so it is never a duplicate (datatrove does not sign it); `sign_short_docs` makes it one
//!   shingle instead. `datatrove_words = false` uses [`NormConfig`]'s switches and a split on
//!   spaces instead (qwen25's earlier shingling).
//! - Which member of a cluster is kept: [`Survivor`] (the first by default; datatrove keeps the
//!   root of its union by size, `Survivor::Representative`).
//! - Shingle hash: the low 32 bits of xxh3-64 of the shingle's UTF-8 ([`shingle_hash`]).
//! - Permutation i: `a_i * fmix32(h) + b_i (mod 2^32)` with `a_i` odd, where fmix32 is the
//!   MurmurHash3 finalizer: the arithmetic of `datasketch.MinHash`'s default "affine32" scheme,
//!   so datasketch given our hash function and permutations reproduces our signatures bit for
//!   bit. `a_i`, `b_i` come from a splitmix64 stream seeded by `seed`.
//! - A slot with no shingle keeps 2^32 - 1 (datasketch's empty value).
//! - The inner loop (min over shingles of a wrapping 32-bit affine map, per permutation) is
//!   written for auto-vectorisation and compiled twice, with an AVX2 copy picked at run time.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::lsh::Survivor;
use super::normalize::{
    normalize, normalize_collapsed_with_spaces, simplify_text_into, simplify_text_with, NormConfig,
};
use crate::error::{Error, Result};
use crate::parallel;

pub const MAX_HASH: u32 = u32::MAX;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinHashConfig {
    pub num_perm: usize,
    pub bands: usize,
    pub rows: usize,
    pub ngram: usize,
    pub seed: u64,
    /// The normalisation switches: datatrove's `lowercase`, `remove_punctuation` and
    /// `norm_whitespace` under `datatrove_words`, else the plain normalisation's.
    pub norm: NormConfig,
    /// datatrove's shingling (FineWeb's): its `simplify_text` (lowercase, numbers as `0`,
    /// punctuation as spaces, whitespace collapsed, accents dropped), then its English words
    /// (spaCy's tokenizer rules, as the quality filters). Off: `norm`, then a split on spaces.
    #[serde(default = "yes")]
    pub datatrove_words: bool,
    /// Sign a document with fewer words than `ngram` (one shingle of all its words), so that
    /// it can be a duplicate. Off (datatrove): such a document has no signature and is never a
    /// duplicate.
    #[serde(default)]
    pub sign_short_docs: bool,
    /// Which member of a cluster is kept (default: the first).
    #[serde(default)]
    pub keep: Survivor,
}

fn yes() -> bool {
    true
}

impl Default for MinHashConfig {
    /// FineWeb: 5-grams, 112 hashes as 14 bands x 8 rows.
    fn default() -> Self {
        MinHashConfig {
            num_perm: 112,
            bands: 14,
            rows: 8,
            ngram: 5,
            seed: 1,
            norm: NormConfig::FINEWEB,
            datatrove_words: true,
            sign_short_docs: false,
            keep: Survivor::First,
        }
    }
}

impl MinHashConfig {
    pub fn validate(&self) -> Result<()> {
        if self.num_perm == 0 {
            return Err(Error::Value("num_perm must be >= 1".into()));
        }
        if self.ngram == 0 {
            return Err(Error::Value("ngram must be >= 1".into()));
        }
        if self.bands == 0 || self.rows == 0 {
            return Err(Error::Value(format!(
                "bands ({}) and rows ({}) must be >= 1",
                self.bands, self.rows
            )));
        }
        if self.bands * self.rows > self.num_perm {
            return Err(Error::Value(format!(
                "bands * rows = {} * {} = {} exceeds num_perm = {}",
                self.bands,
                self.rows,
                self.bands * self.rows,
                self.num_perm
            )));
        }
        Ok(())
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The low 32 bits of xxh3-64 of `shingle`.
#[inline]
pub fn shingle_hash(shingle: &[u8]) -> u32 {
    xxh3_64(shingle) as u32
}

/// The word n-gram shingles of `text` (after normalisation), in order, duplicates included.
pub fn shingles(text: &str, ngram: usize, norm: &NormConfig) -> Vec<String> {
    let t = normalize(text, norm);
    let words: Vec<&str> = t.split(' ').filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return Vec::new();
    }
    if words.len() < ngram {
        return vec![words.join(" ")];
    }
    words.windows(ngram).map(|w| w.join(" ")).collect()
}

/// Shingle hashes of `text` (duplicates included: they do not change a minimum), computed
/// without building the shingle strings.
pub fn shingle_hashes(text: &str, ngram: usize, norm: &NormConfig, out: &mut Vec<u32>) {
    out.clear();
    let mut spaces = Vec::new();
    let t = if norm.collapse_ws {
        normalize_collapsed_with_spaces(text, norm, &mut spaces)
    } else {
        normalize(text, norm)
    };
    let s = t.as_ref();
    // Word spans (byte ranges); with collapse_ws on, words are separated by exactly one space.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    if norm.collapse_ws {
        // single spaces, none at either end: the words lie between the spaces
        let mut st = 0;
        for &i in &spaces {
            spans.push((st, i as usize));
            st = i as usize + 1;
        }
        if st < s.len() {
            spans.push((st, s.len()));
        }
    } else {
        let mut start = None;
        for (i, b) in s.bytes().enumerate() {
            if b == b' ' {
                if let Some(st) = start.take() {
                    spans.push((st, i));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(st) = start {
            spans.push((st, s.len()));
        }
    }
    if spans.is_empty() {
        return;
    }
    let collapsed = norm.collapse_ws;
    let single_spaced = |a: usize, b: usize| -> bool {
        // true when the words a..=b are separated by single spaces in `s` (always, once collapsed)
        collapsed || (a..b).all(|k| spans[k + 1].0 == spans[k].1 + 1)
    };
    let mut buf = String::new();
    let mut hash_range = |a: usize, b: usize, out: &mut Vec<u32>| {
        if single_spaced(a, b) {
            out.push(shingle_hash(&s.as_bytes()[spans[a].0..spans[b].1]));
        } else {
            buf.clear();
            for k in a..=b {
                if k > a {
                    buf.push(' ');
                }
                buf.push_str(&s[spans[k].0..spans[k].1]);
            }
            out.push(shingle_hash(buf.as_bytes()));
        }
    };
    if spans.len() < ngram {
        hash_range(0, spans.len() - 1, out);
        return;
    }
    for a in 0..=spans.len() - ngram {
        hash_range(a, a + ngram - 1, out);
    }
}

/// MurmurHash3's 32-bit finalizer (datasketch's `_fmix(hv, 32)`).
#[inline(always)]
pub fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

#[inline(always)]
fn kernel(hs: &[u32], a: &[u32], b: &[u32], sig: &mut [u32]) {
    for ((s, &ai), &bi) in sig.iter_mut().zip(a).zip(b) {
        let m = hs
            .iter()
            .fold(MAX_HASH, |m, &h| m.min(ai.wrapping_mul(h).wrapping_add(bi)));
        *s = (*s).min(m);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn kernel_avx2(hs: &[u32], a: &[u32], b: &[u32], sig: &mut [u32]) {
    kernel(hs, a, b, sig)
}

fn kernel_dispatch(hs: &[u32], a: &[u32], b: &[u32], sig: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { kernel_avx2(hs, a, b, sig) };
            return;
        }
    }
    kernel(hs, a, b, sig)
}

/// The number of words of `text` in the plain shingling (`datatrove_words` off): normalised by
/// `norm`, split on spaces.
fn plain_words(text: &str, norm: &NormConfig) -> usize {
    normalize(text, norm)
        .split(' ')
        .filter(|w| !w.is_empty())
        .count()
}

/// Per-thread scratch space of the datatrove shingling: the simplified text and its word spans.
#[derive(Default)]
struct Scratch {
    text: String,
    spans: Vec<(usize, usize)>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
    static HASHES: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A MinHash signer: the permutations for one configuration.
#[derive(Clone, Debug)]
pub struct MinHasher {
    cfg: MinHashConfig,
    a: Vec<u32>,
    b: Vec<u32>,
}

impl MinHasher {
    pub fn new(cfg: MinHashConfig) -> Result<Self> {
        cfg.validate()?;
        let mut st = cfg.seed;
        let mut a = Vec::with_capacity(cfg.num_perm);
        let mut b = Vec::with_capacity(cfg.num_perm);
        for _ in 0..cfg.num_perm {
            a.push((splitmix64(&mut st) as u32) | 1);
            b.push(splitmix64(&mut st) as u32);
        }
        Ok(MinHasher { cfg, a, b })
    }

    pub fn config(&self) -> &MinHashConfig {
        &self.cfg
    }

    /// The permutation parameters (a, b), as datasketch's `permutations` argument wants them.
    pub fn permutations(&self) -> (&[u32], &[u32]) {
        (&self.a, &self.b)
    }

    /// Signature from raw shingle hashes (before fmix32), written into `sig` (len num_perm).
    pub fn signature_from_hashes(&self, hashes: &[u32], sig: &mut [u32]) {
        let mixed: Vec<u32> = hashes.iter().map(|&h| fmix32(h)).collect();
        sig.fill(MAX_HASH);
        kernel_dispatch(&mixed, &self.a, &self.b, sig);
    }

    /// The shingles of `text` under this configuration, in order (none for a document that is
    /// not signed).
    pub fn shingles(&self, text: &str) -> Vec<String> {
        let c = &self.cfg;
        if !c.datatrove_words {
            if !c.sign_short_docs && plain_words(text, &c.norm) < c.ngram {
                return Vec::new();
            }
            return shingles(text, c.ngram, &c.norm);
        }
        let t = simplify_text_with(text, &c.norm);
        let mut words = Vec::new();
        crate::filter::spacy::word_spans(&t, |s, e| words.push(&t[s..e]));
        if words.len() < c.ngram {
            return if c.sign_short_docs && !words.is_empty() {
                vec![words.join(" ")]
            } else {
                Vec::new()
            };
        }
        words.windows(c.ngram).map(|w| w.join(" ")).collect()
    }

    /// The raw shingle hashes of `text` under this configuration.
    fn shingle_hashes(&self, text: &str, out: &mut Vec<u32>) {
        let c = &self.cfg;
        if !c.datatrove_words {
            shingle_hashes(text, c.ngram, &c.norm, out);
            if !c.sign_short_docs && out.len() == 1 {
                // one shingle: fewer words than ngram, or exactly ngram
                if plain_words(text, &c.norm) < c.ngram {
                    out.clear();
                }
            }
            return;
        }
        out.clear();
        SCRATCH.with(|sc| {
            let mut sc = sc.borrow_mut();
            let Scratch { text: t, spans } = &mut *sc;
            self.datatrove_hashes(text, t, spans, out);
        });
    }

    /// The datatrove-shingling hashes of `text`, with `t` and `spans` as scratch space.
    fn datatrove_hashes(
        &self,
        text: &str,
        t: &mut String,
        spans: &mut Vec<(usize, usize)>,
        out: &mut Vec<u32>,
    ) {
        let c = &self.cfg;
        simplify_text_into(text, &c.norm, t);
        // the words as byte spans of `t`: a shingle whose words are joined by single spaces in
        // `t` (nearly all, once whitespace is collapsed) is hashed in place, without a copy
        // (`word_spans`: single-spaced plain words, nearly all of them, skip spaCy's rules)
        spans.clear();
        crate::filter::spacy::word_spans(t, |s, e| spans.push((s, e)));
        let spans = &spans[..];
        let bytes = t.as_bytes();
        // joined[k]: words k and k + 1 are separated by exactly one space
        let joined = |k: usize| spans[k + 1].0 == spans[k].1 + 1 && bytes[spans[k].1] == b' ';
        let mut buf = Vec::new();
        let mut push = |a: usize, b: usize, in_place: bool, out: &mut Vec<u32>| {
            if in_place {
                out.push(shingle_hash(&bytes[spans[a].0..spans[b].1]));
                return;
            }
            buf.clear();
            for k in a..=b {
                if k > a {
                    buf.push(b' ');
                }
                buf.extend_from_slice(&bytes[spans[k].0..spans[k].1]);
            }
            out.push(shingle_hash(&buf));
        };
        let n = spans.len();
        if n < c.ngram {
            if c.sign_short_docs && n > 0 {
                push(0, n - 1, (0..n - 1).all(joined), out);
            }
            return;
        }
        // the last join, among the first k, that is not a single space (for an O(1) test per
        // window)
        let mut last_bad: Option<usize> = None;
        for k in 0..c.ngram - 1 {
            if !joined(k) {
                last_bad = Some(k);
            }
        }
        for a in 0..=n - c.ngram {
            let b = a + c.ngram - 1;
            if a > 0 && !joined(b - 1) {
                last_bad = Some(b - 1);
            }
            push(a, b, last_bad.is_none_or(|k| k < a), out);
        }
    }

    /// Signature of one text (every value `MAX_HASH` for a document that is not signed).
    pub fn signature(&self, text: &str) -> Vec<u32> {
        let mut sig = vec![MAX_HASH; self.cfg.num_perm];
        self.signature_into(text, &mut sig);
        sig
    }

    /// [`MinHasher::signature`] into `sig` (len num_perm), with this thread's scratch buffers.
    fn signature_into(&self, text: &str, sig: &mut [u32]) {
        HASHES.with(|hs| {
            let mut hs = hs.borrow_mut();
            self.shingle_hashes(text, &mut hs);
            for h in hs.iter_mut() {
                *h = fmix32(*h);
            }
            sig.fill(MAX_HASH);
            kernel_dispatch(&hs, &self.a, &self.b, sig);
        })
    }

    /// Signatures of a batch, row-major (n x num_perm), in input order on `threads` threads.
    pub fn signatures<S: AsRef<str> + Sync>(&self, texts: &[S], threads: usize) -> Vec<u32> {
        use rayon::prelude::*;
        let np = self.cfg.num_perm;
        let mut out = vec![MAX_HASH; texts.len() * np];
        if threads <= 1 || texts.len() <= 1 {
            for (t, sig) in texts.iter().zip(out.chunks_mut(np)) {
                self.signature_into(t.as_ref(), sig);
            }
        } else {
            parallel::install(threads, || {
                out.par_chunks_mut(np)
                    .zip(texts.par_iter())
                    .for_each(|(sig, t)| self.signature_into(t.as_ref(), sig))
            });
        }
        out
    }

    /// The LSH band keys of one signature: band j hashes rows j*r..(j+1)*r with seed j.
    pub fn band_keys(&self, sig: &[u32], out: &mut Vec<u64>) {
        out.clear();
        let r = self.cfg.rows;
        let mut bytes = Vec::with_capacity(r * 4);
        for j in 0..self.cfg.bands {
            bytes.clear();
            for v in &sig[j * r..(j + 1) * r] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            out.push(xxh3_64_with_seed(&bytes, j as u64));
        }
    }
}

/// Estimated Jaccard similarity: the fraction of equal slots.
pub fn jaccard_estimate(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shingles_and_hashes_agree() {
        let t = "The quick, brown fox   jumps over the LAZY dog!";
        let sh = shingles(t, 3, &NormConfig::FINEWEB);
        assert_eq!(sh[0], "the quick brown");
        assert_eq!(sh.len(), 7);
        let mut set = Vec::new();
        shingle_hashes(t, 3, &NormConfig::FINEWEB, &mut set);
        let want: Vec<u32> = sh.iter().map(|s| shingle_hash(s.as_bytes())).collect();
        assert_eq!(set, want);
        // un-collapsed whitespace takes the slow path and gives the same set
        let cfg = NormConfig {
            collapse_ws: false,
            ..NormConfig::FINEWEB
        };
        shingle_hashes("a  b c", 2, &cfg, &mut set);
        let want: Vec<u32> = shingles("a  b c", 2, &cfg)
            .iter()
            .map(|s| shingle_hash(s.as_bytes()))
            .collect();
        assert_eq!(set, want);
        assert_eq!(
            shingles("two words", 5, &NormConfig::FINEWEB),
            vec!["two words".to_string()]
        );
        assert!(shingles(" ,. ", 5, &NormConfig::FINEWEB).is_empty());
    }

    #[test]
    fn datatrove_hashes_are_the_hashes_of_the_shingles() {
        // hashed in place or through the buffer, the hashes are those of the joined shingles
        let texts = [
            "The quick, brown fox   jumps over the LAZY dog! It's 3.14 km away.",
            "a\tb\n\nc  d\te f g h",
            "Don't stop: 5km, US$5 (e.g. here) -- café “naïve” ...",
            "one two",
            "",
        ];
        for collapse_ws in [true, false] {
            for sign_short_docs in [false, true] {
                for ngram in [1, 2, 5] {
                    let m = MinHasher::new(MinHashConfig {
                        ngram,
                        sign_short_docs,
                        norm: NormConfig {
                            collapse_ws,
                            ..NormConfig::FINEWEB
                        },
                        ..Default::default()
                    })
                    .unwrap();
                    for t in texts {
                        let mut got = Vec::new();
                        m.shingle_hashes(t, &mut got);
                        let want: Vec<u32> = m
                            .shingles(t)
                            .iter()
                            .map(|s| shingle_hash(s.as_bytes()))
                            .collect();
                        assert_eq!(got, want, "{t:?} {ngram} {collapse_ws} {sign_short_docs}");
                    }
                }
            }
        }
    }

    #[test]
    fn batch_signatures_reuse_nothing_between_texts() {
        // the batch reuses per-thread buffers: long and short texts in turn, on 1 and 2 threads,
        // give each text the signature of its own shingles
        let mut rng = crate::lcg::Lcg(9);
        let alphabet: Vec<char> = "ab c d e f 0 1,. don't 5km é\n".chars().collect();
        let texts: Vec<String> = (0..200)
            .map(|i| rng.string(&alphabet, if i % 3 == 0 { 300 } else { i % 17 }))
            .collect();
        let m = MinHasher::new(MinHashConfig::default()).unwrap();
        let mut want = Vec::new();
        for t in &texts {
            let hs: Vec<u32> = m
                .shingles(t)
                .iter()
                .map(|s| shingle_hash(s.as_bytes()))
                .collect();
            let mut sig = vec![0; m.config().num_perm];
            m.signature_from_hashes(&hs, &mut sig);
            want.extend_from_slice(&sig);
        }
        assert_eq!(m.signatures(&texts, 1), want);
        assert_eq!(m.signatures(&texts, 2), want);
    }

    #[test]
    fn kernels_agree() {
        let hs: Vec<u32> = (0..1000u32)
            .map(|i| fmix32(i.wrapping_mul(2654435761)))
            .collect();
        let m = MinHasher::new(MinHashConfig::default()).unwrap();
        let (a, b) = m.permutations();
        let mut s1 = vec![MAX_HASH; 112];
        let mut s2 = vec![MAX_HASH; 112];
        kernel(&hs, a, b, &mut s1);
        kernel_dispatch(&hs, a, b, &mut s2);
        assert_eq!(s1, s2);
        let naive: Vec<u32> = (0..112)
            .map(|i| {
                hs.iter()
                    .map(|&h| a[i].wrapping_mul(h).wrapping_add(b[i]))
                    .min()
                    .unwrap()
            })
            .collect();
        assert_eq!(s1, naive);
    }

    #[test]
    fn bad_config() {
        let cfg = MinHashConfig {
            bands: 20,
            ..Default::default()
        };
        assert!(MinHasher::new(cfg).is_err());
    }

    #[test]
    fn identical_texts_identical_signatures() {
        let m = MinHasher::new(MinHashConfig::default()).unwrap();
        let s = m.signatures(&["a b c d e f g", "A b, c d e f g!", "x y z w v u t"], 2);
        assert_eq!(s[..112], s[112..224]);
        assert_ne!(s[..112], s[224..]);
    }
}
