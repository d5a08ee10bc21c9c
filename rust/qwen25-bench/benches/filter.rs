//! The quality filters (the speed "test" that lived in `filter/mod.rs`): all filters, each alone,
//! and the batch on 1 and 2 threads. `QWEN25_FILTER_BENCH=FILE` reads NUL-separated documents
//! instead of the synthetic corpus.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qwen25_bench::{bytes, corpus};
use qwen25_core::filter::{apply, apply_batch, FilterConfig};

fn docs() -> Vec<String> {
    match std::env::var("QWEN25_FILTER_BENCH") {
        Ok(p) => std::fs::read_to_string(p)
            .expect("QWEN25_FILTER_BENCH names a readable file")
            .split('\0')
            .map(str::to_string)
            .collect(),
        Err(_) => corpus(1000, 15),
    }
}

fn only(name: &str) -> FilterConfig {
    let all = FilterConfig::default();
    let none = FilterConfig {
        gopher_repetition: None,
        gopher_quality: None,
        c4: None,
        fineweb: None,
    };
    match name {
        "gopher_repetition" => FilterConfig {
            gopher_repetition: all.gopher_repetition,
            ..none
        },
        "gopher_quality" => FilterConfig {
            gopher_quality: all.gopher_quality,
            ..none
        },
        "c4" => FilterConfig { c4: all.c4, ..none },
        "fineweb" => FilterConfig {
            fineweb: all.fineweb,
            ..none
        },
        _ => all,
    }
}

fn bench(c: &mut Criterion) {
    let docs = docs();
    let mut g = c.benchmark_group("filter");
    g.throughput(Throughput::Bytes(bytes(&docs)));
    g.sample_size(10);
    for name in [
        "all",
        "gopher_repetition",
        "gopher_quality",
        "c4",
        "fineweb",
    ] {
        let cfg = only(name);
        g.bench_function(name, |b| {
            b.iter(|| {
                for d in &docs {
                    std::hint::black_box(apply(d, &cfg));
                }
            })
        });
    }
    let cfg = FilterConfig::default();
    for threads in [1, 2] {
        g.bench_function(format!("batch_{threads}_threads"), |b| {
            b.iter(|| apply_batch(&docs, &cfg, threads))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
