//! Exact deduplication: xxh3-128 of the normalised text; the first occurrence in input order is
//! kept. State carries across batches (and so across shards fed one after another), so the result
//! never depends on how the input was cut into batches.

use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_128;

use super::normalize::{normalize, NormConfig};
use crate::parallel;

/// xxh3-128 of `text` after `cfg`.
pub fn exact_hash(text: &str, cfg: &NormConfig) -> u128 {
    xxh3_128(normalize(text, cfg).as_bytes())
}

/// Streaming exact deduplicator. Memory: one map entry (~40 bytes) per distinct document.
#[derive(Debug)]
pub struct ExactDedup {
    norm: NormConfig,
    /// hash -> (index of the first occurrence, number of occurrences)
    seen: FxHashMap<u128, (u64, u64)>,
    n: u64,
}

impl ExactDedup {
    pub fn new(norm: NormConfig) -> Self {
        ExactDedup {
            norm,
            seen: FxHashMap::default(),
            n: 0,
        }
    }

    pub fn norm(&self) -> &NormConfig {
        &self.norm
    }

    /// Documents seen so far.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Distinct documents seen so far.
    pub fn n_unique(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Add a batch; returns, for each text, the global index of the first occurrence of its
    /// normalised content (its cluster id). A text is kept when that equals its own index.
    pub fn add_batch<S: AsRef<str> + Sync>(&mut self, texts: &[S], threads: usize) -> Vec<u64> {
        let norm = self.norm;
        let hashes = parallel::map(texts, threads, |t| exact_hash(t.as_ref(), &norm));
        self.add_hashes(&hashes)
    }

    /// Add precomputed hashes (as from [`exact_hash`]) in input order.
    pub fn add_hashes(&mut self, hashes: &[u128]) -> Vec<u64> {
        let mut out = Vec::with_capacity(hashes.len());
        for h in hashes {
            let idx = self.n;
            self.n += 1;
            let e = self.seen.entry(*h).or_insert((idx, 0));
            e.1 += 1;
            out.push(e.0);
        }
        out
    }

    /// (first index, size) of every cluster with more than `min_size` members, by first index.
    pub fn cluster_sizes(&self, min_size: u64) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self
            .seen
            .values()
            .filter(|(_, c)| *c >= min_size)
            .copied()
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_kept_any_batching() {
        let texts = ["a", "b", "a", "c", "b", "a"];
        let mut d = ExactDedup::new(NormConfig::NONE);
        let all = d.add_batch(&texts, 1);
        assert_eq!(all, vec![0, 1, 0, 3, 1, 0]);
        let mut d2 = ExactDedup::new(NormConfig::NONE);
        let mut parts = d2.add_batch(&texts[..2], 2);
        parts.extend(d2.add_batch(&texts[2..], 2));
        assert_eq!(parts, all);
        assert_eq!(d.cluster_sizes(1), vec![(0, 3), (1, 2), (3, 1)]);
    }

    #[test]
    fn normalised() {
        let mut d = ExactDedup::new(NormConfig::FINEWEB);
        assert_eq!(
            d.add_batch(&["Hello, world", "hello   WORLD!"], 1),
            vec![0, 0]
        );
    }
}
