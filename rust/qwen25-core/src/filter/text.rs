//! Small text helpers with Python's exact semantics (the filters are specified, and tested, by a
//! pure-Python reference): `str.splitlines`, `len(str)` in code points, `str.isalpha`, and the
//! word splitter that stands in for NLTK's `word_tokenize`.

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// Python's `str.splitlines()` (no keepends): splits on \n \r \r\n \v \f \x1c \x1d \x1e \x85
/// \u2028 \u2029; a trailing line break does not make an empty last line.
pub fn splitlines(text: &str) -> Vec<&str> {
    // Byte scan: in valid UTF-8, U+0085 is C2 85 and U+2028/U+2029 are E2 80 A8/A9, and no other
    // char contains those byte sequences at a char boundary.
    let mut out = Vec::new();
    let b = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if !MAY_BREAK[b[i] as usize] {
            i += 1;
            continue;
        }
        let len = match b[i] {
            b'\n' | 0x0b | 0x0c | 0x1c..=0x1e => 1,
            b'\r' => {
                if b.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                }
            }
            0xC2 if b.get(i + 1) == Some(&0x85) => 2,
            0xE2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)) => 3,
            _ => 0,
        };
        if len > 0 {
            out.push(&text[start..i]);
            i += len;
            start = i;
        } else {
            i += 1;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Bytes that are, or start, a line break of [`splitlines`].
static MAY_BREAK: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = matches!(
            i as u8,
            b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1e | 0xC2 | 0xE2
        );
        i += 1;
    }
    t
};

/// ASCII byte classes for [`words`]: 1 whitespace (`str.isspace`), 2 punctuation, 0 other.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if matches!(c, 9..=13 | 0x1c..=0x1f | b' ') {
            1
        } else if c.is_ascii_punctuation() {
            2
        } else {
            0
        };
        i += 1;
    }
    t
};

/// `str.isspace()` for an ASCII byte.
#[inline]
pub fn is_ascii_space(c: u8) -> bool {
    CLASS[c as usize] == 1
}

/// `len(s)` in Python: code points.
#[inline]
pub fn clen(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Python's `str.isalpha()` for one char: general category L* (Lu Ll Lt Lm Lo).
#[inline]
pub fn is_alpha(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
    )
}

pub use crate::unicode::is_punct_or_symbol;

/// Python's `str.isspace()` for one char (what `str.split()`/`strip()` use).
#[inline]
pub fn is_py_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\u{1c}'..='\u{1f}' | ' ' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

/// Python's `str.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `str.split()` (no argument).
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// Words, standing in for NLTK's `word_tokenize` (which has no Rust port): the text is split on
/// whitespace (`str.split()`), then leading and trailing punctuation/symbol chars of each chunk
/// are peeled off as one-char tokens; what remains in the middle is one token.
pub fn words(text: &str) -> Vec<&str> {
    if text.is_ascii() {
        return words_ascii(text);
    }
    let mut out = Vec::new();
    for chunk in py_split(text) {
        let mut lead_end = 0;
        for (i, c) in chunk.char_indices() {
            if is_punct_or_symbol(c) {
                lead_end = i + c.len_utf8();
            } else {
                break;
            }
        }
        if lead_end == chunk.len() {
            // all punctuation: one token per char
            for (i, c) in chunk.char_indices() {
                out.push(&chunk[i..i + c.len_utf8()]);
            }
            continue;
        }
        let mut trail_start = chunk.len();
        for (i, c) in chunk.char_indices().rev() {
            if is_punct_or_symbol(c) {
                trail_start = i;
            } else {
                break;
            }
        }
        for (i, c) in chunk[..lead_end].char_indices() {
            out.push(&chunk[i..i + c.len_utf8()]);
        }
        out.push(&chunk[lead_end..trail_start]);
        for (i, c) in chunk[trail_start..].char_indices() {
            out.push(&chunk[trail_start + i..trail_start + i + c.len_utf8()]);
        }
    }
    out
}

/// [`words`] for ASCII text, byte by byte.
fn words_ascii(text: &str) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len() / 4);
    words_ascii_each(text, |w| out.push(w));
    out
}

/// [`words`] of an ASCII `text`, handed to `emit` one by one.
pub fn words_ascii_each<'a>(text: &'a str, mut emit: impl FnMut(&'a str)) {
    let b = text.as_bytes();
    let is_sp = |c: u8| CLASS[c as usize] == 1;
    let is_p = |c: u8| CLASS[c as usize] == 2;
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && is_sp(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && !is_sp(b[i]) {
            i += 1;
        }
        let end = i;
        let mut l = start;
        while l < end && is_p(b[l]) {
            l += 1;
        }
        if l == end {
            (start..end).for_each(|k| emit(&text[k..k + 1]));
            continue;
        }
        let mut r = end;
        while r > l && is_p(b[r - 1]) {
            r -= 1;
        }
        (start..l).for_each(|k| emit(&text[k..k + 1]));
        emit(&text[l..r]);
        (r..end).for_each(|k| emit(&text[k..k + 1]));
    }
}

/// Class bits of an ASCII byte for [`AsciiMasks`]: 1 whitespace (`str.isspace`), 2 punctuation,
/// 4 a line break of [`splitlines`].
static CLS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 128 {
        let c = i as u8;
        t[i] = CLASS[i] & 1 | (((CLASS[i] == 2) as u8) << 1);
        if matches!(c, b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1e) {
            t[i] |= 4;
        }
        i += 1;
    }
    t
};

/// The byte classes of an ASCII text as bitmaps (bit `i % 64` of word `i / 64` stands for byte
/// `i`): whitespace, punctuation and line breaks, found in one pass, so that the word split and
/// the line split jump from boundary to boundary instead of testing every byte again. Bits past
/// the end are set in `space` only. Kept across documents to reuse its memory.
#[derive(Default)]
pub struct AsciiMasks {
    space: Vec<u64>,
    punct: Vec<u64>,
    brk: Vec<u64>,
    len: usize,
}

/// First position >= `i` whose bit is clear (`bits.len() * 64` when none).
#[inline]
fn next_clear(bits: &[u64], i: usize) -> usize {
    let mut k = i >> 6;
    let Some(&w0) = bits.get(k) else {
        return bits.len() * 64;
    };
    let mut w = !w0 & (!0u64 << (i & 63));
    while w == 0 {
        k += 1;
        match bits.get(k) {
            Some(&x) => w = !x,
            None => return bits.len() * 64,
        }
    }
    (k << 6) + w.trailing_zeros() as usize
}

/// First position >= `i` whose bit is set (`bits.len() * 64` when none).
#[inline]
fn next_set(bits: &[u64], i: usize) -> usize {
    let mut k = i >> 6;
    let Some(&w0) = bits.get(k) else {
        return bits.len() * 64;
    };
    let mut w = w0 & (!0u64 << (i & 63));
    while w == 0 {
        k += 1;
        match bits.get(k) {
            Some(&x) => w = x,
            None => return bits.len() * 64,
        }
    }
    (k << 6) + w.trailing_zeros() as usize
}

#[inline]
fn bit(bits: &[u64], i: usize) -> bool {
    bits.get(i >> 6).is_some_and(|w| (w >> (i & 63)) & 1 != 0)
}

impl AsciiMasks {
    /// Classify the bytes of `b` (ASCII: other bytes count as letters).
    pub fn fill(&mut self, b: &[u8]) {
        let n = b.len().div_ceil(64);
        for v in [&mut self.space, &mut self.punct, &mut self.brk] {
            v.clear();
            v.reserve(n);
        }
        self.len = b.len();
        for ch in b.chunks(64) {
            // class bytes, then 8 at a time: the low bit of each byte gathered into 8 bits by a
            // multiplication (no carries: one bit per byte)
            let mut cls = [0u8; 64];
            for (d, &c) in cls.iter_mut().zip(ch) {
                *d = CLS[c as usize];
            }
            let gather =
                |x: u64| (x & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080) >> 56;
            let (mut s, mut p, mut r) = (0u64, 0u64, 0u64);
            for (k, c8) in cls.chunks_exact(8).enumerate() {
                let mut buf = [0u8; 8];
                buf.copy_from_slice(c8);
                let x = u64::from_le_bytes(buf);
                s |= gather(x) << (8 * k);
                p |= gather(x >> 1) << (8 * k);
                r |= gather(x >> 2) << (8 * k);
            }
            if ch.len() < 64 {
                s |= !0u64 << ch.len();
            }
            self.space.push(s);
            self.punct.push(p);
            self.brk.push(r);
        }
    }

    /// Whether the text is whitespace only (`not text.strip()`).
    pub fn blank(&self) -> bool {
        next_clear(&self.space, 0) >= self.len
    }

    /// The tokens of [`words`] as byte ranges, handed to `emit` one by one.
    #[inline]
    pub fn words_each(&self, mut emit: impl FnMut(usize, usize)) {
        let len = self.len;
        let mut i = next_clear(&self.space, 0);
        while i < len {
            let end = next_set(&self.space, i).min(len);
            let l = if bit(&self.punct, i) {
                next_clear(&self.punct, i).min(end)
            } else {
                i
            };
            // the chunk's tokens: one per punctuation byte of i..l and r..end, l..r whole (no
            // middle when the chunk is all punctuation)
            let mut r = end;
            if l < end {
                // byte l is not punctuation, so the peel from the right stops above it
                while bit(&self.punct, r - 1) {
                    r -= 1;
                }
            }
            // one call site, so that `emit` is inlined
            let mut k = i;
            while k < end {
                let e = if k == l && l < r { r } else { k + 1 };
                emit(k, e);
                k = e;
            }
            i = next_clear(&self.space, end);
        }
    }

    /// [`splitlines`] of `text` (the text these masks were filled from) into `out`; returns
    /// whether every line break is a `\n` (then the lines are also `text.split('\n')`, less a
    /// last empty one when the text ends with `\n`).
    pub fn lines_into<'a>(&self, text: &'a str, out: &mut Vec<&'a str>) -> bool {
        out.clear();
        let b = text.as_bytes();
        let (mut start, mut only_nl) = (0usize, true);
        for (k, &w0) in self.brk.iter().enumerate() {
            let mut w = w0;
            while w != 0 {
                let p = (k << 6) + w.trailing_zeros() as usize;
                w &= w - 1;
                if p < start {
                    continue; // the \n of a \r\n
                }
                let c = b.get(p).copied().unwrap_or(b'\n');
                only_nl &= c == b'\n';
                out.push(text.get(start..p).unwrap_or(""));
                start = if c == b'\r' && b.get(p + 1) == Some(&b'\n') {
                    p + 2
                } else {
                    p + 1
                };
            }
        }
        if start < text.len() {
            out.push(text.get(start..).unwrap_or(""));
        }
        only_nl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_like_python() {
        assert_eq!(splitlines("a\nb\r\nc\rd\n"), vec!["a", "b", "c", "d"]);
        assert_eq!(splitlines("\n\nx"), vec!["", "", "x"]);
        assert!(splitlines("").is_empty());
        assert_eq!(
            splitlines("a\u{2028}b\u{2029}c\u{85}d\re"),
            vec!["a", "b", "c", "d", "e"]
        );
        assert_eq!(
            splitlines("\u{e9}\u{2027}\u{100}\r\r\n"),
            vec!["\u{e9}\u{2027}\u{100}", ""]
        );
    }

    #[test]
    fn masks_match_bytes() {
        // every ASCII byte at every offset of a block, blocks of every tail length
        let mut text = String::new();
        for k in 0..300u32 {
            text.push(char::from((k * 7 % 128) as u8));
        }
        for len in [0, 1, 63, 64, 65, 127, 128, 200, 300] {
            let t = &text[..len];
            let mut m = AsciiMasks::default();
            m.fill(t.as_bytes());
            for (i, c) in t.bytes().enumerate() {
                assert_eq!(bit(&m.space, i), is_ascii_space(c), "{i} {c}");
                assert_eq!(bit(&m.punct, i), c.is_ascii_punctuation(), "{i} {c}");
                let br = matches!(c, b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1e);
                assert_eq!(bit(&m.brk, i), br, "{i} {c}");
            }
            assert!((len..m.space.len() * 64).all(|i| bit(&m.space, i)));
            let mut ws = Vec::new();
            m.words_each(|s, e| ws.push(&t[s..e]));
            assert_eq!(ws, words(t));
            let mut ls = Vec::new();
            m.lines_into(t, &mut ls);
            assert_eq!(ls, splitlines(t));
        }
    }

    #[test]
    fn words_peel_punct() {
        assert_eq!(
            words("Hello, world! (yes)"),
            vec!["Hello", ",", "world", "!", "(", "yes", ")"]
        );
        assert_eq!(
            words("... e.g. #tag"),
            vec![".", ".", ".", "e.g", ".", "#", "tag"]
        );
        // the ASCII path agrees with the general one
        let t = "  He said: \"(yes)!\" -- ok?\x1c#1 a.b.  ...  ";
        let with_e = format!("{t}\u{e9}");
        let mut want = words(t);
        want.push("\u{e9}");
        assert_eq!(words(&with_e), want);
    }
}
