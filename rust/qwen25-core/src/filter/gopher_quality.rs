//! Gopher quality (Rae et al. 2021), as datatrove's `GopherQualityFilter`.

use super::config::GopherQualityConfig;
use super::ngrams::{Interned, ALPHA, NON_SYM, STOP};
use super::text::{self, splitlines};
use super::{ratio, words_of, Stats, Verdict};

pub(super) fn on(x: Option<f64>) -> Option<f64> {
    x.filter(|t| *t != 0.0)
}

pub fn gopher_quality(text: &str, c: &GopherQualityConfig, st: &mut Stats) -> Verdict {
    gopher_quality_pre(
        text,
        &Interned::new(&words_of(text, c.words), &c.stop_words),
        &splitlines(text),
        c,
        st,
    )
}

pub(super) fn gopher_quality_pre(
    text: &str,
    ws: &Interned,
    lines: &[&str],
    c: &GopherQualityConfig,
    st: &mut Stats,
) -> Verdict {
    let n_words = ws.words.len();
    // one pass: non-symbol words (and their chars), words with a letter, stop words; the flags
    // were computed once per distinct word
    let (mut n_ns, mut ns_chars, mut n_alpha) = (0usize, 0usize, 0usize);
    for &id in &ws.words {
        let f = ws.wflags[id as usize];
        if f & NON_SYM != 0 {
            n_ns += 1;
            ns_chars += ws.wchars[id as usize] as usize;
        }
        n_alpha += (f & ALPHA != 0) as usize;
    }
    // datatrove counts the distinct stop words present: ids are distinct words
    let stops = ws.wflags.iter().filter(|&&f| f & STOP != 0).count();
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
    // no non-symbol word: datatrove's mean is NaN, which passes both bounds
    if n_ns > 0 && on(c.min_avg_word_length).is_some_and(|t| avg < t) {
        return Err("gopher_below_avg_threshold".into());
    }
    if n_ns > 0 && on(c.max_avg_word_length).is_some_and(|t| avg > t) {
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
