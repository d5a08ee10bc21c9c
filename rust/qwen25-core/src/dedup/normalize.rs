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

fn normalize_ascii(text: &[u8], cfg: &NormConfig) -> String {
    let table = ascii_table(cfg);
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    let mut pending_space = false;
    for &b in text {
        match table[(b & 0x7F) as usize] {
            DROP => {}
            SPACE => pending_space = !out.is_empty(),
            c => {
                if pending_space {
                    out.push(b' ');
                    pending_space = false;
                }
                out.push(c);
            }
        }
    }
    // only ASCII bytes were pushed
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
