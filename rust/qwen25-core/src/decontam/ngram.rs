//! Index of the contiguous n-grams of the test sequences: n-gram -> (test item, position).
//!
//! Each n-gram is hashed (polynomial over the ids, then a bijective 64-bit mixer). A bitset
//! rejects most training n-grams with one memory access; a hit goes to a hash table of posting
//! ranges, and every posting is verified by comparing the ids, so hash collisions never make a
//! false hit: the index is exact.

use rustc_hash::FxHashMap;

const BASE: u64 = 0x9E37_79B9_7F4A_7C15 | 1;

#[inline]
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Calls `f(position, key)` for every n-gram of `seq` (none if `seq` is shorter than n).
#[inline]
pub fn for_each_ngram(seq: &[u32], n: usize, mut f: impl FnMut(usize, u64)) {
    if n == 0 || seq.len() < n {
        return;
    }
    // BASE^n, to roll the first id out
    let mut top: u64 = 1;
    for _ in 0..n {
        top = top.wrapping_mul(BASE);
    }
    let mut h: u64 = 0;
    for &x in &seq[..n] {
        h = h.wrapping_mul(BASE).wrapping_add(x as u64 + 1);
    }
    f(0, mix(h));
    for p in 1..=seq.len() - n {
        h = h
            .wrapping_mul(BASE)
            .wrapping_add(seq[p + n - 1] as u64 + 1)
            .wrapping_sub(top.wrapping_mul(seq[p - 1] as u64 + 1));
        f(p, mix(h));
    }
}

pub struct NgramIndex {
    n: usize,
    bits: Vec<u64>,
    mask: u64,
    table: FxHashMap<u64, (u32, u32)>,
    /// (test item, position), grouped by key
    postings: Vec<(u32, u32)>,
}

impl NgramIndex {
    /// Index the n-grams of `items`. Repeats of one n-gram inside one item keep one position.
    pub fn build(items: &[Vec<u32>], n: usize) -> NgramIndex {
        let mut all: Vec<(u64, u32, u32)> = Vec::new();
        for (i, seq) in items.iter().enumerate() {
            for_each_ngram(seq, n, |p, k| all.push((k, i as u32, p as u32)));
        }
        all.sort_unstable();
        let nbits = (all.len() * 8).next_power_of_two().max(1 << 16);
        let mut bits = vec![0u64; nbits / 64];
        let mask = (nbits - 1) as u64;
        let mut table: FxHashMap<u64, (u32, u32)> = FxHashMap::default();
        table.reserve(all.len());
        let mut postings: Vec<(u32, u32)> = Vec::with_capacity(all.len());
        let mut i = 0;
        while i < all.len() {
            let key = all[i].0;
            let start = postings.len();
            let mut j = i;
            while j < all.len() && all[j].0 == key {
                let (_, item, pos) = all[j];
                // drop a repeat of the same n-gram in the same item (same ids as the last kept)
                let dup = postings[start..].iter().rev().take_while(|&&(it, _)| it == item).any(|&(_, q)| {
                    let s = &items[item as usize];
                    s[q as usize..q as usize + n] == s[pos as usize..pos as usize + n]
                });
                if !dup {
                    postings.push((item, pos));
                }
                j += 1;
            }
            bits[((key & mask) / 64) as usize] |= 1u64 << (key & 63);
            table.insert(key, (start as u32, (postings.len() - start) as u32));
            i = j;
        }
        postings.shrink_to_fit();
        NgramIndex { n, bits, mask, table, postings }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8 + self.table.capacity() * 20 + self.postings.capacity() * 8
    }

    /// Every (test item, position in `seq`) whose n-gram at that position occurs in the item,
    /// sorted by item then position, without repeats.
    pub fn hits(&self, seq: &[u32], items: &[Vec<u32>]) -> Vec<(u32, u32)> {
        let n = self.n;
        let mut out: Vec<(u32, u32)> = Vec::new();
        for_each_ngram(seq, n, |p, key| {
            if self.bits[((key & self.mask) / 64) as usize] & (1u64 << (key & 63)) == 0 {
                return;
            }
            if let Some(&(s, l)) = self.table.get(&key) {
                let gram = &seq[p..p + n];
                for &(item, q) in &self.postings[s as usize..(s + l) as usize] {
                    let t = &items[item as usize];
                    if &t[q as usize..q as usize + n] == gram {
                        out.push((item, p as u32));
                    }
                }
            }
        });
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};

    #[test]
    fn hits_equal_literal_sets() {
        let mut s: u64 = 12345;
        let mut rnd = move |m: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % m
        };
        for n in [1usize, 2, 3, 5, 13] {
            let items: Vec<Vec<u32>> =
                (0..20).map(|_| (0..rnd(40)).map(|_| rnd(4) as u32).collect()).collect();
            let idx = NgramIndex::build(&items, n);
            for _ in 0..50 {
                let t: Vec<u32> = (0..rnd(60)).map(|_| rnd(4) as u32).collect();
                let mut want = BTreeSet::new();
                for (i, it) in items.iter().enumerate() {
                    let grams: HashSet<&[u32]> = if it.len() >= n { it.windows(n).collect() } else { HashSet::new() };
                    if t.len() >= n {
                        for (p, w) in t.windows(n).enumerate() {
                            if grams.contains(w) {
                                want.insert((i as u32, p as u32));
                            }
                        }
                    }
                }
                let got: BTreeSet<(u32, u32)> = idx.hits(&t, &items).into_iter().collect();
                assert_eq!(got, want);
            }
        }
    }
}
