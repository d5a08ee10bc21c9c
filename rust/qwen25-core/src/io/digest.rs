//! File digests for resume: the fingerprint the data jobs keep of every input they read and every
//! output they write, to notice an accidental change (a truncated, edited or replaced file). Not a
//! security feature: a fast non-cryptographic hash is enough, and costs next to nothing beside
//! reading or writing the bytes.
//!
//! The algorithm is [`ALGORITHM`], XXH3-128; a digest is its 32 lowercase hex digits, in the
//! canonical (big-endian) order that `xxhash.xxh3_128(data).hexdigest()` prints. Callers name it
//! by role (`digest`) and store [`ALGORITHM`] beside it, so that it can change again.
//!
//! The reader digests a file's bytes as they are read; the [`AtomicWriter`](super::AtomicWriter)
//! the bytes it writes (after compression); [`file_digest`] streams an existing file. A file this
//! process committed through the writer is remembered with its metadata ([`written_digest`]):
//! while the file is unchanged since (device, inode, size, modification and change times) its
//! digest is known without reading it again.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use xxhash_rust::xxh3::Xxh3Default;

use crate::{Error, Result};

/// The digest's algorithm, as recorded beside it.
pub const ALGORITHM: &str = "xxh3-128";

/// A running digest.
#[derive(Clone)]
pub struct Digest(Box<Xxh3Default>);

impl Default for Digest {
    fn default() -> Self {
        Self::new()
    }
}

impl Digest {
    pub fn new() -> Self {
        Digest(Box::new(Xxh3Default::new()))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of the bytes so far, as hex.
    pub fn hex(&self) -> String {
        hex(self.0.digest128())
    }
}

fn hex(v: u128) -> String {
    format!("{v:032x}")
}

/// The digest of `data`.
pub fn digest_bytes(data: &[u8]) -> String {
    hex(xxhash_rust::xxh3::xxh3_128(data))
}

/// `(size, digest)` of the file at `path`, streamed.
pub fn file_digest(path: impl AsRef<Path>) -> Result<(u64, String)> {
    let path = path.as_ref();
    let blame = |e: std::io::Error| Error::io(path, e);
    let mut f = File::open(path).map_err(blame)?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(blame(std::io::Error::other("is a directory, not a file")));
    }
    let mut d = Digest::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(blame(e)),
        };
        d.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, d.hex()))
}

/// What identifies a file's content for as long as nobody writes to it: any write, truncation,
/// rename over it or `utime` changes one of these (the change time cannot be set back).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<i128>);

fn stamp(m: &Metadata) -> Stamp {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Stamp(vec![
            m.dev() as i128,
            m.ino() as i128,
            m.len() as i128,
            m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        ])
    }
    #[cfg(not(unix))]
    {
        let ns = |t: std::io::Result<std::time::SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as i128)
                .unwrap_or(-1)
        };
        Stamp(vec![m.len() as i128, ns(m.modified()), ns(m.created())])
    }
}

/// Files committed by this process's writers, most recent last (bounded: an old entry is only a
/// missed shortcut).
static WRITTEN: Mutex<Vec<(PathBuf, Stamp, String)>> = Mutex::new(Vec::new());
const REMEMBERED: usize = 4096;

fn key(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Remember that the file at `path` (just committed, with metadata `m`) has `digest`.
pub(crate) fn remember_written(path: &Path, m: &Metadata, digest: &str) {
    let k = key(path);
    let mut w = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    w.retain(|(p, _, _)| *p != k);
    if w.len() >= REMEMBERED {
        w.drain(..REMEMBERED / 2);
    }
    w.push((k, stamp(m), digest.to_string()));
}

/// The digest of `path` as this process's writer wrote it, when the file is unchanged since it
/// was committed; None otherwise (never written here, replaced, touched, or gone).
pub fn written_digest(path: impl AsRef<Path>) -> Option<String> {
    let path = path.as_ref();
    let m = std::fs::metadata(path).ok()?;
    let k = key(path);
    let w = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    let (_, s, d) = w.iter().rev().find(|(p, _, _)| *p == k)?;
    (*s == stamp(&m)).then(|| d.clone())
}

/// `(size, digest)` of `path`: [`written_digest`] when it knows the file, else [`file_digest`].
pub fn output_digest(path: impl AsRef<Path>) -> Result<(u64, String)> {
    let path = path.as_ref();
    if let Some(d) = written_digest(path) {
        if let Ok(m) = std::fs::metadata(path) {
            return Ok((m.len(), d));
        }
    }
    file_digest(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_equals_one_shot_and_empty() {
        let data: Vec<u8> = (0..5_000_000u32)
            .map(|i| i.wrapping_mul(2654435761) as u8)
            .collect();
        let mut d = Digest::new();
        for c in data.chunks(777_777) {
            d.update(c);
        }
        assert_eq!(d.hex(), digest_bytes(&data));
        assert_eq!(d.hex().len(), 32);
        // XXH3-128 of the empty input (the reference value of the xxHash test vectors)
        assert_eq!(digest_bytes(b""), "99aa06d3014798d86001c324468d497f");
        assert_eq!(Digest::new().hex(), digest_bytes(b""));
    }
}
