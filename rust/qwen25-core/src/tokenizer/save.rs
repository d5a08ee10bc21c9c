//! Writing a tokenizer as HF files that `tokenizers` and `transformers` load unchanged:
//! `tokenizer.json`, `vocab.json`, `merges.txt` and `tokenizer_config.json`.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use super::bytelevel::encode_token;
use super::pretok::Pattern;
use super::Tokenizer;
use crate::error::{Error, Result};

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `vocab.json` text: byte-level token strings to ids, in id order.
pub fn vocab_json(tok: &Tokenizer) -> String {
    let bpe = tok.bpe();
    let mut s = String::with_capacity(bpe.len() * 20);
    s.push('{');
    let mut first = true;
    for id in 0..bpe.n_ids() as u32 {
        if let Some(b) = bpe.token_bytes(id) {
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str(&q(&encode_token(b)));
            s.push(':');
            s.push_str(&id.to_string());
        }
    }
    s.push('}');
    s
}

/// `merges.txt` text, with the `#version: 0.2` header.
pub fn merges_txt(tok: &Tokenizer) -> String {
    let bpe = tok.bpe();
    let mut s = String::from("#version: 0.2\n");
    for &(a, b, _) in bpe.merges() {
        s.push_str(&encode_token(bpe.token_bytes(a).unwrap_or(&[])));
        s.push(' ');
        s.push_str(&encode_token(bpe.token_bytes(b).unwrap_or(&[])));
        s.push('\n');
    }
    s
}

fn added_tokens_json(tok: &Tokenizer) -> Vec<Value> {
    tok.added_tokens()
        .iter()
        .map(|a| {
            json!({"id": a.id, "content": a.content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": a.special})
        })
        .collect()
}

/// `tokenizer.json` text in the HF tokenizers format.
pub fn tokenizer_json(tok: &Tokenizer) -> String {
    let bl = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": use_regex});
    let (normalizer, pre) = match tok.pattern() {
        Pattern::Qwen2 => (
            if tok.nfc() {
                json!({"type": "NFC"})
            } else {
                Value::Null
            },
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": Pattern::Qwen2.regex()}, "behavior": "Isolated", "invert": false},
                bl(false)]}),
        ),
        Pattern::Gpt2 => (
            if tok.nfc() {
                json!({"type": "NFC"})
            } else {
                Value::Null
            },
            bl(true),
        ),
    };
    let head = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens_json(tok),
        "normalizer": normalizer,
        "pre_tokenizer": pre,
        "post_processor": bl(false),
        "decoder": bl(false),
    });
    let bpe = tok.bpe();
    // The model section is written by hand to keep the vocabulary in id order.
    let mut merges = String::with_capacity(bpe.merges().len() * 16);
    for (i, &(a, b, _)) in bpe.merges().iter().enumerate() {
        if i > 0 {
            merges.push(',');
        }
        merges.push('[');
        merges.push_str(&q(&encode_token(bpe.token_bytes(a).unwrap_or(&[]))));
        merges.push(',');
        merges.push_str(&q(&encode_token(bpe.token_bytes(b).unwrap_or(&[]))));
        merges.push(']');
    }
    let model = format!(
        "{{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\",\
         \"end_of_word_suffix\":\"\",\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\
         \"vocab\":{},\"merges\":[{}]}}",
        vocab_json(tok),
        merges
    );
    let mut s = serde_json::to_string(&head).unwrap_or_default();
    s.pop(); // the closing brace
    s.push_str(",\"model\":");
    s.push_str(&model);
    s.push('}');
    s
}

/// `tokenizer_config.json` text: the one the tokenizer was loaded with, else a fresh one.
pub fn tokenizer_config_json(tok: &Tokenizer) -> String {
    if let Some(c) = tok.config_json() {
        return c.to_string();
    }
    let mut dec = serde_json::Map::new();
    for a in tok.added_tokens() {
        dec.insert(
            a.id.to_string(),
            json!({"content": a.content, "lstrip": false, "normalized": false, "rstrip": false,
                   "single_word": false, "special": a.special}),
        );
    }
    let class = match tok.pattern() {
        Pattern::Qwen2 => "Qwen2Tokenizer",
        Pattern::Gpt2 => "GPT2Tokenizer",
    };
    let first_special = tok
        .added_tokens()
        .iter()
        .find(|a| a.special)
        .map(|a| a.content.clone());
    serde_json::to_string_pretty(&json!({
        "add_prefix_space": false,
        "added_tokens_decoder": dec,
        "bos_token": null,
        "clean_up_tokenization_spaces": false,
        "eos_token": first_special,
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": first_special,
        "split_special_tokens": false,
        "tokenizer_class": class,
        "unk_token": null,
    }))
    .unwrap_or_default()
}

fn write(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Write the four files into `dir` (created if missing).
pub fn save_pretrained(tok: &Tokenizer, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write(&dir.join("tokenizer.json"), &tokenizer_json(tok))?;
    write(&dir.join("vocab.json"), &vocab_json(tok))?;
    write(&dir.join("merges.txt"), &merges_txt(tok))?;
    write(
        &dir.join("tokenizer_config.json"),
        &tokenizer_config_json(tok),
    )?;
    Ok(())
}
