//! Decontamination: a batch checked against 200 test items, in `ngram` mode (word 13-grams) and
//! in `qwen` mode (token 13-grams, then the LCS rule) with the embedded tokenizer.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qwen25_bench::{bytes, corpus};
use qwen25_core::decontam::{Config, Decontaminator, Input, Mode};
use qwen25_core::tokenizer::Tokenizer;

fn bench(c: &mut Criterion) {
    let docs = corpus(300, 15);
    let test: Vec<String> = corpus(1200, 3).into_iter().skip(1000).collect();
    let test_in: Vec<Input<'_>> = test.iter().map(|t| Input::Text(t)).collect();
    let batch: Vec<Input<'_>> = docs.iter().map(|t| Input::Text(t)).collect();
    let tok = Tokenizer::qwen25().expect("embedded tokenizer");
    let mut g = c.benchmark_group("decontam");
    g.throughput(Throughput::Bytes(bytes(&docs)));
    g.sample_size(10);
    for mode in [Mode::Ngram, Mode::Qwen] {
        let cfg = Config {
            mode,
            ..Config::default()
        };
        let d = Decontaminator::new(cfg, &test_in, Some(&tok), 1).expect("test set");
        g.bench_function(format!("{mode:?}").to_lowercase(), |b| {
            b.iter(|| d.check(&batch, Some(&tok), false, 1).expect("check"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
