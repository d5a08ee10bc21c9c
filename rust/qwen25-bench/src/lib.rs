//! Criterion benchmarks of qwen25-core live in `benches/` (`cargo bench -p qwen25-bench`): the
//! tokenizer, the quality filters, dedup and decontamination, without Python in the way. This
//! library holds the synthetic corpus they share.

/// `n` prose-like documents of about `lines` lines each, from a fixed generator (the same
/// documents every run): words from a small vocabulary with stop words, sentence ends, some
/// repeated lines and a few code-like lines.
pub fn corpus(n: usize, lines: usize) -> Vec<String> {
    const VOCAB: [&str; 24] = [
        "the",
        "of",
        "and",
        "to",
        "with",
        "river",
        "market",
        "garden",
        "bread",
        "winter",
        "children",
        "story",
        "people",
        "history",
        "number",
        "system",
        "because",
        "through",
        "between",
        "different",
        "important",
        "government",
        "university",
        "information",
    ];
    let mut rng = qwen25_core::lcg::Lcg(0x2545_f491_4f6c_dd1d);
    let mut next = move |m: usize| rng.below(m);
    (0..n)
        .map(|_| {
            let mut d = String::new();
            let mut last = String::new();
            for _ in 0..lines {
                if next(10) == 0 && !last.is_empty() {
                    d.push_str(&last.clone());
                    continue;
                }
                let mut line = String::new();
                if next(15) == 0 {
                    line.push_str("    x = f(a, b)  # code-like\n");
                } else {
                    for w in 0..(6 + next(14)) {
                        if w > 0 {
                            line.push(' ');
                        }
                        line.push_str(VOCAB[next(VOCAB.len())]);
                    }
                    line.push_str(if next(4) == 0 { ", and so on\n" } else { ".\n" });
                }
                d.push_str(&line);
                last = line;
            }
            d
        })
        .collect()
}

/// Total bytes of `docs`.
pub fn bytes(docs: &[String]) -> u64 {
    docs.iter().map(|d| d.len() as u64).sum()
}
