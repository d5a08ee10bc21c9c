//! Gopher repetition (Rae et al. 2021, table A1), as datatrove's `GopherRepetitionFilter`.

use std::borrow::Cow;

use super::config::{GopherRepetitionConfig, LineSplit};
use super::dups::{dup_counts, split_paragraphs, DupBufs};
use super::ngrams::{find_all_duplicate, find_top_duplicate, Interned};
use super::text::{clen, splitlines};
use super::{give_back, ratio, reuse, words_of, Stats, Verdict};

pub(super) fn top_name(n: usize) -> Cow<'static, str> {
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

pub(super) fn dup_name(n: usize) -> Cow<'static, str> {
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

pub fn gopher_repetition(text: &str, c: &GopherRepetitionConfig, st: &mut Stats) -> Verdict {
    gopher_repetition_pre(
        text,
        &mut Interned::new(&words_of(text, c.words), &[]),
        &splitlines(text),
        c,
        st,
        &mut DupBufs::default(),
    )
}

/// `re.split("\n+", text)` into `out`.
fn split_newline_runs<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    out.clear();
    let b = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while let Some(k) = memchr::memchr(b'\n', &b[i..]) {
        i += k;
        out.push(&text[start..i]);
        while i < b.len() && b[i] == b'\n' {
            i += 1;
        }
        start = i;
    }
    out.push(&text[start..]);
}

/// `lines`: the `splitlines()` of `text` (used under [`LineSplit::Splitlines`]).
pub(super) fn gopher_repetition_pre(
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
    let mut own = reuse(&mut bufs.nl_lines);
    let lines = match c.lines {
        LineSplit::Splitlines => lines,
        LineSplit::NewlineRuns => {
            split_newline_runs(text, &mut own);
            &own[..]
        }
    };
    bufs.table.flags(lines, &mut bufs.line_dup);
    let (ld, lc) = dup_counts(lines, &bufs.line_dup);
    let n_lines = lines.len();
    give_back(own, &mut bufs.nl_lines);
    let (r1, r2) = (ratio(ld, n_lines.max(1)), ratio(lc, n_chars));
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
