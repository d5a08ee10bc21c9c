//! Precompile the embedded Qwen2.5 vocabulary (data/qwen25/) into a compact binary blob, so
//! `Tokenizer::qwen25()` loads without parsing 4 MB of JSON and text at run time.
//!
//! Blob layout (little endian): b"Q25V", n_ids: u32, then per id: len: u16, bytes;
//! n_merges: u32, then per merge in rank order: left: u32, right: u32, merged: u32.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

#[allow(dead_code)]
#[path = "src/tokenizer/bytelevel.rs"]
mod bytelevel;

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let data = root.join("data").join("qwen25");
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json"] {
        println!("cargo:rerun-if-changed=data/qwen25/{f}");
    }
    println!("cargo:rerun-if-changed=src/tokenizer/bytelevel.rs");
    let vocab_text =
        std::fs::read_to_string(data.join("vocab.json")).expect("read data/qwen25/vocab.json");
    let vocab: HashMap<String, u32> =
        serde_json::from_str(&vocab_text).expect("parse data/qwen25/vocab.json");
    let n_ids = vocab.values().map(|&i| i as usize + 1).max().unwrap_or(0);
    let mut tokens: Vec<Option<Vec<u8>>> = vec![None; n_ids];
    let mut by_bytes: HashMap<Vec<u8>, u32> = HashMap::new();
    for (k, &id) in &vocab {
        let b = bytelevel::decode_token(k).expect("vocab token outside the byte-level alphabet");
        assert!(tokens[id as usize].is_none(), "duplicate id {id}");
        by_bytes.insert(b.clone(), id);
        tokens[id as usize] = Some(b);
    }
    let merges_text =
        std::fs::read_to_string(data.join("merges.txt")).expect("read data/qwen25/merges.txt");
    let mut merges = Vec::new();
    for (i, line) in merges_text.lines().enumerate() {
        if (i == 0 && line.starts_with("#version")) || line.is_empty() {
            continue;
        }
        let (a, b) = line.split_once(' ').expect("merge line with two tokens");
        let a = bytelevel::decode_token(a).expect("merge token");
        let b = bytelevel::decode_token(b).expect("merge token");
        let mut m = a.clone();
        m.extend_from_slice(&b);
        merges.push((by_bytes[&a], by_bytes[&b], by_bytes[&m]));
    }
    let mut blob = Vec::with_capacity(4 << 20);
    blob.extend_from_slice(b"Q25V");
    blob.extend_from_slice(&(n_ids as u32).to_le_bytes());
    for t in &tokens {
        let t = t.as_deref().unwrap_or(&[]);
        blob.extend_from_slice(&(t.len() as u16).to_le_bytes());
        blob.extend_from_slice(t);
    }
    blob.extend_from_slice(&(merges.len() as u32).to_le_bytes());
    for (a, b, m) in merges {
        for x in [a, b, m] {
            blob.extend_from_slice(&x.to_le_bytes());
        }
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("qwen25_vocab.bin");
    std::fs::File::create(&out)
        .and_then(|mut f| f.write_all(&blob))
        .expect("write the vocabulary blob");
}
