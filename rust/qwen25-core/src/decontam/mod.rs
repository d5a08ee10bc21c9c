//! Benchmark decontamination: the Qwen2/Qwen2.5 rule, exact, in three modes over one engine.
//!
//! A training sequence s_t is contaminated by a test sequence s_e when
//! |LCS(s_t, s_e)| >= `lcs_min` and |LCS(s_t, s_e)| >= `lcs_ratio` * min(|s_t|, |s_e|)
//! (LCS = longest common *subsequence* of token ids; `lcs_ratio` is taken to 6 decimal places,
//! so the comparison is exact integer arithmetic: lcs * 10^6 >= round(ratio * 10^6) * min).
//!
//! - [`Mode::Qwen`]: text is normalised ([`normalize::normalize_qwen`]) and tokenized; s_t is
//!   removed iff some s_e shares a contiguous `ngram`-gram of ids with it AND meets the LCS rule.
//!   By default ([`Window::Aligned`]) s_t is the record's tokens aligned to the test item at
//!   each shared n-gram; [`Window::Whole`] is the literal rule, [`Window::Fixed`] k tokens
//!   centred on each hit.
//!   A record whose normalised bytes hold no test n-gram's bytes is clean without being
//!   tokenized ([`prefilter`]; exact, [`Config::prefilter`] turns it off).
//! - [`Mode::Lcs`]: the LCS rule alone. Candidates come from a sound count filter (an inverted
//!   index gives sum_v min(count_t(v), count_e(v)) >= LCS for every test item), then the exact
//!   bit-parallel LCS ([`lcs::Pattern`]) decides.
//! - [`Mode::Ngram`]: the GPT-3 / lm-evaluation-harness rule: a shared word `ngram`-gram after
//!   lowercasing and stripping punctuation ([`normalize::words`]).
//!
//! Decisions are made per training item, so they never depend on the thread count, the batch
//! size or the order of the batch.

pub mod lcs;
pub mod ngram;
pub mod normalize;
pub mod prefilter;

use std::borrow::Cow;
use std::cell::RefCell;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::parallel;
use crate::tokenizer::Tokenizer;
use lcs::Pattern;
use ngram::NgramIndex;
use prefilter::Prefilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Qwen,
    Lcs,
    Ngram,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode> {
        match s {
            "qwen" => Ok(Mode::Qwen),
            "lcs" => Ok(Mode::Lcs),
            "ngram" => Ok(Mode::Ngram),
            _ => Err(Error::Value(format!(
                "mode must be 'qwen', 'lcs' or 'ngram', not {s:?}"
            ))),
        }
    }
}

/// Which part of a training sequence the LCS rule is judged on (mode `qwen`).
///
/// The report's rule was written for training *samples*; on a long document almost any test
/// item is a subsequence of it, so judging the whole record removes ordinary files.
/// [`Window::Aligned`] compares like with like: each shared n-gram `t[p..p+n] == e[q..q+n]`
/// places the test item at `p - q` in the record, and the rule is judged on the record's tokens
/// there, widened on both sides by a quarter of the item's length
/// (`t[p-q-s .. p-q+|e|+s]`, `s = ceil(|e|/4)`, clipped to the record). A record no longer than
/// the window is judged whole, as the literal rule would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The whole training sequence: the report's literal rule.
    Whole,
    /// `k` tokens centred on each shared n-gram.
    Fixed(usize),
    /// The record's tokens aligned to the test item at each shared n-gram (the default).
    Aligned,
}

/// The slack of [`Window::Aligned`] on each side: `ceil(len / ALIGN_SLACK_DIV)` tokens.
pub const ALIGN_SLACK_DIV: usize = 4;

/// The window `[start, end)` of a sequence of `len` tokens aligned to a test item of `le`
/// tokens placed at `offset` (see [`Window::Aligned`]).
pub fn aligned_bounds(offset: isize, le: usize, len: usize) -> (usize, usize) {
    let slack = le.div_ceil(ALIGN_SLACK_DIV) as isize;
    let clip = |x: isize| x.clamp(0, len as isize) as usize;
    (clip(offset - slack), clip(offset + le as isize + slack))
}

#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    pub ngram: usize,
    pub lcs_min: usize,
    pub lcs_ratio: f64,
    /// mode `qwen` only; modes `lcs` and `ngram` take [`Window::Whole`] or
    /// [`Window::Aligned`] (both mean the whole sequence there).
    pub window: Window,
    /// mode `qwen`, text input: skip tokenizing a record whose normalised bytes contain no
    /// n-gram's bytes of any test item ([`prefilter`]). Exact: the matches are the same with it
    /// on or off; only the speed changes.
    pub prefilter: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Qwen,
            ngram: 13,
            lcs_min: 13,
            lcs_ratio: 0.6,
            window: Window::Aligned,
            prefilter: true,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if self.ngram == 0 {
            return Err(Error::Value("ngram must be >= 1".into()));
        }
        if self.lcs_min == 0 {
            return Err(Error::Value("lcs_min must be >= 1".into()));
        }
        if !(0.0..=1.0).contains(&self.lcs_ratio) {
            return Err(Error::Value(format!(
                "lcs_ratio must be in [0, 1], not {}",
                self.lcs_ratio
            )));
        }
        match (self.window, self.mode) {
            (Window::Fixed(0), _) => {
                Err(Error::Value("window must be >= 1, 'auto' or None".into()))
            }
            (Window::Fixed(_), Mode::Lcs | Mode::Ngram) => Err(Error::Value(
                "a window of k tokens applies to mode='qwen' only (it centres on n-gram hits)"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// `lcs_ratio` in millionths.
    pub fn ratio_ppm(&self) -> u64 {
        (self.lcs_ratio * 1e6).round() as u64
    }

    /// Does an LCS of `lcs` between sequences of lengths `lt` and `le` meet the rule?
    #[inline]
    pub fn rule_holds(&self, lcs: usize, lt: usize, le: usize) -> bool {
        let m = lt.min(le) as u64;
        lcs >= self.lcs_min && (lcs as u64) * 1_000_000 >= self.ratio_ppm() * m
    }

    /// The smallest LCS that meets the rule for lengths `lt`, `le`.
    #[inline]
    pub fn threshold(&self, lt: usize, le: usize) -> usize {
        let m = lt.min(le) as u64;
        let need = (self.ratio_ppm() * m).div_ceil(1_000_000) as usize;
        need.max(self.lcs_min)
    }
}

/// One test item that contaminates a training item (a witness).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub test_index: usize,
    /// LCS length (None in ngram mode).
    pub lcs: Option<usize>,
    /// Positions in the training sequence (tokens; words in ngram mode) of the n-grams it shares
    /// with the test item (empty in lcs mode).
    pub ngram_hits: Vec<usize>,
    /// ngram mode: character spans of the shared n-grams in the training text.
    pub spans: Vec<(usize, usize)>,
    /// Modes qwen and lcs: the token range `[start, end)` of the training sequence the LCS
    /// rule was met on (the whole sequence unless a window judged it).
    pub window: Option<(usize, usize)>,
    /// The same range in characters (code points) of the training text, for text inputs.
    pub char_window: Option<(usize, usize)>,
}

/// One input item: a text (normalised and tokenized, or split into words) or token ids.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    Text(&'a str),
    Ids(&'a [u32]),
}

impl<'a> From<&'a crate::io::Item> for Input<'a> {
    /// A record as read by [`crate::io`]: its text, or its token ids.
    fn from(it: &'a crate::io::Item) -> Self {
        match it {
            crate::io::Item::Text(s) => Input::Text(s),
            crate::io::Item::Ids(v) => Input::Ids(v),
        }
    }
}

pub struct Decontaminator {
    cfg: Config,
    /// test sequences: token ids (qwen, lcs) or word ids (ngram)
    items: Vec<Vec<u32>>,
    patterns: Vec<Pattern>,
    ngrams: Option<NgramIndex>,
    /// qwen/lcs modes: token id -> dense id (0..number of distinct test tokens); the
    /// patterns and the inverted index work on dense ids, so per-pair lookups are array reads
    dense: FxHashMap<u32, u32>,
    /// lcs mode: dense id -> range of `postings` (test item, count)
    inverted: Vec<(u32, u32)>,
    postings: Vec<(u32, u32)>,
    /// lcs mode: the patterns in lane groups with prebuilt tables (small vocabularies only)
    bank: lcs::Bank,
    /// ngram mode: the test words by id; 64-bit word hash -> id (hits are verified against
    /// `words`, so a hash collision never makes a false match); test words whose hash collided
    /// with another test word's are looked up by string
    words: Vec<String>,
    word_ids: FxHashMap<u64, u32>,
    collided: FxHashMap<String, u32>,
    /// mode qwen: records whose BPE input holds none of its patterns are clean untokenized
    /// (None: `cfg.prefilter` off, no tokenizer when built, or the patterns too many)
    prefilter: Option<Prefilter>,
}

thread_local! {
    static ACC: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static TABLE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

const UNKNOWN_WORD: u32 = u32::MAX;
/// A training token that occurs in no test item.
const NONE: u32 = u32::MAX;

fn need_tok(tok: Option<&Tokenizer>) -> Result<&Tokenizer> {
    tok.ok_or_else(|| Error::Value("text input needs a tokenizer in modes 'qwen' and 'lcs'".into()))
}

/// Normalise and tokenize a text the way modes `qwen` and `lcs` do.
pub fn tokenize(tok: &Tokenizer, text: &str) -> Vec<u32> {
    tok.encode_ordinary(&normalize::normalize_qwen(text))
}

impl Decontaminator {
    /// Build the index over `test` (in `cfg.mode`). Text items need `tok` unless the mode is ngram.
    pub fn new(
        cfg: Config,
        test: &[Input<'_>],
        tok: Option<&Tokenizer>,
        threads: usize,
    ) -> Result<Decontaminator> {
        cfg.validate()?;
        let mut words: Vec<String> = Vec::new();
        let mut word_ids: FxHashMap<u64, u32> = FxHashMap::default();
        let mut collided: FxHashMap<String, u32> = FxHashMap::default();
        let items: Vec<Vec<u32>> = match cfg.mode {
            Mode::Ngram => {
                let mut items = Vec::with_capacity(test.len());
                for (i, it) in test.iter().enumerate() {
                    let Input::Text(t) = it else {
                        return Err(Error::Value(format!(
                            "test item {i}: mode 'ngram' needs text, not token ids"
                        )));
                    };
                    let ws = normalize::words(t);
                    let mut ids = Vec::with_capacity(ws.len());
                    for (w, _, _) in ws {
                        let h = word_hash(&w);
                        let next = words.len() as u32;
                        let id = match word_ids.get(&h) {
                            Some(&id) if words[id as usize] == w => id,
                            Some(_) => match collided.get(&w) {
                                Some(&id) => id,
                                None => {
                                    collided.insert(w.clone(), next);
                                    words.push(w);
                                    next
                                }
                            },
                            None => {
                                word_ids.insert(h, next);
                                words.push(w);
                                next
                            }
                        };
                        ids.push(id);
                    }
                    items.push(ids);
                }
                items
            }
            Mode::Qwen | Mode::Lcs => {
                if test.iter().any(|t| matches!(t, Input::Text(_))) {
                    need_tok(tok)?;
                }
                parallel::map(test, threads, |it| match it {
                    Input::Text(t) => tok.map(|k| tokenize(k, t)).unwrap_or_default(),
                    Input::Ids(ids) => ids.to_vec(),
                })
            }
        };
        let mut dense: FxHashMap<u32, u32> = FxHashMap::default();
        let patterns = if cfg.mode == Mode::Ngram {
            Vec::new()
        } else {
            let mut dense_items = Vec::with_capacity(items.len());
            for s in &items {
                let d: Vec<u32> = s
                    .iter()
                    .map(|&x| {
                        let next = dense.len() as u32;
                        *dense.entry(x).or_insert(next)
                    })
                    .collect();
                dense_items.push(d);
            }
            parallel::map(&dense_items, threads, |s| Pattern::new(s))
        };
        let ngrams = if cfg.mode == Mode::Lcs {
            None
        } else {
            Some(NgramIndex::build(&items, cfg.ngram))
        };
        let mut inverted = Vec::new();
        let mut postings = Vec::new();
        let mut bank = lcs::Bank::default();
        if cfg.mode == Mode::Lcs {
            bank = lcs::Bank::new(&patterns, dense.len(), |i| patterns[i].len() >= cfg.lcs_min);
            let mut all: Vec<(u32, u32, u32)> = Vec::new();
            for (i, p) in patterns.iter().enumerate() {
                if p.len() < cfg.lcs_min {
                    continue; // can never meet the rule
                }
                let (d, c) = p.bag();
                all.extend(d.iter().zip(c).map(|(&v, &n)| (v, i as u32, n)));
            }
            all.sort_unstable();
            postings.reserve_exact(all.len());
            inverted = vec![(0u32, 0u32); dense.len()];
            let mut i = 0;
            while i < all.len() {
                let v = all[i].0;
                let start = postings.len();
                while i < all.len() && all[i].0 == v {
                    postings.push((all[i].1, all[i].2));
                    i += 1;
                }
                inverted[v as usize] = (start as u32, (postings.len() - start) as u32);
            }
        }
        let prefilter = match (cfg.mode, cfg.prefilter, tok) {
            (Mode::Qwen, true, Some(k)) => Prefilter::build(
                &items,
                cfg.ngram,
                k,
                prefilter::Shape::default(),
                prefilter::BUDGET_BYTES,
            ),
            _ => None,
        };
        Ok(Decontaminator {
            cfg,
            items,
            patterns,
            ngrams,
            dense,
            inverted,
            postings,
            bank,
            words,
            word_ids,
            collided,
            prefilter,
        })
    }

    /// The prefilter of mode `qwen`, if one was built.
    pub fn prefilter(&self) -> Option<&Prefilter> {
        self.prefilter.as_ref()
    }

    /// Per text of `batch`: could the prefilter let it through (`true`: it is tokenized and
    /// judged)? `None` when [`Self::check`] would not use the prefilter on this batch.
    pub fn prefilter_passes(
        &self,
        batch: &[&str],
        tok: &Tokenizer,
        threads: usize,
    ) -> Option<Vec<bool>> {
        let text = batch.iter().map(|t| t.len()).sum();
        let pf = self.usable_prefilter(text, Some(tok))?;
        Some(parallel::map(batch, threads, |t| {
            pf.may_match(&pf.bpe_input(&normalize::normalize_qwen(t)))
        }))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The test item `i` as the engine sees it (token ids, or word ids in ngram mode).
    pub fn item(&self, i: usize) -> Option<&[u32]> {
        self.items.get(i).map(|v| v.as_slice())
    }

    /// Heap bytes of the index (approximate; hash tables counted by capacity).
    pub fn heap_bytes(&self) -> usize {
        let items: usize = self.items.iter().map(|v| v.capacity() * 4 + 24).sum();
        let pats: usize = self.patterns.iter().map(|p| p.heap_bytes() + 88).sum();
        let ng = self.ngrams.as_ref().map(|n| n.heap_bytes()).unwrap_or(0);
        let vocab: usize = self.words.iter().map(|k| k.capacity() + 24).sum::<usize>()
            + self.word_ids.capacity() * 13;
        items
            + pats
            + ng
            + self.dense.capacity() * 9
            + self.inverted.capacity() * 8
            + self.postings.capacity() * 8
            + self.bank.heap_bytes()
            + vocab
            + self.prefilter.as_ref().map_or(0, |p| p.heap_bytes())
    }

    /// Decide a batch. `all = false`: at most one witness per item (the lowest test index);
    /// `all = true`: every test item that meets the rule.
    pub fn check(
        &self,
        batch: &[Input<'_>],
        tok: Option<&Tokenizer>,
        all: bool,
        threads: usize,
    ) -> Result<Vec<Vec<Match>>> {
        if self.cfg.mode != Mode::Ngram && batch.iter().any(|t| matches!(t, Input::Text(_))) {
            need_tok(tok)?;
        }
        if self.cfg.mode == Mode::Ngram {
            if let Some(i) = batch.iter().position(|t| matches!(t, Input::Ids(_))) {
                return Err(Error::Value(format!(
                    "item {i}: mode 'ngram' needs text, not token ids"
                )));
            }
        }
        let text = batch
            .iter()
            .map(|it| match it {
                Input::Text(t) => t.len(),
                Input::Ids(_) => 0,
            })
            .sum();
        let pf = self.usable_prefilter(text, tok);
        Ok(parallel::map(batch, threads, |it| {
            self.check_item(*it, tok, all, pf)
        }))
    }

    /// The prefilter, if it applies to this batch of `text` bytes: `tok` is the tokenizer it was
    /// built with, or gives the test ids the same bytes ([`Prefilter::usable_with`]).
    fn usable_prefilter(&self, text: usize, tok: Option<&Tokenizer>) -> Option<&Prefilter> {
        let (pf, k) = (self.prefilter.as_ref()?, tok?);
        pf.usable_with(k, text).then_some(pf)
    }

    /// Decide one item (without the prefilter; [`Self::check`] uses it).
    pub fn check_one(&self, item: Input<'_>, tok: Option<&Tokenizer>, all: bool) -> Vec<Match> {
        self.check_item(item, tok, all, None)
    }

    fn check_item(
        &self,
        item: Input<'_>,
        tok: Option<&Tokenizer>,
        all: bool,
        pf: Option<&Prefilter>,
    ) -> Vec<Match> {
        match (self.cfg.mode, item) {
            (Mode::Ngram, Input::Text(t)) => self.check_words(t, all),
            (Mode::Ngram, Input::Ids(_)) => Vec::new(),
            (_, Input::Text(t)) => match tok {
                Some(k) => {
                    let norm = normalize::normalize_qwen(t);
                    // with the prefilter, the BPE input it saw (NFC is idempotent, so the
                    // tokenizer's own NFC finds it done)
                    let bpe_in = match pf {
                        Some(pf) => {
                            let s = pf.bpe_input(&norm);
                            if !pf.may_match(&s) {
                                return Vec::new(); // shares no n-gram with any test item
                            }
                            s
                        }
                        None => Cow::Borrowed(norm.as_str()),
                    };
                    let ids = k.encode_ordinary(&bpe_in); // = tokenize(k, t)
                    let mut ms = self.check_ids(&ids, all);
                    if !ms.is_empty() {
                        char_windows(k, t, &ids, &mut ms);
                    }
                    ms
                }
                None => Vec::new(),
            },
            (_, Input::Ids(ids)) => self.check_ids(ids, all),
        }
    }

    /// Decide one training sequence of token ids (modes qwen and lcs).
    pub fn check_ids(&self, t: &[u32], all: bool) -> Vec<Match> {
        match self.cfg.mode {
            Mode::Qwen => self.check_qwen(t, all),
            Mode::Lcs => self.check_lcs(t, all),
            Mode::Ngram => Vec::new(),
        }
    }

    /// `t` in dense ids ([`NONE`] for tokens in no test item; positions kept).
    fn to_dense(&self, t: &[u32]) -> Vec<u32> {
        t.iter()
            .map(|x| self.dense.get(x).copied().unwrap_or(NONE))
            .collect()
    }

    fn with_table<R>(&self, f: impl FnOnce(&mut [u32]) -> R) -> R {
        TABLE.with(|tb| {
            let mut tb = tb.borrow_mut();
            if tb.len() < self.dense.len() {
                tb.resize(self.dense.len(), 0);
            }
            f(&mut tb[..])
        })
    }

    fn check_qwen(&self, t: &[u32], all: bool) -> Vec<Match> {
        let mut out = Vec::new();
        let Some(index) = &self.ngrams else {
            return out;
        };
        let hits = index.hits(t, &self.items);
        if hits.is_empty() {
            return out;
        }
        let n = self.cfg.ngram;
        let td = self.to_dense(t);
        let mut t_bag: Option<(Vec<u32>, Vec<u32>)> = None;
        self.with_table(|table| {
            for group in hits.chunk_by(|a, b| a.0 == b.0) {
                // one test item's hits (consecutive in `hits`)
                let item = group[0].0;
                let pos: Vec<usize> = group.iter().map(|&(_, p)| p as usize).collect();
                let pat = &self.patterns[item as usize];
                let le = pat.len();
                // the first window (in order of position) that meets the rule
                let judge = |table: &mut [u32], w: (usize, usize)| -> Option<usize> {
                    let (s, e) = w;
                    if self.cfg.threshold(e - s, le) > (e - s).min(le) {
                        return None;
                    }
                    let l = pat.lcs_dense(table, &td[s..e]);
                    self.cfg.rule_holds(l, e - s, le).then_some(l)
                };
                let found: Option<(usize, (usize, usize))> = match self.cfg.window {
                    Window::Whole => {
                        let thr = self.cfg.threshold(t.len(), le);
                        if thr > t.len().min(le) {
                            None
                        } else {
                            let (d, c) = t_bag.get_or_insert_with(|| {
                                let known: Vec<u32> =
                                    td.iter().copied().filter(|&x| x != NONE).collect();
                                lcs::bag(&known)
                            });
                            if pat.bag_bound(d, c) < thr {
                                None
                            } else {
                                judge(table, (0, t.len())).map(|l| (l, (0, t.len())))
                            }
                        }
                    }
                    Window::Fixed(k) => {
                        let mut found = None;
                        let mut last = (usize::MAX, 0);
                        for &p in &pos {
                            let w = window_bounds(p, n, k, t.len());
                            if w == last {
                                continue;
                            }
                            last = w;
                            if let Some(l) = judge(table, w) {
                                found = Some((l, w));
                                break;
                            }
                        }
                        found
                    }
                    Window::Aligned => {
                        let e = &self.items[item as usize];
                        let mut ws: Vec<(usize, usize)> = ngram::shared_offsets(t, e, n, &pos)
                            .into_iter()
                            .map(|off| aligned_bounds(off, le, t.len()))
                            .collect();
                        ws.dedup();
                        // Nearby alignments (a repeated n-gram, a number list) give overlapping
                        // windows: judge a run of them at once on their union first. Its LCS
                        // bounds each window's from above, so a union below every window's
                        // threshold rejects the run exactly; otherwise each window is judged,
                        // leftmost first.
                        let span = 2 * (le + 2 * le.div_ceil(ALIGN_SLACK_DIV));
                        let mut found = None;
                        let mut a = 0;
                        while a < ws.len() && found.is_none() {
                            let mut b = a + 1;
                            while b < ws.len() && ws[b].1 - ws[a].0 <= span {
                                b += 1;
                            }
                            let run = &ws[a..b];
                            a = b;
                            let need = run
                                .iter()
                                .map(|&(s, e)| self.cfg.threshold(e - s, le))
                                .min()
                                .unwrap_or(usize::MAX);
                            if run.len() > 1 {
                                let (s, e) = (run[0].0, run[run.len() - 1].1);
                                if pat.lcs_dense(table, &td[s..e]) < need {
                                    continue;
                                }
                            }
                            for &w in run {
                                if let Some(l) = judge(table, w) {
                                    found = Some((l, w));
                                    break;
                                }
                            }
                        }
                        found
                    }
                };
                if let Some((l, w)) = found {
                    out.push(Match {
                        test_index: item as usize,
                        lcs: Some(l),
                        ngram_hits: pos,
                        spans: Vec::new(),
                        window: Some(w),
                        char_window: None,
                    });
                    if !all {
                        break;
                    }
                }
            }
        });
        out
    }

    fn check_lcs(&self, t: &[u32], all: bool) -> Vec<Match> {
        let mut out = Vec::new();
        if t.len() < self.cfg.lcs_min {
            return out;
        }
        let td = self.to_dense(t);
        let known: Vec<u32> = td.iter().copied().filter(|&x| x != NONE).collect();
        let (d, c) = lcs::bag(&known);
        let scan: usize = d
            .iter()
            .map(|&v| self.inverted[v as usize].1 as usize)
            .sum();
        if self.bank.run_all_cheaper(scan, known.len()) {
            // the count filter would cost more than it can save: every pattern runs
            self.lcs_rule(t.len(), &known, None, all, &mut out);
            return out;
        }
        let mut touched: Vec<u32> = Vec::new();
        ACC.with(|acc| {
            let mut acc = acc.borrow_mut();
            if acc.len() < self.items.len() {
                acc.resize(self.items.len(), 0);
            }
            for (&v, &ct) in d.iter().zip(&c) {
                let (s, l) = self.inverted[v as usize];
                for &(item, ce) in &self.postings[s as usize..(s + l) as usize] {
                    let a = &mut acc[item as usize];
                    if *a == 0 {
                        touched.push(item);
                    }
                    *a += ct.min(ce);
                }
            }
            touched.sort_unstable();
            // keep the candidates whose bound reaches their threshold; reset the accumulator
            touched.retain(|&item| {
                let bound = acc[item as usize] as usize;
                acc[item as usize] = 0;
                bound
                    >= self
                        .cfg
                        .threshold(t.len(), self.patterns[item as usize].len())
            });
        });
        self.lcs_rule(t.len(), &known, Some(&touched), all, &mut out);
        out
    }

    /// The exact LCS of `known` (a training sequence of `lt` tokens in dense ids, tokens in no
    /// test item left out) with each candidate (ascending; None: every pattern of the bank);
    /// the ones that meet the rule go to `out` (only the first unless `all`).
    fn lcs_rule(
        &self,
        lt: usize,
        known: &[u32],
        cands: Option<&[u32]>,
        all: bool,
        out: &mut Vec<Match>,
    ) {
        let visit = |item: u32, l: usize| {
            if self
                .cfg
                .rule_holds(l, lt, self.patterns[item as usize].len())
            {
                out.push(Match {
                    test_index: item as usize,
                    lcs: Some(l),
                    ngram_hits: Vec::new(),
                    spans: Vec::new(),
                    window: Some((0, lt)),
                    char_window: None,
                });
                return all;
            }
            true
        };
        match cands {
            Some(c) => lcs::lcs_many(&self.patterns, Some(&self.bank), c, known, visit),
            None => {
                let need = |le: usize| self.cfg.threshold(lt, le);
                lcs::lcs_all(&self.patterns, &self.bank, known, need, visit)
            }
        }
    }

    #[inline]
    fn word_id(&self, w: &str) -> u32 {
        if !self.collided.is_empty() {
            if let Some(&id) = self.collided.get(w) {
                return id;
            }
        }
        self.word_ids
            .get(&word_hash(w))
            .copied()
            .unwrap_or(UNKNOWN_WORD)
    }

    fn check_words(&self, text: &str, all: bool) -> Vec<Match> {
        let mut out = Vec::new();
        let Some(index) = &self.ngrams else {
            return out;
        };
        let mut ids: Vec<u32> = Vec::with_capacity(text.len() / 5 + 1);
        normalize::for_each_word(text, |w, _, _| ids.push(self.word_id(w)));
        if ids.len() < self.cfg.ngram {
            return out;
        }
        let mut hits = index.hits(&ids, &self.items);
        if hits.is_empty() {
            return out;
        }
        let ws = normalize::words(text);
        let n = self.cfg.ngram;
        // exact: the words behind the ids must be the test words (64-bit hashes can collide)
        hits.retain(|&(_, p)| {
            let p = p as usize;
            (p..p + n).all(|k| {
                self.words
                    .get(ids[k] as usize)
                    .is_some_and(|w| *w == ws[k].0)
            })
        });
        for group in hits.chunk_by(|a, b| a.0 == b.0) {
            // one test item's hits (consecutive in `hits`)
            let item = group[0].0;
            let pos: Vec<usize> = group.iter().map(|&(_, p)| p as usize).collect();
            let spans = pos.iter().map(|&p| (ws[p].1, ws[p + n - 1].2)).collect();
            out.push(Match {
                test_index: item as usize,
                lcs: None,
                ngram_hits: pos,
                spans,
                window: None,
                char_window: None,
            });
            if !all {
                break;
            }
        }
        out
    }
}

/// 64-bit hash of a word (8 bytes at a time, then mixed).
#[inline]
fn word_hash(w: &str) -> u64 {
    let b = w.as_bytes();
    let mut h = b.len() as u64;
    for chunk in b.chunks(8) {
        let mut x = 0u64;
        for (i, &c) in chunk.iter().enumerate() {
            x |= (c as u64) << (8 * i);
        }
        h = (h.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    ngram::mix(h)
}

/// Fill `char_window` of each match from its token `window`: token `i` of `ids` covers the
/// bytes its decoding adds to the normalised text, and [`normalize::normalize_qwen_map`] maps
/// those characters back to `text`. Exact unless the tokenizer's NFC composition changed the
/// normalised text (then the offsets are counted in composed characters, clamped).
fn char_windows(tok: &Tokenizer, text: &str, ids: &[u32], ms: &mut [Match]) {
    let (norm, map) = normalize::normalize_qwen_map(text);
    let mut ends = Vec::with_capacity(ids.len() + 1);
    let mut bytes: Vec<u8> = Vec::with_capacity(norm.len());
    ends.push(0usize);
    for &id in ids {
        if let Ok(b) = tok.decode_to_bytes(&[id], false) {
            bytes.extend_from_slice(&b);
        }
        ends.push(bytes.len());
    }
    let is_start = |b: u8| b & 0xC0 != 0x80;
    // characters that start before byte `at`, `at` moved to a character boundary (down or up)
    let chars_before = |mut at: usize, up: bool| -> usize {
        while at > 0 && at < bytes.len() && !is_start(bytes[at]) {
            if up {
                at += 1;
            } else {
                at -= 1;
            }
        }
        bytes[..at.min(bytes.len())]
            .iter()
            .filter(|&&b| is_start(b))
            .count()
    };
    let total = text.chars().count();
    let orig = |ci: usize| map.get(ci).map(|&x| x as usize).unwrap_or(total);
    for m in ms.iter_mut() {
        let Some((s, e)) = m.window else { continue };
        if s >= e || e >= ends.len() {
            continue;
        }
        let (cs, ce) = (chars_before(ends[s], false), chars_before(ends[e], true));
        let start = orig(cs);
        let end = if ce == 0 {
            start
        } else {
            map.get(ce - 1).map(|&x| x as usize + 1).unwrap_or(total)
        };
        m.char_window = Some((start.min(total), end.clamp(start.min(total), total)));
    }
}

/// The window of `k` tokens centred on the n-gram at `p` in a sequence of `len` tokens.
pub fn window_bounds(p: usize, n: usize, k: usize, len: usize) -> (usize, usize) {
    let start = (p + n / 2).saturating_sub(k / 2);
    let end = (start + k).min(len);
    (end.saturating_sub(k), end)
}

/// A small xorshift generator for the decontamination unit tests.
#[cfg(test)]
pub(crate) struct TestRng(pub u64);

#[cfg(test)]
impl TestRng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn seq(&mut self, len: usize, alpha: u64) -> Vec<u32> {
        (0..len).map(|_| (self.next() % alpha) as u32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decontam::TestRng as Rng;

    /// The rule by brute force: plain DP over every pair, literal n-gram comparison.
    fn brute(cfg: &Config, test: &[Vec<u32>], t: &[u32]) -> Vec<usize> {
        let n = cfg.ngram;
        let mut out = Vec::new();
        for (i, e) in test.iter().enumerate() {
            let shared: Vec<usize> = if t.len() >= n && e.len() >= n {
                (0..=t.len() - n)
                    .filter(|&p| e.windows(n).any(|w| w == &t[p..p + n]))
                    .collect()
            } else {
                Vec::new()
            };
            let ok = match cfg.mode {
                Mode::Lcs => {
                    let l = lcs::lcs_dp(t, e);
                    l >= cfg.lcs_min
                        && (l as f64) * 1e6
                            >= (cfg.ratio_ppm() as f64) * (t.len().min(e.len()) as f64)
                }
                Mode::Qwen => match cfg.window {
                    Window::Whole => {
                        !shared.is_empty() && cfg.rule_holds(lcs::lcs_dp(t, e), t.len(), e.len())
                    }
                    Window::Fixed(k) => shared.iter().any(|&p| {
                        let (s, en) = window_bounds(p, n, k, t.len());
                        cfg.rule_holds(lcs::lcs_dp(&t[s..en], e), en - s, e.len())
                    }),
                    // every pair of equal n-grams, literally, and the window spelt out
                    Window::Aligned => shared.iter().any(|&p| {
                        (0..=e.len() - n).any(|q| {
                            if e[q..q + n] != t[p..p + n] {
                                return false;
                            }
                            let slack = e.len().div_ceil(4) as isize;
                            let lo = (p as isize - q as isize - slack).max(0) as usize;
                            let hi = ((p as isize - q as isize + e.len() as isize + slack).max(0)
                                as usize)
                                .min(t.len());
                            let lo = lo.min(hi);
                            cfg.rule_holds(lcs::lcs_dp(&t[lo..hi], e), hi - lo, e.len())
                        })
                    }),
                },
                Mode::Ngram => !shared.is_empty(),
            };
            if ok {
                out.push(i);
            }
        }
        out
    }

    #[test]
    fn engine_equals_brute_force() {
        let mut r = Rng(0xdead_beef_cafe_f00d);
        for trial in 0..400 {
            let alpha = [2u64, 4, 8, 50][trial % 4];
            let n = [1usize, 2, 3, 5][(trial / 4) % 4];
            let mode = [Mode::Qwen, Mode::Lcs][(trial / 16) % 2];
            let window = match (mode, trial % 3) {
                (Mode::Qwen, 0) => Window::Fixed(1 + (r.next() % 30) as usize),
                (Mode::Qwen, 1) => Window::Aligned,
                _ => Window::Whole,
            };
            let cfg = Config {
                mode,
                ngram: n,
                lcs_min: 1 + (r.next() % 15) as usize,
                lcs_ratio: [0.0, 0.5, 0.6, 1.0][trial % 4],
                window,
                prefilter: true,
            };
            let base: Vec<u32> = (0..r.next() % 150)
                .map(|_| (r.next() % alpha) as u32)
                .collect();
            let test: Vec<Vec<u32>> = (0..6)
                .map(|_| {
                    let mut v = base.clone();
                    v.retain(|_| !r.next().is_multiple_of(4));
                    v.truncate((r.next() % 140) as usize);
                    v
                })
                .collect();
            let inputs: Vec<Input> = test.iter().map(|v| Input::Ids(v)).collect();
            let d = Decontaminator::new(cfg.clone(), &inputs, None, 1).unwrap();
            for _ in 0..5 {
                let mut t = base.clone();
                t.retain(|_| !r.next().is_multiple_of(5));
                if r.next().is_multiple_of(2) {
                    // embedded in a longer record
                    let pre = (r.next() % 200) as usize;
                    let post = (r.next() % 200) as usize;
                    let mut v: Vec<u32> = (0..pre).map(|_| (r.next() % alpha) as u32).collect();
                    v.extend_from_slice(&t);
                    v.extend((0..post).map(|_| (r.next() % alpha) as u32));
                    t = v;
                }
                let want = brute(&cfg, &test, &t);
                let got = d.check_ids(&t, true);
                assert_eq!(
                    got.iter().map(|m| m.test_index).collect::<Vec<_>>(),
                    want,
                    "{cfg:?}"
                );
                for m in &got {
                    let (s, e) = m.window.unwrap();
                    assert_eq!(m.lcs, Some(lcs::lcs_dp(&t[s..e], &test[m.test_index])));
                    if window == Window::Whole {
                        assert_eq!(m.lcs, Some(lcs::lcs_dp(&t, &test[m.test_index])));
                    }
                }
                let first = d.check_ids(&t, false);
                assert_eq!(first.first().map(|m| m.test_index), want.first().copied());
            }
        }
    }

    #[test]
    fn boundaries() {
        let cfg = Config {
            mode: Mode::Lcs,
            ..Config::default()
        };
        assert!(cfg.rule_holds(13, 100, 20) && !cfg.rule_holds(12, 100, 20));
        assert!(cfg.rule_holds(15, 25, 100) && !cfg.rule_holds(14, 25, 100)); // 0.6 * 25 = 15 exactly
        assert_eq!(cfg.threshold(25, 100), 15);
        assert_eq!(cfg.threshold(10, 100), 13);
        let test = [(0..12).collect::<Vec<u32>>()];
        let d = Decontaminator::new(cfg, &[Input::Ids(&test[0])], None, 1).unwrap();
        assert!(d.check_ids(&test[0], true).is_empty()); // shorter than 13: never a match
        assert!(d.check_ids(&[], true).is_empty());
    }

    #[test]
    fn bad_config() {
        for cfg in [
            Config {
                ngram: 0,
                ..Config::default()
            },
            Config {
                lcs_min: 0,
                ..Config::default()
            },
            Config {
                lcs_ratio: 1.5,
                ..Config::default()
            },
            Config {
                window: Window::Fixed(0),
                ..Config::default()
            },
            Config {
                mode: Mode::Lcs,
                window: Window::Fixed(5),
                ..Config::default()
            },
        ] {
            assert!(Decontaminator::new(cfg, &[], None, 1).is_err());
        }
        let d = Decontaminator::new(Config::default(), &[], None, 1).unwrap();
        assert!(d.check(&[Input::Text("x")], None, false, 1).is_err());
    }

    #[test]
    fn ngram_mode_words() {
        let test = "The quick brown fox jumps over the lazy dog near the river bank today";
        let cfg = Config {
            mode: Mode::Ngram,
            ..Config::default()
        };
        let d = Decontaminator::new(cfg, &[Input::Text(test)], None, 1).unwrap();
        let train =
            "Intro: THE quick, brown fox jumps over the lazy dog near the river-bank today!";
        let m = d.check_one(Input::Text(train), None, false);
        assert_eq!(m.len(), 0); // "river-bank" -> "riverbank": one word, the 13-gram breaks
        let train =
            "Intro: THE quick, brown fox jumps over the lazy dog near the river bank today!";
        let m = d.check_one(Input::Text(train), None, false);
        assert_eq!(m[0].ngram_hits, vec![1, 2]); // the test has 14 words: two 13-grams
        let bank_end = train.find(" today").unwrap();
        assert_eq!(m[0].spans, vec![(7, bank_end), (11, train.chars().count())]);
    }
}
