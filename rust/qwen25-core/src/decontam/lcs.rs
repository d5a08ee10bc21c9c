//! Exact longest common subsequence, bit-parallel (Allison–Dix 1986 / Hyyrö 2004).
//!
//! A [`Pattern`] holds, for one test item of length m, the match bitmask of each distinct token
//! (ceil(m/64) words each), computed once. [`Pattern::lcs`] then runs in O(n * ceil(m/64)) over a
//! text of n tokens: per text token c, with U = V & M[c], V <- (V + U) | (V & !M[c]); the LCS is
//! the number of zero bits of V among the low m. [`lcs_dp`] is the plain O(mn) dynamic program,
//! the oracle of the tests.

/// Match bitmasks of one sequence (the "pattern", a test item).
#[derive(Clone, Debug)]
pub struct Pattern {
    len: usize,
    words: usize,
    /// sorted distinct tokens of the pattern
    distinct: Vec<u32>,
    /// how often each distinct token occurs (same order as `distinct`)
    counts: Vec<u32>,
    /// `distinct.len() * words` bitmask words: bit i of mask k is set iff pattern[i] == distinct[k]
    masks: Vec<u64>,
}

impl Pattern {
    pub fn new(seq: &[u32]) -> Pattern {
        let words = seq.len().div_ceil(64);
        let mut distinct: Vec<u32> = seq.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let mut counts = vec![0u32; distinct.len()];
        let mut masks = vec![0u64; distinct.len() * words];
        for (i, &c) in seq.iter().enumerate() {
            // `c` is in `distinct` by construction
            let k = distinct.binary_search(&c).unwrap_or(0);
            counts[k] += 1;
            masks[k * words + i / 64] |= 1u64 << (i % 64);
        }
        Pattern {
            len: seq.len(),
            words,
            distinct,
            counts,
            masks,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sorted distinct tokens and their counts (the bag of the pattern).
    pub fn bag(&self) -> (&[u32], &[u32]) {
        (&self.distinct, &self.counts)
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.distinct.capacity() * 4 + self.counts.capacity() * 4 + self.masks.capacity() * 8
    }

    /// |LCS(pattern, text)|, exact.
    pub fn lcs(&self, text: &[u32]) -> usize {
        self.run(text, |c| self.distinct.binary_search(&c).ok())
    }

    /// |LCS(pattern, text)| for a pattern over dense ids (< `table.len()`), using `table`, a
    /// scratch array of zeros indexed by id (left zeroed on return). Text ids outside the table
    /// never match. O(distinct) set-up, then one array read per text token.
    pub fn lcs_dense(&self, table: &mut [u32], text: &[u32]) -> usize {
        for (k, &v) in self.distinct.iter().enumerate() {
            if let Some(slot) = table.get_mut(v as usize) {
                *slot = k as u32 + 1;
            }
        }
        let table_ref: &[u32] = table;
        let zeros = self.run(text, |c| {
            match table_ref.get(c as usize).copied().unwrap_or(0) {
                0 => None,
                k => Some(k as usize - 1),
            }
        });
        for &v in &self.distinct {
            if let Some(slot) = table.get_mut(v as usize) {
                *slot = 0;
            }
        }
        zeros
    }

    /// Hyyrö's bit-parallel LCS over the pattern's masks; `mask_of(c)` is the index of text token
    /// `c` among the pattern's distinct tokens (None: no match). Generic, so each lookup gets its
    /// own monomorphised loop.
    #[inline(always)]
    fn run(&self, text: &[u32], mask_of: impl Fn(u32) -> Option<usize>) -> usize {
        if self.len == 0 || text.is_empty() {
            return 0;
        }
        let w = self.words;
        let valid = |bits: usize| {
            if bits >= 64 {
                !0u64
            } else {
                (1u64 << bits) - 1
            }
        };
        if w == 1 {
            let mut v: u64 = !0;
            for &c in text {
                if let Some(k) = mask_of(c) {
                    let m = self.masks[k];
                    let u = v & m;
                    v = v.wrapping_add(u) | (v & !m);
                }
            }
            return (!v & valid(self.len)).count_ones() as usize;
        }
        let mut v = vec![!0u64; w];
        for &c in text {
            if let Some(k) = mask_of(c) {
                let m = &self.masks[k * w..(k + 1) * w];
                let mut carry = false;
                for (vi, &mi) in v.iter_mut().zip(m) {
                    let x = *vi;
                    let u = x & mi;
                    let (s1, c1) = x.overflowing_add(u);
                    let (s2, c2) = s1.overflowing_add(carry as u64);
                    carry = c1 | c2;
                    *vi = s2 | (x & !mi);
                }
            }
        }
        v.iter()
            .enumerate()
            .map(|(i, &x)| (!x & valid(self.len - i * 64)).count_ones() as usize)
            .sum()
    }

    /// Upper bound on the LCS with a text whose bag is `text_bag` (sorted distinct, counts):
    /// sum over tokens of min(count in text, count in pattern). Sound: every LCS pairs equal
    /// tokens one to one.
    pub fn bag_bound(&self, text_distinct: &[u32], text_counts: &[u32]) -> usize {
        let (mut i, mut j, mut s) = (0usize, 0usize, 0usize);
        while i < self.distinct.len() && j < text_distinct.len() {
            match self.distinct[i].cmp(&text_distinct[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    s += self.counts[i].min(text_counts[j]) as usize;
                    i += 1;
                    j += 1;
                }
            }
        }
        s
    }
}

/// Sorted distinct tokens of `seq` and their counts.
pub fn bag(seq: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut s = seq.to_vec();
    s.sort_unstable();
    let mut d = Vec::new();
    let mut c: Vec<u32> = Vec::new();
    for x in s {
        if d.last() == Some(&x) {
            if let Some(l) = c.last_mut() {
                *l += 1;
            }
        } else {
            d.push(x);
            c.push(1);
        }
    }
    (d, c)
}

/// The plain O(mn) dynamic program (the tests' oracle).
pub fn lcs_dp(a: &[u32], b: &[u32]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for &x in a {
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decontam::TestRng as Rng;

    #[test]
    fn bit_parallel_equals_dp() {
        let mut r = Rng(0x9e3779b97f4a7c15);
        for trial in 0..3000 {
            let m = (r.next() % 300) as usize;
            let n = (r.next() % 300) as usize;
            let alpha = [2u64, 3, 5, 20, 1000][trial % 5];
            let a = r.seq(m, alpha);
            let b = r.seq(n, alpha);
            let p = Pattern::new(&a);
            assert_eq!(p.lcs(&b), lcs_dp(&a, &b), "m={m} n={n} alpha={alpha}");
            let mut table = vec![0u32; 1000];
            assert_eq!(p.lcs_dense(&mut table, &b), lcs_dp(&a, &b));
            assert!(table.iter().all(|&x| x == 0));
            let (d, c) = bag(&b);
            assert!(p.bag_bound(&d, &c) >= p.lcs(&b));
        }
    }

    #[test]
    fn word_boundaries() {
        for m in [0usize, 1, 63, 64, 65, 127, 128, 129, 192] {
            let a: Vec<u32> = (0..m as u32).collect();
            let p = Pattern::new(&a);
            assert_eq!(p.lcs(&a), m);
            let b: Vec<u32> = vec![7; 500];
            assert_eq!(p.lcs(&b), lcs_dp(&a, &b));
            let same = vec![3u32; m];
            assert_eq!(Pattern::new(&same).lcs(&same), m);
        }
    }
}
