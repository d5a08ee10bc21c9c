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

/// Probe stride for n-grams of size `n`: the index holds k-grams (k = n - s + 1) at every test
/// position and a training sequence is probed at every s-th position only. Sound: a shared
/// n-gram at training position p contains the probe position p' = p rounded up to a multiple
/// of s, and the k-gram at p' lies inside it (p' + k <= p + n), so the test posting of that
/// k-gram is found; the n-gram is then confirmed by comparing ids.
fn stride(n: usize) -> usize {
    (n / 3).max(1)
}

pub struct NgramIndex {
    n: usize,
    k: usize,
    s: usize,
    bits: Vec<u64>,
    mask: u64,
    table: FxHashMap<u64, (u32, u32)>,
    /// (test item, position of the k-gram), grouped by key
    postings: Vec<(u32, u32)>,
}

impl NgramIndex {
    /// Index the k-grams of `items` (items shorter than n can share no n-gram: skipped).
    pub fn build(items: &[Vec<u32>], n: usize) -> NgramIndex {
        let s = stride(n);
        let k = n - s + 1;
        let mut all: Vec<(u64, u32, u32)> = Vec::new();
        for (i, seq) in items.iter().enumerate() {
            if seq.len() >= n {
                for_each_ngram(seq, k, |p, key| all.push((key, i as u32, p as u32)));
            }
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
            while i < all.len() && all[i].0 == key {
                postings.push((all[i].1, all[i].2));
                i += 1;
            }
            bits[((key & mask) / 64) as usize] |= 1u64 << (key & 63);
            table.insert(key, (start as u32, (postings.len() - start) as u32));
        }
        postings.shrink_to_fit();
        NgramIndex {
            n,
            k,
            s,
            bits,
            mask,
            table,
            postings,
        }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8 + self.table.capacity() * 20 + self.postings.capacity() * 8
    }

    /// The test items that share at least one n-gram with `seq`, ascending.
    pub fn candidates(&self, seq: &[u32], items: &[Vec<u32>]) -> Vec<u32> {
        let (n, k, s) = (self.n, self.k, self.s);
        let mut found: rustc_hash::FxHashSet<u32> = Default::default();
        if seq.len() < n {
            return Vec::new();
        }
        for_each_ngram(seq, k, |p, key| {
            if p % s != 0
                || self.bits[((key & self.mask) / 64) as usize] & (1u64 << (key & 63)) == 0
            {
                return;
            }
            let Some(&(st, l)) = self.table.get(&key) else {
                return;
            };
            for &(item, q) in &self.postings[st as usize..(st + l) as usize] {
                if found.contains(&item) {
                    continue;
                }
                let e = &items[item as usize];
                let q = q as usize;
                // the n-grams containing this k-gram at offset j
                let hit = (0..s).any(|j| {
                    p >= j
                        && q >= j
                        && p - j + n <= seq.len()
                        && q - j + n <= e.len()
                        && seq[p - j..p - j + n] == e[q - j..q - j + n]
                });
                if hit {
                    found.insert(item);
                }
            }
        });
        let mut found: Vec<u32> = found.into_iter().collect();
        found.sort_unstable();
        found
    }

    /// Every (test item, position in `seq`) whose n-gram at that position occurs in the item,
    /// sorted by item then position, without repeats.
    pub fn hits(&self, seq: &[u32], items: &[Vec<u32>]) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for item in self.candidates(seq, items) {
            for p in shared_positions(seq, &items[item as usize], self.n) {
                out.push((item, p as u32));
            }
        }
        out
    }
}

/// Positions p of `t` whose n-gram t[p..p+n] occurs in `e` (exact), ascending.
pub fn shared_positions(t: &[u32], e: &[u32], n: usize) -> Vec<usize> {
    let mut keys: Vec<(u64, u32)> = Vec::with_capacity(e.len());
    for_each_ngram(e, n, |q, key| keys.push((key, q as u32)));
    keys.sort_unstable();
    let mut out = Vec::new();
    for_each_ngram(t, n, |p, key| {
        let from = keys.partition_point(|&(k, _)| k < key);
        if keys[from..]
            .iter()
            .take_while(|&&(k, _)| k == key)
            .any(|&(_, q)| e[q as usize..q as usize + n] == t[p..p + n])
        {
            out.push(p);
        }
    });
    out
}

/// The distinct alignments `p - q` of every shared n-gram `t[p..p+n] == e[q..q+n]` with `p`
/// in `positions` (pass every shared position, e.g. from [`NgramIndex::hits`]), ascending; all
/// occurrences in `e` of each n-gram count, so a repeated n-gram gives every offset.
pub fn shared_offsets(t: &[u32], e: &[u32], n: usize, positions: &[usize]) -> Vec<isize> {
    let mut out = Vec::new();
    if n == 0 || e.len() < n {
        return out;
    }
    let mut keys: Vec<(u64, u32)> = Vec::with_capacity(e.len());
    for_each_ngram(e, n, |q, key| keys.push((key, q as u32)));
    keys.sort_unstable();
    for &p in positions {
        if p + n > t.len() {
            continue;
        }
        let mut key = 0u64;
        for_each_ngram(&t[p..p + n], n, |_, k| key = k);
        let from = keys.partition_point(|&(k, _)| k < key);
        for &(_, q) in keys[from..].iter().take_while(|&&(k, _)| k == key) {
            let q = q as usize;
            if e[q..q + n] == t[p..p + n] {
                out.push(p as isize - q as isize);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};

    #[test]
    fn offsets_equal_literal_pairs() {
        let mut s: u64 = 99;
        let mut rnd = move |m: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % m
        };
        for n in [1usize, 2, 3, 5] {
            for _ in 0..200 {
                let t: Vec<u32> = (0..rnd(60)).map(|_| rnd(3) as u32).collect();
                let e: Vec<u32> = (0..rnd(60)).map(|_| rnd(3) as u32).collect();
                let mut want = BTreeSet::new();
                for p in 0..t.len().saturating_sub(n - 1) {
                    for q in 0..e.len().saturating_sub(n - 1) {
                        if t[p..p + n] == e[q..q + n] {
                            want.insert(p as isize - q as isize);
                        }
                    }
                }
                let all: Vec<usize> = (0..t.len()).collect();
                let got = shared_offsets(&t, &e, n, &all);
                assert_eq!(got, want.into_iter().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn hits_equal_literal_sets() {
        let mut hit_cases = 0usize;
        let mut s: u64 = 12345;
        let mut rnd = move |m: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % m
        };
        for n in [1usize, 2, 3, 5, 6, 7, 9, 13] {
            let alpha = if n >= 5 { 2 } else { 4 };
            let items: Vec<Vec<u32>> = (0..20)
                .map(|_| (0..rnd(80)).map(|_| rnd(alpha) as u32).collect())
                .collect();
            let idx = NgramIndex::build(&items, n);
            for _ in 0..50 {
                let t: Vec<u32> = (0..rnd(100)).map(|_| rnd(alpha) as u32).collect();
                let mut want = BTreeSet::new();
                for (i, it) in items.iter().enumerate() {
                    let grams: HashSet<&[u32]> = if it.len() >= n {
                        it.windows(n).collect()
                    } else {
                        HashSet::new()
                    };
                    if t.len() >= n {
                        for (p, w) in t.windows(n).enumerate() {
                            if grams.contains(w) {
                                want.insert((i as u32, p as u32));
                            }
                        }
                    }
                }
                let got: BTreeSet<(u32, u32)> = idx.hits(&t, &items).into_iter().collect();
                assert_eq!(got, want, "n={n}");
                hit_cases += !want.is_empty() as usize;
            }
        }
        assert!(hit_cases > 100, "too few cases with hits: {hit_cases}");
    }
}
