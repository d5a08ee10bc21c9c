//! Text normalisation shared by exact and near-duplicate detection.
//!
//! Each step is a switch so that exact dedup can hash the raw text while MinHash uses FineWeb's
//! normalisation (lowercase, punctuation stripped, whitespace collapsed).
//!
//! - `lowercase`: `char::to_lowercase` (Unicode simple + special casing, as Rust defines it).
//! - `strip_punct`: deletes every char of Unicode general category P* (Pc Pd Ps Pe Pi Pf Po).
//! - `collapse_ws`: every run of whitespace (Python's `str.isspace`) becomes one ASCII space; leading and trailing
//!   whitespace is removed.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormConfig {
    pub lowercase: bool,
    pub strip_punct: bool,
    pub collapse_ws: bool,
}

impl NormConfig {
    /// FineWeb's MinHash normalisation: every step on.
    pub const FINEWEB: NormConfig = NormConfig {
        lowercase: true,
        strip_punct: true,
        collapse_ws: true,
    };
    /// No normalisation: the text is hashed byte for byte.
    pub const NONE: NormConfig = NormConfig {
        lowercase: false,
        strip_punct: false,
        collapse_ws: false,
    };

    pub fn is_identity(&self) -> bool {
        !(self.lowercase || self.strip_punct || self.collapse_ws)
    }
}

impl Default for NormConfig {
    fn default() -> Self {
        NormConfig::FINEWEB
    }
}

pub use crate::unicode::is_punct;

/// datatrove's `simplify_text` with its default `TextNormConfig` (what its MinHash hashes, before
/// its word tokenizer): lowercase; every number (`\p{Nd}+`, optionally one of `.,،٫⎖⎗⎘` and more
/// digits) becomes `0`; every char of datatrove's `PUNCTUATION` becomes a space; whitespace
/// runs become one space, none at the ends; accents are dropped (NFD, then no char of category
/// Mn).
pub fn simplify_text(text: &str) -> String {
    simplify_text_with(text, &NormConfig::FINEWEB)
}

/// [`simplify_text`] with datatrove's `TextNormConfig` switches taken from `cfg`: `lowercase`,
/// `strip_punct` (its `remove_punctuation`) and `collapse_ws` (its `norm_whitespace`); numbers
/// and accents are always normalised (datatrove's defaults).
pub fn simplify_text_with(text: &str, cfg: &NormConfig) -> String {
    if text.is_ascii() {
        return simplify_ascii(text.as_bytes(), cfg);
    }
    use unicode_general_category::{get_general_category, GeneralCategory};
    let is_nd = |c: char| {
        if c.is_ascii() {
            c.is_ascii_digit()
        } else {
            get_general_category(c) == GeneralCategory::DecimalNumber
        }
    };
    let lower = if cfg.lowercase {
        text.to_lowercase()
    } else {
        text.to_string()
    };
    // numbers, then punctuation to spaces, in one walk
    let ascii_punct = punct_table();
    let punct = |c: char| {
        let p = if c.is_ascii() {
            ascii_punct[c as usize]
        } else {
            crate::filter::in_datatrove_punctuation(c)
        };
        if cfg.strip_punct && p {
            ' '
        } else {
            c
        }
    };
    let mut spaced = String::with_capacity(lower.len());
    let mut it = lower.chars().peekable();
    while let Some(c) = it.next() {
        if !is_nd(c) {
            spaced.push(punct(c));
            continue;
        }
        while it.peek().is_some_and(|&d| is_nd(d)) {
            it.next();
        }
        // one separator and more digits belong to the number; a separator without digits
        // after it does not
        if let Some(&sep) = it.peek() {
            if ".,،٫⎖⎗⎘".contains(sep) {
                let mut ahead = it.clone();
                ahead.next();
                if ahead.peek().is_some_and(|&d| is_nd(d)) {
                    it = ahead;
                    while it.peek().is_some_and(|&d| is_nd(d)) {
                        it.next();
                    }
                }
            }
        }
        spaced.push('0');
    }
    let only_ws = NormConfig {
        lowercase: false,
        strip_punct: false,
        collapse_ws: cfg.collapse_ws,
    };
    let ws = normalize(&spaced, &only_ws);
    if ws.is_ascii() {
        // NFD leaves ASCII as it is, and no ASCII char is a mark
        return ws
            .trim_matches(crate::filter::text::is_py_space)
            .to_string();
    }
    drop_accents(&ws)
        .trim_matches(crate::filter::text::is_py_space)
        .to_string()
}

/// NFD, then no char of category Mn. An ASCII char is a starter that NFD neither changes nor
/// reorders marks across, so only the runs of non-ASCII chars go through NFD.
fn drop_accents(text: &str) -> String {
    use unicode_general_category::{get_general_category, GeneralCategory};
    use unicode_normalization_alignments::UnicodeNormalization;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let k = rest
            .bytes()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        out.push_str(&rest[..k]);
        rest = &rest[k..];
        // UTF-8: no ASCII byte occurs inside a multi-byte char
        let k = rest
            .bytes()
            .position(|b| b.is_ascii())
            .unwrap_or(rest.len());
        out.extend(
            rest[..k]
                .chars()
                .nfd()
                .map(|(c, _)| c)
                .filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark),
        );
        rest = &rest[k..];
    }
    out
}

/// datatrove's `PUNCTUATION` membership of every ASCII char.
fn punct_table() -> &'static [bool; 128] {
    static T: std::sync::OnceLock<[bool; 128]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = [false; 128];
        for (b, slot) in t.iter_mut().enumerate() {
            *slot = crate::filter::in_datatrove_punctuation(b as u8 as char);
        }
        t
    })
}

/// Per ASCII byte, for [`simplify_ascii`]: 0 a digit, 1 a space that collapses with its run,
/// else the byte to emit (after lowercasing, punctuation as a space) with the bit 0x80 set.
fn simplify_table(cfg: &NormConfig) -> [u8; 128] {
    let mut t = [0u8; 128];
    for (b, slot) in t.iter_mut().enumerate() {
        let c = b as u8;
        let out = if cfg.strip_punct && punct_table()[b] {
            b' '
        } else if cfg.lowercase {
            c.to_ascii_lowercase()
        } else {
            c
        };
        *slot = if c.is_ascii_digit() {
            0
        } else if cfg.collapse_ws && crate::filter::text::is_py_space(out as char) {
            1
        } else {
            out | 0x80
        };
    }
    t
}

/// [`simplify_text_with`] for ASCII text, in one pass over the bytes (the same steps: numbers
/// as `0`, punctuation as spaces, whitespace collapsed; NFD does nothing to ASCII).
fn simplify_ascii(text: &[u8], cfg: &NormConfig) -> String {
    let table = simplify_table(cfg);
    let n = text.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let mut pending = false; // a collapsed whitespace run after a kept byte, not yet written
    let mut i = 0;
    while i < n {
        let t = table[text[i] as usize];
        if t == 1 {
            pending |= !out.is_empty();
            i += 1;
            continue;
        }
        if pending {
            out.push(b' ');
            pending = false;
        }
        if t == 0 {
            // \d+ ([.,] \d+)?
            i += 1;
            while i < n && text[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < n && matches!(text[i], b'.' | b',') && text[i + 1].is_ascii_digit() {
                i += 2;
                while i < n && text[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push(b'0');
        } else {
            out.push(t & 0x7F);
            i += 1;
        }
    }
    // only ASCII bytes were written
    let s = String::from_utf8(out).unwrap_or_default();
    if cfg.collapse_ws {
        s
    } else {
        s.trim_matches(crate::filter::text::is_py_space).to_string()
    }
}

/// Normalise `text` by `cfg` (borrowed when nothing changes).
pub fn normalize<'a>(text: &'a str, cfg: &NormConfig) -> Cow<'a, str> {
    if cfg.is_identity() {
        return Cow::Borrowed(text);
    }
    if text.is_ascii() {
        return Cow::Owned(normalize_ascii(text.as_bytes(), cfg));
    }
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        if cfg.strip_punct && is_punct(c) {
            continue;
        }
        if cfg.collapse_ws && crate::filter::text::is_py_space(c) {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if cfg.lowercase {
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// ASCII P* chars (the ASCII punctuation that is not a symbol: not $+<=>^`|~).
const ASCII_P: [bool; 128] = {
    let mut t = [false; 128];
    let p = b"!\"#%&'()*,-./:;?@[\\]_{}";
    let mut i = 0;
    while i < p.len() {
        t[p[i] as usize] = true;
        i += 1;
    }
    t
};

const DROP: u8 = 0xFF;
const SPACE: u8 = 0xFE;

/// Per-byte action for ASCII input: DROP, SPACE (a whitespace run) or the byte to emit.
fn ascii_table(cfg: &NormConfig) -> [u8; 128] {
    let mut t = [0u8; 128];
    for (b, slot) in t.iter_mut().enumerate() {
        let c = b as u8;
        *slot = if cfg.strip_punct && ASCII_P[b] {
            DROP
        } else if cfg.collapse_ws && matches!(c, 9..=13 | 0x1c..=0x1f | b' ') {
            SPACE
        } else if cfg.lowercase {
            c.to_ascii_lowercase()
        } else {
            c
        };
    }
    t
}

/// `normalize` for whitespace-collapsing configurations, also giving the byte offset of every
/// space of the result (the word boundaries, since a collapsed text has single spaces and none
/// at either end), found while normalising instead of in a second pass.
pub fn normalize_collapsed_with_spaces<'a>(
    text: &'a str,
    cfg: &NormConfig,
    spaces: &mut Vec<u32>,
) -> Cow<'a, str> {
    spaces.clear();
    if cfg.collapse_ws && text.is_ascii() && text.len() < u32::MAX as usize {
        return Cow::Owned(normalize_ascii_spaces(text.as_bytes(), cfg, Some(spaces)));
    }
    let out = normalize(text, cfg);
    spaces.extend(memchr::memchr_iter(b' ', out.as_bytes()).map(|i| i as u32));
    out
}

fn normalize_ascii(text: &[u8], cfg: &NormConfig) -> String {
    normalize_ascii_spaces(text, cfg, None)
}

fn normalize_ascii_spaces(text: &[u8], cfg: &NormConfig, spaces: Option<&mut Vec<u32>>) -> String {
    let table = ascii_table(cfg);
    let mut out = vec![0u8; text.len() + 1];
    let j = match spaces {
        Some(spaces) => {
            spaces.clear();
            spaces.resize(text.len() + 1, 0);
            let (j, k) = ascii_pass::<true>(text, &table, &mut out, spaces);
            spaces.truncate(k);
            j
        }
        None => ascii_pass::<false>(text, &table, &mut out, &mut []).0,
    };
    out.truncate(j);
    // only ASCII bytes were written
    String::from_utf8(out).unwrap_or_default()
}

/// The ASCII pass: runs of kept bytes are copied (mapped) in a tight inner loop; a whitespace
/// run becomes one space, written only before the next kept byte (so never first or last);
/// dropped bytes vanish. With `SPACES`, the offset of every space written goes to `sp`.
/// Returns (bytes, spaces) written.
#[inline(always)]
fn ascii_pass<const SPACES: bool>(
    text: &[u8],
    table: &[u8; 128],
    out: &mut [u8],
    sp: &mut [u32],
) -> (usize, usize) {
    assert!(out.len() > text.len() && (!SPACES || sp.len() > text.len()));
    let (mut j, mut k) = (0usize, 0usize);
    let mut pending = false; // a whitespace run after a kept character, not yet written
    let n = text.len();
    let mut i = 0;
    while i < n {
        let c = table[(text[i] & 0x7F) as usize];
        if c < SPACE {
            if pending {
                out[j] = b' ';
                if SPACES {
                    sp[k] = j as u32;
                    k += 1;
                }
                j += 1;
                pending = false;
            }
            // a run of kept bytes: the common case, in a tight loop
            out[j] = c;
            j += 1;
            i += 1;
            while i < n {
                let c = table[(text[i] & 0x7F) as usize];
                if c >= SPACE {
                    break;
                }
                out[j] = c;
                j += 1;
                i += 1;
            }
        } else {
            pending |= c == SPACE && j > 0;
            i += 1;
        }
    }
    (j, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FineWeb's normalisation and the three configurations that each turn one switch off.
    fn one_off() -> [NormConfig; 4] {
        [
            NormConfig::FINEWEB,
            NormConfig {
                lowercase: false,
                ..NormConfig::FINEWEB
            },
            NormConfig {
                strip_punct: false,
                ..NormConfig::FINEWEB
            },
            NormConfig {
                collapse_ws: false,
                ..NormConfig::FINEWEB
            },
        ]
    }

    #[test]
    fn fineweb_norm() {
        let n = normalize("  Hello,   World!\n\tIt's  ME.  ", &NormConfig::FINEWEB);
        assert_eq!(n, "hello world its me");
        assert_eq!(normalize("a - b", &NormConfig::FINEWEB), "a b");
        assert_eq!(normalize("x", &NormConfig::NONE), "x");
        // symbols (S*) are not punctuation
        assert_eq!(normalize("1+1=2 $5", &NormConfig::FINEWEB), "1+1=2 $5");
        // the ASCII fast path agrees with the general path on every ASCII char
        let all: String = (0u8..128).map(|b| b as char).collect();
        for cfg in [
            NormConfig::FINEWEB,
            NormConfig {
                lowercase: false,
                ..NormConfig::FINEWEB
            },
        ] {
            let fast = normalize(&all, &cfg).into_owned();
            let slow = normalize(&format!("{all}\u{e9}"), &cfg).into_owned();
            assert_eq!(format!("{fast}\u{e9}"), slow);
        }
    }

    #[test]
    fn simplify_ascii_path_matches_general_path() {
        // the general (char by char) path is the reference: a non-ASCII letter at both ends,
        // which no step changes or joins with its neighbours, forces it
        let alphabet = b"aB 1.2,3\t\n-'x!  \r_z9\x0b\x00$";
        let mut rng = crate::lcg::Lcg(11);
        for n in 0..4000 {
            let text = rng.string(alphabet, n % 37);
            for cfg in one_off().into_iter().chain([NormConfig::NONE]) {
                let fast = simplify_text_with(&text, &cfg);
                let slow = simplify_text_with(&format!("\u{436}{text}\u{436}"), &cfg);
                let want = slow
                    .strip_prefix('\u{436}')
                    .and_then(|s| s.strip_suffix('\u{436}'))
                    .unwrap_or(&slow)
                    .trim_matches(crate::filter::text::is_py_space);
                assert_eq!(fast, want, "{text:?} {cfg:?}");
            }
        }
        assert_eq!(
            simplify_text("Hello, World! 3.14 and 1,000,000"),
            "hello world 0 and 0 0"
        );
    }

    #[test]
    fn accents_by_runs_match_nfd_of_the_whole_text() {
        use unicode_general_category::{get_general_category, GeneralCategory};
        use unicode_normalization_alignments::UnicodeNormalization;
        let alphabet: Vec<char> = "a e\u{301}\u{323}\u{1d165}\u{315}éñǅẮ\u{327}xΐ"
            .chars()
            .collect();
        let mut rng = crate::lcg::Lcg(3);
        for n in 0..3000 {
            let text = rng.string(&alphabet, n % 17);
            let whole: String = text
                .chars()
                .nfd()
                .map(|(c, _)| c)
                .filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark)
                .collect();
            assert_eq!(drop_accents(&text), whole, "{text:?}");
        }
    }

    #[test]
    fn spaces_are_the_word_boundaries() {
        for text in [
            "  Hello,   World!\n\tIt's  ME.  ",
            "",
            " , ",
            "a",
            "a b",
            "x\u{e9} y,  z ",
        ] {
            let mut sp = Vec::new();
            let out =
                normalize_collapsed_with_spaces(text, &NormConfig::FINEWEB, &mut sp).into_owned();
            let want: Vec<u32> = out.match_indices(' ').map(|(i, _)| i as u32).collect();
            assert_eq!(out, normalize(text, &NormConfig::FINEWEB), "{text:?}");
            assert_eq!(sp, want, "{text:?}");
        }
    }

    #[test]
    fn ascii_path_matches_general_path_on_random_text() {
        // the general path (char by char) is the reference: append a non-ASCII char to force it
        let alphabet = b"aB ,.\t\n-'x Y!  \r_z";
        let mut rng = crate::lcg::Lcg(7);
        for n in 0..3000 {
            let text = rng.string(alphabet, n % 41);
            for cfg in one_off() {
                let fast = normalize(&text, &cfg).into_owned();
                let slow = normalize(&format!("{text}\u{e9}"), &cfg).into_owned();
                let mut want = slow.strip_suffix('\u{e9}').unwrap_or(&slow).to_string();
                if cfg.collapse_ws && want.ends_with(' ') {
                    want.pop(); // the run before the appended char, which the general path kept
                }
                assert_eq!(fast, want, "{text:?} {cfg:?}");
            }
        }
    }
}
