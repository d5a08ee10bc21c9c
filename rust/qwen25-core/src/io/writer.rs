//! The atomic writer: bytes go to `.tmp-<name>` beside the final file, compressed (by the final
//! name's suffix) on a background thread, and the file appears under its final name only when
//! [`AtomicWriter::commit`] succeeds. On any error, or when the writer is dropped uncommitted, the
//! temporary file is removed. Errors name the OUTPUT file (a full disk is the output's problem,
//! never the input's). A final path that exists and is neither a regular file nor a folder
//! (`/dev/null`, `/dev/stdout`, a FIFO) is written straight through: no temporary file, nothing
//! renamed over it or removed (a rename would replace the device node with a regular file).
//!
//! Formats. `.gz`: a sequence of gzip members, one per block of at most [`BLOCK`] bytes of a
//! `write` call, compressed in parallel by libdeflate (`gzip -d`, `zcat` and Python's `gzip` read
//! the whole; an empty file is one empty member). Members are written in order and their bounds
//! depend only on the data, so the bytes never depend on timing or the thread count. `.zst`: one
//! zstd frame (an empty file is one empty frame). Anything else: the bytes as given. A `.gz` writer
//! made by [`AtomicWriter::create_spliced`] writes records of a gzip input, copying the input's
//! unchanged deflate blocks ([`gzsplice`](super::gzsplice)).
//!
//! Digest. The writer thread digests the file's bytes as they go to disk (after compression), so
//! [`commit`](AtomicWriter::commit) returns the final file's size and [`digest`](super::digest)
//! without reading it back, and remembers them for [`written_digest`](super::digest::written_digest).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::digest::{remember_written, Digest};
use super::gzsplice::Splicer;
use super::reader::{Batch, Compression};
use crate::{parallel, Error, Result};

/// Bytes per gzip member (each compressed on its own thread).
pub const BLOCK: usize = 1 << 20;

/// The temporary name of `final_path`: `.tmp-<name>` in the same folder.
pub fn tmp_of(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".tmp-{name}"))
}

/// The temporary file, digesting the bytes it accepts.
struct Hashed {
    f: File,
    h: Digest,
    n: u64,
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.f.write(buf)?;
        self.h.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.f.flush()
    }
}

type Out = BufWriter<Hashed>;

enum Sink {
    Plain(Out),
    Gzip {
        f: Out,
        level: i32,
        threads: usize,
        members: usize,
    },
    Zstd(zstd::stream::write::Encoder<'static, Out>),
    /// `.gz` written from some records of a gzip input, its unchanged deflate blocks copied
    /// ([`Splicer`]).
    Splice(Out, Box<Splicer>),
}

thread_local! {
    /// This thread's compressor, kept between members (a level 6 compressor is a large allocation
    /// that would be mapped and faulted in again for every MiB).
    static COMPRESSOR: std::cell::RefCell<Option<(i32, libdeflater::Compressor)>> =
        const { std::cell::RefCell::new(None) };
}

fn gzip_member(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            let lvl = libdeflater::CompressionLvl::new(level)
                .map_err(|_| std::io::Error::other("bad gzip level"))?;
            *slot = Some((level, libdeflater::Compressor::new(lvl)));
        }
        let Some((_, c)) = slot.as_mut() else {
            return Err(std::io::Error::other("gzip: no compressor"));
        };
        let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
        let n = c
            .gzip_compress(data, &mut out)
            .map_err(|e| std::io::Error::other(format!("gzip: {e:?}")))?;
        out.truncate(n);
        Ok(out)
    })
}

/// What the writer thread is given: bytes (any owned buffer, so a caller's own buffer is written
/// without a copy), or some records of a batch (written from the batch's own buffer: the caller
/// copies nothing).
enum Chunk {
    Bytes(Box<dyn AsRef<[u8]> + Send>),
    Select(Arc<Batch>, Vec<bool>, bool),
}

impl Sink {
    fn put(&mut self, c: Chunk) -> std::io::Result<()> {
        match (c, &mut *self) {
            (Chunk::Bytes(data), _) => self.write((*data).as_ref()),
            (Chunk::Select(b, pick, want), Sink::Plain(f)) => {
                // runs of consecutive records are one slice of the batch's buffer
                let mut run: Option<(usize, usize)> = None;
                for (i, &p) in pick.iter().enumerate().take(b.len()) {
                    if p != want {
                        continue;
                    }
                    let (s, e) = b.spans[i];
                    run = match run {
                        Some((rs, re)) if re == s => Some((rs, e)),
                        Some((rs, re)) => {
                            f.write_all(&b.data[rs..re])?;
                            Some((s, e))
                        }
                        None => Some((s, e)),
                    };
                }
                if let Some((rs, re)) = run {
                    f.write_all(&b.data[rs..re])?;
                }
                Ok(())
            }
            (Chunk::Select(b, pick, want), Sink::Splice(f, s)) => s.put(&b, &pick, want, f),
            (Chunk::Select(b, pick, want), _) => self.write(&b.select(&pick, want)),
        }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(f) => f.write_all(data),
            Sink::Zstd(z) => z.write_all(data),
            Sink::Splice(..) => Err(std::io::Error::other(
                "a writer that reuses a gzip input's blocks takes only records of that input",
            )),
            Sink::Gzip {
                f,
                level,
                threads,
                members,
            } => {
                let blocks: Vec<&[u8]> = data.chunks(BLOCK).collect();
                let level = *level;
                for m in parallel::map(&blocks, *threads, |b| gzip_member(b, level)) {
                    f.write_all(&m?)?;
                    *members += 1;
                }
                Ok(())
            }
        }
    }

    fn finish(self) -> std::io::Result<Hashed> {
        let f = match self {
            Sink::Plain(f) => f,
            Sink::Zstd(z) => z.finish()?,
            Sink::Splice(mut f, s) => {
                s.finish(&mut f)?;
                f
            }
            Sink::Gzip {
                mut f,
                level,
                members,
                ..
            } => {
                if members == 0 {
                    f.write_all(&gzip_member(b"", level)?)?;
                }
                f
            }
        };
        f.into_inner().map_err(|e| e.into_error())
    }
}

/// What [`AtomicWriter::commit`] wrote: the final file's size and digest (of its bytes as stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    pub digest: String,
}

/// One output file, written under a temporary name and renamed by [`commit`](Self::commit).
pub struct AtomicWriter {
    final_path: PathBuf,
    tmp_path: PathBuf,
    /// Writing straight to `final_path` (a device or FIFO): nothing to rename or remove.
    direct: bool,
    tx: Option<SyncSender<Chunk>>,
    thread: Option<JoinHandle<std::io::Result<Hashed>>>,
    written: u64,
    /// Every batch is passed on, even with no record picked (its block events are needed).
    splice: bool,
}

impl AtomicWriter {
    /// Create the temporary file of `final_path` (its folder too). `level`: gzip 0-9 (zstd uses
    /// its default, 3); `threads`: gzip blocks compressed at once.
    pub fn create(final_path: impl AsRef<Path>, level: u32, threads: usize) -> Result<Self> {
        Self::open(final_path.as_ref(), level, threads, None)
    }

    /// A `.gz` writer of records read from the gzip file `source` (with
    /// [`ReadOptions::gz_blocks`](super::reader::ReadOptions::gz_blocks)), given only through
    /// [`write_selected`](Self::write_selected), in the input's order: the deflate blocks that
    /// no dropped line touches are copied from `source`, the rest compressed at `level` (see
    /// [`gzsplice`](super::gzsplice)). A `final_path` that is not `.gz` is written as
    /// [`create`](Self::create) writes it.
    pub fn create_spliced(
        final_path: impl AsRef<Path>,
        level: u32,
        threads: usize,
        source: impl AsRef<Path>,
    ) -> Result<Self> {
        Self::open(final_path.as_ref(), level, threads, Some(source.as_ref()))
    }

    fn open(final_path: &Path, level: u32, threads: usize, source: Option<&Path>) -> Result<Self> {
        let final_path = final_path.to_path_buf();
        let tmp_path = tmp_of(&final_path);
        let blame = |e: std::io::Error| Error::io(&final_path, e);
        if let Some(dir) = final_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(blame)?;
        }
        if level > 9 {
            return Err(Error::Value(format!(
                "compress level must be 0-9, not {level}"
            )));
        }
        let direct = std::fs::metadata(&final_path).is_ok_and(|m| !m.is_file() && !m.is_dir());
        let file = if direct {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&final_path)
                .map_err(blame)?
        } else {
            File::create(&tmp_path).map_err(blame)?
        };
        let discard = |p: &Path| {
            if !direct {
                let _ = std::fs::remove_file(p);
            }
        };
        let f = Hashed {
            f: file,
            h: Digest::new(),
            n: 0,
        };
        let f = BufWriter::with_capacity(BLOCK, f);
        let kind = Compression::of(&final_path.to_string_lossy());
        let sink = match (kind, source) {
            (Compression::Gzip, Some(src)) => match Splicer::new(src, level) {
                Ok(s) => Sink::Splice(f, Box::new(s)),
                Err(e) => {
                    discard(&tmp_path);
                    return Err(Error::io(src, e));
                }
            },
            (Compression::Gzip, None) => Sink::Gzip {
                f,
                level: level as i32,
                threads: threads.max(1),
                members: 0,
            },
            (Compression::Plain, _) => Sink::Plain(f),
            (Compression::Zstd, _) => match zstd::stream::write::Encoder::new(f, 3) {
                Ok(z) => Sink::Zstd(z),
                Err(e) => {
                    discard(&tmp_path);
                    return Err(blame(e));
                }
            },
        };
        let splice = matches!(sink, Sink::Splice(..));
        let (tx, rx) = sync_channel::<Chunk>(2);
        let spawned = std::thread::Builder::new()
            .name("qwen25-writer".into())
            .spawn(move || {
                let mut sink = sink;
                for c in rx {
                    sink.put(c)?;
                }
                sink.finish()
            });
        let thread = match spawned {
            Ok(t) => t,
            Err(e) => {
                discard(&tmp_path);
                return Err(blame(e));
            }
        };
        Ok(AtomicWriter {
            final_path,
            tmp_path,
            direct,
            tx: Some(tx),
            thread: Some(thread),
            written: 0,
            splice,
        })
    }

    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Uncompressed bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The writer thread's result (it stopped: an error, or the end); the temp file is removed
    /// on error.
    fn join(&mut self) -> Result<Option<Hashed>> {
        self.tx = None;
        let r = match self.thread.take().map(|t| t.join()) {
            None => return Ok(None),
            Some(Ok(Ok(f))) => Ok(Some(f)),
            Some(Ok(Err(e))) => Err(Error::io(&self.final_path, e)),
            Some(Err(_)) => Err(Error::Value(format!(
                "{}: the writer thread panicked",
                self.final_path.display()
            ))),
        };
        if r.is_err() {
            self.discard_tmp();
        }
        r
    }

    /// Remove the temporary file (none when writing straight through).
    fn discard_tmp(&self) {
        if !self.direct {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }

    /// Queue `data` (compressed and written in the background). An error of an earlier write
    /// surfaces here.
    pub fn write(&mut self, data: Vec<u8>) -> Result<()> {
        self.write_owned(data)
    }

    /// [`write`](Self::write) for any owned buffer (written from it on the writer thread, which
    /// drops it after).
    pub fn write_owned<B: AsRef<[u8]> + Send + 'static>(&mut self, data: B) -> Result<()> {
        let n = data.as_ref().len() as u64;
        self.send(Chunk::Bytes(Box::new(data)), n)
    }

    /// Queue the raw lines of the records `i` of `batch` with `pick[i] == want` (as
    /// [`Batch::select`] gives them; written from the batch's buffer on the writer thread).
    pub fn write_selected(&mut self, batch: Arc<Batch>, pick: Vec<bool>, want: bool) -> Result<()> {
        let n: usize = (0..batch.len().min(pick.len()))
            .filter(|&i| pick[i] == want)
            .map(|i| batch.spans[i].1 - batch.spans[i].0)
            .sum();
        self.send(Chunk::Select(batch, pick, want), n as u64)
    }

    fn send(&mut self, c: Chunk, n: u64) -> Result<()> {
        if n == 0 && !(self.splice && matches!(c, Chunk::Select(..))) {
            return Ok(());
        }
        self.written += n;
        let sent = match &self.tx {
            Some(tx) => tx.send(c).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // the thread stopped: its error (or, when already finished, a misuse)
        self.join()?;
        Err(Error::Value(format!(
            "{}: written after commit or abort",
            self.final_path.display()
        )))
    }

    /// Finish the stream, flush, rename to the final name; the final file's size and digest.
    pub fn commit(mut self) -> Result<Written> {
        let f = self.join()?;
        let Some(f) = f else {
            return Err(Error::Value(format!(
                "{}: committed twice",
                self.final_path.display()
            )));
        };
        let blame = |e: std::io::Error| Error::io(&self.final_path, e);
        let Hashed { f, h, n } = f;
        drop(f); // no fsync: as before, a crash may lose the file, never show a partial one as done
        let digest = h.hex();
        if self.direct {
            return Ok(Written { size: n, digest }); // a device or FIFO: nothing to rename
        }
        let done = std::fs::rename(&self.tmp_path, &self.final_path).map_err(blame);
        if let Err(e) = done {
            let _ = std::fs::remove_file(&self.tmp_path);
            return Err(e);
        }
        let m = std::fs::metadata(&self.final_path).map_err(blame)?;
        if m.len() == n {
            remember_written(&self.final_path, &m, &digest);
        }
        Ok(Written { size: n, digest })
    }

    /// Give up: stop the thread and remove the temporary file.
    pub fn abort(mut self) {
        self.abort_in_place();
    }

    fn abort_in_place(&mut self) {
        let _ = self.join();
        self.discard_tmp();
    }
}

impl Drop for AtomicWriter {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.abort_in_place();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("qwen25-io-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn gzip_zstd_plain_round_trip_and_no_tmp_left() {
        let d = tmpdir("rt");
        let data: Vec<u8> = (0..3 * BLOCK + 17)
            .map(|i| b"abc\n"[i % 4] ^ (i % 251) as u8)
            .collect();
        for name in ["a.jsonl", "a.jsonl.gz", "a.jsonl.zst"] {
            let p = d.join(name);
            let mut w = AtomicWriter::create(&p, 6, 2).unwrap();
            w.write(data[..1000].to_vec()).unwrap();
            w.write(data[1000..].to_vec()).unwrap();
            assert!(!p.exists());
            let done = w.commit().unwrap();
            assert_eq!(done.size, std::fs::metadata(&p).unwrap().len());
            let raw = std::fs::read(&p).unwrap();
            // the digest is of the bytes as stored (one shot, independent of the writer's chunks)
            assert_eq!(done.digest, crate::io::digest::digest_bytes(&raw), "{name}");
            assert_eq!(
                crate::io::digest::written_digest(&p),
                Some(done.digest.clone())
            );
            assert_eq!(
                crate::io::digest::file_digest(&p).unwrap(),
                (done.size, done.digest.clone())
            );
            let got = match Compression::of(name) {
                Compression::Plain => raw,
                Compression::Gzip => {
                    let mut v = Vec::new();
                    flate2::read::MultiGzDecoder::new(&raw[..])
                        .read_to_end(&mut v)
                        .unwrap();
                    v
                }
                Compression::Zstd => zstd::stream::decode_all(&raw[..]).unwrap(),
            };
            assert_eq!(got, data, "{name}");
            assert!(!tmp_of(&p).exists());
        }
        // empty outputs are valid files
        for name in ["e.gz", "e.zst"] {
            let p = d.join(name);
            AtomicWriter::create(&p, 6, 1).unwrap().commit().unwrap();
            let raw = std::fs::read(&p).unwrap();
            assert!(!raw.is_empty());
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_blames_the_output_and_leaves_no_tmp() {
        let d = tmpdir("full");
        let p = d.join("out.jsonl");
        // the temporary file is /dev/full: every write fails with ENOSPC
        std::os::unix::fs::symlink("/dev/full", tmp_of(&p)).unwrap();
        let mut w = AtomicWriter::create(&p, 6, 1).unwrap();
        let mut err = None;
        for _ in 0..8 {
            if let Err(e) = w.write(vec![b'x'; BLOCK]) {
                err = Some(e);
                break;
            }
        }
        let e = match err {
            Some(e) => e,
            None => w.commit().unwrap_err(),
        };
        let msg = e.to_string();
        assert!(msg.starts_with(&p.display().to_string()), "{msg}");
        assert!(
            matches!(&e, Error::Io { source, .. } if source.raw_os_error() == Some(28)),
            "{msg}"
        );
        assert!(!tmp_of(&p).exists() && !p.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_written_digest_is_forgotten_once_the_file_changes() {
        use crate::io::digest::{digest_bytes, output_digest, written_digest};
        let d = tmpdir("forget");
        let p = d.join("x.jsonl");
        let mut w = AtomicWriter::create(&p, 6, 1).unwrap();
        w.write(b"hello\n".to_vec()).unwrap();
        let done = w.commit().unwrap();
        assert_eq!(done.digest, digest_bytes(b"hello\n"));
        assert_eq!(written_digest(&p), Some(done.digest.clone()));
        // same size, mtime set back: the change time still moves
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, b"jello\n").unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        assert_eq!(written_digest(&p), None);
        assert_eq!(output_digest(&p).unwrap(), (6, digest_bytes(b"jello\n")));
        std::fs::remove_file(&p).unwrap();
        assert_eq!(written_digest(&p), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dropped_uncommitted_leaves_nothing() {
        let d = tmpdir("drop");
        let p = d.join("x.gz");
        let mut w = AtomicWriter::create(&p, 1, 1).unwrap();
        w.write(b"hello\n".to_vec()).unwrap();
        drop(w);
        assert!(!p.exists() && !tmp_of(&p).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
