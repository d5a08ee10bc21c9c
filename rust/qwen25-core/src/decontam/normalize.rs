//! Text normalisation of the decontamination rules.
//!
//! - `qwen` / `lcs` modes ([`normalize_qwen`]): drop every Unicode punctuation (P*) and symbol
//!   (S*) character, collapse runs of whitespace into one space, trim. (Whitespace is what
//!   Python's `str.split()` splits on: Unicode White_Space plus U+001C..U+001F.)
//! - `ngram` mode ([`words`]): split on whitespace, drop P*/S* characters in each word, lowercase
//!   it (full Unicode mapping, like `str.lower()`), and skip words left empty.

use unicode_general_category::{get_general_category, GeneralCategory as G};

#[inline]
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[inline]
pub fn is_punct_or_symbol(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    matches!(
        get_general_category(c),
        G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
            | G::MathSymbol
            | G::CurrencySymbol
            | G::ModifierSymbol
            | G::OtherSymbol
    )
}

/// Drop P*/S* characters and collapse whitespace (see the module docs).
pub fn normalize_qwen(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if is_space(c) {
            space = true;
        } else if !is_punct_or_symbol(c) {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// The normalised words of `text` with their spans in characters (code points) of `text`.
pub fn words(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0usize;
    let mut in_word = false;
    let mut n = 0usize;
    for c in text.chars() {
        if is_space(c) {
            if in_word {
                if !cur.is_empty() {
                    out.push((std::mem::take(&mut cur), start, n));
                }
                in_word = false;
            }
        } else {
            if !in_word {
                in_word = true;
                start = n;
            }
            if !is_punct_or_symbol(c) {
                if c.is_ascii() {
                    cur.push(c.to_ascii_lowercase());
                } else {
                    cur.extend(c.to_lowercase());
                }
            }
        }
        n += 1;
    }
    if in_word && !cur.is_empty() {
        out.push((cur, start, n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen_normalisation() {
        assert_eq!(normalize_qwen("  def f(x):\n\treturn x+1  "), "def fx return x1");
        assert_eq!(normalize_qwen("a , b"), "a b");
        assert_eq!(normalize_qwen("€5 — «ok»"), "5 ok");
        assert_eq!(normalize_qwen(""), "");
    }

    #[test]
    fn ngram_words() {
        let w = words("Hello, World!  ... ÉTÉ x");
        let got: Vec<(&str, usize, usize)> = w.iter().map(|(s, a, b)| (s.as_str(), *a, *b)).collect();
        assert_eq!(got, vec![("hello", 0, 6), ("world", 7, 13), ("été", 19, 22), ("x", 23, 24)]);
    }
}
