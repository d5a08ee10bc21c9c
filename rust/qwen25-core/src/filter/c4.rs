//! C4's line and document rules (Raffel et al. 2020), as datatrove's `C4QualityFilter`.

use super::config::{C4Config, Sentences};
use super::text::{self, clen, py_split, py_strip, splitlines};
use super::Stats;

/// Sentences in a line: pieces between runs of `.!?` (+ closing `"')]`) followed by whitespace.
pub fn count_sentences(line: &str) -> usize {
    if line.is_ascii() {
        return count_sentences_ascii(line.as_bytes());
    }
    count_sentences_chars(line)
}

fn count_sentences_chars(line: &str) -> usize {
    let cs: Vec<(usize, char)> = line.char_indices().collect();
    let (mut count, mut piece_start, mut i) = (0, 0, 0);
    let is_term = |c: char| matches!(c, '.' | '!' | '?');
    let is_close = |c: char| matches!(c, '"' | '\'' | ')' | ']');
    while i < cs.len() {
        if is_term(cs[i].1) {
            let mut j = i;
            while j < cs.len() && is_term(cs[j].1) {
                j += 1;
            }
            while j < cs.len() && is_close(cs[j].1) {
                j += 1;
            }
            if j < cs.len() && text::is_py_space(cs[j].1) {
                let piece = &line[piece_start..cs[i].0];
                if !py_strip(piece).is_empty() {
                    count += 1;
                }
                while j < cs.len() && text::is_py_space(cs[j].1) {
                    j += 1;
                }
                piece_start = if j < cs.len() { cs[j].0 } else { line.len() };
                i = j;
                continue;
            }
        }
        i += 1;
    }
    if !py_strip(&line[piece_start..]).is_empty() {
        count += 1;
    }
    count
}

fn count_sentences_ascii(b: &[u8]) -> usize {
    let is_term = |c: u8| matches!(c, b'.' | b'!' | b'?');
    let is_close = |c: u8| matches!(c, b'"' | b'\'' | b')' | b']');
    let is_sp = |c: u8| matches!(c, 9..=13 | 0x1c..=0x1f | b' ');
    let non_blank = |s: &[u8]| s.iter().any(|&c| !is_sp(c));
    let (mut count, mut piece_start, mut i) = (0, 0, 0);
    while i < b.len() {
        // jump to the next terminator
        match memchr::memchr3(b'.', b'!', b'?', &b[i..]) {
            Some(k) => i += k,
            None => break,
        }
        {
            let mut j = i;
            while j < b.len() && is_term(b[j]) {
                j += 1;
            }
            while j < b.len() && is_close(b[j]) {
                j += 1;
            }
            if j < b.len() && is_sp(b[j]) {
                if non_blank(&b[piece_start..i]) {
                    count += 1;
                }
                while j < b.len() && is_sp(b[j]) {
                    j += 1;
                }
                piece_start = j;
                i = j;
                continue;
            }
        }
        i += 1;
    }
    if non_blank(&b[piece_start..]) {
        count += 1;
    }
    count
}

fn remove_citations(line: &str) -> std::borrow::Cow<'_, str> {
    // \[\d*]|\[edit]|\[citation needed]
    if !line.contains('[') {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(p) = rest.find('[') {
        out.push_str(&rest[..p]);
        let tail = &rest[p..];
        let digits = tail[1..].bytes().take_while(|b| b.is_ascii_digit()).count();
        let skip = if tail[1 + digits..].starts_with(']') {
            2 + digits
        } else if tail.starts_with("[edit]") {
            6
        } else if tail.starts_with("[citation needed]") {
            17
        } else {
            0
        };
        if skip > 0 {
            rest = &tail[skip..];
        } else {
            out.push('[');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

const POLICY: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// C4: drops lines, maybe the whole document; returns the kept text.
pub fn c4(text: &str, c: &C4Config, st: &mut Stats) -> std::result::Result<String, String> {
    c4_pre(
        text,
        text.is_ascii(),
        &splitlines(text),
        c,
        st,
        &mut Vec::new(),
    )
}

/// The C4 phrases, lorem ipsum and javascript first, for an ASCII case-insensitive search (on an
/// ASCII line, `lower.contains(p)` is exactly a case-insensitive match of `p`).
fn c4_phrases() -> Option<&'static aho_corasick::AhoCorasick> {
    static AC: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>> = std::sync::OnceLock::new();
    AC.get_or_init(|| {
        let pats = ["lorem ipsum", "javascript"].iter().chain(POLICY.iter());
        // a DFA: eight short phrases make a small one, and it scans a byte per step
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(pats)
            .ok()
    })
    .as_ref()
}

/// The C4 phrases (all lowercase) for a plain search of an ASCII-lowercased text: a packed
/// (SIMD, Teddy) searcher where the CPU has one, else an automaton. Several times faster than
/// the case-insensitive DFA on a whole document.
enum LowerPhrases {
    Packed(aho_corasick::packed::Searcher),
    Automaton(aho_corasick::AhoCorasick),
}

fn c4_phrases_lower() -> Option<&'static LowerPhrases> {
    static S: std::sync::OnceLock<Option<LowerPhrases>> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let pats = || ["lorem ipsum", "javascript"].iter().chain(POLICY.iter());
        aho_corasick::packed::Searcher::new(pats())
            .map(LowerPhrases::Packed)
            .or_else(|| {
                aho_corasick::AhoCorasick::new(pats())
                    .ok()
                    .map(LowerPhrases::Automaton)
            })
    })
    .as_ref()
}

/// Whether an ASCII `text` holds none of the C4 phrases, case-insensitively (`lower` is a
/// buffer for its lowercase copy); None when no searcher could be built.
fn no_c4_phrase(text: &str, lower: &mut Vec<u8>) -> Option<bool> {
    let s = c4_phrases_lower()?;
    lower.clear();
    lower.extend(text.bytes().map(|c| c.to_ascii_lowercase()));
    Some(match s {
        LowerPhrases::Packed(p) => p.find(lower.as_slice()).is_none(),
        LowerPhrases::Automaton(a) => !a.is_match(lower.as_slice()),
    })
}

/// (contains "lorem ipsum", contains "javascript", contains a policy phrase), lowercased.
fn c4_phrase_flags(line: &str, ascii: bool) -> (bool, bool, bool) {
    if ascii || line.is_ascii() {
        if let Some(ac) = c4_phrases() {
            // most lines hold no phrase: one plain search (prefiltered) settles those
            if ac.find(line).is_none() {
                return (false, false, false);
            }
            let mut mask = 0u32;
            for m in ac.find_overlapping_iter(line) {
                mask |= 1 << m.pattern().as_usize();
            }
            return (mask & 1 != 0, mask & 2 != 0, mask & !3 != 0);
        }
    }
    let lower = line.to_lowercase();
    (
        lower.contains("lorem ipsum"),
        lower.contains("javascript"),
        POLICY.iter().any(|p| lower.contains(p)),
    )
}

/// (words of `str.split()`, whether one is longer than `max` chars). The count stops at `enough`
/// (it is only compared with it) unless a long word is possible.
fn c4_words(line: &str, ascii: bool, max: i64, enough: i64) -> (usize, bool) {
    // a word has no more chars than the line has bytes
    if (line.len() as i64) <= max {
        if enough <= 0 {
            return (0, false);
        }
        if ascii || line.is_ascii() {
            let (mut n, mut prev_sp) = (0usize, true);
            for &c in line.as_bytes() {
                let sp = text::is_ascii_space(c);
                if prev_sp && !sp {
                    n += 1;
                    if n as i64 >= enough {
                        break;
                    }
                }
                prev_sp = sp;
            }
            return (n, false);
        }
        return (py_split(line).count(), false);
    }
    if ascii || line.is_ascii() {
        let b = line.as_bytes();
        let is_sp = |c: u8| matches!(c, 9..=13 | 0x1c..=0x1f | b' ');
        let (mut n, mut long, mut i) = (0usize, false, 0usize);
        while i < b.len() {
            if is_sp(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !is_sp(b[i]) {
                i += 1;
            }
            n += 1;
            long |= (i - start) as i64 > max;
        }
        return (n, long);
    }
    let n = py_split(line).count();
    let long = py_split(line).any(|w| clen(w) as i64 > max);
    (n, long)
}

/// `lines`: the `splitlines` of `text`; `ascii`: whether `text` is ASCII.
pub(super) fn c4_pre(
    text: &str,
    ascii: bool,
    lines: &[&str],
    c: &C4Config,
    st: &mut Stats,
    lower: &mut Vec<u8>,
) -> std::result::Result<String, String> {
    // Whole-document checks that settle every line at once: a line is a substring of the text,
    // and the phrases hold no line break, so no match in the text means none in a line, unless
    // citation removal changed the line (it can join a phrase). ASCII only, where lowercasing is
    // ASCII case folding.
    let no_phrase = ascii && no_c4_phrase(text, lower).unwrap_or(false);
    let no_curly = memchr::memchr(b'{', text.as_bytes()).is_none();
    let no_bracket = memchr::memchr(b'[', text.as_bytes()).is_none();
    let mut out = String::with_capacity(text.len());
    let mut n_kept = 0usize;
    let mut n_sent = 0usize;
    let mut n_lines = 0usize;
    for &raw in lines {
        n_lines += 1;
        let line = py_strip(raw);
        let (n_words, long) = c4_words(line, ascii, c.max_word_length, c.min_words_per_line);
        if c.max_word_length != -1 && long {
            continue;
        }
        let line = if c.remove_citations && !no_bracket {
            remove_citations(line)
        } else {
            std::borrow::Cow::Borrowed(line)
        };
        let changed = matches!(line, std::borrow::Cow::Owned(_));
        let line = line.as_ref();
        if c.filter_no_terminal_punct
            && (!(line.ends_with(['.', '?', '!', '"', '\''])) || line.ends_with("..."))
        {
            continue;
        }
        if (n_words as i64) < c.min_words_per_line {
            continue;
        }
        let (lorem, js, policy) = if no_phrase && !changed {
            (false, false, false)
        } else {
            c4_phrase_flags(line, ascii)
        };
        if c.filter_lorem_ipsum && lorem {
            return Err("lorem_ipsum".into());
        }
        if c.filter_javascript && js {
            continue;
        }
        if c.filter_curly_bracket && !no_curly && memchr::memchr(b'{', line.as_bytes()).is_some() {
            return Err("curly_bracket".into());
        }
        if c.filter_policy && policy {
            continue;
        }
        n_sent += match c.sentences {
            Sentences::Spacy => super::spacy::count_sentences(line),
            Sentences::Simple if ascii => count_sentences_ascii(line.as_bytes()),
            Sentences::Simple => count_sentences(line),
        };
        if n_kept > 0 {
            out.push('\n');
        }
        out.push_str(line);
        n_kept += 1;
    }
    st.push(("c4.lines".into(), n_lines as f64));
    st.push(("c4.kept_lines".into(), n_kept as f64));
    st.push(("c4.sentences".into(), n_sent as f64));
    if (n_sent as i64) < c.min_num_sentences {
        return Err("too_few_sentences".into());
    }
    let s = py_strip(&out);
    Ok(if s.len() == out.len() {
        out
    } else {
        s.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences() {
        assert_eq!(count_sentences("One. Two! Three?"), 3);
        assert_eq!(count_sentences("e.g. this"), 2);
        assert_eq!(count_sentences("No end"), 1);
        assert_eq!(count_sentences("He said \"hi.\" Then left."), 2);
        assert_eq!(count_sentences(""), 0);
        for s in [
            "One. Two! Three?",
            "e.g. this",
            "a.) b",
            "x?!\" y. ",
            "  . . ",
            "end.",
            "a\x1c. b",
        ] {
            assert_eq!(count_sentences(s), count_sentences_chars(s), "{s:?}");
        }
    }

    #[test]
    fn citations() {
        assert_eq!(
            remove_citations("a[1] b[edit] c[citation needed] d[x]"),
            "a b c d[x]"
        );
        assert_eq!(remove_citations("[]["), "[");
    }
}
