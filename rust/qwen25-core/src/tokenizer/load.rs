//! Reading tokenizers from HF files: `tokenizer.json`, or `vocab.json` + `merges.txt` (+
//! `tokenizer_config.json`). Every error names the file and, where one applies, the line.

use std::fmt;
use std::path::Path;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::bpe::{Bpe, BuildError};
use super::bytelevel;
use super::pretok::Pattern;
use super::{AddedToken, Tokenizer};
use crate::error::{Error, Result};

/// vocab.json + merges.txt of data/qwen25, precompiled by build.rs (layout documented there).
static QWEN25_BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/qwen25_vocab.bin"));
static QWEN25_CONFIG: &[u8] = include_bytes!("../../data/qwen25/tokenizer_config.json");

fn blob_error(what: &str) -> Error {
    Error::format(
        "<embedded>/qwen25_vocab.bin",
        0,
        format!("corrupt embedded vocabulary: {what}"),
    )
}

pub(crate) fn embedded_qwen25() -> Result<Tokenizer> {
    let b = QWEN25_BLOB;
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = b.get(at..at + n).ok_or_else(|| blob_error("truncated"))?;
        at += n;
        Ok(s)
    };
    if take(4)? != b"Q25V" {
        return Err(blob_error("bad magic"));
    }
    let u32_at = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let n_ids = u32_at(take(4)?) as usize;
    let mut data = Vec::with_capacity(b.len());
    let mut spans = Vec::with_capacity(n_ids);
    for _ in 0..n_ids {
        let l = take(2)?;
        let len = u16::from_le_bytes([l[0], l[1]]) as usize;
        let start = data.len() as u32;
        data.extend_from_slice(take(len)?);
        spans.push((start, data.len() as u32));
    }
    let n_merges = u32_at(take(4)?) as usize;
    let raw = take(n_merges * 12)?;
    let merges = raw
        .chunks_exact(12)
        .map(|c| (u32_at(&c[0..4]), u32_at(&c[4..8]), u32_at(&c[8..12])))
        .collect();
    let bpe = Bpe::from_parts(data, spans, merges).map_err(|e| blob_error(&format!("{e:?}")))?;
    let cfg = parse_config(QWEN25_CONFIG, "<embedded>/tokenizer_config.json")?;
    Tokenizer::new(bpe, Pattern::Qwen2, true, cfg.added, Some(cfg.text))
}

/// The raw `tokenizer_config.json` of the embedded Qwen2.5 tokenizer.
pub fn embedded_qwen25_config() -> &'static str {
    std::str::from_utf8(QWEN25_CONFIG).unwrap_or("{}")
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Load a tokenizer folder: `tokenizer.json` if present, else `vocab.json` + `merges.txt`.
/// `tokenizer_config.json` (added tokens, tokenizer class, chat template) is read when present.
pub fn from_dir(dir: &Path) -> Result<Tokenizer> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        ));
    }
    let cfg_path = dir.join("tokenizer_config.json");
    let cfg = if cfg_path.is_file() {
        Some(read(&cfg_path)?)
    } else {
        None
    };
    let cfg_name = cfg_path.display().to_string();
    let tj = dir.join("tokenizer.json");
    if tj.is_file() {
        let data = read(&tj)?;
        return from_tokenizer_json(
            &data,
            &tj.display().to_string(),
            cfg.as_deref().map(|c| (c, cfg_name.as_str())),
        );
    }
    let vp = dir.join("vocab.json");
    let mp = dir.join("merges.txt");
    if !vp.is_file() || !mp.is_file() {
        return Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no tokenizer.json, and no vocab.json + merges.txt pair in this folder",
            ),
        ));
    }
    let v = read(&vp)?;
    let m = read(&mp)?;
    from_vocab_merges(
        &v,
        &vp.display().to_string(),
        &m,
        &mp.display().to_string(),
        cfg.as_deref().map(|c| (c, cfg_name.as_str())),
    )
}

/// 1-based line of byte offset `pos` in `text`.
fn line_at(text: &[u8], pos: usize) -> usize {
    1 + text[..pos.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Line of the `nth` (0-based) occurrence of `"key"` as a JSON string in `text`, or 0.
fn line_of_json_key(text: &[u8], key: &str, nth: usize) -> usize {
    let needle = serde_json::to_string(key).unwrap_or_default();
    let mut from = 0;
    let mut seen = 0;
    while let Some(off) = find(&text[from..], needle.as_bytes()) {
        let at = from + off;
        if seen == nth {
            return line_at(text, at);
        }
        seen += 1;
        from = at + 1;
    }
    0
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn json_error(name: &str, e: serde_json::Error) -> Error {
    Error::format(name, e.line(), format!("invalid JSON: {e}"))
}

fn utf8<'a>(data: &'a [u8], name: &str) -> Result<&'a str> {
    std::str::from_utf8(data).map_err(|e| {
        Error::format(
            name,
            line_at(data, e.valid_up_to()),
            "file is not valid UTF-8",
        )
    })
}

/// A JSON object read as its entries in file order, duplicates kept (serde_json's `Map` would
/// silently keep only the last of two equal keys).
struct Entries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object mapping token strings to ids")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(0));
                while let Some((k, val)) = m.next_entry::<String, Value>()? {
                    v.push((k, val));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Turn `token string -> id` entries into byte strings, checking ids.
fn vocab_entries(
    entries: Vec<(String, Value)>,
    text: &[u8],
    name: &str,
) -> Result<Vec<(Vec<u8>, u32)>> {
    let mut out = Vec::with_capacity(entries.len());
    let mut seen_key = rustc_hash::FxHashMap::default();
    for (k, v) in entries {
        let id = v
            .as_u64()
            .filter(|&i| i <= u32::MAX as u64)
            .ok_or_else(|| {
                Error::format(
                    name,
                    line_of_json_key(text, &k, 0),
                    format!("token {k:?} has id {v}, not an integer id"),
                )
            })? as u32;
        let nth = seen_key.entry(k.clone()).or_insert(0usize);
        if *nth > 0 {
            return Err(Error::format(
                name,
                line_of_json_key(text, &k, *nth),
                format!("token {k:?} appears twice"),
            ));
        }
        *nth += 1;
        let bytes = bytelevel::decode_token(&k).ok_or_else(|| {
            Error::format(
                name,
                line_of_json_key(text, &k, 0),
                format!("token {k:?} has a char outside the byte-level alphabet"),
            )
        })?;
        out.push((bytes, id));
    }
    Ok(out)
}

fn build_bpe(
    entries: Vec<(Vec<u8>, u32)>,
    merges: &[(Vec<u8>, Vec<u8>)],
    merge_line: &dyn Fn(usize) -> usize,
    vocab_text: &[u8],
    vocab_name: &str,
    merges_name: &str,
) -> Result<Bpe> {
    Bpe::new(entries, merges).map_err(|e| match e {
        BuildError::DuplicateToken { id, other } => Error::format(
            vocab_name,
            find_id_line(vocab_text, id, 1),
            if id == other {
                format!("id {id} is given to two tokens")
            } else {
                format!("tokens {id} and {other} are the same byte string")
            },
        ),
        BuildError::EmptyToken { id } => Error::format(vocab_name, find_id_line(vocab_text, id, 0), format!("token {id} is empty")),
        BuildError::MissingByte(b) => Error::format(
            vocab_name,
            0,
            format!("the vocabulary has no token for byte 0x{b:02x} ({:?}); a byte-level BPE needs all 256", bytelevel::encode_token(&[b])),
        ),
        BuildError::UnknownMergePart { rank, part } => Error::format(
            merges_name,
            merge_line(rank),
            format!("merge names {:?}, which is not in the vocabulary", bytelevel::encode_token(&part)),
        ),
        BuildError::UnknownMergeResult { rank, merged } => Error::format(
            merges_name,
            merge_line(rank),
            format!("merge produces {:?}, which is not in the vocabulary", bytelevel::encode_token(&merged)),
        ),
    })
}

/// Line of the `nth` (0-based) JSON entry whose value is the integer `id`, or 0.
fn find_id_line(text: &[u8], id: u32, nth: usize) -> usize {
    let needle = format!(": {id}");
    let mut seen = 0;
    let mut from = 0;
    while let Some(off) = find(&text[from..], needle.as_bytes()) {
        let at = from + off;
        let after = text.get(at + needle.len()).copied().unwrap_or(b',');
        if !after.is_ascii_digit() {
            if seen == nth {
                return line_at(text, at);
            }
            seen += 1;
        }
        from = at + 1;
    }
    0
}

type MergeList = Vec<(Vec<u8>, Vec<u8>)>;

fn parse_merges_txt(data: &[u8], name: &str) -> Result<(MergeList, Vec<usize>)> {
    let text = utf8(data, name)?;
    let mut merges = Vec::with_capacity(text.len() / 11);
    let mut lines = Vec::with_capacity(text.len() / 11);
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if (i == 0 && line.starts_with("#version")) || line.is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        let (a, b) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => (a, b),
            _ => {
                return Err(Error::format(
                    name,
                    i + 1,
                    format!("expected two tokens separated by one space, got {line:?}"),
                ))
            }
        };
        let dec = |t: &str| {
            bytelevel::decode_token(t).ok_or_else(|| {
                Error::format(
                    name,
                    i + 1,
                    format!("token {t:?} has a char outside the byte-level alphabet"),
                )
            })
        };
        merges.push((dec(a)?, dec(b)?));
        lines.push(i + 1);
    }
    Ok((merges, lines))
}

/// What `tokenizer_config.json` contributes: added tokens and the tokenizer class.
struct Config {
    added: Vec<AddedToken>,
    class: Option<String>,
    text: String,
}

fn parse_config(data: &[u8], name: &str) -> Result<Config> {
    let text = utf8(data, name)?.to_string();
    let v: Value = serde_json::from_str(&text).map_err(|e| json_error(name, e))?;
    let mut added = Vec::new();
    if let Some(dec) = v.get("added_tokens_decoder").and_then(Value::as_object) {
        for (k, spec) in dec {
            let line = line_of_json_key(data, k, 0);
            let id: u32 = k.parse().map_err(|_| {
                Error::format(
                    name,
                    line,
                    format!("added_tokens_decoder key {k:?} is not an id"),
                )
            })?;
            added.push(parse_added(spec, id, name, line)?);
        }
    }
    let class = v
        .get("tokenizer_class")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Config { added, class, text })
}

fn parse_added(spec: &Value, id: u32, name: &str, line: usize) -> Result<AddedToken> {
    let content = spec
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::format(name, line, format!("added token {id} has no \"content\"")))?
        .to_string();
    for flag in ["lstrip", "rstrip", "single_word"] {
        if spec.get(flag).and_then(Value::as_bool).unwrap_or(false) {
            return Err(Error::format(
                name,
                line,
                format!("added token {content:?} sets {flag}=true, which qwen25 does not support"),
            ));
        }
    }
    let special = spec
        .get("special")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(AddedToken {
        content,
        id,
        special,
    })
}

fn pattern_for_class(class: Option<&str>, name: &str) -> Result<(Pattern, bool)> {
    match class {
        None => Ok((Pattern::Qwen2, true)),
        Some(c) if c.starts_with("Qwen2Tokenizer") || c.starts_with("Qwen3Tokenizer") => Ok((Pattern::Qwen2, true)),
        Some(c) if c.starts_with("GPT2Tokenizer") => Ok((Pattern::Gpt2, false)),
        Some(c) => Err(Error::format(
            name,
            0,
            format!("tokenizer_class {c:?}: without tokenizer.json only Qwen2Tokenizer and GPT2Tokenizer folders can be read"),
        )),
    }
}

pub fn from_vocab_merges(
    vocab: &[u8],
    vocab_name: &str,
    merges: &[u8],
    merges_name: &str,
    config: Option<(&[u8], &str)>,
) -> Result<Tokenizer> {
    let entries: Entries = serde_json::from_slice(vocab).map_err(|e| json_error(vocab_name, e))?;
    let entries = vocab_entries(entries.0, vocab, vocab_name)?;
    let (merge_list, merge_lines) = parse_merges_txt(merges, merges_name)?;
    let line_of = |rank: usize| merge_lines.get(rank).copied().unwrap_or(0);
    let bpe = build_bpe(
        entries,
        &merge_list,
        &line_of,
        vocab,
        vocab_name,
        merges_name,
    )?;
    let (added, pattern, nfc, text) = match config {
        Some((data, name)) => {
            let cfg = parse_config(data, name)?;
            let (p, nfc) = pattern_for_class(cfg.class.as_deref(), name)?;
            (cfg.added, p, nfc, Some(cfg.text))
        }
        None => (Vec::new(), Pattern::Qwen2, true, None),
    };
    Tokenizer::new(bpe, pattern, nfc, added, text)
}

/// Read the normaliser and pre-tokenizer of a `tokenizer.json` into (pattern, nfc).
fn pipeline_of(v: &Value, name: &str, text: &[u8]) -> Result<(Pattern, bool)> {
    let line = |key: &str| line_of_json_key(text, key, 0);
    let nfc = match v.get("normalizer") {
        None | Some(Value::Null) => false,
        Some(n) => match n.get("type").and_then(Value::as_str) {
            Some("NFC") => true,
            Some("Sequence")
                if n.get("normalizers")
                    .and_then(Value::as_array)
                    .map(|a| a.is_empty())
                    .unwrap_or(false) =>
            {
                false
            }
            Some("Sequence")
                if n.get("normalizers").and_then(Value::as_array).map(|a| {
                    a.len() == 1 && a[0].get("type").and_then(Value::as_str) == Some("NFC")
                }) == Some(true) =>
            {
                true
            }
            _ => {
                return Err(Error::format(
                    name,
                    line("normalizer"),
                    format!("unsupported normalizer {n}; qwen25 reads NFC or none"),
                ))
            }
        },
    };
    let pt = v.get("pre_tokenizer").cloned().unwrap_or(Value::Null);
    let unsupported = || {
        Error::format(
            name,
            line("pre_tokenizer"),
            format!("unsupported pre_tokenizer {pt}; qwen25 reads the Qwen2 and GPT-2 byte-level patterns"),
        )
    };
    let ty = pt.get("type").and_then(Value::as_str);
    let pattern = match ty {
        Some("ByteLevel") => {
            if pt.get("use_regex").and_then(Value::as_bool) != Some(true)
                || pt.get("add_prefix_space").and_then(Value::as_bool) == Some(true)
            {
                return Err(unsupported());
            }
            Pattern::Gpt2
        }
        Some("Sequence") => {
            let items = pt
                .get("pretokenizers")
                .and_then(Value::as_array)
                .ok_or_else(unsupported)?;
            if items.len() != 2 {
                return Err(unsupported());
            }
            let split = &items[0];
            let bl = &items[1];
            let re = split
                .get("pattern")
                .and_then(|p| p.get("Regex"))
                .and_then(Value::as_str);
            let ok = split.get("type").and_then(Value::as_str) == Some("Split")
                && split.get("behavior").and_then(Value::as_str) == Some("Isolated")
                && split.get("invert").and_then(Value::as_bool) != Some(true)
                && bl.get("type").and_then(Value::as_str) == Some("ByteLevel")
                && bl.get("use_regex").and_then(Value::as_bool) == Some(false)
                && bl.get("add_prefix_space").and_then(Value::as_bool) != Some(true);
            match (ok, re.and_then(Pattern::from_regex)) {
                (true, Some(p)) => p,
                _ => return Err(unsupported()),
            }
        }
        _ => return Err(unsupported()),
    };
    Ok((pattern, nfc))
}

pub fn from_tokenizer_json(
    data: &[u8],
    name: &str,
    config: Option<(&[u8], &str)>,
) -> Result<Tokenizer> {
    let v: Value = serde_json::from_slice(data).map_err(|e| json_error(name, e))?;
    let model = v
        .get("model")
        .ok_or_else(|| Error::format(name, 0, "no \"model\" section"))?;
    let line = |key: &str| line_of_json_key(data, key, 0);
    match model.get("type").and_then(Value::as_str) {
        Some("BPE") | None => {}
        Some(t) => {
            return Err(Error::format(
                name,
                line("type"),
                format!("model type {t:?}; qwen25 reads BPE models"),
            ))
        }
    }
    if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
        return Err(Error::format(
            name,
            line("byte_fallback"),
            "byte_fallback=true is not a byte-level BPE",
        ));
    }
    if model.get("ignore_merges").and_then(Value::as_bool) == Some(true) {
        return Err(Error::format(
            name,
            line("ignore_merges"),
            "ignore_merges=true is not supported",
        ));
    }
    let (pattern, nfc) = pipeline_of(&v, name, data)?;
    let vocab_obj = model
        .get("vocab")
        .ok_or_else(|| Error::format(name, line("model"), "model has no \"vocab\""))?;
    let entries: Vec<(String, Value)> = match vocab_obj {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => {
            return Err(Error::format(
                name,
                line("vocab"),
                "\"vocab\" is not an object",
            ))
        }
    };
    let entries = vocab_entries(entries, data, name)?;
    let raw_merges = model
        .get("merges")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut merges = Vec::with_capacity(raw_merges.len());
    for (i, m) in raw_merges.iter().enumerate() {
        let (a, b) = match m {
            Value::String(s) => match s.split_once(' ') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                    (a.to_string(), b.to_string())
                }
                _ => {
                    return Err(Error::format(
                        name,
                        0,
                        format!("merge {i} ({s:?}) is not two tokens"),
                    ))
                }
            },
            Value::Array(p) if p.len() == 2 && p[0].is_string() && p[1].is_string() => (
                p[0].as_str().unwrap_or("").to_string(),
                p[1].as_str().unwrap_or("").to_string(),
            ),
            _ => {
                return Err(Error::format(
                    name,
                    0,
                    format!("merge {i} ({m}) is not a pair of tokens"),
                ))
            }
        };
        let dec = |t: &str| {
            bytelevel::decode_token(t).ok_or_else(|| {
                Error::format(
                    name,
                    0,
                    format!("merge {i}: token {t:?} is outside the byte-level alphabet"),
                )
            })
        };
        merges.push((dec(&a)?, dec(&b)?));
    }
    // Only computed for an error: the line of the merge's left token after the "merges" key.
    let merges_start = find(data, b"\"merges\"").unwrap_or(0);
    let line_of = |rank: usize| {
        let a = raw_merges.get(rank).map(|m| match m {
            Value::String(s) => s.split(' ').next().unwrap_or("").to_string(),
            Value::Array(p) => p.first().and_then(Value::as_str).unwrap_or("").to_string(),
            _ => String::new(),
        });
        let needle = serde_json::to_string(&a.unwrap_or_default()).unwrap_or_default();
        let needle = needle.trim_end_matches('"');
        find(&data[merges_start..], needle.as_bytes())
            .map(|off| line_at(data, merges_start + off))
            .unwrap_or(0)
    };
    let bpe = build_bpe(entries, &merges, &line_of, data, name, name)?;
    let mut added = Vec::new();
    if let Some(list) = v.get("added_tokens").and_then(Value::as_array) {
        for a in list {
            let id = a.get("id").and_then(Value::as_u64).ok_or_else(|| {
                Error::format(
                    name,
                    line("added_tokens"),
                    format!("added token without an id: {a}"),
                )
            })?;
            let content = a.get("content").and_then(Value::as_str).unwrap_or("");
            added.push(parse_added(
                a,
                id as u32,
                name,
                line_of_json_key(data, content, 0),
            )?);
        }
    }
    let text = match config {
        Some((c, cname)) => Some(utf8(c, cname)?.to_string()),
        None => None,
    };
    Tokenizer::new(bpe, pattern, nfc, added, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_loads_with_the_published_sizes() {
        let t = embedded_qwen25().unwrap();
        assert_eq!(t.bpe().len(), 151_643);
        assert_eq!(t.bpe().merges().len(), 151_387);
        assert_eq!(t.added_tokens().len(), 22);
        assert_eq!(t.vocab_size(), 151_665);
        assert_eq!(t.token_to_id("<|endoftext|>"), Some(151_643));
        assert_eq!(t.token_to_id("<|file_sep|>"), Some(151_664));
        // the transformers Qwen2Tokenizer docstring values
        assert_eq!(t.encode_ordinary("Hello world"), vec![9707, 1879]);
        assert_eq!(t.encode_ordinary(" Hello world"), vec![21927, 1879]);
    }

    #[test]
    fn embedded_blob_equals_the_shipped_files() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/qwen25");
        let from_files = from_dir(&data).unwrap();
        let embedded = embedded_qwen25().unwrap();
        assert_eq!(from_files.bpe().merges(), embedded.bpe().merges());
        assert_eq!(from_files.vocab_size(), embedded.vocab_size());
        for id in 0..embedded.vocab_size() as u32 {
            assert_eq!(
                from_files.bpe().token_bytes(id),
                embedded.bpe().token_bytes(id)
            );
            assert_eq!(from_files.id_to_token(id), embedded.id_to_token(id));
        }
        assert_eq!(from_files.added_tokens(), embedded.added_tokens());
    }

    #[test]
    fn bad_merges_name_file_and_line() {
        let vocab = br#"{"a": 0}"#;
        let e = from_vocab_merges(vocab, "v.json", b"#version: 0.2\na b\n", "m.txt", None)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "m.txt:2: merge names \"b\", which is not in the vocabulary"
        );
        let e = from_vocab_merges(vocab, "v.json", b"#version: 0.2\n", "m.txt", None)
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .starts_with("v.json: the vocabulary has no token for byte 0x00"),
            "{e}"
        );
        let mut v = String::from("{");
        for b in 0..=255u8 {
            v.push_str(&format!(
                "{}: {},",
                serde_json::to_string(&bytelevel::encode_token(&[b])).unwrap(),
                b
            ));
        }
        v.push_str("\"ab\": 256}");
        let e = from_vocab_merges(
            v.as_bytes(),
            "v.json",
            b"#version: 0.2\na b\na c\n",
            "m.txt",
            None,
        )
        .err()
        .unwrap();
        assert_eq!(
            e.to_string(),
            "m.txt:3: merge produces \"ac\", which is not in the vocabulary"
        );
        let e = from_vocab_merges(v.as_bytes(), "v.json", b"a b\nab  x\n", "m.txt", None)
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("m.txt:2:"), "{e}");
    }
}
