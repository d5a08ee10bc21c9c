//! Words and sentences as datatrove 0.10.1 sees English text: it tokenizes with spaCy's blank
//! English pipeline (`spacy.blank("en")` plus the rule-based `sentencizer`) and keeps the tokens
//! that are not blank. This is a port of spaCy 3.8's tokenizer algorithm with its English rules:
//!
//! - split at whitespace (a single space after a token is dropped, other whitespace becomes
//!   whitespace tokens, which datatrove drops);
//! - a chunk that is a special case (tokenizer exception: "don't" -> "do" "n't", "e.g.", "U.S.",
//!   emoticons, ...; the table in `spacy_data.rs` is generated from spaCy) is split as listed;
//! - otherwise prefixes and suffixes are peeled off in turn (spaCy's `_split_affixes`), what is
//!   left is kept whole when it looks like a URL, or split at infixes (`_attach_tokens`).
//!
//! Known departures, all rare in practice: spaCy's character classes (its ALPHA, LOWER and UPPER
//! lists of script ranges) are Unicode's alphabetic, lowercase and uppercase properties; its
//! icon class (`\p{So}`) is the Unicode category of this crate's tables; the URL pattern is
//! matched by hand without its private-IP-range exclusions; and the last step of spaCy's
//! tokenizer, which merges a run of tokens that spells a special case across an infix split
//! (`a.B` -> `a.` `B`), is not done.

use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use unicode_general_category::{get_general_category, GeneralCategory};

use super::spacy_data::{EXCEPTIONS, SENT_PUNCT};
use super::text::is_py_space;

/// A one-sided filter in front of a string-keyed table: one bit per (length, first, second and
/// last byte) class of the keys. A clear bit means the string is not a key, which answers most
/// lookups (ordinary words) without hashing the string.
struct KeyFilter(Box<[u64; 1024]>);

impl KeyFilter {
    fn new<'a>(keys: impl Iterator<Item = &'a str>) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for k in keys {
            let i = Self::slot(k.as_bytes());
            bits[i >> 6] |= 1 << (i & 63);
        }
        KeyFilter(bits)
    }

    #[inline(always)]
    fn slot(s: &[u8]) -> usize {
        let n = s.len();
        let x = match n {
            0 => 0,
            _ => {
                (n as u64)
                    | (s[0] as u64) << 16
                    | (s[n.min(2) - 1] as u64) << 24
                    | (s[n - 1] as u64) << 32
            }
        };
        (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize
    }

    #[inline(always)]
    fn may_hold(&self, s: &str) -> bool {
        let i = Self::slot(s.as_bytes());
        self.0[i >> 6] >> (i & 63) & 1 == 1
    }
}

type Specials = (FxHashMap<&'static str, &'static [&'static str]>, KeyFilter);

fn specials() -> &'static Specials {
    static M: OnceLock<Specials> = OnceLock::new();
    M.get_or_init(|| {
        let m: FxHashMap<_, _> = EXCEPTIONS.iter().copied().collect();
        let f = KeyFilter::new(m.keys().copied());
        (m, f)
    })
}

#[inline]
fn special(s: &str) -> Option<&'static [&'static str]> {
    let (m, f) = specials();
    if !f.may_hold(s) {
        return None;
    }
    m.get(s).copied()
}

fn is_icon(c: char) -> bool {
    !c.is_ascii() && get_general_category(c) == GeneralCategory::OtherSymbol
}

const QUOTES: &str = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧";
/// spaCy's LIST_PUNCT, one char each (plus "……", handled apart).
const PUNCT: &str = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪";

/// spaCy's ALPHA_LOWER: lowercase letters, and the letters of scripts without case (its
/// `_uncased`: Japanese, Chinese, Korean, Arabic, Hebrew, Indic, ...), which are in both classes.
fn is_lower(c: char) -> bool {
    c.is_lowercase() || (c.is_alphabetic() && !c.is_uppercase())
}

/// spaCy's ALPHA_UPPER: uppercase letters and the letters of scripts without case.
fn is_upper(c: char) -> bool {
    c.is_uppercase() || (c.is_alphabetic() && !c.is_lowercase())
}

fn is_alpha(c: char) -> bool {
    c.is_alphabetic()
}

fn is_quote(c: char) -> bool {
    QUOTES.contains(c)
}

/// Characters of the class before a suffix "." (spaCy's `[0-9{al}{e}{p}(?:{q})]`, where the
/// alternations written inside the brackets make `|`, `(`, `?`, `:` and `)` members too).
fn before_suffix_dot(c: char) -> bool {
    c.is_ascii_digit() || is_lower(c) || "%²-+|(?:)".contains(c) || PUNCT.contains(c) || is_quote(c)
}

const CURRENCY: &[&str] = &[
    "$", "£", "€", "¥", "฿", "US$", "C$", "A$", "₽", "﷼", "₴", "₠", "₡", "₢", "₣", "₤", "₥", "₦",
    "₧", "₨", "₩", "₪", "₫", "€", "₭", "₮", "₯", "₰", "₱", "₲", "₳", "₴", "₵", "₶", "₷", "₸", "₹",
    "₺", "₻", "₼", "₽", "₾", "₿",
];

const UNITS: &[&str] = &[
    "km",
    "km²",
    "km³",
    "m",
    "m²",
    "m³",
    "dm",
    "dm²",
    "dm³",
    "cm",
    "cm²",
    "cm³",
    "mm",
    "mm²",
    "mm³",
    "ha",
    "µm",
    "nm",
    "yd",
    "in",
    "ft",
    "kg",
    "g",
    "mg",
    "µg",
    "t",
    "lb",
    "oz",
    "m/s",
    "km/h",
    "kmh",
    "mph",
    "hPa",
    "Pa",
    "mbar",
    "mb",
    "MB",
    "kb",
    "KB",
    "gb",
    "GB",
    "tb",
    "TB",
    "T",
    "G",
    "M",
    "K",
    "%",
    "км",
    "км²",
    "км³",
    "м",
    "м²",
    "м³",
    "дм",
    "дм²",
    "дм³",
    "см",
    "см²",
    "см³",
    "мм",
    "мм²",
    "мм³",
    "нм",
    "кг",
    "г",
    "мг",
    "м/с",
    "км/ч",
    "кПа",
    "Па",
    "мбар",
    "Кб",
    "КБ",
    "кб",
    "Мб",
    "МБ",
    "мб",
    "Гб",
    "ГБ",
    "гб",
    "Тб",
    "ТБ",
    "тбكم",
    "كم²",
    "كم³",
    "م",
    "م²",
    "م³",
    "سم",
    "سم²",
    "سم³",
    "مم",
    "مم²",
    "مم³",
    "كم",
    "غرام",
    "جرام",
    "جم",
    "كغ",
    "ملغ",
    "كوب",
    "اكواب",
];

fn last_char(s: &str) -> Option<char> {
    s.chars().next_back()
}

/// Bytes of the prefix at the start of `s` (0: none), as spaCy's `prefix_search`.
fn find_prefix(s: &str) -> usize {
    let mut cs = s.chars();
    let Some(c) = cs.next() else { return 0 };
    if c == '.' {
        let n = s.bytes().take_while(|&b| b == b'.').count();
        return if n >= 2 { n } else { 0 };
    }
    if c == '+' {
        return match cs.next() {
            Some(d) if d.is_ascii_digit() => 0,
            _ => 1,
        };
    }
    if "§%=—–".contains(c) || PUNCT.contains(c) || is_quote(c) || is_icon(c) {
        return c.len_utf8();
    }
    for &cur in CURRENCY {
        if s.starts_with(cur) {
            return cur.len();
        }
    }
    0
}

/// Whether the whole of `t` (preceded by `before`) is one of spaCy's English suffixes.
fn is_suffix(before: &str, t: &str) -> bool {
    let mut cs = t.chars();
    let (Some(c), rest) = (cs.next(), cs.as_str()) else {
        return false;
    };
    let prev = last_char(before);
    let digit_before = prev.is_some_and(|p| p.is_ascii_digit());
    if rest.is_empty() {
        if PUNCT.contains(c) || is_quote(c) || is_icon(c) || c == '—' || c == '–' {
            return true;
        }
        if c == '+' && digit_before {
            return true;
        }
        if c == '.' {
            let mut b = before.chars().rev();
            let (p1, p2) = (b.next(), b.next());
            if p2 == Some('°') && p1.is_some_and(|p| "FfCcKk".contains(p)) {
                return true;
            }
            if p1.is_some_and(before_suffix_dot) {
                return true;
            }
            if p1.is_some_and(is_upper) && p2.is_some_and(is_upper) {
                return true;
            }
            return false;
        }
    }
    if t == "……" || (t.len() >= 2 && t.bytes().all(|b| b == b'.')) {
        return true;
    }
    if matches!(t, "'s" | "'S" | "’s" | "’S") {
        return true;
    }
    digit_before && (CURRENCY.contains(&t) || UNITS.contains(&t))
}

/// Bytes of the suffix at the end of `s` (0: none), as spaCy's `suffix_search`: the leftmost
/// start from which an alternative matches to the end.
fn find_suffix(s: &str) -> usize {
    // a final run of 2+ dots is the suffix (no other alternative holds "..")
    let dots = s.bytes().rev().take_while(|&b| b == b'.').count();
    if dots >= 2 {
        return dots;
    }
    // else a suffix has at most 5 chars ("اكواب"): the leftmost start that matches wins
    let mut starts = [0usize; 6];
    let mut n = 0;
    for (i, _) in s.char_indices().rev().take(6) {
        starts[n] = i;
        n += 1;
    }
    for &p in starts[..n].iter().rev() {
        if is_suffix(&s[..p], &s[p..]) {
            return s.len() - p;
        }
    }
    0
}

/// The infixes of `s` as (start, end), leftmost first, as spaCy's `infix_finditer`.
fn find_infixes(s: &str, out: &mut Vec<(usize, usize)>) {
    out.clear();
    let cs: Vec<(usize, char)> = s.char_indices().collect();
    let at = |k: usize| cs.get(k).map(|&(_, c)| c);
    let pos = |k: usize| cs.get(k).map_or(s.len(), |&(i, _)| i);
    let mut k = 0;
    while k < cs.len() {
        let c = cs[k].1;
        let prev = if k > 0 { at(k - 1) } else { None };
        let next = at(k + 1);
        let mut end = None;
        if c == '.' && next == Some('.') {
            let mut j = k;
            while at(j) == Some('.') {
                j += 1;
            }
            end = Some(j);
        } else if c == '…'
            || is_icon(c)
            // (?<=[0-9])[+\-\*^](?=[0-9-])
            || (prev.is_some_and(|p| p.is_ascii_digit())
                && "+-*^".contains(c)
                && next.is_some_and(|n| n.is_ascii_digit() || n == '-'))
            // (?<=[{al}{q}])\.(?=[{au}{q}])
            || (c == '.'
                && prev.is_some_and(|p| is_lower(p) || is_quote(p))
                && next.is_some_and(|n| is_upper(n) || is_quote(n)))
            // (?<=[{a}]),(?=[{a}])
            || (c == ',' && prev.is_some_and(is_alpha) && next.is_some_and(is_alpha))
        {
            end = Some(k + 1);
        } else if prev.is_some_and(|p| is_alpha(p) || p.is_ascii_digit()) {
            if "-–—~".contains(c) {
                // -|–|—|--|---|——|~ in that order, the first followed by a letter
                let alts: &[&str] = &["-", "–", "—", "--", "---", "——", "~"];
                for a in alts {
                    let n = a.chars().count();
                    let m = (0..n).all(|i| at(k + i) == a.chars().nth(i));
                    if m && at(k + n).is_some_and(is_alpha) {
                        end = Some(k + n);
                        break;
                    }
                }
            } else if ":<>=/".contains(c) && next.is_some_and(is_alpha) {
                end = Some(k + 1);
            }
        }
        match end {
            Some(e) => {
                out.push((pos(k), pos(e)));
                k = e;
            }
            None => k += 1,
        }
    }
}

/// spaCy's `URL_MATCH` on a whole string, by hand (see the module notes).
fn is_url(s: &str) -> bool {
    let mut rest = s;
    // (?:[\w\+\-\.]{2,}://)?
    if let Some(p) = rest.find("://") {
        let scheme = &rest[..p];
        if scheme.chars().count() >= 2
            && scheme
                .chars()
                .all(|c| c.is_alphanumeric() || "_+-.".contains(c))
        {
            rest = &rest[p + 3..];
        }
    }
    // (?:\S+(?::\S*)?@)? : without it, or up to any '@' (the pattern backtracks)
    host_and_tail(rest)
        || rest
            .match_indices('@')
            .any(|(p, _)| p > 0 && host_and_tail(&rest[p + 1..]))
}

fn host_and_tail(rest: &str) -> bool {
    let host_end = rest.find([':', '/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(host_end);
    if !host_ok(host) {
        return false;
    }
    // (?::\d{2,5})?(?:[/?#]\S*)?$
    let tail = match tail.strip_prefix(':') {
        Some(t) => {
            let d = t.bytes().take_while(|b| b.is_ascii_digit()).count();
            if !(2..=5).contains(&d) {
                return false;
            }
            &t[d..]
        }
        None => tail,
    };
    tail.is_empty() || tail.starts_with(['/', '?', '#'])
}

fn host_ok(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    if labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        // a dotted IPv4 address
        return labels.len() == 4 && labels.iter().all(|l| l.len() <= 3);
    }
    let (tld, names) = labels.split_last().unwrap_or((&"", &[]));
    let n = tld.chars().count();
    let tld_ok = (2..=63).contains(&n) && tld.chars().all(is_lower);
    let name_ok = |l: &&str| {
        let ok = |c: char| c.is_ascii_alphanumeric() || ('\u{a1}'..='\u{ffff}').contains(&c);
        let (first, last) = (l.chars().next(), l.chars().next_back());
        first.is_some_and(ok)
            && last.is_some_and(ok)
            && l.chars().all(|c| ok(c) || c == '_' || c == '-')
            && l.chars().count() <= 64
    };
    tld_ok && names.iter().all(name_ok)
}

#[cfg(test)]
thread_local! {
    /// Tests turn the one-token fast path of [`chunk_tokens`] off to compare it with the rules.
    static NO_FAST_PATH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[inline(always)]
fn fast_path_on() -> bool {
    #[cfg(test)]
    {
        !NO_FAST_PATH.with(|c| c.get())
    }
    #[cfg(not(test))]
    {
        true
    }
}

/// Emit the tokens of a chunk without whitespace, starting at byte `base` of the text, with or
/// without the special cases (spaCy's `with_special_cases`).
fn chunk_tokens(
    s: &str,
    base: usize,
    specials: bool,
    infix: &mut Vec<(usize, usize)>,
    emit: &mut impl FnMut(usize, usize),
) {
    let pieces = |toks: &[&str], at: usize, emit: &mut dyn FnMut(usize, usize)| {
        let mut p = at;
        for t in toks {
            emit(p, p + t.len());
            p += t.len();
        }
    };
    let special = |s: &str| if specials { special(s) } else { None };
    if let Some(toks) = special(s) {
        return pieces(toks, base, emit);
    }
    // most chunks are plain ASCII words: no affix, infix or URL rule applies to letters and
    // digits only, except a unit or currency suffix after a digit ("5km"), so a chunk without
    // a letter right after a digit is one token
    let b = s.as_bytes();
    if fast_path_on()
        && b.iter().all(|c| c.is_ascii_alphanumeric())
        && !b
            .windows(2)
            .any(|w| w[0].is_ascii_digit() && w[1].is_ascii_alphabetic())
    {
        return emit(base, base + s.len());
    }
    let (mut a, mut b) = (0usize, s.len());
    let mut prefixes: Vec<(usize, usize)> = Vec::new();
    let mut suffixes: Vec<(usize, usize)> = Vec::new();
    let mut last = 0usize;
    while a < b && b - a != last {
        if special(&s[a..b]).is_some() {
            break;
        }
        last = b - a;
        let pre = find_prefix(&s[a..b]);
        if pre != 0 && a + pre < b && special(&s[a + pre..b]).is_some() {
            prefixes.push((a, a + pre));
            a += pre;
            break;
        }
        let suf = find_suffix(&s[a + pre..b]);
        if suf != 0 && a < b - suf && special(&s[a..b - suf]).is_some() {
            suffixes.push((b - suf, b));
            b -= suf;
            break;
        }
        if pre != 0 && suf != 0 && pre + suf <= b - a {
            prefixes.push((a, a + pre));
            suffixes.push((b - suf, b));
            a += pre;
            b -= suf;
        } else if pre != 0 {
            prefixes.push((a, a + pre));
            a += pre;
        } else if suf != 0 {
            suffixes.push((b - suf, b));
            b -= suf;
        }
        if special(&s[a..b]).is_some() {
            break;
        }
    }
    for &(x, y) in &prefixes {
        emit(base + x, base + y);
    }
    if a < b {
        let r = &s[a..b];
        if let Some(toks) = special(r) {
            pieces(toks, base + a, emit);
        } else if is_url(r) {
            emit(base + a, base + b);
        } else {
            find_infixes(r, infix);
            let mut start = 0;
            for &(x, y) in infix.iter() {
                if x == 0 {
                    continue;
                }
                if x != start {
                    emit(base + a + start, base + a + x);
                }
                emit(base + a + x, base + a + y);
                start = y;
            }
            if start < r.len() {
                emit(base + a + start, base + b);
            }
        }
    }
    for &(x, y) in suffixes.iter().rev() {
        emit(base + x, base + y);
    }
}

/// The chunks of `text` as spaCy splits it at whitespace, as (start, end, whitespace): a single
/// space after a chunk is dropped, other whitespace runs are whitespace chunks.
#[inline(always)]
fn chunks(text: &str, mut span: impl FnMut(usize, usize, bool)) {
    if text.is_ascii() {
        // the same walk over bytes (Python's ASCII whitespace: \t\n\x0b\x0c\r, \x1c-\x1f, space)
        let b = text.as_bytes();
        let sp = |c: u8| matches!(c, 9..=13 | 0x1c..=0x20);
        let Some(&c0) = b.first() else { return };
        let mut in_ws = sp(c0);
        let mut start = 0;
        for (i, &c) in b.iter().enumerate() {
            if sp(c) != in_ws {
                if start < i {
                    span(start, i, in_ws);
                }
                start = if c == b' ' { i + 1 } else { i };
                in_ws = !in_ws;
            }
        }
        if start < b.len() {
            span(start, b.len(), in_ws);
        }
        return;
    }
    let mut it = text.char_indices();
    let Some((_, c0)) = it.clone().next() else {
        return;
    };
    let mut in_ws = is_py_space(c0);
    let mut start = 0;
    for (i, c) in it.by_ref() {
        if is_py_space(c) != in_ws {
            if start < i {
                span(start, i, in_ws);
            }
            start = if c == ' ' { i + 1 } else { i };
            in_ws = !in_ws;
        }
    }
    if start < text.len() {
        span(start, text.len(), in_ws);
    }
}

/// The tokens of `text` before the special-case pass, as (start, end, whitespace).
fn affix_tokens(text: &str, specials: bool, out: &mut Vec<(usize, usize, bool)>) {
    let mut infix = Vec::new();
    chunks(text, |s, e, ws| {
        if ws {
            out.push((s, e, true));
        } else {
            chunk_tokens(&text[s..e], s, specials, &mut infix, &mut |x, y| {
                out.push((x, y, false))
            });
        }
    });
}

/// A non-ASCII char that no prefix, suffix, infix or URL rule looks at outside a unit after a
/// digit: a letter that is not punctuation, a quote or an icon (spaCy's classes).
fn plain_non_ascii(c: char) -> bool {
    c.is_alphabetic() && !is_icon(c) && !PUNCT.contains(c) && !is_quote(c)
}

/// Whether the rules make the chunk `s` (no whitespace) one token, decided without them, that
/// no special-case pattern starts with. Such a chunk is made of letters (ASCII, or
/// [`plain_non_ascii`]) and ASCII digits with no letter right after a digit, and is not a
/// special case. Then:
/// - no prefix: every prefix starts with a dot, `+`, punctuation, a quote, an icon, `§%=—–`,
///   or a currency sign (`US$` and the like need the `$`);
/// - no suffix: every suffix ends with punctuation, a quote, an icon, a dash, `+` or `.`, or is
///   `'s`, or is a unit or currency after a digit (a unit starts with a letter or `%`, and no
///   letter follows a digit here);
/// - no infix: every infix holds a dot, `…`, an icon, `+-*^`, a comma, a dash, `~` or `:<>=/`;
/// - no URL: a host needs a dot;
/// - so the chunk is one token, and a special-case pattern cannot start with it (a pattern of
///   several tokens starts with a token followed by another with no space between, and a
///   one-token pattern is a special case itself) nor have it second (joined to the first);
///   [`tokens`] checks [`later_pattern_token`] when a pattern could go on with it.
///
/// `tests::plain_fast_path_agrees_with_the_rules` compares the result with the rules.
#[inline]
fn plain_chunk(s: &str) -> bool {
    plain_chars(s) && not_special(s)
}

/// The chars of a [`plain_chunk`]: letters (ASCII, or [`plain_non_ascii`]) and ASCII digits,
/// with no letter right after a digit.
#[inline]
fn plain_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let mut prev_digit = false;
    let mut i = 0;
    while i < b.len() {
        match ASCII_CLASS[b[i] as usize] {
            A_LETTER if !prev_digit => {}
            A_DIGIT => {
                prev_digit = true;
                i += 1;
                continue;
            }
            A_NON_ASCII => return plain_chunk_chars(&s[i..], prev_digit),
            _ => return false,
        }
        prev_digit = false;
        i += 1;
    }
    true
}

/// [`plain_chars`] from the first non-ASCII char on.
#[cold]
fn plain_chunk_chars(s: &str, mut prev_digit: bool) -> bool {
    for c in s.chars() {
        if c.is_ascii_digit() {
            prev_digit = true;
            continue;
        }
        let letter = if c.is_ascii() {
            c.is_ascii_alphabetic()
        } else {
            plain_non_ascii(c)
        };
        if !letter || prev_digit {
            return false;
        }
    }
    true
}

/// Not a special case (the filter answers for most words, inline).
#[inline(always)]
fn not_special(s: &str) -> bool {
    !specials().1.may_hold(s) || not_special_key(s)
}

#[inline(never)]
fn not_special_key(s: &str) -> bool {
    !specials().0.contains_key(s)
}

type TokenSet = (rustc_hash::FxHashSet<&'static str>, KeyFilter);

/// The third and later tokens of the special-case patterns. The special-case pass only looks
/// for a pattern from a token joined to the next one (no space between), so the second token
/// of a match is in the chunk of the first, but the third may be the next chunk after a space.
fn later_pattern_tokens() -> &'static TokenSet {
    static L: OnceLock<TokenSet> = OnceLock::new();
    L.get_or_init(|| {
        let (pats, _) = patterns_filtered();
        let set: rustc_hash::FxHashSet<&'static str> = pats
            .values()
            .flatten()
            .flat_map(|p| p.iter().skip(2).copied())
            .collect();
        let f = KeyFilter::new(set.iter().copied());
        (set, f)
    })
}

/// Whether `s` is a third or later token of a special-case pattern.
#[inline]
fn later_pattern_token(s: &str) -> bool {
    let (set, filter) = later_pattern_tokens();
    filter.may_hold(s) && set.contains(s)
}

type Patterns = (FxHashMap<&'static str, Vec<Vec<&'static str>>>, KeyFilter);

/// [`patterns_map`] with a [`KeyFilter`] of its keys.
fn patterns_filtered() -> &'static Patterns {
    static PF: OnceLock<Patterns> = OnceLock::new();
    PF.get_or_init(|| {
        let m = patterns_map();
        let f = KeyFilter::new(m.keys().copied());
        (m, f)
    })
}

/// spaCy's special-case phrase patterns: each special case that an affix or infix rule would
/// split (its `faster_heuristics`), as the tokens the rules give it, keyed by the first token.
fn patterns_map() -> FxHashMap<&'static str, Vec<Vec<&'static str>>> {
    {
        let mut m: FxHashMap<&'static str, Vec<Vec<&'static str>>> = FxHashMap::default();
        let mut infix = Vec::new();
        for &(k, _) in EXCEPTIONS {
            find_infixes(k, &mut infix);
            let split = find_prefix(k) != 0 || !infix.is_empty() || find_suffix(k) != 0;
            if !split || k.chars().any(is_py_space) {
                continue;
            }
            let mut toks = Vec::new();
            affix_tokens(k, false, &mut toks);
            let pat: Vec<&'static str> = toks.iter().map(|&(s, e, _)| &k[s..e]).collect();
            if let Some(&first) = pat.first() {
                m.entry(first).or_default().push(pat);
            }
        }
        m
    }
}

/// spaCy's `_apply_special_cases`: a run of tokens that spells a special case's pattern is
/// replaced by the special case's tokens (longest runs first, then leftmost).
fn apply_special_cases(text: &str, toks: &mut Vec<(usize, usize, bool)>) {
    let (pats, pat_filter) = patterns_filtered();
    static SINGLES: OnceLock<bool> = OnceLock::new();
    let singles = *SINGLES.get_or_init(|| pats.values().flatten().any(|p| p.len() == 1));
    let mut found: Vec<(usize, usize)> = Vec::new();
    for i in 0..toks.len() {
        let (s, e, ws) = toks[i];
        if ws {
            continue;
        }
        // a pattern of several tokens needs the next token right after this one (most tokens
        // are followed by a space)
        let joined = toks.get(i + 1).is_some_and(|&(s2, _, w2)| s2 == e && !w2);
        if !joined && !singles {
            continue;
        }
        let t = &text[s..e];
        if !pat_filter.may_hold(t) {
            continue;
        }
        let Some(cands) = pats.get(t) else {
            continue;
        };
        for p in cands {
            let end = i + p.len();
            if end <= toks.len()
                && p.iter()
                    .zip(&toks[i..end])
                    .all(|(t, &(a, b, w))| !w && &text[a..b] == *t)
            {
                found.push((i, end));
            }
        }
    }
    if found.is_empty() {
        return;
    }
    // longest first, then leftmost; a span is taken when neither end token is taken yet
    found.sort_by(|a, b| (b.1 - b.0).cmp(&(a.1 - a.0)).then(a.0.cmp(&b.0)));
    let mut seen = vec![false; toks.len()];
    let mut keep: Vec<(usize, usize)> = Vec::new();
    for &(i, j) in &found {
        if !seen[i] && !seen[j - 1] {
            keep.push((i, j));
        }
        for s in &mut seen[i..j] {
            *s = true;
        }
    }
    keep.sort_unstable();
    let mut out = Vec::with_capacity(toks.len());
    let mut k = 0;
    for (i, j) in keep {
        out.extend_from_slice(&toks[k..i]);
        let (a, b) = (toks[i].0, toks[j - 1].1);
        match special(&text[a..b]) {
            Some(pieces) => {
                let mut p = a;
                for t in pieces {
                    out.push((p, p + t.len(), false));
                    p += t.len();
                }
            }
            None => out.extend_from_slice(&toks[i..j]),
        }
        k = j;
    }
    out.extend_from_slice(&toks[k..]);
    *toks = out;
}

/// The tokens of `text` as byte spans, whitespace tokens included (`true` when whitespace).
///
/// A [`plain_chunk`] is emitted as one token without the rules. A special-case pattern never
/// holds a whitespace token or a plain chunk, so the special-case pass runs over each run of
/// the other chunks alone, with the same result as over the whole text.
pub fn tokens(text: &str, mut emit: impl FnMut(usize, usize, bool)) {
    #[cfg(test)]
    if !fast_path_on() {
        return tokens_by_the_rules(text, emit);
    }
    let mut run: Vec<(usize, usize, bool)> = Vec::new();
    let mut infix = Vec::new();
    let flush = |run: &mut Vec<(usize, usize, bool)>, emit: &mut dyn FnMut(usize, usize, bool)| {
        if run.is_empty() {
            return;
        }
        apply_special_cases(text, run);
        for &(s, e, ws) in run.iter() {
            emit(s, e, ws);
        }
        run.clear();
    };
    // a chunk, with whether it is a `plain_chunk` (found by the walk over ASCII text)
    let mut chunk = |s: usize, e: usize, ws: bool, plain: bool| {
        if ws {
            flush(&mut run, &mut emit);
            emit(s, e, true);
        } else if plain {
            // one token; a pattern can only go on with it from the run of chunks before
            if run.is_empty() || !later_pattern_token(&text[s..e]) {
                flush(&mut run, &mut emit);
                emit(s, e, false);
            } else {
                run.push((s, e, false));
            }
        } else {
            chunk_tokens(&text[s..e], s, true, &mut infix, &mut |x, y| {
                run.push((x, y, false))
            });
        }
    };
    if text.is_ascii() {
        ascii_chunks(text.as_bytes(), &mut |s, e, ws, plain_bytes| {
            chunk(s, e, ws, plain_bytes && not_special(&text[s..e]))
        });
    } else {
        chunks(text, |s, e, ws| {
            chunk(s, e, ws, !ws && plain_chunk(&text[s..e]))
        });
    }
    flush(&mut run, &mut emit);
}

/// Per byte, for [`ascii_chunks`] and [`plain_chars`]: Python's whitespace, a letter, a digit,
/// any other ASCII byte, or a byte of a non-ASCII char.
const A_SPACE: u8 = 1;
const A_LETTER: u8 = 2;
const A_DIGIT: u8 = 4;
const A_OTHER: u8 = 8;
const A_NON_ASCII: u8 = 16;
const ASCII_CLASS: [u8; 256] = {
    let mut t = [A_NON_ASCII; 256];
    let mut i = 0;
    while i < 128 {
        let c = i as u8;
        t[i] = if matches!(c, 9..=13 | 0x1c..=0x20) {
            A_SPACE
        } else if c.is_ascii_alphabetic() {
            A_LETTER
        } else if c.is_ascii_digit() {
            A_DIGIT
        } else {
            A_OTHER
        };
        i += 1;
    }
    t
};

/// [`chunks`] of ASCII text, in one walk that also finds whether each chunk's bytes are plain
/// (letters and digits, no letter right after a digit): calls `chunk(start, end, whitespace,
/// plain bytes)`.
#[inline(always)]
fn ascii_chunks(b: &[u8], chunk: &mut impl FnMut(usize, usize, bool, bool)) {
    let n = b.len();
    let mut i = 0;
    // whitespace at the start is a chunk, its first space included
    while i < n && ASCII_CLASS[b[i] as usize] == A_SPACE {
        i += 1;
    }
    if i > 0 {
        chunk(0, i, true, false);
    }
    while i < n {
        let s = i;
        let mut prev = 0u8;
        let mut bad = false;
        while i < n {
            let k = ASCII_CLASS[b[i] as usize];
            if k == A_SPACE {
                break;
            }
            bad |= k == A_OTHER || (k == A_LETTER && prev == A_DIGIT);
            prev = k;
            i += 1;
        }
        chunk(s, i, false, !bad);
        if i < n {
            // a single space after a chunk is dropped, other whitespace is a chunk
            let ws = if b[i] == b' ' { i + 1 } else { i };
            i += 1;
            while i < n && ASCII_CLASS[b[i] as usize] == A_SPACE {
                i += 1;
            }
            if ws < i {
                chunk(ws, i, true, false);
            }
        }
    }
}

/// [`tokens`] with every chunk through the rules and one special-case pass over the whole text
/// (the reference the tests compare the fast path with).
#[cfg(test)]
fn tokens_by_the_rules(text: &str, mut emit: impl FnMut(usize, usize, bool)) {
    let mut toks = Vec::new();
    affix_tokens(text, true, &mut toks);
    apply_special_cases(text, &mut toks);
    for (s, e, ws) in toks {
        emit(s, e, ws);
    }
}

/// Whether the rules make `w` one token, `w` itself, wherever it stands between whitespace (or
/// the text's ends): a [`plain_chunk`] of ASCII letters and digits (no letter right after a
/// digit) that is neither a special case nor a third or later token of a special-case pattern
/// (which a run of chunks before it could take). Then no special-case pattern holds it: a
/// pattern of several tokens has its second token joined to the first, and this one is
/// alone in its chunk. False for the empty string.
///
/// Every word of `simplify_text`'s output that is not a special case or pattern token
/// ("cannot", "gonna", "o", ...), has no letter right after a digit ("0km") and is ASCII is
/// plain. `tests::plain_words_are_single_tokens` checks every key of the exception table.
#[inline]
pub fn is_plain_word(w: &str) -> bool {
    let b = w.as_bytes();
    let mut prev_digit = false;
    for &c in b {
        match ASCII_CLASS[c as usize] {
            A_LETTER if !prev_digit => {}
            A_DIGIT => {
                prev_digit = true;
                continue;
            }
            _ => return false,
        }
        prev_digit = false;
    }
    !b.is_empty() && not_special_nor_pattern(plain_filter(), w)
}

/// Neither a special case nor a later pattern token: one test of `plain` ([`plain_filter`])
/// answers for most words.
#[inline(always)]
fn not_special_nor_pattern(plain: &KeyFilter, w: &str) -> bool {
    !plain.may_hold(w) || (not_special_key(w) && !later_pattern_token(w))
}

/// The [`KeyFilter`] of the special cases and the later pattern tokens together.
fn plain_filter() -> &'static KeyFilter {
    static F: OnceLock<KeyFilter> = OnceLock::new();
    F.get_or_init(|| {
        let (set, _) = later_pattern_tokens();
        KeyFilter::new(specials().0.keys().copied().chain(set.iter().copied()))
    })
}

/// The words of `text` as [`words`] finds them (its tokens that are not blank), as byte spans,
/// split at spaces first: an [`is_plain_word`] is emitted as it is, and each run of the other
/// words (with the whitespace between them) goes through [`tokens`]. This is what [`tokens`]
/// does over the whole text, as a plain word ends its run of chunks (a pattern can neither go on
/// through it nor start with it), and cheaper on text of single-spaced plain words, such as the
/// output of `simplify_text` that MinHash shingles.
pub fn word_spans(text: &str, mut emit: impl FnMut(usize, usize)) {
    let n = text.len();
    // the run of words that are not plain, as (start, end)
    let mut run: Option<(usize, usize)> = None;
    let flush = |run: &mut Option<(usize, usize)>, emit: &mut dyn FnMut(usize, usize)| {
        if let Some((s, e)) = run.take() {
            tokens(&text[s..e], |x, y, ws| {
                if !ws {
                    emit(s + x, s + y)
                }
            });
        }
    };
    let plain = plain_filter();
    // a word (not empty) whose bytes can be plain: emitted when it is, else added to the run
    macro_rules! word {
        ($s:expr, $e:expr, $clean:expr) => {{
            let (s, e) = ($s, $e);
            if $clean && not_special_nor_pattern(plain, &text[s..e]) {
                if run.is_some() {
                    flush(&mut run, &mut emit);
                }
                emit(s, e);
            } else {
                run = Some((run.map_or(s, |(a, _)| a), e));
            }
        }};
    }
    // blocks of 64 bytes: a bit per byte for a space, and for a byte that no plain word holds
    let b = text.as_bytes();
    let mut s = 0usize;
    // the bad bits of the current word in the blocks before the current one
    let mut bad_before = false;
    let mut last_digit = false;
    for (k, blk) in b.chunks(64).enumerate() {
        let base = k * 64;
        let (space, bad, digit_at_end) = block_masks(blk, last_digit);
        last_digit = digit_at_end;
        let mut sp = space;
        while sp != 0 {
            let p = sp.trailing_zeros() as usize;
            sp &= sp - 1;
            let e = base + p;
            // the bad bits of [s, e) in this block
            let from = s.max(base) - base;
            let in_word = (u64::MAX << from) & !(u64::MAX << p);
            if s < e {
                word!(s, e, !bad_before && bad & in_word == 0);
            }
            s = e + 1;
            bad_before = false;
        }
        // the word that goes on into the next block
        if s < base + blk.len() {
            let from = s.max(base) - base;
            bad_before |= bad >> from != 0;
        }
    }
    if s < n {
        word!(s, n, !bad_before);
    }
    flush(&mut run, &mut emit);
}

/// The masks of a block of up to 64 bytes of text (bit i for byte i): its spaces; its bytes
/// that a [`is_plain_word`] cannot hold (not an ASCII letter, digit or space, or a letter right
/// after a digit, `prev_digit` telling whether the byte before the block is one); and whether
/// its last byte is a digit. Bits past the block's end are clear.
#[inline(always)]
fn block_masks(blk: &[u8], prev_digit: bool) -> (u64, u64, bool) {
    let n = blk.len();
    let (space, letter, digit) = match <&[u8; 64]>::try_from(blk) {
        Ok(full) => classes64(full),
        Err(_) => {
            // NUL padding: no class holds it, so no bit is set past the block's end
            let mut pad = [0u8; 64];
            pad[..n].copy_from_slice(blk);
            classes64(&pad)
        }
    };
    let len_mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    let after_digit = digit << 1 | prev_digit as u64;
    let bad = (!(letter | digit | space) | (letter & after_digit)) & len_mask;
    (space, bad, n > 0 && digit >> (n - 1) & 1 == 1)
}

/// Bit masks of the spaces, ASCII letters and ASCII digits of 64 bytes (bit i for byte i).
#[inline(always)]
fn classes64(b: &[u8; 64]) -> (u64, u64, u64) {
    #[cfg(target_arch = "x86_64")]
    {
        classes64_sse2(b)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        classes64_swar(b)
    }
}

/// [`classes64`] with SSE2 (every x86-64 CPU has it): signed byte compares, under which the
/// bytes of non-ASCII chars (0x80 and up) are negative, below every ASCII class.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classes64_sse2(b: &[u8; 64]) -> (u64, u64, u64) {
    use std::arch::x86_64::*;
    let (mut space, mut letter, mut digit) = (0u64, 0u64, 0u64);
    for q in 0..4 {
        // SAFETY: SSE2 is part of x86-64; the load reads bytes 16q..16q+16 of the 64
        unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(16 * q) as *const __m128i);
            let set = |c: u8| _mm_set1_epi8(c as i8);
            let lower = _mm_or_si128(v, set(0x20));
            let l = _mm_and_si128(
                _mm_cmpgt_epi8(lower, set(b'a' - 1)),
                _mm_cmpgt_epi8(set(b'z' + 1), lower),
            );
            let d = _mm_and_si128(
                _mm_cmpgt_epi8(v, set(b'0' - 1)),
                _mm_cmpgt_epi8(set(b'9' + 1), v),
            );
            let sp = _mm_cmpeq_epi8(v, set(b' '));
            let m = |x: __m128i| (_mm_movemask_epi8(x) as u32 as u64) << (16 * q);
            space |= m(sp);
            letter |= m(l);
            digit |= m(d);
        }
    }
    (space, letter, digit)
}

/// [`classes64`] by arithmetic on 8 bytes at a time (SWAR).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn classes64_swar(b: &[u8; 64]) -> (u64, u64, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x80 * ONES;
    // the high bit of each byte of `m` (bits 7, 15, ...) gathered into the low 8 bits: each bit
    // lands alone on its place in the top byte of the product
    let pack = |m: u64| (m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
    let (mut space, mut letter, mut digit) = (0u64, 0u64, 0u64);
    for (q, c) in b.chunks_exact(8).enumerate() {
        let mut w8 = [0u8; 8];
        w8.copy_from_slice(c);
        let w = u64::from_le_bytes(w8);
        let ascii = !w & HIGH;
        let x = w & !HIGH;
        // the high bit of each byte of x + (0x80 - c): byte >= c (no sum carries: x < 0x80)
        let ge = |x: u64, c: u8| (x + (0x80 - c as u64) * ONES) & HIGH;
        let lower = x | (0x20 * ONES);
        let l = ge(lower, b'a') & !ge(lower, b'z' + 1) & ascii;
        let d = ge(x, b'0') & !ge(x, b'9' + 1) & ascii;
        let sp = ge(x, b' ') & !ge(x, b' ' + 1) & ascii;
        space |= pack(sp) << (8 * q);
        letter |= pack(l) << (8 * q);
        digit |= pack(d) << (8 * q);
    }
    (space, letter, digit)
}

/// datatrove's `split_into_words` for English: the tokens that are not blank.
pub fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    tokens(text, |s, e, ws| {
        if !ws {
            out.push(&text[s..e]);
        }
    });
    out
}

/// spaCy's `is_punct`: every char is Unicode punctuation (category P*).
fn is_punct(t: &str) -> bool {
    use GeneralCategory::*;
    t.chars().all(|c| {
        matches!(
            get_general_category(c),
            ConnectorPunctuation
                | DashPunctuation
                | OpenPunctuation
                | ClosePunctuation
                | InitialPunctuation
                | FinalPunctuation
                | OtherPunctuation
        )
    })
}

/// The sentences spaCy's `sentencizer` finds in `text` (datatrove's `split_into_sentences`
/// count): a sentence ends at a token in its punctuation list, and the next starts at the first
/// later token that is neither punctuation nor in the list. 1 for a text without tokens.
pub fn count_sentences(text: &str) -> usize {
    let (mut n, mut seen_period, mut any) = (0usize, false, false);
    tokens(text, |s, e, _| {
        let t = &text[s..e];
        if !any {
            any = true;
            n = 1;
        }
        let in_list = SENT_PUNCT.contains(&t);
        if seen_period && !in_list && !is_punct(t) {
            n += 1;
            seen_period = false;
        } else if in_list {
            seen_period = true;
        }
    });
    n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_fast_path_agrees_with_the_rules() {
        let alphabet = b"ab0k9mKgTs";
        let mut rng = crate::lcg::Lcg(5);
        for n in 0..5000 {
            let w = rng.string(alphabet, 1 + n % 9);
            let text = format!("{w} 0km w0 5{w} {w}0");
            let fast: Vec<String> = words(&text).iter().map(|s| s.to_string()).collect();
            NO_FAST_PATH.with(|c| c.set(true));
            let slow: Vec<String> = words(&text).iter().map(|s| s.to_string()).collect();
            NO_FAST_PATH.with(|c| c.set(false));
            assert_eq!(fast, slow, "{text:?}");
        }
    }

    /// The tokens of `text` with and without the fast paths (the rules alone are the reference).
    type Toks = Vec<(usize, usize, bool)>;

    fn both_ways(text: &str) -> (Toks, Toks) {
        let mut fast = Vec::new();
        tokens(text, |s, e, w| fast.push((s, e, w)));
        NO_FAST_PATH.with(|c| c.set(true));
        let mut slow = Vec::new();
        tokens(text, |s, e, w| slow.push((s, e, w)));
        NO_FAST_PATH.with(|c| c.set(false));
        (fast, slow)
    }

    #[test]
    fn plain_fast_path_agrees_with_the_rules() {
        // pieces that hit every rule next to plain words: special cases with and without their
        // apostrophe, the later tokens of special-case patterns, units and currencies after
        // digits, prefixes, suffixes, infixes, URLs, icons, non-ASCII letters and digits
        let pieces = [
            "don't",
            "dont",
            "Dont",
            "cant",
            "gonna",
            "im",
            "e.g.",
            "e.g",
            "U.S.",
            "a.m.",
            "em",
            "'em",
            "'",
            "cause",
            "or",
            "and/",
            "w/",
            "o",
            "O",
            "o.",
            "8-",
            "D",
            "and",
            "'s",
            "s",
            "n't",
            "nt",
            "0",
            "5",
            "10",
            "0km",
            "km",
            "m",
            "5m",
            "kmh",
            "mph",
            "0s",
            "x0",
            "a0b",
            "0x",
            "us",
            "US$",
            "$",
            "€",
            "ʻ",
            "é",
            "ß",
            "日本",
            "Ⓐ",
            "©",
            "µm",
            "µ",
            "км",
            "5км",
            "٣",
            "Σ",
            "ǅ",
            ".",
            "..",
            "...",
            ",",
            "-",
            "--",
            "—",
            "–",
            "~",
            ":",
            "/",
            "=",
            "+",
            "*",
            "^",
            "%",
            "§",
            "…",
            "(",
            ")",
            "[",
            "\"",
            "’",
            "`",
            "http://x.com",
            "x.com",
            "a@b.co",
            "a.B",
            "o.O",
            ":)",
            "<3",
            "xD",
            "a",
            "the",
            "Hello",
            "qzab",
            "·",
            "。",
            "٪",
            "ﬁ",
            "\u{301}",
        ];
        let seps = ["", "", " ", " ", " ", "  ", "\n", "\t", "\u{a0}", " \n "];
        let mut rng = crate::lcg::Lcg(17);
        for n in 0..20000 {
            let mut text = String::new();
            for _ in 0..(1 + n % 13) {
                text.push_str(pieces[rng.below(pieces.len())]);
                text.push_str(seps[rng.below(seps.len())]);
            }
            let (fast, slow) = both_ways(&text);
            assert_eq!(fast, slow, "{text:?}");
        }
        // and on random characters, ASCII (one walk over the bytes) or not
        let alphabets: [Vec<char>; 2] = [
            "ab0k9mKgTs'.,-:/ \n\t$€é日Ⓐ©µк٣Σ()\"+%…—ﬁ"
                .chars()
                .collect(),
            "ab0k9mKgTsd'.,-:/  \n\t\u{b}\u{1c}$()\"+%"
                .chars()
                .collect(),
        ];
        for alphabet in &alphabets {
            for n in 0..20000 {
                let text = rng.string(alphabet, n % 23);
                let (fast, slow) = both_ways(&text);
                assert_eq!(fast, slow, "{text:?}");
            }
        }
    }

    #[test]
    fn plain_chunks() {
        // the ordinary words of simplified text take the fast path; special cases, units after
        // a digit and the later tokens of patterns do not
        for w in [
            "hello",
            "qzab",
            "0",
            "a0",
            "x00",
            "caf\u{e9}",
            "日本",
            "stra\u{df}e",
        ] {
            assert!(plain_chunk(w), "{w}");
        }
        for w in [
            "dont", "cant", "gonna", "0km", "0s", "a0b", "e.g", "x-y", "\u{24b6}", "a\u{301}",
        ] {
            assert!(!plain_chunk(w), "{w}");
        }
        // the later tokens that can be plain chunks, which the pass must see after a run
        let (set, _) = later_pattern_tokens();
        let mut plain: Vec<&str> = set.iter().copied().filter(|t| plain_chunk(t)).collect();
        plain.sort_unstable();
        assert_eq!(plain, ["D", "O", "o", "or"]);
        let (fast, slow) = both_ways("and/ or w/ o o. O 8- D");
        assert_eq!(fast, slow);
    }

    #[test]
    fn english_rules() {
        // spaCy 3.8's output for these (see tests/parity/test_filters_datatrove.py for the
        // comparison on real text)
        let t = "Hello, world. This is -- a test... Don't you e.g. U.S. 3.14 http://x.com/a?b=1 (foo) \"bar\" it's ----- ==== a-b c/d";
        assert_eq!(
            words(t),
            [
                "Hello",
                ",",
                "world",
                ".",
                "This",
                "is",
                "--",
                "a",
                "test",
                "...",
                "Do",
                "n't",
                "you",
                "e.g.",
                "U.S.",
                "3.14",
                "http://x.com/a?b=1",
                "(",
                "foo",
                ")",
                "\"",
                "bar",
                "\"",
                "it",
                "'s",
                "-----",
                "=",
                "=",
                "=",
                "=",
                "a",
                "-",
                "b",
                "c",
                "/",
                "d"
            ]
        );
        let t = "$5 US$5 ©x (don't) \"Hello.\" 5km. a.b A.B x--y x---y 3-4 a=b a:b a,b 10:30 foo.py os.path.join(a, b) [1] {x} <x> --a ..x";
        assert_eq!(
            words(t),
            [
                "$",
                "5",
                "US$",
                "5",
                "©",
                "x",
                "(",
                "do",
                "n't",
                ")",
                "\"",
                "Hello",
                ".",
                "\"",
                "5",
                "km",
                ".",
                "a.b",
                "A.B",
                "x",
                "--",
                "y",
                "x",
                "---",
                "y",
                "3",
                "-",
                "4",
                "a",
                "=",
                "b",
                "a",
                ":",
                "b",
                "a",
                ",",
                "b",
                "10:30",
                "foo.py",
                "os.path.join(a",
                ",",
                "b",
                ")",
                "[",
                "1",
                "]",
                "{",
                "x",
                "}",
                "<",
                "x",
                ">",
                "--a",
                "..",
                "x"
            ]
        );
        assert_eq!(
            count_sentences("One. Two! Three? e.g. this. He said \"hi.\" Then left."),
            6
        );
        assert_eq!(count_sentences(""), 1);
    }

    /// The words of `text` by [`word_spans`], and by the rules alone (every fast path off).
    fn split_both_ways(text: &str) -> (Vec<&str>, Vec<&str>) {
        let mut fast = Vec::new();
        word_spans(text, |s, e| fast.push(&text[s..e]));
        NO_FAST_PATH.with(|c| c.set(true));
        let slow = words(text);
        NO_FAST_PATH.with(|c| c.set(false));
        (fast, slow)
    }

    #[test]
    fn word_spans_agree_with_the_rules() {
        use crate::dedup::normalize::simplify_text;
        // every key of the exception table, as it is and as simplify_text leaves it (lowercase,
        // no punctuation, numbers as 0), the later tokens of patterns, words next to digits,
        // non-ASCII words and whitespace
        let mut pieces: Vec<String> = EXCEPTIONS.iter().map(|&(k, _)| k.to_string()).collect();
        pieces.extend(EXCEPTIONS.iter().map(|&(k, _)| simplify_text(k)));
        pieces.extend(later_pattern_tokens().0.iter().map(|t| t.to_string()));
        // the chunk a pattern of several tokens starts with (its first two tokens, joined), which
        // a later token after a space can complete ("and/ or")
        for pats in patterns_filtered().0.values() {
            for p in pats.iter().filter(|p| p.len() > 2) {
                pieces.push(p[..2].concat());
            }
        }
        for w in [
            "the",
            "qzab",
            "0",
            "00",
            "a0",
            "0a",
            "0km",
            "0s",
            "0nd",
            "km",
            "m",
            "x0y",
            "caf\u{e9}",
            "\u{65e5}\u{672c}",
            "stra\u{df}e",
            "\u{43a}\u{43c}",
            "0\u{43a}\u{43c}",
            "\u{663}",
            "\u{24b6}",
            "\u{a9}",
            "A",
            "Cannot",
            "can",
            "not",
            "o",
            "or",
            "d",
            "\u{2019}s",
            "'",
            ".",
            "-",
        ] {
            pieces.push(w.to_string());
        }
        let seps = [
            " ", " ", " ", " ", " ", "", "  ", "\n", "\t", "\u{a0}", " \n ",
        ];
        let mut rng = crate::lcg::Lcg(23);
        for n in 0..30000 {
            let mut text = String::new();
            for _ in 0..(1 + n % 40) {
                text.push_str(&pieces[rng.below(pieces.len())]);
                text.push_str(seps[rng.below(seps.len())]);
            }
            let (fast, slow) = split_both_ways(&text);
            assert_eq!(fast, slow, "{text:?}");
            let simple = simplify_text(&text);
            let (fast, slow) = split_both_ways(&simple);
            assert_eq!(fast, slow, "{simple:?}");
            assert_eq!(fast, words(&simple), "{simple:?}");
        }
        // random characters, with words across the 64-byte blocks
        let alphabets: [Vec<char>; 2] = [
            "ab0k9mzs     ".chars().collect(),
            "ab0k9mKgTsd'.,-:/  \n\t$\u{e9}\u{65e5}\u{24b6}\u{a0}"
                .chars()
                .collect(),
        ];
        for alphabet in &alphabets {
            for n in 0..20000 {
                let text = rng.string(alphabet, n % 200);
                let (fast, slow) = split_both_ways(&text);
                assert_eq!(fast, slow, "{text:?}");
            }
        }
    }

    #[test]
    fn plain_words_are_single_tokens() {
        // no key of the exception table, nor a later pattern token, is plain
        for &(k, _) in EXCEPTIONS {
            assert!(!is_plain_word(k), "{k}");
        }
        for t in later_pattern_tokens().0.iter() {
            assert!(!is_plain_word(t), "{t}");
        }
        assert!(!is_plain_word(""));
        // a plain word is itself, one token, between any neighbours (the rules alone decide)
        let mut rng = crate::lcg::Lcg(29);
        let keys: Vec<&str> = EXCEPTIONS.iter().map(|&(k, _)| k).collect();
        let mut plain = 0;
        for n in 0..20000 {
            let w = rng.string(b"abcdeghmnostuwy0Ak", 1 + n % 7);
            if !is_plain_word(&w) {
                continue;
            }
            plain += 1;
            let (l, r) = (keys[rng.below(keys.len())], keys[rng.below(keys.len())]);
            let text = format!("{l} {w} {r}");
            NO_FAST_PATH.with(|c| c.set(true));
            let mut toks = Vec::new();
            tokens(&text, |s, e, ws| toks.push((s, e, ws)));
            NO_FAST_PATH.with(|c| c.set(false));
            let at = l.len() + 1;
            assert!(toks.contains(&(at, at + w.len(), false)), "{text:?}");
        }
        assert!(plain > 5000);
    }

    #[test]
    fn class_masks_byte_by_byte() {
        let mut rng = crate::lcg::Lcg(37);
        for _ in 0..3000 {
            let mut b = [0u8; 64];
            for x in b.iter_mut() {
                *x = rng.below(256) as u8;
            }
            let want = |f: fn(u8) -> bool| (0..64).fold(0u64, |m, i| m | (f(b[i]) as u64) << i);
            let expect = (
                want(|c| c == b' '),
                want(|c| c.is_ascii_alphabetic()),
                want(|c| c.is_ascii_digit()),
            );
            assert_eq!(classes64_swar(&b), expect, "{b:?}");
            assert_eq!(classes64(&b), expect, "{b:?}");
        }
    }

    #[test]
    fn block_masks_byte_by_byte() {
        let alphabet: Vec<char> = "az09AZ@[`{/: \t\u{e9}".chars().collect();
        let mut rng = crate::lcg::Lcg(31);
        for n in 0..5000 {
            let text = rng.string(&alphabet, n % 70);
            let b = text.as_bytes();
            let blk = &b[..b.len().min(64)];
            let prev_digit = n % 2 == 1;
            let (space, bad, last) = block_masks(blk, prev_digit);
            for (i, &c) in blk.iter().enumerate() {
                let before = if i == 0 {
                    prev_digit
                } else {
                    blk[i - 1].is_ascii_digit()
                };
                let ok = c == b' ' || c.is_ascii_digit() || (c.is_ascii_alphabetic() && !before);
                assert_eq!(space >> i & 1 == 1, c == b' ', "{text:?} {i}");
                assert_eq!(bad >> i & 1 == 1, !ok, "{text:?} {i}");
            }
            if blk.len() < 64 {
                assert_eq!((space | bad) >> blk.len(), 0, "{text:?}");
            }
            assert_eq!(last, blk.last().is_some_and(|c| c.is_ascii_digit()));
        }
    }
}
