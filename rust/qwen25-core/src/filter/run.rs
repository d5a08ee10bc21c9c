//! The orchestrator: the filters in FineWeb's order on one document, with the words and lines
//! computed once and shared, and a thread's buffers reused from one document to the next.

use super::c4::c4_pre;
use super::config::{FilterConfig, Words};
use super::dups::DupBufs;
use super::fineweb::fineweb_pre;
use super::gopher_quality::gopher_quality_pre;
use super::gopher_repetition::gopher_repetition_pre;
use super::ngrams::Interned;
use super::text::{self, py_strip, splitlines};
use super::{give_back, reuse, spacy, words_of, FilterResult};
use crate::parallel;

/// Buffers one thread reuses from one document to the next (each is cleared before use, so
/// nothing carries over between documents).
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) ws: Interned,
    pub(super) masks: text::AsciiMasks,
    pub(super) lines: Vec<&'static str>,
    pub(super) fw_lines: Vec<&'static str>,
    pub(super) dups: DupBufs,
    pub(super) lower: Vec<u8>,
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
    // the Gopher filters share one set of words (Gopher repetition's mode when it runs)
    let mode = (cfg.gopher_repetition.as_ref().map(|c| c.words))
        .or(cfg.gopher_quality.as_ref().map(|c| c.words));
    let ascii = text.is_ascii();
    let fast = fast && ascii;
    let need_lines = mode.is_some() || cfg.c4.is_some();
    if fast && need_lines {
        sc.masks.fill(text.as_bytes());
    }
    let ws = &mut sc.ws;
    if let Some(mode) = mode {
        let stop: &[String] = cfg.gopher_quality.as_ref().map_or(&[], |q| &q.stop_words);
        match mode {
            Words::Simple if fast => ws.fill_ascii(text, &sc.masks, stop),
            Words::Simple => ws.fill_words(&text::words(text), stop),
            Words::Spacy => ws.fill_words(&spacy::words(text), stop),
        }
    }
    let mut lines = reuse(&mut sc.lines);
    if need_lines {
        if fast {
            sc.masks.lines_into(text, &mut lines);
        } else {
            lines.extend(splitlines(text));
        }
    }
    run_filters(text, ascii, cfg, mode, &lines, sc, &mut r);
    give_back(lines, &mut sc.lines);
    r
}

/// The filters in order, after the words (`sc.ws` under `mode`, when a Gopher filter runs) and
/// `lines` (the `splitlines`, when Gopher or C4 runs) are in; stops at the first that drops the
/// document.
fn run_filters(
    text: &str,
    ascii: bool,
    cfg: &FilterConfig,
    mode: Option<Words>,
    lines: &[&str],
    sc: &mut Scratch,
    r: &mut FilterResult,
) {
    let st = &mut r.stats;
    if let Some(c) = &cfg.gopher_repetition {
        if let Err(e) = gopher_repetition_pre(text, &mut sc.ws, lines, c, st, &mut sc.dups) {
            return drop_as(r, "gopher_repetition", e);
        }
    }
    if let Some(c) = &cfg.gopher_quality {
        let v = if mode == Some(c.words) {
            gopher_quality_pre(text, &sc.ws, lines, c, st)
        } else {
            let own = Interned::new(&words_of(text, c.words), &c.stop_words);
            gopher_quality_pre(text, &own, lines, c, st)
        };
        if let Err(e) = v {
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
        let same = matches!(cur, std::borrow::Cow::Borrowed(_));
        let n_words = (same && mode == Some(c.words)).then_some(sc.ws.words.len());
        let v = fineweb_pre(&cur, n_words, c, st, &mut sc.fw_lines, &mut sc.dups);
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
        let mut rng = crate::lcg::Lcg(seed);
        let mut next = move |m: usize| rng.below(m);
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

    /// `cfg` with the simple word split (the one with an ASCII byte-class fast path) and the
    /// quality filter's words differing from repetition's in the second Gopher section.
    fn simple_words(mut cfg: FilterConfig) -> FilterConfig {
        if let Some(c) = cfg.gopher_repetition.as_mut() {
            c.words = Words::Simple;
        }
        if let Some(c) = cfg.gopher_quality.as_mut() {
            c.words = Words::Simple;
        }
        if let Some(c) = cfg.fineweb.as_mut() {
            c.words = Words::Simple;
        }
        cfg
    }

    #[test]
    fn mixed_word_modes_match_each_filter_alone() {
        // Gopher quality on spaCy words while repetition uses the simple split: quality gets
        // its own words, and each filter's statistics equal its standalone function's
        let mut cfg = simple_words(all_stats_config());
        if let Some(c) = cfg.gopher_quality.as_mut() {
            c.words = Words::Spacy;
        }
        for d in adversarial_docs(200, 3) {
            if py_strip(&d).is_empty() {
                continue;
            }
            let r = apply(&d, &cfg);
            let mut want = Vec::new();
            let _ =
                super::super::gopher_quality(&d, cfg.gopher_quality.as_ref().unwrap(), &mut want);
            let got: Vec<_> = r
                .stats
                .iter()
                .filter(|(k, _)| k.starts_with("gopher_quality."))
                .cloned()
                .collect();
            assert_eq!(got, want, "{d:?}");
        }
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
            simple_words(all_stats_config()),
            simple_words(FilterConfig::default()),
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
}
