//! FineWeb's three extra filters (Penedo et al. 2024), as datatrove's `FineWebQualityFilter`.

use super::config::FineWebConfig;
use super::dups::{dup_counts, DupBufs};
use super::text::{clen, py_strip};
use super::{give_back, ratio, reuse, words_of, Stats, Verdict};

pub fn fineweb(text: &str, c: &FineWebConfig, st: &mut Stats) -> Verdict {
    fineweb_pre(text, None, c, st, &mut Vec::new(), &mut DupBufs::default())
}

/// `n_words`: the word count of `text` under `c.words`, when already known; `lines` and `bufs`
/// are buffers.
pub(super) fn fineweb_pre(
    text: &str,
    n_words: Option<usize>,
    c: &FineWebConfig,
    st: &mut Stats,
    lines: &mut Vec<&'static str>,
    bufs: &mut DupBufs,
) -> Verdict {
    let mut own = reuse(lines);
    let v = fineweb_lines(text, n_words, c, st, &mut own, bufs);
    give_back(own, lines);
    v
}

/// datatrove 0.10's `FineWebQualityFilter.filter`: the lines are `text.split("\n")` less the
/// blank ones.
fn fineweb_lines<'a>(
    text: &'a str,
    n_words: Option<usize>,
    c: &FineWebConfig,
    st: &mut Stats,
    lines: &mut Vec<&'a str>,
    bufs: &mut DupBufs,
) -> Verdict {
    lines.clear();
    lines.extend(text.split('\n').filter(|l| !py_strip(l).is_empty()));
    if lines.is_empty() {
        return Err("empty".into());
    }
    let nl = lines.len();
    let ascii_stops = c.stop_chars.is_ascii();
    let (mut n_punct, mut n_short) = (0usize, 0usize);
    let short_len = c.short_line_length;
    for l in lines.iter() {
        n_punct += match l.chars().next_back() {
            Some(e) if ascii_stops && !e.is_ascii() => false,
            Some(e) => c.stop_chars.contains(e),
            None => false,
        } as usize;
        // chars <= bytes <= 4 * chars: count chars only when the bytes leave it open
        n_short += (l.len() <= short_len
            || (l.len() <= short_len.saturating_mul(4) && clen(l) <= short_len))
            as usize;
    }
    let punct = ratio(n_punct, nl);
    st.push(("fineweb.line_punct_ratio".into(), punct));
    if punct < c.line_punct_thr && !(punct == 0.0 && c.line_punct_exclude_zero) {
        return Err("line_punct_ratio".into());
    }
    let short = ratio(n_short, nl);
    st.push(("fineweb.short_line_ratio".into(), short));
    if short > c.short_line_thr {
        return Err("short_line_ratio".into());
    }
    bufs.table.flags(lines, &mut bufs.line_dup);
    let (_, dup_chars) = dup_counts(lines, &bufs.line_dup);
    let n_newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count();
    let dup = ratio(dup_chars, (clen(text) - n_newlines).max(1));
    st.push(("fineweb.char_dup_ratio".into(), dup));
    if dup > c.char_duplicates_ratio {
        return Err("char_dup_ratio".into());
    }
    let nw = n_words
        .unwrap_or_else(|| words_of(text, c.words).len())
        .max(1);
    let list = ratio(n_newlines, nw);
    st.push(("fineweb.list_ratio".into(), list));
    if list > c.new_line_ratio {
        return Err("list_ratio".into());
    }
    Ok(())
}
