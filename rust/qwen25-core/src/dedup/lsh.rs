//! LSH banding and connected components with bounded memory.
//!
//! Every document contributes one record (band, key, doc) per band. Records are buffered; past
//! `mem_budget` bytes the buffer is sorted and spilled to a run file, and `finish` merges the runs
//! (an external sort). Documents that share a (band, key) are joined in a union-find whose root is
//! always the lowest index, so a document's cluster id is the lowest input index of its connected
//! component, whatever order the records arrive in: the result depends neither on the thread
//! count, nor on the batch size, nor on the spill points. The union-find holds 8 bytes per
//! document; everything per band lives in the (spillable) record buffer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which member of a cluster of near-duplicates is its id (the one kept).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Survivor {
    /// The lowest input index (the first seen): independent of how the clusters were found.
    #[default]
    First,
    /// The root of datatrove's clustering: bands in order, within a band the documents of one
    /// band key as consecutive pairs, each pair joined by union by size (the larger set's root
    /// wins, ties to the earlier document). datatrove orders a band's groups by the band's
    /// hash values, qwen25 by the band key, so in a cluster built from several groups the two
    /// may pick different members.
    Representative,
}

type Rec = (u64, u64, u64); // (band, key, doc)
const REC_BYTES: usize = 24;

/// datatrove's union-find (`MinhashDedupCluster`): union by size, the first argument's root
/// winning ties.
struct BySize {
    uf: UnionFind,
    size: Vec<u64>,
}

impl BySize {
    fn new(n: u64) -> Self {
        let mut uf = UnionFind::default();
        uf.grow(n);
        BySize {
            uf,
            size: vec![1; n as usize],
        }
    }

    fn union(&mut self, a: u64, b: u64) {
        let (mut ra, mut rb) = (self.uf.find(a), self.uf.find(b));
        if ra == rb {
            return;
        }
        if self.size[ra as usize] < self.size[rb as usize] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.uf.parent[rb as usize] = ra;
        self.size[ra as usize] += self.size[rb as usize];
    }
}

/// Union-find over document indices; the root of a set is its lowest index.
#[derive(Clone, Debug, Default)]
pub struct UnionFind {
    parent: Vec<u64>,
}

impl UnionFind {
    pub fn grow(&mut self, n: u64) {
        while (self.parent.len() as u64) < n {
            let i = self.parent.len() as u64;
            self.parent.push(i);
        }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    pub fn find(&mut self, mut x: u64) -> u64 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            let gp = self.parent[p as usize];
            self.parent[x as usize] = gp;
            x = gp;
        }
        x
    }

    pub fn union(&mut self, a: u64, b: u64) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }

    /// The root (lowest member index) of every element.
    pub fn roots(&mut self) -> Vec<u64> {
        (0..self.parent.len() as u64)
            .map(|i| self.find(i))
            .collect()
    }
}

static SPILL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Streaming LSH clusterer (see the module docs).
#[derive(Debug)]
pub struct LshClusterer {
    bands: usize,
    n_docs: u64,
    buf: Vec<Rec>,
    budget_recs: usize,
    spill_root: Option<PathBuf>,
    spill_dir: Option<PathBuf>,
    runs: Vec<PathBuf>,
    spills: usize,
    finished: bool,
}

impl LshClusterer {
    /// `mem_budget`: bytes of band records held before spilling (at least one record).
    /// `spill_dir`: where run files go (a fresh subfolder is made there; default: the OS temp dir).
    pub fn new(bands: usize, mem_budget: usize, spill_dir: Option<PathBuf>) -> Result<Self> {
        if bands == 0 {
            return Err(Error::Value("bands must be >= 1".into()));
        }
        Ok(LshClusterer {
            bands,
            n_docs: 0,
            buf: Vec::new(),
            budget_recs: (mem_budget / REC_BYTES).max(1),
            spill_root: spill_dir,
            spill_dir: None,
            runs: Vec::new(),
            spills: 0,
            finished: false,
        })
    }

    pub fn n_docs(&self) -> u64 {
        self.n_docs
    }

    /// Run files written so far (still counted after `finish` removed them).
    pub fn n_spills(&self) -> usize {
        self.spills
    }

    /// Add the band keys of a batch: `keys` is row-major (n x bands); documents get the next
    /// global indices in order.
    pub fn add_keys(&mut self, keys: &[u64]) -> Result<()> {
        self.add_keys_signed(keys, |_| true)
    }

    /// As [`LshClusterer::add_keys`]; a document `signed(i)` rejects (the i-th of the batch)
    /// takes its index but no band: it is its own cluster (datatrove does not sign documents
    /// with fewer words than the n-gram size).
    pub fn add_keys_signed(&mut self, keys: &[u64], signed: impl Fn(usize) -> bool) -> Result<()> {
        if self.finished {
            return Err(Error::Value("this clusterer has already finished".into()));
        }
        if !keys.len().is_multiple_of(self.bands) {
            return Err(Error::Value(format!(
                "{} keys is not a multiple of bands = {}",
                keys.len(),
                self.bands
            )));
        }
        for (i, row) in keys.chunks_exact(self.bands).enumerate() {
            let doc = self.n_docs;
            self.n_docs += 1;
            if !signed(i) {
                continue;
            }
            for (j, k) in row.iter().enumerate() {
                self.buf.push((j as u64, *k, doc));
                if self.buf.len() >= self.budget_recs {
                    self.spill()?;
                }
            }
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let dir = match &self.spill_dir {
            Some(d) => d.clone(),
            None => {
                let root = self.spill_root.clone().unwrap_or_else(std::env::temp_dir);
                let d = root.join(format!(
                    "qwen25-lsh-{}-{}",
                    std::process::id(),
                    SPILL_COUNTER.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
                self.spill_dir = Some(d.clone());
                d
            }
        };
        self.buf.sort_unstable();
        let path = dir.join(format!("run-{:06}.bin", self.runs.len()));
        let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        for (b, k, d) in self.buf.drain(..) {
            let mut rec = [0u8; REC_BYTES];
            rec[..8].copy_from_slice(&b.to_le_bytes());
            rec[8..16].copy_from_slice(&k.to_le_bytes());
            rec[16..].copy_from_slice(&d.to_le_bytes());
            w.write_all(&rec).map_err(|e| Error::io(&path, e))?;
        }
        w.flush().map_err(|e| Error::io(&path, e))?;
        self.runs.push(path);
        self.spills += 1;
        Ok(())
    }

    /// Merge everything and return one cluster id (lowest member index) per document.
    pub fn finish(&mut self) -> Result<Vec<u64>> {
        self.finish_keep(Survivor::First)
    }

    /// Merge everything and return one cluster id per document: the index of the member that
    /// `keep` picks.
    pub fn finish_keep(&mut self, keep: Survivor) -> Result<Vec<u64>> {
        if self.finished {
            return Err(Error::Value("this clusterer has already finished".into()));
        }
        self.finished = true;
        // only the union-find that `keep` reads is sized
        let first = keep == Survivor::First;
        let mut uf = UnionFind::default();
        if first {
            uf.grow(self.n_docs);
        }
        let mut rep = BySize::new(if first { 0 } else { self.n_docs });
        let mut last: Option<(u64, u64, u64)> = None; // (band, key, first doc)
        let mut prev = 0u64; // the group's previous document
        let mut visit = |r: Rec, uf: &mut UnionFind| match last {
            Some((b, k, first)) if b == r.0 && k == r.1 => match keep {
                Survivor::First => uf.union(first, r.2),
                Survivor::Representative => {
                    rep.union(prev, r.2);
                    prev = r.2;
                }
            },
            _ => {
                last = Some(r);
                prev = r.2;
            }
        };
        if self.runs.is_empty() {
            self.buf.sort_unstable();
            for r in std::mem::take(&mut self.buf) {
                visit(r, &mut uf);
            }
        } else {
            self.spill()?;
            let mut readers = Vec::with_capacity(self.runs.len());
            for p in &self.runs {
                let f = File::open(p).map_err(|e| Error::io(p, e))?;
                readers.push((BufReader::with_capacity(1 << 16, f), p.clone()));
            }
            let mut heap = BinaryHeap::new();
            for (i, (r, p)) in readers.iter_mut().enumerate() {
                if let Some(rec) = read_rec(r, p)? {
                    heap.push(Reverse((rec, i)));
                }
            }
            while let Some(Reverse((rec, i))) = heap.pop() {
                visit(rec, &mut uf);
                let (r, p) = &mut readers[i];
                if let Some(next) = read_rec(r, p)? {
                    heap.push(Reverse((next, i)));
                }
            }
            self.cleanup();
        }
        Ok(if first { uf.roots() } else { rep.uf.roots() })
    }

    fn cleanup(&mut self) {
        for p in self.runs.drain(..) {
            let _ = std::fs::remove_file(p);
        }
        if let Some(d) = self.spill_dir.take() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl Drop for LshClusterer {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn read_rec(r: &mut BufReader<File>, path: &Path) -> Result<Option<Rec>> {
    let mut rec = [0u8; REC_BYTES];
    match r.read_exact(&mut rec) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    }
    let g = |a: usize| u64::from_le_bytes(rec[a..a + 8].try_into().unwrap_or([0; 8]));
    Ok(Some((g(0), g(8), g(16))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<u64> {
        // 6 docs, 2 bands: 0~3 via band 0, 3~5 via band 1, 1~4 via band 1; 2 alone
        vec![10, 20, 11, 21, 12, 22, 10, 23, 13, 21, 14, 23]
    }

    #[test]
    fn components_and_spill_agree() {
        let mut a = LshClusterer::new(2, 1 << 20, None).unwrap();
        a.add_keys(&keys()).unwrap();
        let want = a.finish().unwrap();
        assert_eq!(want, vec![0, 1, 2, 0, 1, 0]);
        for budget in [REC_BYTES, 3 * REC_BYTES, 5 * REC_BYTES] {
            let mut b = LshClusterer::new(2, budget, None).unwrap();
            for chunk in keys().chunks(2) {
                b.add_keys(chunk).unwrap();
            }
            assert!(b.n_spills() > 0);
            assert_eq!(b.finish().unwrap(), want);
        }
    }

    #[test]
    fn bad_keys() {
        let mut a = LshClusterer::new(2, 100, None).unwrap();
        assert!(a.add_keys(&[1, 2, 3]).is_err());
    }
}
