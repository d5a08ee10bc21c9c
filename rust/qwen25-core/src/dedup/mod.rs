//! Deduplication: exact (xxh3-128 of normalised text) and near-duplicate (MinHash + LSH banding +
//! union-find). Both are streaming: feed batches in input order, read results at the end (near)
//! or per batch (exact). Results never depend on thread count, batch size or spill points.

pub mod exact;
pub mod lsh;
pub mod minhash;
pub mod normalize;

pub use exact::{exact_hash, ExactDedup};
pub use lsh::{LshClusterer, Survivor, UnionFind};
pub use minhash::{jaccard_estimate, shingle_hash, shingles, MinHashConfig, MinHasher};
pub use normalize::{normalize, simplify_text, NormConfig};

use std::path::PathBuf;

use crate::error::Result;
use crate::parallel;

/// Streaming MinHash near-dedup: signatures and band keys per batch (in parallel), clustering
/// at [`MinHashDedup::finish`].
#[derive(Debug)]
pub struct MinHashDedup {
    hasher: MinHasher,
    lsh: LshClusterer,
}

impl MinHashDedup {
    pub fn new(cfg: MinHashConfig, mem_budget: usize, spill_dir: Option<PathBuf>) -> Result<Self> {
        let bands = cfg.bands;
        let hasher = MinHasher::new(cfg)?;
        Ok(MinHashDedup {
            hasher,
            lsh: LshClusterer::new(bands, mem_budget, spill_dir)?,
        })
    }

    pub fn hasher(&self) -> &MinHasher {
        &self.hasher
    }

    pub fn n_docs(&self) -> u64 {
        self.lsh.n_docs()
    }

    pub fn n_spills(&self) -> usize {
        self.lsh.n_spills()
    }

    /// Add a batch of texts; returns their signatures (row-major, n x num_perm).
    pub fn add_texts<S: AsRef<str> + Sync>(
        &mut self,
        texts: &[S],
        threads: usize,
    ) -> Result<Vec<u32>> {
        let np = self.hasher.config().num_perm;
        let sigs = self.hasher.signatures(texts, threads);
        self.add_signatures(&sigs, threads)?;
        debug_assert_eq!(sigs.len(), texts.len() * np);
        Ok(sigs)
    }

    /// Add precomputed signatures (row-major, n x num_perm).
    pub fn add_signatures(&mut self, sigs: &[u32], threads: usize) -> Result<()> {
        let np = self.hasher.config().num_perm;
        if !sigs.len().is_multiple_of(np) {
            return Err(crate::Error::Value(format!(
                "signature buffer of {} values is not a multiple of num_perm = {np}",
                sigs.len()
            )));
        }
        let rows: Vec<&[u32]> = sigs.chunks_exact(np).collect();
        let keys = parallel::map(&rows, threads, |s| {
            let mut k = Vec::new();
            self.hasher.band_keys(s, &mut k);
            k
        });
        let flat: Vec<u64> = keys.into_iter().flatten().collect();
        // a document without shingles (every slot MAX_HASH) has no signature: its own cluster
        let sign_all = self.hasher.config().sign_short_docs;
        self.lsh.add_keys_signed(&flat, |i| {
            sign_all || rows[i].iter().any(|&v| v != minhash::MAX_HASH)
        })
    }

    /// Cluster ids of every document added: the index of the member kept (the configuration's
    /// `keep`; by default the lowest index).
    pub fn finish(&mut self) -> Result<Vec<u64>> {
        let keep = self.hasher.config().keep;
        self.lsh.finish_keep(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word per index, without digits (datatrove's normalisation maps every number to `0`).
    fn word(prefix: char, i: usize) -> String {
        let l = |k: usize| char::from(b'a' + (k % 26) as u8);
        format!("{prefix}{}{}", l(i / 26), l(i))
    }

    #[test]
    fn near_duplicates_cluster() {
        let base: Vec<String> = (0..200).map(|i| word('w', i)).collect();
        let a = base.join(" ");
        let mut b_words = base.clone();
        b_words[100] = "changed".into();
        let b = b_words.join(" ");
        let c: String = (0..200).map(|i| word('z', i)).collect::<Vec<_>>().join(" ");
        let texts = vec![c.clone(), a.clone(), b.clone(), a.clone()];
        let mut d = MinHashDedup::new(MinHashConfig::default(), 1 << 20, None).unwrap();
        d.add_texts(&texts, 2).unwrap();
        assert_eq!(d.finish().unwrap(), vec![0, 1, 1, 1]);
    }
}
