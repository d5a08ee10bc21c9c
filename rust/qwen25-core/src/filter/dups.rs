//! Duplicate lines and paragraphs (datatrove's `find_duplicates`), with buffers kept across
//! documents.

use super::table::Table;
use super::text::{clen, py_strip};

/// Whether each string equals an earlier one (datatrove's `find_duplicates` counts those), with
/// memory kept from one call to the next: (hash, index of the first occurrence), the strings
/// compared on equal hashes.
#[derive(Default)]
pub(super) struct DupTable {
    table: Table<(u64, usize), ()>,
}

impl DupTable {
    /// `dup[i]`: whether `xs[i]` equals one of `xs[..i]`.
    pub(super) fn flags(&mut self, xs: &[&str], dup: &mut Vec<bool>) {
        use std::hash::BuildHasher;
        self.table.reset(xs.len());
        dup.clear();
        for (j, x) in xs.iter().enumerate() {
            let h = rustc_hash::FxBuildHasher.hash_one(x);
            let same = |&(kh, k): &(u64, usize)| kh == h && xs.get(k) == Some(x);
            dup.push(self.table.find_or_insert((h, j), same, ()).is_ok());
        }
    }
}

/// (duplicate elements, duplicate chars) as datatrove's `find_duplicates`, from the flags.
pub(super) fn dup_counts(xs: &[&str], dup: &[bool]) -> (usize, usize) {
    let (mut n, mut chars) = (0, 0);
    for (x, &d) in xs.iter().zip(dup) {
        if d {
            n += 1;
            chars += clen(x);
        }
    }
    (n, chars)
}

/// `re.split(r"\n{2,}", text.strip())` into `out`.
pub(super) fn split_paragraphs<'a>(text: &'a str, out: &mut Vec<&'a str>) {
    let t = py_strip(text);
    out.clear();
    let b = t.as_bytes();
    let (mut start, mut i) = (0, 0);
    while let Some(k) = memchr::memchr(b'\n', &b[i..]) {
        i += k;
        if i + 1 < b.len() && b[i + 1] == b'\n' {
            out.push(&t[start..i]);
            while i < b.len() && b[i] == b'\n' {
                i += 1;
            }
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&t[start..]);
}

/// The duplicate search's buffers, kept across documents.
#[derive(Default)]
pub(super) struct DupBufs {
    pub(super) table: DupTable,
    pub(super) paras: Vec<&'static str>,
    /// Gopher repetition's lines (`re.split("\n+")`)
    pub(super) nl_lines: Vec<&'static str>,
    pub(super) para_dup: Vec<bool>,
    /// per line of the last document: whether it repeats an earlier line
    pub(super) line_dup: Vec<bool>,
}
