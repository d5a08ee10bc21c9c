//! Time the stages of a MinHash signature with datatrove's shingling on a corpus file (texts
//! separated by NUL bytes): `simplify_text`, the spaCy word split (`words`, the rules' path,
//! and `word_spans`, the split MinHash uses), and whole signatures.
//!
//!     cargo run --release -p qwen25-bench --example minhash_stages -- texts.bin [repeat] [simplify|words|word_spans|signatures]
use std::time::Instant;

use qwen25_core::dedup::{simplify_text, MinHashConfig, MinHasher};
use qwen25_core::filter::spacy;

/// CPU seconds this thread has run (Linux's schedstat; wall-clock time elsewhere), so that
/// timings on a loaded machine count this thread's work, not its waits.
fn cpu_now(wall: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(|| wall.elapsed().as_secs_f64(), |ns| ns as f64 * 1e-9)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: minhash_stages TEXTS [REPEAT] [STAGE]");
    let repeat: usize = args
        .next()
        .map_or(3, |r| r.parse().expect("REPEAT is a number"));
    let stage = args.next().unwrap_or_default();
    let raw = std::fs::read(&path).expect("read the corpus");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let texts: Vec<&str> = raw.split('\0').collect();
    let mb = raw.len() as f64 / 1e6;
    let simplified: Vec<String> = texts.iter().map(|t| simplify_text(t)).collect();
    let h = MinHasher::new(MinHashConfig::default()).expect("default config");
    let start = Instant::now();
    let run = |name: &str, f: &mut dyn FnMut() -> usize| {
        if !stage.is_empty() && stage != name {
            return;
        }
        let mut ts = Vec::new();
        let mut n = 0;
        for _ in 0..repeat {
            let t0 = cpu_now(start);
            n = f();
            ts.push(cpu_now(start) - t0);
        }
        let t = median(ts);
        println!("{name:12} {t:7.3} s  {:7.1} MB/s  ({n})", mb / t);
    };
    run("simplify", &mut || {
        texts.iter().map(|t| simplify_text(t).len()).sum()
    });
    run("words", &mut || {
        simplified.iter().map(|t| spacy::words(t).len()).sum()
    });
    run("word_spans", &mut || {
        let mut n = 0;
        for t in &simplified {
            spacy::word_spans(t, |_, _| n += 1);
        }
        n
    });
    run("signatures", &mut || h.signatures(&texts, 1).len());
}
