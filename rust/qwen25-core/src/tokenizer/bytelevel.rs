//! GPT-2's byte-level alphabet: every byte maps to one printable char, so that byte strings
//! can be written in JSON vocabularies. Bytes that are printable Latin-1 map to themselves;
//! the other 68 map, in byte order, to U+0100, U+0101, ...

use std::sync::OnceLock;

fn is_self_mapped(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// `BYTE_TO_CHAR[b]` is the char standing for byte `b`.
pub fn byte_to_char() -> &'static [char; 256] {
    static T: OnceLock<[char; 256]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = ['\0'; 256];
        let mut next = 256u32;
        for b in 0..=255u8 {
            t[b as usize] = if is_self_mapped(b) {
                b as char
            } else {
                let c = char::from_u32(next).expect("valid code point");
                next += 1;
                c
            };
        }
        t
    })
}

/// Inverse of [`byte_to_char`]: the byte a char stands for, if it is in the alphabet.
#[inline]
pub fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    if cp < 256 && is_self_mapped(cp as u8) {
        return Some(cp as u8);
    }
    if (256..256 + 68).contains(&cp) {
        static INV: OnceLock<[u8; 68]> = OnceLock::new();
        let inv = INV.get_or_init(|| {
            let mut t = [0u8; 68];
            for (k, b) in (0..=255u8).filter(|&b| !is_self_mapped(b)).enumerate() {
                t[k] = b;
            }
            t
        });
        return Some(inv[(cp - 256) as usize]);
    }
    None
}

/// Decode a byte-level token string to the raw bytes it stands for.
pub fn decode_token(s: &str) -> Option<Vec<u8>> {
    s.chars().map(char_to_byte).collect()
}

/// Encode raw bytes as a byte-level token string.
pub fn encode_token(bytes: &[u8]) -> String {
    let t = byte_to_char();
    bytes.iter().map(|&b| t[b as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_round_trips() {
        let t = byte_to_char();
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            assert!(seen.insert(t[b as usize]));
            assert_eq!(char_to_byte(t[b as usize]), Some(b));
        }
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(char_to_byte('x'), Some(b'x'));
        assert_eq!(char_to_byte('€'), None);
    }
}
