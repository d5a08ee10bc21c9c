//! A tiny deterministic generator for tests and benches: Knuth's MMIX linear congruential
//! generator. Reproducible corpora and random strings, nothing that needs real randomness.

/// `x <- x * 6364136223846793005 + 1442695040888963407 (mod 2^64)`.
#[derive(Clone, Debug)]
pub struct Lcg(pub u64);

impl Lcg {
    /// Steps the state and returns it.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }

    /// Steps the state and returns its high bits modulo `m` (`m > 0`).
    #[inline]
    pub fn below(&mut self, m: usize) -> usize {
        ((self.next_u64() >> 33) as usize) % m
    }

    /// A string of `len` characters drawn from `alphabet`.
    pub fn string<T: Copy + Into<char>>(&mut self, alphabet: &[T], len: usize) -> String {
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())].into())
            .collect()
    }
}
