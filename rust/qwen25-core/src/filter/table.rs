//! The one hash table of the filters: open addressing with linear probing, at most half full,
//! no deletions, cleared (not freed) between documents so a thread reuses its memory.
//!
//! It serves three key shapes: n-gram pairs ((n-1)-gram id, word id) to n-gram ids, short words
//! (their bytes) to word ids, and (string hash, index) for the duplicate line and paragraph
//! search, where equal hashes are settled by comparing the strings.

/// A key: `Copy + Eq`, with a value that is never a real key (marks a free slot) and a hash.
pub(super) trait Key: Copy + PartialEq {
    const EMPTY: Self;
    fn hash(&self) -> u64;
}

/// Fibonacci hashing of the key's hash onto `64 - shift` bits.
const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

pub(super) struct Table<K: Key, V: Copy> {
    slots: Vec<(K, V)>,
    shift: u32,
    used: usize,
}

impl<K: Key, V: Copy + Default> Default for Table<K, V> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            shift: 64,
            used: 0,
        }
    }
}

impl<K: Key, V: Copy + Default> Table<K, V> {
    /// Empty, with room for about `n` keys before it grows.
    pub fn reset(&mut self, n: usize) {
        let cap = (2 * n).next_power_of_two().max(16);
        self.slots.clear();
        self.slots.resize(cap, (K::EMPTY, V::default()));
        self.shift = 64 - cap.trailing_zeros();
        self.used = 0;
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.reset(old.len());
        let mask = self.slots.len() - 1;
        for (k, v) in old {
            if k == K::EMPTY {
                continue;
            }
            let mut i = self.slot(k.hash());
            while self.slots[i].0 != K::EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = (k, v);
            self.used += 1;
        }
    }

    #[inline(always)]
    fn slot(&self, hash: u64) -> usize {
        (hash.wrapping_mul(MUL) >> self.shift) as usize
    }

    /// The value of the stored key that `same` accepts, probing from `key`'s hash: `Ok(value)`
    /// when there is one, else `key` is stored with `val` and `Err(val)` comes back.
    #[inline(always)]
    pub fn find_or_insert(
        &mut self,
        key: K,
        mut same: impl FnMut(&K) -> bool,
        val: V,
    ) -> Result<V, V> {
        if 2 * (self.used + 1) > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(key.hash());
        loop {
            let (k, v) = self.slots[i];
            if k == K::EMPTY {
                self.slots[i] = (key, val);
                self.used += 1;
                return Err(val);
            }
            if same(&k) {
                return Ok(v);
            }
            i = (i + 1) & mask;
        }
    }

    /// The value of `key`, or `val` (then stored) when it is new.
    #[inline(always)]
    pub fn id(&mut self, key: K, val: V) -> V {
        match self.find_or_insert(key, |k| *k == key, val) {
            Ok(v) | Err(v) => v,
        }
    }
}

/// An n-gram pair: ((n-1)-gram id << 32 | word id); ids are below the number of words, so
/// `u64::MAX` is never one.
impl Key for u64 {
    const EMPTY: Self = u64::MAX;
    #[inline(always)]
    fn hash(&self) -> u64 {
        *self
    }
}

/// A short word: (bytes 0..8, bytes 8..15 with the length in the top byte); the second half of a
/// real key has a length below 16 in its top byte, so it is never `u64::MAX`.
impl Key for (u64, u64) {
    const EMPTY: Self = (0, u64::MAX);
    #[inline(always)]
    fn hash(&self) -> u64 {
        self.0 ^ self.1.rotate_left(29)
    }
}

/// (hash of a string, index of its first occurrence); indices are below `usize::MAX`.
impl Key for (u64, usize) {
    const EMPTY: Self = (0, usize::MAX);
    #[inline(always)]
    fn hash(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_through_growth() {
        let mut t: Table<u64, u32> = Table::default();
        t.reset(2);
        for k in 0..1000u64 {
            assert_eq!(t.id(k * 7919, k as u32), k as u32);
        }
        for k in 0..1000u64 {
            assert_eq!(t.id(k * 7919, u32::MAX), k as u32);
        }
        let mut w: Table<(u64, u64), u32> = Table::default();
        w.reset(0);
        assert_eq!(w.id((1, 2), 5), 5);
        assert_eq!(w.id((1, 2), 6), 5);
        assert_eq!(w.id((2, 1), 6), 6);
    }
}
