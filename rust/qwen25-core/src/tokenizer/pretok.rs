//! Pre-tokenization: the split regexes of Qwen2 and GPT-2, hand-compiled into scanners.
//!
//! The Qwen2 pattern (transformers `Qwen2Tokenizer.PRETOKENIZE_REGEX`) is
//!
//! ```text
//! (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//!
//! and the GPT-2 pattern is
//!
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```
//!
//! HF tokenizers runs them with Oniguruma, a backtracking engine: at each position the
//! alternatives are tried left to right and the first that matches wins. Every character is
//! matched by some alternative, so the matches tile the input. The scanners below reproduce that
//! leftmost-first semantics alternative by alternative, without a regex engine; each function
//! documents which alternative each branch stands for. `\s` is Oniguruma's Unicode `\s`
//! (U+0009..U+000D, U+0085 and the Zs/Zl/Zp categories), `\p{L}` the L* and `\p{N}` the N*
//! general categories.

use std::sync::OnceLock;
use unicode_general_category::{get_general_category, GeneralCategory as G};

/// Character classes the patterns distinguish.
pub(crate) const LETTER: u8 = 0;
pub(crate) const NUMBER: u8 = 1;
/// Whitespace other than `\r` and `\n`.
pub(crate) const SPACE: u8 = 2;
/// `\r` or `\n`.
pub(crate) const NEWLINE: u8 = 3;
/// Anything else: punctuation, symbols, marks, controls, unassigned.
pub(crate) const OTHER: u8 = 4;

/// Which split pattern a vocabulary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Qwen2 / Qwen2.5 / Qwen3.
    Qwen2,
    /// GPT-2 (and other byte-level BPEs that reuse its regex).
    Gpt2,
}

impl Pattern {
    /// The regex this scanner implements, exactly as it appears in HF `tokenizer.json` files.
    pub fn regex(self) -> &'static str {
        match self {
            Pattern::Qwen2 => QWEN2_REGEX,
            Pattern::Gpt2 => GPT2_REGEX,
        }
    }

    /// Recognise a pattern from its regex source text.
    pub fn from_regex(re: &str) -> Option<Pattern> {
        if re == QWEN2_REGEX {
            Some(Pattern::Qwen2)
        } else if re == GPT2_REGEX {
            Some(Pattern::Gpt2)
        } else {
            None
        }
    }
}

pub const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
pub const GPT2_REGEX: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

const ASCII_CLASS: [u8; 128] = {
    let mut t = [OTHER; 128];
    let mut i = 0;
    while i < 128 {
        let c = i as u8;
        t[i] = if c.is_ascii_alphabetic() {
            LETTER
        } else if c.is_ascii_digit() {
            NUMBER
        } else if c == b'\r' || c == b'\n' {
            NEWLINE
        } else if c == b' ' || (c >= 0x09 && c <= 0x0d) {
            SPACE
        } else {
            OTHER
        };
        i += 1;
    }
    t
};

fn class_of_slow(c: char) -> u8 {
    if matches!(c, '\u{85}') {
        return SPACE;
    }
    match get_general_category(c) {
        G::UppercaseLetter
        | G::LowercaseLetter
        | G::TitlecaseLetter
        | G::ModifierLetter
        | G::OtherLetter => LETTER,
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => NUMBER,
        G::SpaceSeparator | G::LineSeparator | G::ParagraphSeparator => SPACE,
        _ => OTHER,
    }
}

const BLOCK_BITS: u32 = 8;
const N_BLOCKS: usize = (0x110000 >> BLOCK_BITS) as usize;

/// Lazily filled two-level table: one 256-entry block per range of code points, computed on
/// first use, so a text only pays for the scripts it contains.
fn block(b: usize) -> &'static [u8; 1 << BLOCK_BITS] {
    static BLOCKS: OnceLock<Vec<OnceLock<Box<[u8; 1 << BLOCK_BITS]>>>> = OnceLock::new();
    let blocks = BLOCKS.get_or_init(|| (0..N_BLOCKS).map(|_| OnceLock::new()).collect());
    blocks[b].get_or_init(|| {
        let mut t = Box::new([OTHER; 1 << BLOCK_BITS]);
        for (i, slot) in t.iter_mut().enumerate() {
            let cp = ((b as u32) << BLOCK_BITS) | i as u32;
            if let Some(c) = char::from_u32(cp) {
                *slot = class_of_slow(c);
            }
        }
        t
    })
}

#[inline(always)]
pub(crate) fn class_of(c: char) -> u8 {
    let cp = c as u32;
    if cp < 128 {
        ASCII_CLASS[cp as usize]
    } else {
        block((cp >> BLOCK_BITS) as usize)[(cp & 0xff) as usize]
    }
}

/// Decode the char starting at byte `i` of `s` (which must be a char boundary).
#[inline(always)]
fn char_at(s: &[u8], i: usize) -> (char, usize) {
    let b0 = s[i];
    if b0 < 0x80 {
        return (b0 as char, 1);
    }
    // SAFETY of indexing: `s` is valid UTF-8 and `i` a boundary, so the sequence is complete.
    let (cp, n) = if b0 < 0xE0 {
        (((b0 as u32 & 0x1F) << 6) | (s[i + 1] as u32 & 0x3F), 2)
    } else if b0 < 0xF0 {
        (
            ((b0 as u32 & 0x0F) << 12) | ((s[i + 1] as u32 & 0x3F) << 6) | (s[i + 2] as u32 & 0x3F),
            3,
        )
    } else {
        (
            ((b0 as u32 & 0x07) << 18)
                | ((s[i + 1] as u32 & 0x3F) << 12)
                | ((s[i + 2] as u32 & 0x3F) << 6)
                | (s[i + 3] as u32 & 0x3F),
            4,
        )
    };
    // Always valid for input that came from a &str.
    (char::from_u32(cp).unwrap_or('\u{FFFD}'), n)
}

/// Class and byte length of the char at `i`, or `None` at the end.
#[inline(always)]
fn peek(s: &[u8], i: usize) -> Option<(u8, usize)> {
    if i >= s.len() {
        return None;
    }
    let b = s[i];
    if b < 0x80 {
        return Some((ASCII_CLASS[b as usize], 1));
    }
    let (c, n) = char_at(s, i);
    Some((class_of(c), n))
}

/// End of the run of chars of class `cls` starting at `i`.
#[inline(always)]
fn run_end(s: &[u8], mut i: usize, cls: u8) -> usize {
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            if ASCII_CLASS[b as usize] != cls {
                break;
            }
            i += 1;
        } else {
            let (c, n) = char_at(s, i);
            if class_of(c) != cls {
                break;
            }
            i += n;
        }
    }
    i
}

/// End of a whitespace run (SPACE or NEWLINE) starting at `i`; also returns the start of its
/// last char and the end of its last `\r`/`\n` (0 if none).
#[inline(always)]
fn ws_run(s: &[u8], mut i: usize) -> (usize, usize, usize) {
    let mut last_start = i;
    let mut last_nl_end = 0;
    while let Some((cls, n)) = peek(s, i) {
        if cls == NEWLINE {
            last_nl_end = i + n;
        } else if cls != SPACE {
            break;
        }
        last_start = i;
        i += n;
    }
    (i, last_start, last_nl_end)
}

/// Length of a contraction suffix (`s`, `t`, `re`, `ve`, `m`, `ll`, `d`) at `i`, if any.
/// With `fold`, letters match case-insensitively under Unicode simple case folding, as
/// Oniguruma's `(?i:...)` does: `ſ` (U+017F) folds to `s`.
#[inline(always)]
fn contraction(s: &[u8], i: usize, fold: bool) -> Option<usize> {
    let at = |k: usize| -> u8 {
        match s.get(i + k) {
            Some(&b) if fold => b.to_ascii_lowercase(),
            Some(&b) => b,
            None => 0,
        }
    };
    match at(0) {
        b's' | b't' | b'm' | b'd' => Some(1),
        b'r' | b'v' if at(1) == b'e' => Some(2),
        b'l' if at(1) == b'l' => Some(2),
        0xC5 if fold && s.get(i + 1) == Some(&0xBF) => Some(2), // U+017F LATIN SMALL LETTER LONG S
        _ => None,
    }
}

/// End of the Qwen2 pre-token that starts at `i` (< s.len()).
#[inline]
fn next_qwen2(s: &[u8], i: usize) -> usize {
    let b0 = s[i];
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if b0 == b'\'' {
        if let Some(n) = contraction(s, i + 1, true) {
            return i + 1 + n;
        }
    }
    let (c0, n0) = if b0 < 0x80 {
        (ASCII_CLASS[b0 as usize], 1)
    } else {
        let (c, n) = char_at(s, i);
        (class_of(c), n)
    };
    match c0 {
        // [^\r\n\p{L}\p{N}]?\p{L}+ with an empty prefix
        LETTER => run_end(s, i + n0, LETTER),
        // \p{N}
        NUMBER => i + n0,
        _ => {
            // [^\r\n\p{L}\p{N}]?\p{L}+ with a one-char prefix (any SPACE or OTHER char)
            if c0 != NEWLINE {
                if let Some((LETTER, _)) = peek(s, i + n0) {
                    return run_end(s, i + n0, LETTER);
                }
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let j = if b0 == b' ' { i + 1 } else { i };
            if let Some((OTHER, _)) = peek(s, j) {
                let k = run_end(s, j, OTHER);
                return run_end(s, k, NEWLINE);
            }
            // Here the char at `i` is whitespace.
            let (end, last_start, last_nl_end) = ws_run(s, i);
            // \s*[\r\n]+ : backtracking stops just after the run's last newline.
            if last_nl_end != 0 {
                return last_nl_end;
            }
            // \s+(?!\S) : the whole run at the end of the text, else all but its last char.
            if end == s.len() {
                return end;
            }
            if last_start > i {
                return last_start;
            }
            // \s+
            end
        }
    }
}

/// End of the GPT-2 pre-token that starts at `i` (< s.len()).
#[inline]
fn next_gpt2(s: &[u8], i: usize) -> usize {
    let b0 = s[i];
    // 's|'t|'re|'ve|'m|'ll|'d
    if b0 == b'\'' {
        if let Some(n) = contraction(s, i + 1, false) {
            return i + 1 + n;
        }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
    let j = if b0 == b' ' { i + 1 } else { i };
    if let Some((cls, _)) = peek(s, j) {
        if cls == LETTER || cls == NUMBER || cls == OTHER {
            return run_end(s, j, cls);
        }
    }
    // \s+(?!\S) | \s+
    let (end, last_start, _) = ws_run(s, i);
    if end == s.len() {
        return end;
    }
    if last_start > i {
        return last_start;
    }
    end
}

/// Iterator over the pre-tokens of `text`, as byte ranges.
pub struct Splits<'a> {
    s: &'a [u8],
    pos: usize,
    pattern: Pattern,
}

impl<'a> Iterator for Splits<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.s.len() {
            return None;
        }
        let end = match self.pattern {
            Pattern::Qwen2 => next_qwen2(self.s, self.pos),
            Pattern::Gpt2 => next_gpt2(self.s, self.pos),
        };
        let piece = &self.s[self.pos..end];
        self.pos = end;
        Some(piece)
    }
}

/// Split `text` into pre-tokens.
pub fn split(text: &str, pattern: Pattern) -> Splits<'_> {
    Splits {
        s: text.as_bytes(),
        pos: 0,
        pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(t: &str) -> Vec<&str> {
        split(t, Pattern::Qwen2)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect()
    }

    #[test]
    fn qwen2_basic_splits() {
        assert_eq!(pieces("Hello world"), ["Hello", " world"]);
        assert_eq!(pieces("I'LL don't"), ["I", "'LL", " don", "'t"]);
        assert_eq!(pieces("12345"), ["1", "2", "3", "4", "5"]);
        assert_eq!(pieces("a  b"), ["a", " ", " b"]);
        assert_eq!(pieces("x  \n  y"), ["x", "  \n", " ", " y"]);
        assert_eq!(pieces("end  "), ["end", "  "]);
        assert_eq!(pieces("f(x):\n\treturn"), ["f", "(x", "):\n", "\treturn"]);
        assert_eq!(pieces(" 1"), [" ", "1"]);
        assert_eq!(pieces(""), Vec::<&str>::new());
    }

    #[test]
    fn pieces_tile_the_input() {
        for t in [
            "a\r\n\r\n b",
            "你好，世界！",
            "\u{3000}\u{a0}x",
            "'ſ 'S",
            "   ",
            "\n",
        ] {
            assert_eq!(pieces(t).concat(), t);
        }
    }
}
