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

/// Patterns of at most this many words (4,096 tokens) go through the multi-pattern kernel;
/// longer ones run one at a time.
const MAX_LANE_WORDS: usize = 64;
/// Budget (in u64 words) of one lane table: distinct text tokens x pattern words x lanes.
/// Beyond it the patterns run one at a time.
const MAX_TABLE_WORDS: usize = 1 << 20;

/// Lanes of a [`Bank`] group.
const GROUP: usize = 32;
/// A bank group runs (all its lanes) for a text when at least this many of its patterns are
/// candidates; fewer go through the per-text lane tables.
const MIN_GROUP: u32 = 6;
/// Heap budget of a [`Bank`]'s tables; a larger bank is not built (patterns then always go
/// through per-text lane tables).
const BANK_BYTES: usize = 32 << 20;

/// Patterns in fixed groups of up to 32 of one word count, each group with a lane table
/// indexed by token id directly: `rows[c * w + j]` holds word `j` of every lane's match mask
/// for token `c`. Built once when the ids are few (a small alphabet: there the count filter
/// prunes nothing and every text meets most patterns), so a text runs against a whole group
/// without building any table.
#[derive(Clone, Debug, Default)]
pub struct Bank {
    vocab: usize,
    /// every pattern `keep` accepted (ascending), in a group or not, and their total words
    kept: Vec<u32>,
    kept_words: usize,
    /// kept patterns in no group (empty or longer than the lanes take), ascending
    loose: Vec<u32>,
    /// the longest grouped pattern
    max_len: usize,
    groups: Vec<Group>,
    /// group indices by their first member
    by_first: Vec<u32>,
    /// per pattern: (group, lane), or `NO_SLOT`
    slot: Vec<(u32, u32)>,
}

#[derive(Clone, Debug)]
struct Group {
    words: usize,
    /// the patterns of the lanes, ascending, and their lengths
    members: Vec<u32>,
    lens: Vec<usize>,
    rows: Vec<[u64; GROUP]>,
}

const NO_SLOT: (u32, u32) = (u32::MAX, u32::MAX);

impl Bank {
    /// Group the patterns `keep` accepts (by index), if their tables over ids `0..vocab` fit the
    /// budget; otherwise an empty bank. Every pattern id must be below `vocab`.
    pub fn new(pats: &[Pattern], vocab: usize, keep: impl Fn(usize) -> bool) -> Bank {
        let kept: Vec<u32> = (0..pats.len() as u32)
            .filter(|&i| keep(i as usize))
            .collect();
        let kept_words = kept.iter().map(|&i| pats[i as usize].words).sum();
        let mut order: Vec<u32> = kept
            .iter()
            .copied()
            .filter(|&i| (1..=MAX_LANE_WORDS).contains(&pats[i as usize].words))
            .collect();
        order.sort_by_key(|&i| (pats[i as usize].words, i));
        let mut spans = Vec::new();
        let (mut g, mut bytes) = (0, 0usize);
        while g < order.len() {
            let w = pats[order[g] as usize].words;
            let mut h = g + 1;
            while h < order.len() && h - g < GROUP && pats[order[h] as usize].words == w {
                h += 1;
            }
            bytes = bytes.saturating_add(vocab.saturating_mul(w * GROUP * 8));
            spans.push((g, h));
            g = h;
        }
        if bytes > BANK_BYTES
            || pats
                .iter()
                .any(|p| p.distinct.last() >= Some(&(vocab as u32)))
        {
            return Bank {
                kept,
                kept_words,
                ..Bank::default()
            };
        }
        let mut slot = vec![NO_SLOT; pats.len()];
        let groups: Vec<Group> = spans
            .iter()
            .enumerate()
            .map(|(gi, &(g, h))| {
                let members: Vec<u32> = order[g..h].to_vec();
                let w = pats[members[0] as usize].words;
                let mut rows = vec![[0u64; GROUP]; vocab * w];
                for (l, &m) in members.iter().enumerate() {
                    slot[m as usize] = (gi as u32, l as u32);
                    let p = &pats[m as usize];
                    for (k, &d) in p.distinct.iter().enumerate() {
                        for j in 0..w {
                            rows[d as usize * w + j][l] = p.masks[k * w + j];
                        }
                    }
                }
                Group {
                    words: w,
                    lens: members.iter().map(|&m| pats[m as usize].len).collect(),
                    members,
                    rows,
                }
            })
            .collect();
        let loose = kept
            .iter()
            .copied()
            .filter(|&i| slot[i as usize] == NO_SLOT)
            .collect();
        let mut by_first: Vec<u32> = (0..groups.len() as u32).collect();
        by_first.sort_by_key(|&g| groups[g as usize].members[0]);
        let max_len = groups
            .iter()
            .flat_map(|g| g.lens.iter().copied())
            .max()
            .unwrap_or(0);
        Bank {
            vocab,
            kept,
            kept_words,
            loose,
            max_len,
            groups,
            by_first,
            slot,
        }
    }

    /// The patterns the bank was built for (ascending).
    pub fn kept(&self) -> &[u32] {
        &self.kept
    }

    /// Is running every kept pattern against a text of `n` tokens cheaper than a count filter
    /// that reads `postings` inverted-index entries? Only with prebuilt group tables, where a
    /// text token costs about 1/8 cycle per pattern word, against ~2 cycles per entry read.
    pub fn run_all_cheaper(&self, postings: usize, n: usize) -> bool {
        !self.groups.is_empty() && postings.saturating_mul(16) > n.saturating_mul(self.kept_words)
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.slot.capacity() * 8
            + (self.kept.capacity() + self.loose.capacity() + self.by_first.capacity()) * 4
            + self
                .groups
                .iter()
                .map(|g| g.rows.capacity() * GROUP * 8 + g.members.capacity() * 4 + 64)
                .sum::<usize>()
    }
}

/// Per-thread scratch of [`lcs_many`]. `local`, `count`, `done` and the lane tables are all
/// zeros between calls.
#[derive(Default)]
struct Scratch {
    /// dense id -> 1 + local id among the text's distinct tokens (0: not in the text)
    local: Vec<u32>,
    /// the text's distinct ids, in local-id order (to reset `local`)
    uniq: Vec<u32>,
    /// the text in local ids (built when a candidate needs the per-text tables)
    text: Vec<u32>,
    /// the text without ids beyond the bank's
    banked: Vec<u32>,
    /// bank groups: candidates per group, whether run, their lanes' LCS, groups touched
    count: Vec<u32>,
    done: Vec<bool>,
    group_lcs: Vec<u32>,
    touched: Vec<u32>,
    /// [`lcs_all`]: the LCS each pattern length needs; hits not yet visited
    by_item: Vec<u32>,
    pending: Vec<(u32, u32)>,
    /// positions in the chunk of the candidates for the per-text tables
    rest: Vec<u32>,
    /// LCS of each candidate of the chunk
    res: Vec<u32>,
    rows8: Vec<[u64; 8]>,
    rows32: Vec<[u64; 32]>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// |LCS(text, pats[c])| for each `c` of `cands`, exact, by the multi-pattern bit-parallel
/// kernel: many patterns of one word count (ceil(len/64)) step through the text together, one
/// pattern per u64 lane of a vector register, each text token costing one read of a table row
/// that holds every lane's match mask and a few vector operations for all lanes.
///
/// Candidates that fill a group of `bank` (built over `pats`) run with the group's prebuilt
/// table; the others are grouped by word count into batches of 8 or 32 lanes with a table
/// built for the batch over the text's distinct tokens.
///
/// `text` is in the patterns' ids; tokens no pattern has may appear (they match nothing).
/// `visit(c, lcs)` is called in the order of `cands`; returning `false` stops the run (the
/// remaining candidates are then not computed). The values never depend on the batching.
pub fn lcs_many(
    pats: &[Pattern],
    bank: Option<&Bank>,
    cands: &[u32],
    text: &[u32],
    mut visit: impl FnMut(u32, usize) -> bool,
) {
    if cands.is_empty() {
        return;
    }
    let bank = bank.filter(|b| !b.groups.is_empty() && b.slot.len() == pats.len());
    SCRATCH.with(|sc| {
        let mut sc = sc.borrow_mut();
        let sc = &mut *sc;
        sc.text.clear();
        let mut translated = false;
        let mut banked_buf = std::mem::take(&mut sc.banked);
        let mut filtered = false;
        if let Some(b) = bank {
            if sc.count.len() < b.groups.len() {
                sc.count.resize(b.groups.len(), 0);
                sc.done.resize(b.groups.len(), false);
                sc.group_lcs.resize(b.groups.len() * GROUP, 0);
            }
            for &c in cands {
                let (g, _) = b.slot[c as usize];
                if g != u32::MAX {
                    if sc.count[g as usize] == 0 {
                        sc.touched.push(g);
                    }
                    sc.count[g as usize] += 1;
                }
            }
            if text.iter().any(|&c| c as usize >= b.vocab) {
                // ids beyond the bank's are in no pattern: dropping them keeps every LCS
                banked_buf.clear();
                banked_buf.extend(text.iter().copied().filter(|&c| (c as usize) < b.vocab));
                filtered = true;
            }
        }
        let banked: &[u32] = if filtered { &banked_buf } else { text };
        // chunks in candidate order, growing, so that an early stop wastes little work
        let (mut start, mut chunk) = (0, 64);
        'chunks: while start < cands.len() {
            let end = (start + chunk).min(cands.len());
            let part = &cands[start..end];
            sc.res.clear();
            sc.rest.clear();
            for (i, &c) in part.iter().enumerate() {
                let (g, l) = bank.map_or(NO_SLOT, |b| b.slot[c as usize]);
                match bank {
                    Some(b) if g != u32::MAX && sc.count[g as usize] >= MIN_GROUP => {
                        let gl = &mut sc.group_lcs[g as usize * GROUP..(g as usize + 1) * GROUP];
                        if !sc.done[g as usize] {
                            sc.done[g as usize] = true;
                            run_group(&b.groups[g as usize], banked, gl);
                        }
                        sc.res.push(gl[l as usize]);
                    }
                    _ => {
                        sc.res.push(0);
                        sc.rest.push(i as u32);
                    }
                }
            }
            if !sc.rest.is_empty() {
                if !translated {
                    translated = true;
                    translate(text, sc);
                }
                lcs_chunk(pats, part, sc);
            }
            for (&c, &l) in part.iter().zip(&sc.res) {
                if !visit(c, l as usize) {
                    break 'chunks;
                }
            }
            start = end;
            chunk = (chunk * 2).min(4096);
        }
        sc.banked = banked_buf;
        for &g in &sc.touched {
            sc.count[g as usize] = 0;
            sc.done[g as usize] = false;
        }
        sc.touched.clear();
        for &c in &sc.uniq {
            sc.local[c as usize] = 0;
        }
        sc.uniq.clear();
    });
}

/// Like [`lcs_many`] with every pattern `bank` was built for as candidates, run group by
/// group with the prebuilt tables (no candidate bookkeeping), but `visit(c, lcs)` is called
/// only where `lcs >= need(len of pattern c)`, in ascending pattern order (`need` is called
/// once per length, so it may be slow); returning `false` stops the run. `bank` should have
/// groups ([`Bank::run_all_cheaper`] says so); without, this runs [`lcs_many`].
pub fn lcs_all(
    pats: &[Pattern],
    bank: &Bank,
    text: &[u32],
    need: impl Fn(usize) -> usize,
    mut visit: impl FnMut(u32, usize) -> bool,
) {
    if bank.slot.len() != pats.len() || bank.groups.is_empty() {
        lcs_many(pats, None, &bank.kept, text, |c, l| {
            l < need(pats[c as usize].len) || visit(c, l)
        });
        return;
    }
    SCRATCH.with(|sc| {
        let mut sc = sc.borrow_mut();
        let sc = &mut *sc;
        let mut buf = std::mem::take(&mut sc.banked);
        let mut needs = std::mem::take(&mut sc.by_item);
        let mut pending = std::mem::take(&mut sc.pending);
        let text: &[u32] = if text.iter().any(|&c| c as usize >= bank.vocab) {
            // ids beyond the bank's are in no pattern: dropping them keeps every LCS
            buf.clear();
            buf.extend(text.iter().copied().filter(|&c| (c as usize) < bank.vocab));
            &buf
        } else {
            text
        };
        needs.clear();
        needs.extend((0..=bank.max_len).map(|len| need(len).min(u32::MAX as usize) as u32));
        pending.clear();
        for &i in &bank.loose {
            let p = &pats[i as usize];
            let l = p.run(text, |c| p.distinct.binary_search(&c).ok());
            if l >= need(p.len) {
                pending.push((i, l as u32));
            }
        }
        let mut out = [0u32; GROUP];
        'groups: for (k, &g) in bank.by_first.iter().enumerate() {
            let group = &bank.groups[g as usize];
            run_group(group, text, &mut out);
            for ((&m, &len), &l) in group.members.iter().zip(&group.lens).zip(&out) {
                if l >= needs[len] {
                    pending.push((m, l));
                }
            }
            // every kept pattern below the next group's first member is computed now
            let frontier = bank
                .by_first
                .get(k + 1)
                .map_or(u32::MAX, |&h| bank.groups[h as usize].members[0]);
            if !pending.is_empty() {
                pending.sort_unstable();
                let ready = pending.partition_point(|&(m, _)| m < frontier);
                for &(m, l) in &pending[..ready] {
                    if !visit(m, l as usize) {
                        break 'groups;
                    }
                }
                pending.drain(..ready);
            }
        }
        sc.banked = buf;
        sc.by_item = needs;
        sc.pending = pending;
    });
}

/// The text in local ids (`sc.text`), its distinct ids in `sc.uniq`, marked in `sc.local`.
fn translate(text: &[u32], sc: &mut Scratch) {
    let top = text.iter().copied().max().unwrap_or(0) as usize;
    if sc.local.len() <= top {
        sc.local.resize(top + 1, 0);
    }
    for &c in text {
        let slot = &mut sc.local[c as usize];
        if *slot == 0 {
            sc.uniq.push(c);
            *slot = sc.uniq.len() as u32;
        }
        sc.text.push(*slot - 1);
    }
}

/// Every lane of a bank group against `text` (ids below the bank's vocabulary), into `out`.
fn run_group(g: &Group, text: &[u32], out: &mut [u32]) {
    kernel_dispatch::<GROUP>(&g.rows, g.words, text, &g.lens, out);
}

/// LCS of the scratch text (local ids) with the patterns of `part` at positions `sc.rest`,
/// into `sc.res`: grouped by word count, batches of 8 or 32 lanes with per-text tables.
fn lcs_chunk(pats: &[Pattern], part: &[u32], sc: &mut Scratch) {
    let Scratch {
        local,
        uniq,
        text,
        rest,
        res,
        rows8,
        rows32,
        ..
    } = sc;
    let pat = |i: u32| &pats[part[i as usize] as usize];
    rest.sort_by_key(|&i| pat(i).words);
    let order = &rest[..];
    let n_loc = uniq.len();
    let mut lanes: Vec<&Pattern> = Vec::with_capacity(32);
    let mut g = 0;
    while g < order.len() {
        let w = pat(order[g]).words;
        let mut h = g;
        while h < order.len() && pat(order[h]).words == w {
            h += 1;
        }
        if w == 0 || text.is_empty() {
            // empty patterns (or text): LCS 0, already in `res`
        } else if w > MAX_LANE_WORDS || n_loc * w * 8 > MAX_TABLE_WORDS {
            for &i in &order[g..h] {
                let p = pat(i);
                let l = p.run(text, |c| p.distinct.binary_search(&uniq[c as usize]).ok());
                res[i as usize] = l as u32;
            }
        } else {
            let mut k = g;
            while k < h {
                let wide = h - k > 16 && n_loc * w * 32 <= MAX_TABLE_WORDS;
                let e = (k + if wide { 32 } else { 8 }).min(h);
                lanes.clear();
                lanes.extend(order[k..e].iter().map(|&i| pat(i)));
                let mut out = [0u32; 32];
                if wide {
                    run_batch::<32>(&lanes, w, text, local, n_loc, rows32, &mut out);
                } else {
                    run_batch::<8>(&lanes, w, text, local, n_loc, rows8, &mut out);
                }
                for (&i, &l) in order[k..e].iter().zip(&out) {
                    res[i as usize] = l;
                }
                k = e;
            }
        }
        g = h;
    }
}

/// One batch of up to `L` patterns of `w` words each: fill the lane table, run, clear.
fn run_batch<const L: usize>(
    lanes: &[&Pattern],
    w: usize,
    text: &[u32],
    local: &[u32],
    n_loc: usize,
    rows: &mut Vec<[u64; L]>,
    out: &mut [u32; 32],
) {
    if rows.len() < n_loc * w {
        rows.resize(n_loc * w, [0; L]);
    }
    // every (lane, pattern token present in the text): its mask words into the token's rows
    let each = |rows: &mut Vec<[u64; L]>, clear: bool| {
        for (l, p) in lanes.iter().enumerate() {
            for (k, &d) in p.distinct.iter().enumerate() {
                let loc = local.get(d as usize).copied().unwrap_or(0) as usize;
                if loc == 0 {
                    continue;
                }
                let base = (loc - 1) * w;
                for (j, row) in rows[base..base + w].iter_mut().enumerate() {
                    row[l] = if clear { 0 } else { p.masks[k * w + j] };
                }
            }
        }
    };
    each(rows, false);
    let mut lens = [0usize; L];
    for (l, p) in lanes.iter().enumerate() {
        lens[l] = p.len;
    }
    kernel_dispatch::<L>(&rows[..n_loc * w], w, text, &lens[..lanes.len()], out);
    each(rows, true);
}

/// Hyyrö's step for all lanes at once, over `w`-word lanes: `rows[c * w + j]` holds word `j`
/// of every lane's match mask for text token `c`; the state starts all ones. Plain array code,
/// written for LLVM to vectorise (one lane per u64 of a vector register). Then the LCS of lane
/// `l` (a pattern of `lens[l]` tokens) into `out[l]`: the zero bits among its low `lens[l]`.
#[inline(always)]
fn kernel<const L: usize>(
    rows: &[[u64; L]],
    w: usize,
    text: &[u32],
    lens: &[usize],
    out: &mut [u32],
) {
    let count = |v: &[[u64; L]], out: &mut [u32]| {
        for (l, (&len, o)) in lens.iter().zip(out.iter_mut()).enumerate() {
            let mut z = 0;
            for (j, vj) in v.iter().enumerate() {
                let bits = len.saturating_sub(j * 64);
                let valid = if bits >= 64 { !0 } else { (1u64 << bits) - 1 };
                z += (!vj[l] & valid).count_ones();
            }
            *o = z;
        }
    };
    if w == 1 {
        let mut x = [!0u64; L];
        for &c in text {
            let m = &rows[c as usize];
            for l in 0..L {
                let u = x[l] & m[l];
                x[l] = x[l].wrapping_add(u) | (x[l] & !m[l]);
            }
        }
        count(&[x], out);
        return;
    }
    let mut v = vec![[!0u64; L]; w];
    for &c in text {
        let r = &rows[c as usize * w..(c as usize + 1) * w];
        let mut carry = [0u64; L];
        for (vj, m) in v.iter_mut().zip(r) {
            for l in 0..L {
                let x = vj[l];
                let u = x & m[l];
                let s1 = x.wrapping_add(u);
                let s2 = s1.wrapping_add(carry[l]);
                // carry out of x + u + carry_in (each addend of the sum is below 2^64)
                carry[l] = ((s1 < x) | (s2 < s1)) as u64;
                vj[l] = s2 | (x & !m[l]);
            }
        }
    }
    count(&v, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,popcnt")]
fn kernel_avx512<const L: usize>(
    rows: &[[u64; L]],
    w: usize,
    text: &[u32],
    lens: &[usize],
    out: &mut [u32],
) {
    kernel(rows, w, text, lens, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn kernel_avx2<const L: usize>(
    rows: &[[u64; L]],
    w: usize,
    text: &[u32],
    lens: &[usize],
    out: &mut [u32],
) {
    kernel(rows, w, text, lens, out)
}

fn kernel_dispatch<const L: usize>(
    rows: &[[u64; L]],
    w: usize,
    text: &[u32],
    lens: &[usize],
    out: &mut [u32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        let popcnt = std::arch::is_x86_feature_detected!("popcnt");
        if popcnt && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: kernel_avx512 is safe code compiled for AVX-512F and POPCNT, which
            // this CPU has (both checked just above).
            unsafe { kernel_avx512(rows, w, text, lens, out) };
            return;
        }
        if popcnt && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for AVX2 and POPCNT.
            unsafe { kernel_avx2(rows, w, text, lens, out) };
            return;
        }
    }
    kernel(rows, w, text, lens, out)
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

    /// Every LCS of `text` with each of `pats` through [`lcs_many`], in candidate order.
    /// (Through a bank over all the patterns, and without one: both must give the same.)
    fn many(pats: &[Pattern], cands: &[u32], text: &[u32]) -> Vec<(u32, usize)> {
        let vocab = pats
            .iter()
            .filter_map(|p| p.distinct.last())
            .max()
            .map_or(0, |&x| x as usize + 1);
        let bank = Bank::new(pats, vocab, |i| i % 5 != 3);
        let mut out = Vec::new();
        for b in [None, Some(&bank)] {
            let mut got = Vec::new();
            lcs_many(pats, b, cands, text, |c, l| {
                got.push((c, l));
                true
            });
            if b.is_some() {
                assert_eq!(got, out, "bank and per-text tables differ");
            }
            out = got;
        }
        // every kept pattern through the bank's groups
        let mut got = Vec::new();
        lcs_all(
            pats,
            &bank,
            text,
            |_| 0,
            |c, l| {
                got.push((c, l));
                true
            },
        );
        let kept: Vec<(u32, usize)> = (0..pats.len() as u32)
            .filter(|&i| i % 5 != 3)
            .map(|i| (i, lcs_dp(&pats_seq(&pats[i as usize]), text)))
            .collect();
        assert_eq!(got, kept, "lcs_all");
        // with a need: only the patterns whose LCS reaches it, same order
        let need = |len: usize| len / 3 + 1;
        let mut got = Vec::new();
        lcs_all(pats, &bank, text, need, |c, l| {
            got.push((c, l));
            true
        });
        let want: Vec<(u32, usize)> = kept
            .into_iter()
            .filter(|&(c, l)| l >= need(pats[c as usize].len))
            .collect();
        assert_eq!(got, want, "lcs_all with a need");
        out
    }

    /// A sequence with the pattern's bag in the pattern's order (from its masks).
    fn pats_seq(p: &Pattern) -> Vec<u32> {
        (0..p.len)
            .map(|i| {
                let k = (0..p.distinct.len())
                    .find(|&k| p.masks[k * p.words + i / 64] >> (i % 64) & 1 == 1)
                    .unwrap();
                p.distinct[k]
            })
            .collect()
    }

    #[test]
    fn multi_pattern_equals_dp() {
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        let edge = [
            0usize, 1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 193, 300, 700,
        ];
        for trial in 0..60 {
            let alpha = [2u64, 3, 8, 30, 5000][trial % 5];
            // many patterns of many lengths (word counts 0..=11), some near copies of the text
            let n = if trial % 7 == 0 {
                edge[(r.next() % edge.len() as u64) as usize]
            } else {
                (r.next() % 400) as usize
            };
            let text = r.seq(n, alpha);
            let count = 1 + (r.next() % 90) as usize;
            let seqs: Vec<Vec<u32>> = (0..count)
                .map(|_| {
                    let m = if r.next().is_multiple_of(2) {
                        edge[(r.next() % edge.len() as u64) as usize]
                    } else {
                        (r.next() % 260) as usize
                    };
                    if r.next().is_multiple_of(4) && !text.is_empty() {
                        let s = (r.next() as usize) % text.len();
                        text[s..(s + m).min(text.len())]
                            .iter()
                            .filter(|_| !r.next().is_multiple_of(5))
                            .copied()
                            .collect()
                    } else {
                        r.seq(m, alpha)
                    }
                })
                .collect();
            let pats: Vec<Pattern> = seqs.iter().map(|s| Pattern::new(s)).collect();
            // every pattern, and a sparse ascending subset
            let all: Vec<u32> = (0..count as u32).collect();
            let some: Vec<u32> = all
                .iter()
                .copied()
                .filter(|_| r.next().is_multiple_of(3))
                .collect();
            for cands in [&all, &some] {
                let got = many(&pats, cands, &text);
                let want: Vec<(u32, usize)> = cands
                    .iter()
                    .map(|&c| (c, lcs_dp(&seqs[c as usize], &text)))
                    .collect();
                assert_eq!(got, want, "trial {trial} n={n} alpha={alpha}");
            }
            // stopping early visits a prefix, with the same values
            let stop = (r.next() % (count as u64 + 1)) as usize;
            let full = many(&pats, &all, &text);
            let bank = Bank::new(&pats, alpha as usize, |_| true);
            for b in [None, Some(&bank)] {
                let mut seen = Vec::new();
                lcs_many(&pats, b, &all, &text, |c, l| {
                    seen.push((c, l));
                    seen.len() < stop
                });
                assert_eq!(seen[..], full[..stop.max(1).min(count)]);
            }
            let mut seen = Vec::new();
            lcs_all(
                &pats,
                &bank,
                &text,
                |_| 0,
                |c, l| {
                    seen.push((c, l));
                    seen.len() < stop
                },
            );
            assert_eq!(seen[..], full[..stop.max(1).min(count)]);
        }
    }

    #[test]
    fn multi_pattern_long_and_wide() {
        // long texts and patterns (beyond one lane table row per word), many lanes of one
        // word count, texts with ids the patterns lack, the same pattern in many lanes
        let mut r = Rng(0x1234_5678_9abc_def1);
        for (n, m, alpha, count) in [
            (5000usize, 64usize, 4u64, 70usize),
            (3000, 129, 50, 40),
            (64, 5000, 3, 3),
            (2000, 4200, 7, 2),
            (1, 64, 2, 33),
        ] {
            let text = r.seq(n, alpha);
            let seqs: Vec<Vec<u32>> = (0..count).map(|_| r.seq(m, alpha + 2)).collect();
            let pats: Vec<Pattern> = seqs.iter().map(|s| Pattern::new(s)).collect();
            let all: Vec<u32> = (0..count as u32).collect();
            let got = many(&pats, &all, &text);
            for (c, l) in got {
                assert_eq!(l, lcs_dp(&seqs[c as usize], &text), "n={n} m={m}");
            }
            let same = vec![Pattern::new(&seqs[0]); 40];
            let all: Vec<u32> = (0..40).collect();
            let want = lcs_dp(&seqs[0], &text);
            assert!(many(&same, &all, &text).iter().all(|&(_, l)| l == want));
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
