//! The fast path of [`record_item_extra`](super::record::record_item_extra): one hand-written
//! pass over the common well-formed line, an object whose text field is a string, that checks
//! its UTF-8 and its JSON and copies the text out (unescaped) as it goes.
//!
//! It either gives exactly what the serde path of [`record`](super::record) gives for the line
//! (the text, and the extra field's raw value), or `None`, and then the serde path runs and says
//! what it says: every error comes from there. So it gives up, rather than decides, on anything
//! it is not sure of:
//!
//! - anything that is not valid UTF-8, or not valid JSON as serde reads it (errors);
//! - a number with an exponent, or with more than [`INT_DIGITS`] digits before its point (whether
//!   one out of `f64` range passes is serde's call), and `NaN` / `Infinity` (Python's extensions);
//! - a lone surrogate escape in any string (a pair is text);
//! - the text field absent (an error) or not a string (token ids, a messages list, errors), a
//!   `messages` field (a list the rules may read), an object key with an escape (it may spell the
//!   field's name), nesting deeper than [`MAX_DEPTH`] (serde's recursion limit is 128).
//!
//! What it accepts it checks as strictly as serde: whitespace is ` \t\n\r`, strings hold no
//! control character below U+0020 and only the escapes of RFC 8259, literals are exact, numbers
//! follow the grammar, every container is closed and nothing follows the value but whitespace.
//! Duplicate keys: the last wins, as in Python's `json` and the serde path.
//!
//! UTF-8: a byte at or above 0x80 outside a string breaks the grammar; the first one met inside a
//! string (all before it is ASCII) has the rest of the line checked by `std::str::from_utf8`, once.
//! So a line this path accepts is UTF-8, and the text copied out of it (runs of the line between
//! ASCII bytes, and the chars escapes stand for) is too.

/// Integer digits a number may have here (serde parses a longer one into an `f64`, which
/// overflows past about 309 digits; 300 are always in range).
const INT_DIGITS: usize = 300;
/// Nesting this path follows (the top object is depth 1).
const MAX_DEPTH: usize = 64;

/// What the simple escapes (`\"`, `\n`, ...) stand for, by the byte after the `\`; 0: not one.
const SIMPLE: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'/' as usize] = b'/';
    t[b'b' as usize] = 0x08;
    t[b'f' as usize] = 0x0c;
    t[b'n' as usize] = b'\n';
    t[b'r' as usize] = b'\r';
    t[b't' as usize] = b'\t';
    t
};

/// The text of the line `b` (its `field`; an empty text for an empty `field`) and the raw JSON
/// text of its `extra` field's value (the last of duplicate keys; None when absent), or None: ask
/// the serde path.
pub(super) fn scan(b: &[u8], field: &str, extra: Option<&str>) -> Option<(String, Option<String>)> {
    let mut p = Scan {
        b,
        i: 0,
        unchecked: true,
    };
    p.ws();
    p.eat(b'{')?;
    let (mut text, mut span) = (None, None);
    if !p.empty(b'}') {
        loop {
            p.eat(b'"')?;
            let k0 = p.i;
            let k1 = find_special(b, k0, &mut p.unchecked)?;
            if b.get(k1) != Some(&b'"') {
                return None; // an escape (or a control character, or no end)
            }
            let key = &b[k0..k1];
            p.i = k1 + 1;
            p.ws();
            p.eat(b':')?;
            p.ws();
            let v0 = p.i;
            if !field.is_empty() && key == field.as_bytes() {
                p.eat(b'"')?; // not a string: the serde path
                text = Some(p.string()?); // the last wins
            } else if !field.is_empty() && key == b"messages" {
                return None;
            } else {
                p.value(1)?;
            }
            if extra.is_some_and(|x| x.as_bytes() == key) {
                span = Some((v0, p.i));
            }
            if p.next_or_close(b'}')? {
                break;
            }
        }
    }
    p.ws();
    if p.i != b.len() {
        return None;
    }
    let text = if field.is_empty() {
        String::new()
    } else {
        debug_assert!(text
            .as_deref()
            .is_none_or(|t| std::str::from_utf8(t).is_ok()));
        // SAFETY: the line is UTF-8 (see the module's docs: otherwise `scan` returned None),
        // and `string` built the text of runs of it that start and end next to ASCII bytes, of
        // ASCII bytes, and of chars' UTF-8 encodings
        unsafe { String::from_utf8_unchecked(text?) }
    };
    // the value's bounds are ASCII bytes, its non-ASCII runs checked: this never fails
    let raw = match span {
        Some((s, e)) => Some(String::from_utf8(b[s..e].to_vec()).ok()?),
        None => None,
    };
    Some((text, raw))
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    /// No non-ASCII byte met yet (once one is, the rest of the line is checked as UTF-8).
    unchecked: bool,
}

/// Hex digits' values; 0xff: not one.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = 10 + c as u8;
        t[b'A' as usize + c] = 10 + c as u8;
        c += 1;
    }
    t
};

#[inline]
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let h = b.get(i..i + 4)?;
    let d = [
        HEX[h[0] as usize],
        HEX[h[1] as usize],
        HEX[h[2] as usize],
        HEX[h[3] as usize],
    ];
    if (d[0] | d[1] | d[2] | d[3]) & 0xf0 != 0 {
        return None;
    }
    Some((d[0] as u32) << 12 | (d[1] as u32) << 8 | (d[2] as u32) << 4 | d[3] as u32)
}

impl Scan<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// After a container's opening bracket: past the whitespace, and past `close` when it comes
    /// next (an empty container): whether it did.
    #[inline]
    fn empty(&mut self, close: u8) -> bool {
        self.ws();
        self.eat(close).is_some()
    }

    /// After a member or an element: past the whitespace and a `,` and the whitespace after it
    /// (false: another follows), or past `close` (true: the container ends); None for anything
    /// else.
    #[inline]
    fn next_or_close(&mut self, close: u8) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.i += 1;
                self.ws();
                Some(false)
            }
            c if c == close => {
                self.i += 1;
                Some(true)
            }
            _ => None,
        }
    }

    /// The `\u` escape at `i` (a `\`): the char it stands for and its length; None for a bad
    /// escape or a lone surrogate.
    #[inline]
    fn unicode(&self, i: usize) -> Option<(char, usize)> {
        let u = hex4(self.b, i + 2)?;
        if !(0xD800..0xE000).contains(&u) {
            return Some((char::from_u32(u)?, 6));
        }
        // a high surrogate and a low one right after it: a pair; any other is lone
        if u >= 0xDC00 || self.b.get(i + 6..i + 8) != Some(b"\\u") {
            return None;
        }
        let l = hex4(self.b, i + 8)?;
        if !(0xDC00..0xE000).contains(&l) {
            return None;
        }
        let c = char::from_u32(0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00))?;
        Some((c, 12))
    }

    /// A string's value (UTF-8 bytes), from after its opening quote to after its closing one.
    fn string(&mut self) -> Option<Vec<u8>> {
        let b = self.b;
        let mut i = self.i;
        // the rest of the line bounds the value (an escape is never shorter than its char);
        // trimmed at the end where far off
        let mut out: Vec<u8> = Vec::with_capacity(b.len() - i + 16);
        loop {
            let j = copy_run(b, i, &mut out, &mut self.unchecked)?;
            match *b.get(j)? {
                b'"' => {
                    if out.capacity() > out.len() + out.len() / 8 + 64 {
                        out.shrink_to_fit();
                    }
                    self.i = j + 1;
                    return Some(out);
                }
                b'\\' => {
                    let e = *b.get(j + 1)?;
                    let c = SIMPLE[e as usize];
                    if c != 0 {
                        out.push(c);
                        i = j + 2;
                    } else if e == b'u' {
                        let (c, n) = self.unicode(j)?;
                        if c.is_ascii() {
                            out.push(c as u8);
                        } else {
                            let mut u = [0u8; 4];
                            let u = c.encode_utf8(&mut u).as_bytes();
                            // no call for a few bytes (`out` has room: see `copy_run`)
                            for &x in u {
                                out.push(x);
                            }
                        }
                        i = j + n;
                    } else {
                        return None;
                    }
                }
                _ => return None, // a control character
            }
        }
    }

    /// Past a string, from after its opening quote to after its closing one.
    fn skip_string(&mut self) -> Option<()> {
        let mut i = self.i;
        loop {
            let j = find_special(self.b, i, &mut self.unchecked)?;
            match *self.b.get(j)? {
                b'"' => {
                    self.i = j + 1;
                    return Some(());
                }
                b'\\' => {
                    let e = *self.b.get(j + 1)?;
                    i = if SIMPLE[e as usize] != 0 {
                        j + 2
                    } else if e == b'u' {
                        j + self.unicode(j)?.1
                    } else {
                        return None;
                    };
                }
                _ => return None,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let i0 = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - i0
    }

    /// Past one value (the whitespace before it skipped) at nesting `depth`.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.skip_string()
            }
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => {
                self.i += 1;
                if self.empty(b'}') {
                    return Some(());
                }
                loop {
                    self.eat(b'"')?;
                    self.skip_string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    if self.next_or_close(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.empty(b']') {
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    if self.next_or_close(b']')? {
                        return Some(());
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                self.eat(b'-');
                match self.peek()? {
                    b'0' => self.i += 1,
                    b'1'..=b'9' => {
                        if self.digits() > INT_DIGITS {
                            return None;
                        }
                    }
                    _ => return None,
                }
                if self.eat(b'.').is_some() && self.digits() == 0 {
                    return None;
                }
                match self.peek() {
                    Some(b'e' | b'E') => None, // an exponent: serde may find it out of range
                    _ => Some(()),
                }
            }
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }
}

/// At the first non-ASCII byte of the line, `b[j]`: is the rest of the line, `b[j..]`, UTF-8?
/// (All before it is ASCII: so then the whole line is.)
fn rest_is_utf8(b: &[u8], j: usize, unchecked: &mut bool) -> Option<()> {
    std::str::from_utf8(&b[j..]).ok()?;
    *unchecked = false;
    Some(())
}

/// Which of the 16 bytes at `p` are `"`, `\`, below 0x20, or (with `hi`) at or above 0x80 (bit
/// k: byte k).
///
/// SAFETY: `p..p + 16` is readable.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn hits(p: *const u8, hi: bool) -> (std::arch::x86_64::__m128i, u32) {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64; the caller vouches for the load
    unsafe {
        let v = _mm_loadu_si128(p as *const __m128i);
        let c1f = _mm_set1_epi8(0x1f);
        let hit = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
            ),
            _mm_cmpeq_epi8(_mm_max_epu8(v, c1f), c1f), // v <= 0x1f, unsigned
        );
        // the bytes >= 0x80 are those with their high bit set
        let high = (_mm_movemask_epi8(v) as u32) & 0u32.wrapping_sub(hi as u32);
        (v, _mm_movemask_epi8(hit) as u32 | high)
    }
}

/// The index of the first byte of `b` from `i` that ends a run of plain string bytes (`"`, `\`,
/// below 0x20, and with `hi` at or above 0x80 too), or `b.len()`: the bytes the blocks leave.
#[inline(always)]
fn scalar_stop(b: &[u8], i: usize, hi: bool) -> usize {
    let stops = |c: u8| matches!(c, b'"' | b'\\' | 0..=0x1f) || (hi && c >= 0x80);
    b[i..]
        .iter()
        .position(|&c| stops(c))
        .map_or(b.len(), |n| i + n)
}

/// Appends `b[i..j]` to `out`, `j` the index of the first `"`, `\` or control character (below
/// U+0020) in `b` from `i`, or `b.len()`, and returns `j`. It may also go on past simple escapes
/// (`\n`, `\"`, ...), appending the byte each stands for: then `b[i..j]` is appended unescaped.
/// While `unchecked` (the line's non-ASCII bytes not yet checked), the first non-ASCII byte met
/// checks the rest of the line: None when it is not UTF-8.
#[inline(always)]
fn copy_run(b: &[u8], mut i: usize, out: &mut Vec<u8>, unchecked: &mut bool) -> Option<usize> {
    loop {
        let hi = *unchecked;
        #[allow(unused_mut)]
        let mut hit = None;
        #[cfg(target_arch = "x86_64")]
        {
            // room for the rest of `b` and a 16-byte store: each step below moves `i` on by at
            // least as much as the length of `out` (by as much, or by 2 for 1), so the room stays
            let room = b.len() - i + 16;
            if out.capacity() - out.len() < room {
                out.reserve(room);
            }
            let dst = out.as_mut_ptr();
            let mut n = out.len();
            while i + 16 <= b.len() {
                // SAFETY: i + 16 <= b.len(); the store writes 16 bytes at `out`'s length n,
                // inside its capacity (the room above); an escape's byte is written inside the
                // bytes just stored (k < 16); `set_len` covers only bytes stored
                unsafe {
                    let (v, m) = hits(b.as_ptr().add(i), hi);
                    std::arch::x86_64::_mm_storeu_si128(dst.add(n) as *mut _, v);
                    if m != 0 {
                        let k = m.trailing_zeros() as usize;
                        let e = i + k;
                        // a simple escape (`\n`, `\"`, ...) is written here, and the run goes on
                        if b[e] == b'\\' && e + 1 < b.len() && SIMPLE[b[e + 1] as usize] != 0 {
                            *dst.add(n + k) = SIMPLE[b[e + 1] as usize];
                            n += k + 1;
                            i = e + 2;
                            continue;
                        }
                        n += k;
                        i = e;
                        hit = Some(i);
                        break;
                    }
                }
                n += 16;
                i += 16;
            }
            // SAFETY: bytes up to n were stored above
            unsafe { out.set_len(n) };
        }
        let j = match hit {
            Some(j) => j,
            None => {
                let j = scalar_stop(b, i, hi);
                out.extend_from_slice(&b[i..j]);
                j
            }
        };
        if j < b.len() && b[j] >= 0x80 {
            rest_is_utf8(b, j, unchecked)?;
            i = j;
        } else {
            return Some(j);
        }
    }
}

/// The index of the first `"`, `\` or control character (below U+0020) in `b` from `i`, or
/// `b.len()`; while `unchecked`, as [`copy_run`] checks non-ASCII bytes.
#[inline]
fn find_special(b: &[u8], mut i: usize, unchecked: &mut bool) -> Option<usize> {
    loop {
        let hi = *unchecked;
        #[allow(unused_mut)]
        let mut hit = None;
        #[cfg(target_arch = "x86_64")]
        while i + 16 <= b.len() {
            // SAFETY: i + 16 <= b.len()
            let m = unsafe { hits(b.as_ptr().add(i), hi).1 };
            if m != 0 {
                i += m.trailing_zeros() as usize;
                hit = Some(i);
                break;
            }
            i += 16;
        }
        let j = match hit {
            Some(j) => j,
            None => scalar_stop(b, i, hi),
        };
        if j < b.len() && b[j] >= 0x80 {
            rest_is_utf8(b, j, unchecked)?;
            i = j;
        } else {
            return Some(j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{decode, record_item_extra, serde_item_extra, Item, Rules, Utf8};
    use super::scan;
    use crate::lcg::Lcg;

    /// Pieces of a JSON string's inside: text, every escape, raw non-ASCII, surrogate escapes
    /// (pairs, lone, reversed), and a few bad ones (raw control characters, bad escapes).
    const PIECES: &[&str] = &[
        "hello",
        " ",
        "def f(x):",
        "    return x",
        "é",
        "中文",
        "😀",
        "\u{7f}",
        "'",
        "/",
        r"\n",
        r"\n",
        r"\t",
        r#"\""#,
        r"\\",
        r"\/",
        r"\b",
        r"\f",
        r"\r",
        r"\u00e9",
        r"\u00E9",
        r"\u20ac",
        r"\u0000",
        r"\u001f",
        r"\uffff",
        r"\ud83d\ude00",
        r"\uD83D\uDE00",
        r"\\ud800",
        r"\ud800",
        r"\udfff",
        r"\udc00\ud800",
        r"\ud800\ud800",
        r"\ud800x",
        "\u{1}",
        "\t",
        r"\x",
        r"\u12",
        r"\u12G4",
        r"\U0041",
    ];

    /// A generator; `clean` lines hold only what the fast path takes (mostly).
    struct Gen(Lcg, bool);

    impl Gen {
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.0.below(xs.len())]
        }

        fn ws(&mut self) -> &'static str {
            let n = if self.1 { 8 } else { 9 };
            ["", "", "", " ", "  ", "\t", "\n", "\r\n", "\u{c}"][self.0.below(n)]
        }

        fn string(&mut self) -> String {
            let n = self.0.below(12);
            let mut s = String::from("\"");
            for _ in 0..n {
                // mostly good pieces: the first 28 are valid anywhere
                let k = if !self.1 && self.0.below(8) == 0 {
                    PIECES.len()
                } else {
                    28
                };
                s.push_str(PIECES[self.0.below(k)]);
            }
            s.push('"');
            s
        }

        fn number(&mut self) -> String {
            let good = ["0", "-0", "7", "-12", "4294967295", "1.5", "-0.25", "3.0"];
            if self.1 {
                return self.pick(&good).to_string();
            }
            let n = self.pick(&[
                "0",
                "-0",
                "7",
                "-12",
                "4294967295",
                "4294967296",
                "123456789012345678901234567",
                "1.5",
                "-0.25",
                "3.0",
                "1e5",
                "1E-3",
                "2.5e+10",
                "-1e308",
                "1e400",
                "01",
                "1.",
                ".5",
                "-",
                "+1",
                "NaN",
                "Infinity",
                "-Infinity",
                "-NaN",
                "1.5e",
                "0x10",
            ]);
            if self.0.below(40) == 0 {
                return "9".repeat(299 + self.0.below(20));
            }
            n.to_string()
        }

        fn value(&mut self, depth: usize) -> String {
            let k = self.0.below(if depth > 3 { 6 } else { 9 });
            let k = if self.1 && k == 5 { 2 } else { k };
            match k {
                0..=2 => self.string(),
                3 | 4 => self.number(),
                5 => self
                    .pick(&["true", "false", "null", "tru", "nul"])
                    .to_string(),
                6 | 7 => {
                    let n = self.0.below(4);
                    let items: Vec<String> = (0..n).map(|_| self.value(depth + 1)).collect();
                    let sep = format!("{},{}", self.ws(), self.ws());
                    format!("[{}{}{}]", self.ws(), items.join(&sep), self.ws())
                }
                _ => {
                    let n = self.0.below(4);
                    let items: Vec<String> = (0..n)
                        .map(|_| {
                            let k = self.key();
                            let v = self.value(depth + 1);
                            format!("{k}{}:{}{v}", self.ws(), self.ws())
                        })
                        .collect();
                    let sep = format!("{},{}", self.ws(), self.ws());
                    format!("{{{}{}{}}}", self.ws(), items.join(&sep), self.ws())
                }
            }
        }

        fn key(&mut self) -> String {
            if self.0.below(6) == 0 {
                return self.string();
            }
            if self.1 {
                return format!(
                    "\"{}\"",
                    self.pick(&["id", "path", "text", "meta", "é", ""])
                );
            }
            let k = self.pick(&[
                "id",
                "path",
                "text",
                "text",
                "text",
                "meta",
                "body",
                "messages",
                r"te\u0078t",
                "role",
                "content",
                "",
                "\u{1}",
                r"\ud800",
                "é",
            ]);
            format!("\"{k}\"")
        }

        /// The text field's value: mostly a string, sometimes ids or a messages list.
        fn text_value(&mut self) -> String {
            if self.1 {
                return self.string();
            }
            match self.0.below(12) {
                0 => "[1, 2, 4294967295]".into(),
                1 => "[1, -1]".into(),
                2 => "[]".into(),
                3 => {
                    r#"[{"role": "user", "content": "hi"}, {"role": "a", "content": null}]"#.into()
                }
                4 => self.value(1),
                _ => self.string(),
            }
        }

        fn record(&mut self) -> String {
            if self.0.below(30) == 0 {
                return self.value(1); // not an object, mostly
            }
            let n = 1 + self.0.below(5);
            let mut fields = Vec::new();
            for _ in 0..n {
                let k = self.key();
                let v = if k == "\"text\"" {
                    self.text_value()
                } else if k == "\"messages\"" && self.0.below(2) == 0 {
                    r#"[{"role": "u", "content": "m"}]"#.into()
                } else {
                    self.value(1)
                };
                fields.push(format!("{k}{}:{}{v}", self.ws(), self.ws()));
            }
            if self.0.below(3) > 0 {
                let v = self.string();
                fields.push(format!("\"text\": {v}"));
            }
            let sep = format!("{},{}", self.ws(), self.ws());
            format!("{}{{{}}}{}", self.ws(), fields.join(&sep), self.ws())
        }

        /// A few random byte flips, deletions and insertions.
        fn mutate(&mut self, line: &str) -> Vec<u8> {
            let mut b = line.as_bytes().to_vec();
            for _ in 0..1 + self.0.below(3) {
                let at = self.0.below(b.len() + 1);
                let c = b"\"\\{}[],: 0e-.\x01\xff\xc3\x80nuxtr"[self.0.below(21)];
                match self.0.below(4) {
                    0 if at < b.len() => b[at] = c,
                    1 if at < b.len() => {
                        b.remove(at);
                    }
                    2 => b.truncate(at),
                    _ => b.insert(at, c),
                }
            }
            b
        }
    }

    fn rule_sets() -> Vec<(Rules, Option<&'static str>)> {
        let r = |field: &str, utf8, allow_ids| Rules {
            field: field.into(),
            utf8,
            allow_ids,
        };
        vec![
            (r("text", Utf8::Strict, true), None),
            (r("text", Utf8::Strict, false), Some("id")),
            (r("text", Utf8::Replace, true), Some("text")),
            (r("text", Utf8::Strict, true), Some("messages")),
            (r("", Utf8::Strict, false), Some("id")),
            (r("body", Utf8::Replace, false), None),
        ]
    }

    /// The fast path gives what serde gives, or leaves the line to it; and the two together
    /// (`record_item_extra`) give serde's item or error on every line.
    fn check(line: &[u8], hits: &mut [usize; 2]) {
        for (rules, extra) in rule_sets() {
            let slow = decode(line, &rules).and_then(|t| serde_item_extra(&t, &rules, extra));
            let what = || format!("{:?} {rules:?} {extra:?}", String::from_utf8_lossy(line));
            // on the raw bytes (only UTF-8 ones may pass), and on the line as replaced
            let mut fast = vec![scan(line, &rules.field, extra)];
            if let Ok(std::borrow::Cow::Owned(t)) = decode(line, &rules) {
                fast.push(scan(t.as_bytes(), &rules.field, extra));
            }
            for f in fast {
                if let Some((t, raw)) = f {
                    hits[0] += 1;
                    assert!(std::str::from_utf8(line).is_ok() || rules.utf8 == Utf8::Replace);
                    assert_eq!(Ok((Item::Text(t), raw)), slow, "{}", what());
                } else {
                    hits[1] += 1;
                }
            }
            assert_eq!(record_item_extra(line, &rules, extra), slow, "{}", what());
        }
    }

    #[test]
    fn agrees_with_serde_on_generated_and_mutated_lines() {
        let mut g = Gen(Lcg(16), false);
        let mut hits = [0usize; 2];
        let (mut good, mut bad) = (0, 0);
        for _ in 0..6000 {
            g.1 = g.0.below(2) == 0;
            let line = g.record();
            check(line.as_bytes(), &mut hits);
            let r = (Rules::new("text"), None);
            match serde_item_extra(&line, &r.0, r.1) {
                Ok(_) => good += 1,
                Err(_) => bad += 1,
            }
            for _ in 0..2 {
                let m = g.mutate(&line);
                check(&m, &mut hits);
            }
        }
        // both paths and both outcomes are well exercised
        assert!(hits[0] > 5000 && hits[1] > 5000, "{hits:?}");
        assert!(good > 1000 && bad > 1000, "{good} {bad}");
    }

    #[test]
    fn escapes_and_non_ascii_at_every_offset_of_a_block() {
        let mut hits = [0usize; 2];
        for piece in [
            r"\n",
            r#"\""#,
            r"\\",
            r"\u00e9",
            r"\ud83d\ude00",
            "é",
            "😀",
            "\u{1}",
            r"\ud800",
        ] {
            for at in 0..40 {
                for tail in [0, 1, 15, 16, 17, 40] {
                    let text = format!("{}{piece}{}", "a".repeat(at), "b".repeat(tail));
                    let line = format!(r#"{{"id": "x", "text": "{text}"}}"#);
                    check(line.as_bytes(), &mut hits);
                    // and cut short just after the piece, and with a bad byte after it
                    let after = r#"{"id": "x", "text": ""#.len() + at + piece.len();
                    check(&line.as_bytes()[..after], &mut hits);
                    let mut bad = line.clone().into_bytes();
                    bad.insert(after, 0xff);
                    check(&bad, &mut hits);
                }
            }
        }
        assert!(hits[0] > 1000, "{hits:?}");
    }

    #[test]
    fn real_looking_records_take_the_fast_path() {
        let rules = Rules::new("text");
        let src = "import os\n\ndef f(x):\n    \"\"\"Doc: é 😀\"\"\"\n\treturn x\\n\r\n";
        let line = format!(
            r#"{{"id": "doc-1", "path": "a/b.py", "meta": {{"n": [1, 2.5, -3, true, null], "s": ""}}, "text": {}}}"#,
            serde_json::to_string(src).unwrap()
        );
        let (t, _) = scan(line.as_bytes(), &rules.field, None).expect("fast path");
        assert_eq!(t, src);
        // with every escape, and a pair
        let line = r#"{"text": "\"\\\/\b\f\n\r\t\u00e9\u20AC\ud83d\ude00"}"#;
        let (t, _) = scan(line.as_bytes(), "text", None).expect("fast path");
        assert_eq!(t, "\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{20ac}\u{1F600}");
        // the last of duplicate keys, and the extra field's raw value (spaces inside kept)
        let line = r#" { "id" : 1, "text" : "a" , "id":{ "k" : [1] }, "text":"b" } "#;
        let got = scan(line.as_bytes(), "text", Some("id")).expect("fast path");
        assert_eq!(got, ("b".into(), Some(r#"{ "k" : [1] }"#.into())));
        // left to serde: a lone surrogate, NaN, an exponent, a messages field, an escaped key
        for line in [
            r#"{"text": "\ud800"}"#,
            r#"{"x": "\udc00", "text": "a"}"#,
            r#"{"x": NaN, "text": "a"}"#,
            r#"{"x": 1e5, "text": "a"}"#,
            r#"{"messages": [], "text": "a"}"#,
            r#"{"te\u0078t": "a"}"#,
            r#"{"text": [1, 2]}"#,
            "{\"text\": \"a\u{1}\"}",
        ] {
            assert_eq!(scan(line.as_bytes(), "text", None), None, "{line}");
        }
    }
}
