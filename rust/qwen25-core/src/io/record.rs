//! What one JSONL line becomes: the text of a record (a string field, a chat `messages` list, or a
//! list of token ids), or the reason it cannot become one. One set of rules for every job:
//!
//! - the line must be UTF-8 (`Utf8::Replace` substitutes U+FFFD for bad bytes, as Python's
//!   `errors="replace"` does);
//! - it must be one JSON value as Python's `json.loads` reads it (RFC 8259, plus `NaN`,
//!   `Infinity` and `-Infinity`), an object;
//! - `obj[field]` is a string (the text), or a non-empty list of integers in 0..2**32 (token
//!   ids, where allowed), or a list of `{role, content}` objects (`content` a string or null) whose contents
//!   are joined by `"\n"`; without `field`, `obj["messages"]` is such a list; an empty `field`
//!   asks for no text (any object is a record, its item an empty text: for callers that parse the
//!   raw line themselves);
//! - no string anywhere in the record (keys included) holds a lone UTF-16 surrogate escape such as
//!   `"\ud800"`: valid JSON, but not text, and the jobs write records back as UTF-8.
//!
//! The checks run in that order, so a line that is both malformed and holds a surrogate is
//! reported as malformed. No Python object is built: the fields other than the text are skipped
//! by serde's `IgnoredAny`. The common line (an object whose text field is a string) is read in
//! one pass by the private module `io::fastjson` instead, which gives the same item or leaves the
//! line to serde: every error comes from serde.

use std::borrow::Cow;
use std::fmt;

use super::fastjson;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// What a job judges for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Text(String),
    Ids(Vec<u32>),
}

/// How bytes that are not UTF-8 are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf8 {
    /// A bad line.
    Strict,
    /// U+FFFD per maximal invalid subsequence.
    Replace,
}

/// The text rules of a job.
#[derive(Debug, Clone)]
pub struct Rules {
    pub field: String,
    pub utf8: Utf8,
    /// A non-empty list of integers in `field` is an [`Item::Ids`] (else it must be a messages list).
    pub allow_ids: bool,
}

impl Rules {
    pub fn new(field: impl Into<String>) -> Self {
        Rules {
            field: field.into(),
            utf8: Utf8::Strict,
            allow_ids: false,
        }
    }
}

/// The JSON type of a value as the messages say it ("a string", "an array", ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Number,
    Str,
    Array,
    Object,
}

impl Kind {
    fn said(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Int | Kind::Number => "a number",
            Kind::Str => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// One element of a list field: what the rules need to know of it.
enum Elem {
    /// An int that is a token id (0..2**32).
    Int(u32),
    /// A `{role, content}` object: `Some(content)` when valid (null content is empty).
    Msg(Option<String>),
    Other(Kind),
}

/// The value of the text field (or of `messages`).
enum Val {
    Str(String),
    List(Vec<Elem>),
    Other(Kind),
}

/// The top-level value: an object's text-bearing fields, or the kind of a non-object.
enum Top {
    Object {
        field: Option<Val>,
        messages: Option<Val>,
        keys: Vec<String>,
        /// Where the extra field's value is in the text parsed (`start..end`, bytes).
        extra: Option<(usize, usize)>,
    },
    Other(Kind),
}

/// What to find in a line: the text field, and an extra field whose raw value is wanted.
struct TopSeed<'a> {
    field: &'a str,
    extra: Option<&'a str>,
    /// The address of the text parsed (raw values are slices of it).
    base: usize,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(TopVisitor(self))
    }
}

struct TopVisitor<'a>(TopSeed<'a>);

macro_rules! other_scalars {
    ($out:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($out(Kind::Bool))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($out(Kind::Int))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($out(Kind::Number))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($out(Kind::Null))
        }
    };
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    other_scalars!(Top::Other);
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other(Kind::Int))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other(Kind::Str))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Top, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::Other(Kind::Array))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Top, A::Error> {
        let (mut field, mut messages, mut keys, mut extra) = (None, None, Vec::new(), None);
        let TopSeed {
            field: name,
            extra: extra_name,
            base,
        } = self.0;
        while let Some(k) = a.next_key::<Cow<'de, str>>()? {
            if keys.len() < 10 && !keys.iter().any(|x: &String| *x == *k) {
                keys.push(k.to_string());
            }
            if extra_name.is_some_and(|x| *x == *k) {
                // duplicate keys: the last wins, as in Python's json
                let raw: &'de serde_json::value::RawValue = a.next_value()?;
                let start = (raw.get().as_ptr() as usize).wrapping_sub(base);
                extra = Some((start, start + raw.get().len()));
                if !name.is_empty() && (*k == *name || k == "messages") {
                    let v = ValSeed
                        .deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
                        .map_err(de::Error::custom)?;
                    if *k == *name {
                        field = Some(v);
                    } else {
                        messages = Some(v);
                    }
                }
            } else if name.is_empty() {
                a.next_value::<IgnoredAny>()?; // any object: its values are only checked as JSON
            } else if *k == *name {
                field = Some(a.next_value_seed(ValSeed)?); // duplicate keys: the last wins
            } else if k == "messages" {
                messages = Some(a.next_value_seed(ValSeed)?);
            } else {
                a.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Top::Object {
            field,
            messages,
            keys,
            extra,
        })
    }
}

struct ValSeed;

impl<'de> DeserializeSeed<'de> for ValSeed {
    type Value = Val;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    other_scalars!(Val::Other);
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Val, E> {
        Ok(Val::Other(Kind::Int))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Val, E> {
        Ok(Val::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Val, E> {
        Ok(Val::Str(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Val, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Other(Kind::Object))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Val, A::Error> {
        let mut v = Vec::new();
        while let Some(e) = a.next_element_seed(ElemSeed)? {
            v.push(e);
        }
        Ok(Val::List(v))
    }
}

struct ElemSeed;

impl<'de> DeserializeSeed<'de> for ElemSeed {
    type Value = Elem;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Elem, D::Error> {
        d.deserialize_any(ElemVisitor)
    }
}

struct ElemVisitor;

impl<'de> Visitor<'de> for ElemVisitor {
    type Value = Elem;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Elem, E> {
        Ok(Elem::Other(Kind::Bool))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Elem, E> {
        Ok(u32::try_from(v).map_or(Elem::Other(Kind::Int), Elem::Int))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Elem, E> {
        Ok(u32::try_from(v).map_or(Elem::Other(Kind::Int), Elem::Int))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Elem, E> {
        Ok(Elem::Other(Kind::Number))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Elem, E> {
        Ok(Elem::Other(Kind::Null))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Elem, E> {
        Ok(Elem::Other(Kind::Str))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Elem, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Elem::Other(Kind::Array))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Elem, A::Error> {
        // role: a string; content: present, a string or null
        let (mut role_ok, mut content): (bool, Option<Option<Option<String>>>) = (false, None);
        while let Some(k) = a.next_key::<Cow<'de, str>>()? {
            match &*k {
                "role" => role_ok = a.next_value::<MaybeStr>()?.0.is_some_and(|r| r.is_some()),
                "content" => content = Some(a.next_value::<MaybeStr>()?.0),
                _ => {
                    a.next_value::<IgnoredAny>()?;
                }
            }
        }
        // content: None = missing, Some(None) = not a string/null, Some(Some(x)) = x (null -> "")
        Ok(match (role_ok, content) {
            (true, Some(Some(c))) => Elem::Msg(Some(c.unwrap_or_default())),
            _ => Elem::Msg(None),
        })
    }
}

/// `Some(Some(s))` for a string, `Some(None)` for null, `None` for anything else.
struct MaybeStr(Option<Option<String>>);

impl<'de> de::Deserialize<'de> for MaybeStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MaybeStr, E> {
                Ok(MaybeStr(Some(Some(v.to_owned()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<MaybeStr, E> {
                Ok(MaybeStr(Some(None)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<MaybeStr, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<MaybeStr, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<MaybeStr, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<MaybeStr, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<MaybeStr, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<MaybeStr, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string as Python's `repr` writes it (for field names in messages).
pub fn py_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

fn messages_text(v: Val, name: &str) -> Result<String, String> {
    let list = match v {
        Val::List(l) => l,
        Val::Str(_) => {
            return Err(format!(
                "{} is a string, not a list of {{role, content}} objects",
                py_repr(name)
            ))
        }
        Val::Other(k) => {
            return Err(format!(
                "{} is {}, not a list of {{role, content}} objects",
                py_repr(name),
                k.said()
            ))
        }
    };
    let mut parts = Vec::with_capacity(list.len());
    for (i, e) in list.into_iter().enumerate() {
        match e {
            Elem::Msg(Some(c)) => parts.push(c),
            e => {
                let k = match e {
                    Elem::Msg(None) => Kind::Object,
                    Elem::Int(_) => Kind::Int,
                    Elem::Other(k) => k,
                    Elem::Msg(Some(_)) => unreachable!(),
                };
                return Err(format!(
                    "{name}[{i}] is {}, not a {{role, content}} object with string values",
                    k.said()
                ));
            }
        }
    }
    Ok(parts.join("\n"))
}

fn item_of(top: Top, rules: &Rules) -> Result<Item, String> {
    let (field, messages, keys) = match top {
        Top::Object {
            field,
            messages,
            keys,
            ..
        } => (field, messages, keys),
        Top::Other(k) => return Err(format!("a record must be a JSON object, not {}", k.said())),
    };
    if rules.field.is_empty() {
        return Ok(Item::Text(String::new())); // no text asked for: any object is a record
    }
    if let Some(v) = field {
        return match v {
            Val::Str(s) => Ok(Item::Text(s)),
            Val::List(l) => {
                let ids =
                    rules.allow_ids && !l.is_empty() && l.iter().all(|e| matches!(e, Elem::Int(_)));
                if ids {
                    Ok(Item::Ids(
                        l.into_iter()
                            .map(|e| match e {
                                Elem::Int(x) => x,
                                _ => 0,
                            })
                            .collect(),
                    ))
                } else {
                    messages_text(Val::List(l), &rules.field).map(Item::Text)
                }
            }
            Val::Other(k) => Err(format!(
                "field {} is {}, not a string (nor a messages list)",
                py_repr(&rules.field),
                k.said()
            )),
        };
    }
    if let Some(v) = messages {
        return messages_text(v, "messages").map(Item::Text);
    }
    let keys = if keys.is_empty() {
        "none".to_string()
    } else {
        keys.iter()
            .map(|k| py_repr(k))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(format!(
        "no field {} (nor a 'messages' list); its fields: {keys}",
        py_repr(&rules.field)
    ))
}

fn hex4(b: &[u8]) -> Option<u16> {
    if b.len() < 4 {
        return None;
    }
    let s = std::str::from_utf8(&b[..4]).ok()?;
    u16::from_str_radix(s, 16).ok()
}

/// The first lone surrogate escape in the JSON strings of `s` (a pair `\ud83d\ude00` is fine):
/// its byte offset and code unit; and `s` with every lone one replaced by `\ufffd` (same length),
/// so the rest of the rules can run on it. None when there is none.
fn lone_surrogates(s: &str) -> Option<(usize, u16, String)> {
    let b = s.as_bytes();
    let (mut i, mut in_str) = (0, false);
    let mut first = None;
    let mut patched: Option<Vec<u8>> = None;
    while i < b.len() {
        let c = b[i];
        if !in_str {
            in_str = c == b'"';
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_str = false;
                i += 1;
            }
            b'\\' if i + 1 < b.len() && b[i + 1] == b'u' => {
                let Some(u) = hex4(&b[i + 2..]) else {
                    i += 2;
                    continue;
                };
                if (0xD800..0xDC00).contains(&u)
                    && b.get(i + 6) == Some(&b'\\')
                    && b.get(i + 7) == Some(&b'u')
                    && hex4(&b[(i + 8).min(b.len())..])
                        .is_some_and(|l| (0xDC00..0xE000).contains(&l))
                {
                    i += 12; // a pair
                } else if (0xD800..0xE000).contains(&u) {
                    first.get_or_insert((i, u));
                    patched.get_or_insert_with(|| b.to_vec())[i..i + 6].copy_from_slice(b"\\ufffd");
                    i += 6;
                } else {
                    i += 6;
                }
            }
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    let (at, u) = first?;
    let p = String::from_utf8(patched?).ok()?;
    Some((at, u, p))
}

/// Could `s` hold a surrogate escape (`\u` then `d`/`D` then `8`-`f`)? A fast pre-check.
fn may_hold_surrogate(s: &[u8]) -> bool {
    memchr::memmem::find_iter(s, b"\\u").any(|i| {
        matches!(s.get(i + 2), Some(b'd' | b'D'))
            && matches!(s.get(i + 3), Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'))
    })
}

/// serde_json's message without its " at line 1 column N" tail, and the column.
fn json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(k) => &msg[..k],
        None => &msg,
    };
    format!("malformed JSON: {msg} at column {}", e.column())
}

fn parse_strict(text: &str, rules: &Rules, extra: Option<&str>) -> Result<Top, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = TopSeed {
        field: &rules.field,
        extra,
        base: text.as_ptr() as usize,
    };
    let top = seed.deserialize(&mut de)?;
    de.end()?;
    Ok(top)
}

/// `s` with each `NaN`, `Infinity` outside strings replaced by a `0` padded with spaces (same
/// length), or None when it holds none.
fn without_non_finite(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let (mut i, mut in_str, mut out) = (0, false, None::<Vec<u8>>);
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_str = true;
        } else {
            for tok in [&b"NaN"[..], &b"Infinity"[..]] {
                if b[i..].starts_with(tok) {
                    let o = out.get_or_insert_with(|| b.to_vec());
                    o[i] = b'0';
                    o[i + 1..i + tok.len()].fill(b' ');
                    i += tok.len() - 1;
                    break;
                }
            }
        }
        i += 1;
    }
    out.and_then(|o| String::from_utf8(o).ok())
}

/// One JSON value, as Python's `json.loads` takes it: RFC 8259 plus `NaN`, `Infinity` and
/// `-Infinity` (which Python's `json.dumps` writes by default).
fn parse(text: &str, rules: &Rules, extra: Option<&str>) -> Result<Top, String> {
    match parse_strict(text, rules, extra) {
        Ok(top) => Ok(top),
        Err(e) => match without_non_finite(text) {
            // same length: the extra field's span holds in `text`
            Some(t) => parse_strict(&t, rules, extra).map_err(|_| json_error(&e)),
            None => Err(json_error(&e)),
        },
    }
}

/// The item of one line's content (no line ending), or why it cannot be one.
pub fn record_item(content: &[u8], rules: &Rules) -> Result<Item, String> {
    record_item_extra(content, rules, None).map(|(item, _)| item)
}

/// As [`record_item`], with the raw JSON text of the object's `extra` field (the last of
/// duplicate keys, as Python's `json` keeps; None when absent), exactly as in the line: spaces
/// inside kept, none around it; with [`Utf8::Replace`], as in the line after the replacement.
/// A bad line has no extra value: it is the same error as without one.
pub fn record_item_extra(
    content: &[u8],
    rules: &Rules,
    extra: Option<&str>,
) -> Result<(Item, Option<String>), String> {
    // the common line in one pass, its UTF-8 checked on the way; anything else (every error
    // too) by serde below
    if let Some((t, raw)) = fastjson::scan(content, &rules.field, extra) {
        return Ok((Item::Text(t), raw));
    }
    let text = decode(content, rules)?;
    if let Cow::Owned(replaced) = &text {
        if let Some((t, raw)) = fastjson::scan(replaced.as_bytes(), &rules.field, extra) {
            return Ok((Item::Text(t), raw));
        }
    }
    serde_item_extra(&text, rules, extra)
}

/// The line's content as text, by the rules' UTF-8 policy.
pub(super) fn decode<'a>(content: &'a [u8], rules: &Rules) -> Result<Cow<'a, str>, String> {
    match std::str::from_utf8(content) {
        Ok(s) => Ok(Cow::Borrowed(s)),
        Err(e) => match rules.utf8 {
            Utf8::Strict => Err(format!(
                "invalid UTF-8 at byte {} (--encoding-errors replace substitutes U+FFFD)",
                e.valid_up_to()
            )),
            Utf8::Replace => Ok(String::from_utf8_lossy(content)),
        },
    }
}

/// [`record_item_extra`] of a decoded line by serde alone: the reference the fast path
/// ([`fastjson`]) must agree with, and the source of every error.
pub(super) fn serde_item_extra(
    text: &str,
    rules: &Rules,
    extra: Option<&str>,
) -> Result<(Item, Option<String>), String> {
    if may_hold_surrogate(text.as_bytes()) {
        if let Some((at, u, patched)) = lone_surrogates(text) {
            item_of(parse(&patched, rules, extra)?, rules)?;
            return Err(format!(
                "lone surrogate U+{u:04X} (a \\u escape at column {})",
                at + 1
            ));
        }
    }
    let top = parse(text, rules, extra)?;
    let span = match &top {
        Top::Object { extra, .. } => *extra,
        Top::Other(_) => None,
    };
    // a value that ends in `NaN` or `Infinity` was parsed from a copy where that token is `0` and
    // spaces (same length): its span runs on over the token's letters (after a value of the line
    // itself comes a space, `,`, `}` or `]`, never a letter)
    let b = text.as_bytes();
    let raw = span
        .map(|(s, mut e)| {
            while e < b.len() && b[e].is_ascii_alphabetic() {
                e += 1;
            }
            (s, e)
        })
        .and_then(|(s, e)| text.get(s..e))
        .map(str::to_string);
    Ok((item_of(top, rules)?, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            field: "text".into(),
            utf8: Utf8::Strict,
            allow_ids: true,
        }
    }

    fn why(line: &[u8]) -> String {
        record_item(line, &rules()).unwrap_err()
    }

    #[test]
    fn texts_messages_and_ids() {
        let r = rules();
        assert_eq!(
            record_item(br#"{"text": "a\nb\u00e9"}"#, &r),
            Ok(Item::Text("a\nb\u{e9}".into()))
        );
        let m = br#"{"messages": [{"role": "u", "content": "hi"}, {"role": "a", "content": null}, {"role": "b", "content": "x"}]}"#;
        assert_eq!(record_item(m, &r), Ok(Item::Text("hi\n\nx".into())));
        assert_eq!(
            record_item(br#"{"text": [1, 2, 3]}"#, &r),
            Ok(Item::Ids(vec![1, 2, 3]))
        );
        // the last of duplicate keys wins, as in Python's json
        assert_eq!(
            record_item(br#"{"text": 1, "text": "b"}"#, &r),
            Ok(Item::Text("b".into()))
        );
        // a surrogate pair is text
        assert_eq!(
            record_item(br#"{"text": "\ud83d\ude00"}"#, &r),
            Ok(Item::Text("\u{1F600}".into()))
        );
    }

    #[test]
    fn extra_field_raw_text() {
        let r = rules();
        let x = |line: &[u8]| record_item_extra(line, &r, Some("id")).map(|(_, x)| x);
        assert_eq!(x(br#"{"id": "a", "text": "t"}"#), Ok(Some(r#""a""#.into())));
        assert_eq!(
            x(br#"{"text": "t", "id" :  { "k" : [1, 2.5] } }"#),
            Ok(Some(r#"{ "k" : [1, 2.5] }"#.into()))
        );
        // the last of duplicate keys, as Python's json
        assert_eq!(
            x(br#"{"id": 1, "text": "t", "id": [2]}"#),
            Ok(Some("[2]".into()))
        );
        assert_eq!(x(br#"{"text": "t"}"#), Ok(None));
        // NaN and the infinities are kept whole
        assert_eq!(x(br#"{"text": "t", "id": NaN}"#), Ok(Some("NaN".into())));
        assert_eq!(
            x(br#"{"text": "t", "id": -Infinity}"#),
            Ok(Some("-Infinity".into()))
        );
        // a bad line is the same error as without the extra field
        assert_eq!(
            x(br#"{"text": 5, "id": 1}"#).unwrap_err(),
            why(br#"{"text": 5, "id": 1}"#)
        );
        // the extra field may be the text field
        let t = record_item_extra(br#"{"text": "t"}"#, &r, Some("text"));
        assert_eq!(t, Ok((Item::Text("t".into()), Some(r#""t""#.into()))));
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(why(b"{\"text\": broken").starts_with("malformed JSON"));
        assert!(why(b"{\"text\": \"x\"} extra").starts_with("malformed JSON"));
        assert!(why(b"{\"text\": \"caf\xe9\"}").starts_with("invalid UTF-8 at byte 13"));
        assert!(why(br#"{"text": "a\ud800b"}"#).starts_with("lone surrogate U+D800"));
        assert!(why(br#"{"n": "\udfff", "text": "x"}"#).starts_with("lone surrogate U+DFFF"));
        assert!(why(br#"{"\ud800": 1, "text": "x"}"#).starts_with("lone surrogate U+D800"));
        // an escaped backslash before "ud800" is not an escape
        assert!(record_item(br#"{"text": "\\ud800"}"#, &rules()).is_ok());
        // malformed wins over the surrogate
        assert!(why(br#"{"text": "\ud800", oops}"#).starts_with("malformed JSON"));
        assert_eq!(
            why(br#"{"text": 5}"#),
            "field 'text' is a number, not a string (nor a messages list)"
        );
        assert_eq!(
            why(br#"{"text": null}"#),
            "field 'text' is null, not a string (nor a messages list)"
        );
        assert!(why(br#"{"text": ["a"]}"#)
            .starts_with("text[0] is a string, not a {role, content} object"));
        assert!(why(br#"{"messages": "hi"}"#).starts_with("'messages' is a string, not a list"));
        assert!(why(br#"{"messages": [{"content": "x"}]}"#)
            .starts_with("messages[0] is an object, not a"));
        assert!(why(br#"{"messages": [{"role": "u", "content": 3}]}"#)
            .starts_with("messages[0] is an object"));
        assert_eq!(
            why(br#"{"body": 1}"#),
            "no field 'text' (nor a 'messages' list); its fields: 'body'"
        );
        assert_eq!(
            why(br#"{}"#),
            "no field 'text' (nor a 'messages' list); its fields: none"
        );
        assert_eq!(
            why(b"[1, 2]"),
            "a record must be a JSON object, not an array"
        );
        assert_eq!(why(b"42"), "a record must be a JSON object, not a number");
        assert_eq!(
            why(b"\"s\""),
            "a record must be a JSON object, not a string"
        );
        // Python's json reads NaN and the infinities (its dumps writes them); they are numbers
        let r = rules();
        let ok = record_item(br#"{"text": "a", "s": [NaN, -Infinity, "NaN"]}"#, &r);
        assert_eq!(ok, Ok(Item::Text("a".into())));
        let msg = "field 'text' is a number, not a string (nor a messages list)";
        assert_eq!(why(br#"{"text": Infinity}"#), msg);
        assert!(why(br#"{"text": NaNa}"#).starts_with("malformed JSON"));
    }

    #[test]
    fn an_empty_field_takes_any_object() {
        let any = Rules::new("");
        let empty = Ok(Item::Text(String::new()));
        for line in [
            &br#"{"a": [1, {"b": null}], "text": 5}"#[..],
            b"{}",
            br#"{"messages": 3}"#,
        ] {
            assert_eq!(record_item(line, &any), empty, "{line:?}");
        }
        let why = |l: &[u8]| record_item(l, &any).unwrap_err();
        assert!(why(b"{\"a\": broken").starts_with("malformed JSON"));
        assert!(why(br#"{"a": "\udc00"}"#).starts_with("lone surrogate U+DC00"));
        assert_eq!(why(b"[1]"), "a record must be a JSON object, not an array");
    }

    #[test]
    fn replace_substitutes_fffd() {
        let r = Rules {
            utf8: Utf8::Replace,
            ..rules()
        };
        assert_eq!(
            record_item(b"{\"text\": \"caf\xe9!\"}", &r),
            Ok(Item::Text("caf\u{FFFD}!".into()))
        );
    }
}
