//! `cargo bench -p qwen25-bench`: the core tokenizer without Python in the way.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qwen25_core::tokenizer::Tokenizer;

fn sample() -> String {
    let prose =
        "The quick brown fox jumps over the lazy dog. It's 2024, and we'll see 3.14159 apples! ";
    let code =
        "fn main() {\n    let x: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", x);\n}\n";
    let zh = "通义千问是阿里云研发的大语言模型，支持多种语言。今天天气很好。";
    let mut s = String::new();
    for _ in 0..200 {
        s.push_str(prose);
        s.push_str(code);
        s.push_str(zh);
    }
    s
}

fn bench(c: &mut Criterion) {
    let tok = Tokenizer::qwen25().expect("embedded tokenizer");
    let text = sample();
    let mut g = c.benchmark_group("tokenizer");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("encode_ordinary", |b| b.iter(|| tok.encode_ordinary(&text)));
    let ids = tok.encode_ordinary(&text);
    g.bench_function("decode", |b| b.iter(|| tok.decode_to_bytes(&ids, false)));
    g.finish();
    c.bench_function("load_qwen25", |b| {
        b.iter(|| Tokenizer::qwen25().expect("load"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
