//! Text normalisation of the decontamination rules.
//!
//! - `qwen` / `lcs` modes ([`normalize_qwen`]): drop every Unicode punctuation (P*) and symbol
//!   (S*) character, collapse runs of whitespace into one space, trim. (Whitespace is what
//!   Python's `str.split()` splits on: Unicode White_Space plus U+001C..U+001F.)
//! - `ngram` mode ([`words`]): split on whitespace, drop P*/S* characters in each word, lowercase
//!   it (full Unicode mapping, like `str.lower()`), and skip words left empty.

pub use crate::unicode::{is_punct_or_symbol, is_space};

/// Drop P*/S* characters and collapse whitespace (see the module docs).
pub fn normalize_qwen(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_qwen_into(text, &mut out);
    out
}

/// ASCII classes: 0 kept, 1 whitespace, 2 punctuation/symbol (dropped).
const ASCII_CLASS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        t[i] = if matches!(b, b' ' | b'\t'..=b'\r' | 0x1c..=0x1f) {
            1
        } else if b.is_ascii_punctuation() {
            2
        } else {
            0
        };
        i += 1;
    }
    t
};

/// [`normalize_qwen`] into `out` (cleared first): one pass over the bytes, ASCII by table.
pub fn normalize_qwen_into(text: &str, out: &mut String) {
    let bytes = text.as_bytes();
    let mut buf: Vec<u8> = std::mem::take(out).into_bytes();
    buf.clear();
    buf.reserve(bytes.len());
    let mut space = false;
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            match ASCII_CLASS[b as usize] {
                0 => {
                    if space {
                        if !buf.is_empty() {
                            buf.push(b' ');
                        }
                        space = false;
                    }
                    // copy the whole run of kept ASCII bytes at once
                    let mut j = i + 1;
                    while j < bytes.len() && bytes[j] < 0x80 && ASCII_CLASS[bytes[j] as usize] == 0
                    {
                        j += 1;
                    }
                    buf.extend_from_slice(&bytes[i..j]);
                    i = j;
                    continue;
                }
                1 => space = true,
                _ => {}
            }
            i += 1;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        let len = c.len_utf8();
        if is_space(c) {
            space = true;
        } else if !is_punct_or_symbol(c) {
            if space {
                if !buf.is_empty() {
                    buf.push(b' ');
                }
                space = false;
            }
            buf.extend_from_slice(&bytes[i..i + len]);
        }
        i += len;
    }
    // only whole UTF-8 characters were copied, so this never fails
    *out = String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}

/// Calls `f(word, start, end)` for every normalised word of `text` (see the module docs);
/// `start..end` is its span in characters (code points) of `text`. No allocation per word.
pub fn for_each_word(text: &str, mut f: impl FnMut(&str, usize, usize)) {
    let bytes = text.as_bytes();
    let mut cur = String::with_capacity(32);
    let (mut i, mut n, mut start) = (0usize, 0usize, 0usize);
    let mut in_word = false;
    while i < bytes.len() {
        let b = bytes[i];
        let (c, len) = if b < 0x80 {
            (b as char, 1)
        } else {
            match text[i..].chars().next() {
                Some(c) => (c, c.len_utf8()),
                None => break,
            }
        };
        i += len;
        let space = if b < 0x80 {
            matches!(b, b' ' | b'\t'..=b'\r' | 0x1c..=0x1f)
        } else {
            is_space(c)
        };
        if space {
            if in_word {
                if !cur.is_empty() {
                    f(&cur, start, n);
                    cur.clear();
                }
                in_word = false;
            }
        } else {
            if !in_word {
                in_word = true;
                start = n;
            }
            if b < 0x80 {
                if !b.is_ascii_punctuation() {
                    cur.push(b.to_ascii_lowercase() as char);
                }
            } else if !is_punct_or_symbol(c) {
                cur.extend(c.to_lowercase());
            }
        }
        n += 1;
    }
    if in_word && !cur.is_empty() {
        f(&cur, start, n);
    }
}

/// The normalised words of `text` with their spans in characters (code points) of `text`.
pub fn words(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for_each_word(text, |w, s, e| out.push((w.to_string(), s, e)));
    out
}

/// [`normalize_qwen`] with, for every character of the output, the index (in characters) of
/// the input character it came from; a collapsed space maps to the last whitespace character
/// of its run. Written char by char, apart from the fast path, so each checks the other.
pub fn normalize_qwen_map(text: &str) -> (String, Vec<u32>) {
    let mut out = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len());
    let mut space: Option<u32> = None;
    for (ci, c) in text.chars().enumerate() {
        if is_space(c) {
            space = Some(ci as u32);
        } else if !is_punct_or_symbol(c) {
            if let Some(si) = space.take() {
                if !out.is_empty() {
                    out.push(' ');
                    map.push(si);
                }
            }
            out.push(c);
            map.push(ci as u32);
        }
    }
    (out, map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_equals_fast_path() {
        let alphabet: Vec<char> = "ab c\t\n.,(é€—«»\u{3000}x1_\u{1c}".chars().collect();
        let mut r: u64 = 7;
        for _ in 0..3000 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let len = (r % 24) as usize;
            let mut x = r;
            let text: String = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    alphabet[((x >> 33) % alphabet.len() as u64) as usize]
                })
                .collect();
            let (norm, map) = normalize_qwen_map(&text);
            assert_eq!(norm, normalize_qwen(&text), "{text:?}");
            let chars: Vec<char> = text.chars().collect();
            assert_eq!(map.len(), norm.chars().count());
            for (c, &i) in norm.chars().zip(&map) {
                let src = chars[i as usize];
                assert!(src == c || (c == ' ' && is_space(src)), "{text:?}");
            }
        }
    }

    #[test]
    fn qwen_normalisation() {
        assert_eq!(
            normalize_qwen("  def f(x):\n\treturn x+1  "),
            "def fx return x1"
        );
        assert_eq!(normalize_qwen("a , b"), "a b");
        assert_eq!(normalize_qwen("€5 — «ok»"), "5 ok");
        assert_eq!(normalize_qwen(""), "");
    }

    #[test]
    fn ngram_words() {
        let w = words("Hello, World!  ... ÉTÉ x");
        let got: Vec<(&str, usize, usize)> =
            w.iter().map(|(s, a, b)| (s.as_str(), *a, *b)).collect();
        assert_eq!(
            got,
            vec![
                ("hello", 0, 6),
                ("world", 7, 13),
                ("été", 19, 22),
                ("x", 23, 24)
            ]
        );
    }
}
