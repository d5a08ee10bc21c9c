//! Dedup: exact hashes, MinHash signatures (FineWeb's 14 x 8, 5-grams) and the whole MinHash
//! clustering (signatures, LSH bands, union-find).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qwen25_bench::{bytes, corpus};
use qwen25_core::dedup::{ExactDedup, MinHashConfig, MinHashDedup, MinHasher, NormConfig};

fn bench(c: &mut Criterion) {
    let docs = corpus(1000, 15);
    let mut g = c.benchmark_group("dedup");
    g.throughput(Throughput::Bytes(bytes(&docs)));
    g.sample_size(10);
    g.bench_function("exact", |b| {
        b.iter(|| ExactDedup::new(NormConfig::FINEWEB).add_batch(&docs, 1))
    });
    let h = MinHasher::new(MinHashConfig::default()).expect("default MinHash config");
    g.bench_function("minhash_signatures", |b| b.iter(|| h.signatures(&docs, 1)));
    g.bench_function("minhash_dedup", |b| {
        b.iter(|| {
            let mut d = MinHashDedup::new(MinHashConfig::default(), 1 << 30, None)
                .expect("default MinHash config");
            d.add_texts(&docs, 1).expect("in memory");
            d.finish().expect("in memory")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
