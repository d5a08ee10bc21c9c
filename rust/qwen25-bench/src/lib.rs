//! Criterion benchmarks of qwen25-core live in `benches/`.
