//! FineWeb's three extra filters (Penedo et al. 2024), as datatrove's `FineWebQualityFilter`.

use super::config::FineWebConfig;
use super::dups::DupBufs;
use super::text::{clen, py_strip, words};
use super::{give_back, ratio, reuse, Stats, Verdict};

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
pub(super) fn fineweb_pre(
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
