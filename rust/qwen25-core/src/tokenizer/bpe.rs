//! The byte-level BPE model: a vocabulary of byte strings and a ranked list of merges.
//!
//! Encoding a pre-token starts from its bytes (one symbol each) and repeatedly merges the
//! adjacent pair with the lowest merge rank, the leftmost one on ties, until no adjacent pair
//! has a merge. This is the rule HF tokenizers' `BPE` model applies, so ids match it exactly.
//!
//! Two shortcuts keep it fast without changing a single id:
//! - a pre-token whose bytes are one vocabulary token `t` is emitted as `t` only when merging
//!   `t`'s bytes really ends in `[t]` (checked once per token, lazily, and remembered); tiktoken
//!   and bpe-qwen skip that check, which is where their ids drift from the reference;
//! - short pre-tokens merge in fixed stack buffers with a linear scan for the minimum; long ones
//!   (no split point, e.g. a megabyte of CJK or base64) use a heap over a linked list, so their
//!   cost stays O(n log n).

use hashbrown::HashTable;
use rustc_hash::{FxHashMap, FxHasher};
use std::hash::Hasher;
use std::sync::atomic::{AtomicU8, Ordering};

const NO_RANK: u32 = u32::MAX;
/// Pre-tokens up to this many bytes merge with the quadratic scan in stack buffers.
const SMALL: usize = 64;

pub struct Bpe {
    /// Every token's bytes, back to back, in id order.
    data: Vec<u8>,
    /// id -> (start, end) in `data`; (0, 0) for ids the vocabulary skips (tokens are never empty).
    spans: Vec<(u32, u32)>,
    /// The ids, hashed by their bytes: byte string -> id without one allocation per token.
    table: HashTable<u32>,
    /// (left << 32 | right) -> rank
    ranks: FxHashMap<u64, u32>,
    /// rank -> (left, right, merged)
    merges: Vec<(u32, u32, u32)>,
    byte_ids: [u32; 256],
    /// Per id: 0 = not yet known, 1 = merging its bytes gives exactly this token, 2 = it does not.
    whole: Vec<AtomicU8>,
}

/// Why a vocabulary/merge list pair was rejected (the loader adds file and line).
#[derive(Debug)]
pub enum BuildError {
    DuplicateToken {
        id: u32,
        other: u32,
    },
    EmptyToken {
        id: u32,
    },
    MissingByte(u8),
    /// merge number `rank` names a token that is not in the vocabulary
    UnknownMergePart {
        rank: usize,
        part: Vec<u8>,
    },
    /// merge number `rank` produces a token that is not in the vocabulary
    UnknownMergeResult {
        rank: usize,
        merged: Vec<u8>,
    },
}

#[inline(always)]
fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(b);
    h.write_usize(b.len());
    h.finish()
}

impl Bpe {
    /// Build from `(bytes, id)` entries and merges given as pairs of byte strings, in rank order.
    pub fn new(
        entries: Vec<(Vec<u8>, u32)>,
        merges: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Bpe, BuildError> {
        let n_ids = entries
            .iter()
            .map(|(_, id)| *id as usize + 1)
            .max()
            .unwrap_or(0);
        let mut spans = vec![(0u32, 0u32); n_ids];
        let mut data = Vec::with_capacity(entries.iter().map(|(b, _)| b.len()).sum());
        for (bytes, id) in &entries {
            if bytes.is_empty() {
                return Err(BuildError::EmptyToken { id: *id });
            }
            if spans[*id as usize] != (0, 0) {
                return Err(BuildError::DuplicateToken {
                    id: *id,
                    other: *id,
                });
            }
            let start = data.len() as u32;
            data.extend_from_slice(bytes);
            spans[*id as usize] = (start, data.len() as u32);
        }
        let table = Self::index(&data, &spans)?;
        let find = |b: &[u8]| Self::lookup(&data, &spans, &table, b);
        let mut merge_ids = Vec::with_capacity(merges.len());
        for (rank, (a, b)) in merges.iter().enumerate() {
            let ia = find(a).ok_or_else(|| BuildError::UnknownMergePart {
                rank,
                part: a.clone(),
            })?;
            let ib = find(b).ok_or_else(|| BuildError::UnknownMergePart {
                rank,
                part: b.clone(),
            })?;
            let mut m = a.clone();
            m.extend_from_slice(b);
            let im = find(&m).ok_or(BuildError::UnknownMergeResult { rank, merged: m })?;
            merge_ids.push((ia, ib, im));
        }
        Self::assemble(data, spans, table, merge_ids)
    }

    /// Build from token bytes back to back with their spans by id ((0, 0) = unused id), and
    /// merges given as ids in rank order (the form the precompiled embedded vocabulary uses).
    /// The caller guarantees that each merged id's bytes are the concatenation of its parts.
    pub fn from_parts(
        data: Vec<u8>,
        spans: Vec<(u32, u32)>,
        merges: Vec<(u32, u32, u32)>,
    ) -> Result<Bpe, BuildError> {
        let table = Self::index(&data, &spans)?;
        Self::assemble(data, spans, table, merges)
    }

    fn index(data: &[u8], spans: &[(u32, u32)]) -> Result<HashTable<u32>, BuildError> {
        let mut table = HashTable::with_capacity(spans.len());
        let bytes = |id: u32| {
            let (s, e) = spans[id as usize];
            &data[s as usize..e as usize]
        };
        for (id, &(s, e)) in spans.iter().enumerate() {
            if s == e {
                continue;
            }
            let b = &data[s as usize..e as usize];
            let h = hash_bytes(b);
            if let Some(&other) = table.find(h, |&o| bytes(o) == b) {
                return Err(BuildError::DuplicateToken {
                    id: id as u32,
                    other,
                });
            }
            table.insert_unique(h, id as u32, |&o| hash_bytes(bytes(o)));
        }
        Ok(table)
    }

    #[inline(always)]
    fn lookup(data: &[u8], spans: &[(u32, u32)], table: &HashTable<u32>, b: &[u8]) -> Option<u32> {
        table
            .find(hash_bytes(b), |&id| {
                let (s, e) = spans[id as usize];
                &data[s as usize..e as usize] == b
            })
            .copied()
    }

    fn assemble(
        data: Vec<u8>,
        spans: Vec<(u32, u32)>,
        table: HashTable<u32>,
        merges: Vec<(u32, u32, u32)>,
    ) -> Result<Bpe, BuildError> {
        let mut byte_ids = [0u32; 256];
        for b in 0..=255u8 {
            byte_ids[b as usize] =
                Self::lookup(&data, &spans, &table, &[b]).ok_or(BuildError::MissingByte(b))?;
        }
        // A merge listed twice takes the rank of its last listing, as in HF (its merge map is
        // collected from the enumerated list, so later entries overwrite earlier ones).
        let mut ranks = FxHashMap::with_capacity_and_hasher(merges.len(), Default::default());
        for (i, &(a, b, _)) in merges.iter().enumerate() {
            ranks.insert(((a as u64) << 32) | b as u64, i as u32);
        }
        let whole = (0..spans.len()).map(|_| AtomicU8::new(0)).collect();
        Ok(Bpe {
            data,
            spans,
            table,
            ranks,
            merges,
            byte_ids,
            whole,
        })
    }

    /// One past the largest id.
    pub fn n_ids(&self) -> usize {
        self.spans.len()
    }

    #[inline]
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        match self.spans.get(id as usize) {
            Some(&(s, e)) if s != e => Some(&self.data[s as usize..e as usize]),
            _ => None,
        }
    }

    #[inline]
    pub fn token_id(&self, bytes: &[u8]) -> Option<u32> {
        Self::lookup(&self.data, &self.spans, &self.table, bytes)
    }

    /// Number of tokens in the vocabulary.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Merges in file order as (left id, right id, merged id); a duplicate keeps its place.
    pub fn merges(&self) -> &[(u32, u32, u32)] {
        &self.merges
    }

    #[inline(always)]
    fn rank(&self, a: u32, b: u32) -> u32 {
        match self.ranks.get(&(((a as u64) << 32) | b as u64)) {
            Some(&r) => r,
            None => NO_RANK,
        }
    }

    /// Does merging the bytes of token `id` end in exactly `[id]`?
    fn is_whole(&self, id: u32) -> bool {
        let cell = &self.whole[id as usize];
        match cell.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let bytes = self.token_bytes(id).unwrap_or(&[]);
                let mut out = Vec::with_capacity(4);
                self.merge(bytes, &mut out);
                let ok = out.len() == 1 && out[0] == id;
                cell.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
                ok
            }
        }
    }

    /// Append the ids of one pre-token (raw bytes) to `out`.
    #[inline]
    pub fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        match piece.len() {
            0 => {}
            1 => out.push(self.byte_ids[piece[0] as usize]),
            _ => {
                if let Some(id) = self.token_id(piece) {
                    if self.is_whole(id) {
                        out.push(id);
                        return;
                    }
                }
                self.merge(piece, out);
            }
        }
    }

    /// Merge from single bytes, the reference algorithm.
    fn merge(&self, piece: &[u8], out: &mut Vec<u32>) {
        if piece.len() <= SMALL {
            self.merge_small(piece, out)
        } else {
            self.merge_large(piece, out)
        }
    }

    fn merge_small(&self, piece: &[u8], out: &mut Vec<u32>) {
        let n = piece.len();
        let mut ids = [0u32; SMALL];
        let mut ranks = [NO_RANK; SMALL];
        for (i, &b) in piece.iter().enumerate() {
            ids[i] = self.byte_ids[b as usize];
        }
        for i in 0..n - 1 {
            ranks[i] = self.rank(ids[i], ids[i + 1]);
        }
        let mut len = n;
        loop {
            // leftmost minimum rank
            let mut best = NO_RANK;
            let mut at = 0;
            for (i, &r) in ranks[..len - 1].iter().enumerate() {
                if r < best {
                    best = r;
                    at = i;
                }
            }
            if best == NO_RANK {
                break;
            }
            ids[at] = self.merges[best as usize].2;
            ids.copy_within(at + 2..len, at + 1);
            ranks.copy_within(at + 1..len - 1, at);
            len -= 1;
            if at > 0 {
                ranks[at - 1] = self.rank(ids[at - 1], ids[at]);
            }
            if at + 1 < len {
                ranks[at] = self.rank(ids[at], ids[at + 1]);
            }
            if len == 1 {
                break;
            }
        }
        out.extend_from_slice(&ids[..len]);
    }

    fn merge_large(&self, piece: &[u8], out: &mut Vec<u32>) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        const NIL: u32 = u32::MAX;
        /// One symbol of the doubly linked list; `rank` is the rank of the pair it starts
        /// (NO_RANK if none), so a heap entry is current iff its rank still equals it.
        #[derive(Clone, Copy)]
        struct Sym {
            id: u32,
            prev: u32,
            next: u32,
            rank: u32,
        }
        let n = piece.len();
        let mut syms: Vec<Sym> = piece
            .iter()
            .enumerate()
            .map(|(i, &b)| Sym {
                id: self.byte_ids[b as usize],
                prev: if i == 0 { NIL } else { i as u32 - 1 },
                next: if i + 1 == n { NIL } else { i as u32 + 1 },
                rank: NO_RANK,
            })
            .collect();
        let mut heap: Vec<Reverse<(u32, u32)>> = Vec::with_capacity(n);
        for i in 0..n - 1 {
            let r = self.rank(syms[i].id, syms[i + 1].id);
            syms[i].rank = r;
            if r != NO_RANK {
                heap.push(Reverse((r, i as u32)));
            }
        }
        let mut heap = BinaryHeap::from(heap);
        while let Some(Reverse((r, pos))) = heap.pop() {
            let p = pos as usize;
            if syms[p].rank != r {
                continue; // stale: the symbol was merged away or its right neighbour changed
            }
            let q = syms[p].next as usize;
            let after = syms[q].next;
            syms[p].id = self.merges[r as usize].2;
            syms[p].next = after;
            syms[q].rank = NO_RANK;
            syms[q].id = NIL;
            if after != NIL {
                syms[after as usize].prev = pos;
                let rr = self.rank(syms[p].id, syms[after as usize].id);
                syms[p].rank = rr;
                if rr != NO_RANK {
                    heap.push(Reverse((rr, pos)));
                }
            } else {
                syms[p].rank = NO_RANK;
            }
            let l = syms[p].prev;
            if l != NIL {
                let rl = self.rank(syms[l as usize].id, syms[p].id);
                syms[l as usize].rank = rl;
                if rl != NO_RANK {
                    heap.push(Reverse((rl, l)));
                }
            }
        }
        let mut i = 0u32;
        while i != NIL {
            out.push(syms[i as usize].id);
            i = syms[i as usize].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Bpe {
        let mut entries: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        for (i, t) in ["ab", "bc", "abc", "aa", "aaaa"].iter().enumerate() {
            entries.push((t.as_bytes().to_vec(), 256 + i as u32));
        }
        let merges: Vec<(Vec<u8>, Vec<u8>)> = [
            ("b", "c"),
            ("a", "b"),
            ("ab", "c"),
            ("a", "a"),
            ("aa", "aa"),
        ]
        .iter()
        .map(|(a, b)| (a.as_bytes().to_vec(), b.as_bytes().to_vec()))
        .collect();
        Bpe::new(entries, &merges).unwrap()
    }

    fn enc(bpe: &Bpe, s: &str) -> Vec<u32> {
        let mut out = vec![];
        bpe.encode_piece(s.as_bytes(), &mut out);
        out
    }

    #[test]
    fn merges_by_rank_not_by_vocabulary() {
        let bpe = toy();
        // "bc" (rank 0) merges before "ab" (rank 1), so "abc" is a + bc, although "abc" is a
        // token: its merge (ab, c) is never reached.
        assert_eq!(enc(&bpe, "abc"), vec![b'a' as u32, 257]);
        assert_eq!(enc(&bpe, "ab"), vec![256]);
        // leftmost first on ties, then the merged pair
        assert_eq!(enc(&bpe, "aaa"), vec![259, b'a' as u32]);
        assert_eq!(enc(&bpe, "aaaa"), vec![260]);
    }

    #[test]
    fn long_pieces_merge_like_short_ones() {
        let bpe = toy();
        let s: String = "abcaaaabcabaaab".repeat(20);
        let mut small = vec![];
        for chunk in s.as_bytes().chunks(15) {
            bpe.merge_small(chunk, &mut small);
        }
        let mut large = vec![];
        bpe.merge_large(s.as_bytes(), &mut large);
        assert_eq!(small, large);
    }
}
