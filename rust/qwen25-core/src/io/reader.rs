//! The JSONL reader: plain, gzip (any number of members; zero bytes between or after them are
//! padding, as Python's `gzip` reads them; inflated by [`GzBlockDecoder`]) and zstd (any number of
//! frames) files,
//! read in batches of records on a background thread, each record's raw line kept for
//! pass-through output.
//!
//! Lines. Only `\n` ends a line; a `\r` before it is part of the ending. A line whose content is
//! only ASCII whitespace is blank: counted, not a record. A last line without an ending gets
//! `\n` in the raw bytes kept, so that no output line can run into the next. `line` numbers
//! count every line from 1; `record` indices count the non-blank ones (bad included) from 0.
//!
//! Bad lines (see [`record_item`](super::record::record_item)) are an error naming `file:line`,
//! or with `skip_bad` are kept in [`Batch::bad`] with their bytes. A compressed file cut short or
//! corrupt is the error `file: truncated/corrupt compressed data after N records (line L)`, or with
//! `skip_bad` ends the stream with [`Batch::damage`]; the input's digest still covers every byte.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::digest::Digest;
use super::gzsplice::{GzBlockDecoder, GzEvent, GzEvents};
use super::record::{record_item_extra, Item, Rules};
use crate::{parallel, Error, Result};

const CHUNK: usize = 1 << 20;
/// A batch closes at `batch_size` records or at this many raw bytes, whichever comes first: small
/// enough that reading the next batch overlaps the consumer's work on this one from the first MBs
/// of a shard (a shard of large documents would otherwise be one batch, read before any work),
/// large enough that a batch keeps every thread of the consumer busy.
pub const BATCH_BYTES: usize = 8 << 20;
/// The first batch of a file closes at this many bytes, and each next one at twice its
/// predecessor's limit up to [`BATCH_BYTES`]: the consumer starts on a file's first records after
/// a MiB is parsed, not eight (with a shard after shard, that wait was the engine's idle time).
pub const FIRST_BATCH_BYTES: usize = 1 << 20;

/// The compression of a file, by its suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Plain,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn of(path: &str) -> Self {
        let p = path.to_ascii_lowercase();
        if p.ends_with(".gz") {
            Compression::Gzip
        } else if p.ends_with(".zst") {
            Compression::Zstd
        } else {
            Compression::Plain
        }
    }
}

/// How a file is read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub rules: Rules,
    pub skip_bad: bool,
    pub batch_size: usize,
    /// Digest the file's bytes ([`digest`](super::digest), as stored) as they are read.
    pub hash: bool,
    /// Also BLAKE2b-128 of the file's bytes as stored (the `blake2b` of the decontaminate report's
    /// inputs), on the same thread; off for the jobs that do not report it.
    pub blake2b: bool,
    /// A field whose raw JSON value each good record passes through ([`Batch::extras`]), so that
    /// a caller needing one more field than the text does not parse the whole line again.
    pub extra_field: Option<String>,
    /// Threads that parse a batch's lines (order and results never depend on it).
    pub threads: usize,
    /// A gzip file is inflated by [`GzBlockDecoder`], which records where its deflate blocks
    /// are ([`Batch::gz`]), and each record's offset in the decompressed stream is kept
    /// ([`Batch::upos`]): what a [`Splicer`](super::gzsplice::Splicer) needs to copy unchanged
    /// blocks to an output.
    pub gz_blocks: bool,
}

/// A line that could not become a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub line: usize,
    pub record: usize,
    pub reason: String,
    /// The line without its ending.
    pub raw: Vec<u8>,
}

/// Where a compressed file stopped being readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub line: usize,
    pub records_before: usize,
    pub reason: String,
}

/// Up to `batch_size` records of one file, in order, and the bad lines met on the way.
#[derive(Debug, Default)]
pub struct Batch {
    pub items: Vec<Item>,
    /// The lines read, endings included (bad lines' bytes too: records are located by `spans`).
    pub data: Vec<u8>,
    /// `data[spans[i].0..spans[i].1]` is record i's line.
    pub spans: Vec<(usize, usize)>,
    pub lines: Vec<usize>,
    pub records: Vec<usize>,
    /// With [`ReadOptions::extra_field`]: per record, the raw JSON text of that field (None when
    /// absent; see [`record_item_extra`]); empty without.
    pub extras: Vec<Option<String>>,
    pub bad: Vec<Bad>,
    pub damage: Option<Damage>,
    /// Bytes of the lines read (as in the file, decompressed), blank and bad ones included.
    pub nbytes: u64,
    pub blank: u64,
    /// With [`ReadOptions::gz_blocks`]: per record, the offset of its line in the file's
    /// decompressed bytes; empty without.
    pub upos: Vec<u64>,
    /// The last record is the file's last line, which had no ending: its raw bytes got a `\n`.
    pub appended: bool,
    /// With [`ReadOptions::gz_blocks`] on a gzip file: the block events recorded since the
    /// previous batch (the decoder runs ahead, so some may lie past this batch).
    pub gz: Vec<GzEvent>,
}

impl Batch {
    pub fn raw(&self, i: usize) -> &[u8] {
        let (start, end) = self.spans[i];
        &self.data[start..end]
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The raw lines of the records `i` with `pick[i] == want`, back to back.
    pub fn select(&self, pick: &[bool], want: bool) -> Vec<u8> {
        let n: usize = (0..self.len().min(pick.len()))
            .filter(|&i| pick[i] == want)
            .map(|i| self.spans[i].1 - self.spans[i].0)
            .sum();
        let mut out = Vec::with_capacity(n);
        for (i, &p) in pick.iter().enumerate().take(self.len()) {
            if p == want {
                out.extend_from_slice(self.raw(i));
            }
        }
        out
    }
}

/// The file's bytes, hashed as they pass; a read error of the file itself is remembered, so it
/// is reported as an I/O error rather than as damaged data.
struct Source {
    f: Box<dyn Read + Send>,
    h: Option<Digest>,
    b2: Option<blake2b_simd::State>,
    failed: bool,
}

impl Source {
    fn update(&mut self, data: &[u8]) {
        if let Some(h) = self.h.as_mut() {
            h.update(data);
        }
        if let Some(b) = self.b2.as_mut() {
            b.update(data);
        }
    }
}

/// What a file's reading ends with: the digests asked for (hex) of every byte of the file as
/// stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    /// [`digest`](super::digest) (with [`ReadOptions::hash`]).
    pub digest: Option<String>,
    /// BLAKE2b with a 16-byte output, as `hashlib.blake2b(data, digest_size=16).hexdigest()`
    /// (with [`ReadOptions::blake2b`]).
    pub blake2b: Option<String>,
}

#[derive(Clone)]
struct Hashing(Arc<Mutex<Source>>);

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match s.f.read(buf) {
            Ok(n) => {
                s.update(&buf[..n]);
                Ok(n)
            }
            Err(e) => {
                s.failed = e.kind() != std::io::ErrorKind::Interrupted;
                Err(e)
            }
        }
    }
}

impl Hashing {
    /// Read the rest of the file (so the hashes cover it), then the hex digests.
    fn finish(&self, path: &str) -> Result<Digests> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = vec![0u8; CHUNK];
        if s.h.is_some() || s.b2.is_some() {
            loop {
                let n =
                    s.f.read(&mut buf)
                        .map_err(|e| Error::io(Path::new(path), e))?;
                if n == 0 {
                    break;
                }
                s.update(&buf[..n]);
            }
        }
        let b2 = s.b2.take().map(|b| b.finalize().to_hex().to_string());
        Ok(Digests {
            digest: s.h.take().map(|h| h.hex()),
            blake2b: b2,
        })
    }
}

/// The UTF-8 byte order mark, skipped at the start of a file (only there).
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn is_blank(content: &[u8]) -> bool {
    content
        .iter()
        .all(|&c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

/// Reads one file batch by batch (in the calling thread; see [`BatchStream`] for a background one).
pub struct RecordReader {
    path: String,
    opts: ReadOptions,
    lines: Box<dyn BufRead + Send>,
    src: Hashing,
    compressed: bool,
    line: usize,
    record: usize,
    done: bool,
    /// The damage error, raised after the lines before it were checked (a bad line among them wins).
    pending: Option<Error>,
    /// Where the next batch closes (bytes): [`FIRST_BATCH_BYTES`], doubling to [`BATCH_BYTES`].
    cap: usize,
    /// Decompressed bytes read so far (the next line's offset).
    upos: u64,
    /// The block decoder's events ([`ReadOptions::gz_blocks`] on a gzip file).
    gz: Option<GzEvents>,
}

impl RecordReader {
    /// Open `path` (`"-"`: standard input, plain).
    pub fn open(path: &str, opts: ReadOptions) -> Result<Self> {
        let (f, kind): (Box<dyn Read + Send>, Compression) = if path == "-" {
            (Box::new(std::io::stdin()), Compression::Plain)
        } else {
            let f = File::open(path).map_err(|e| Error::io(Path::new(path), e))?;
            if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                return Err(Error::io(
                    Path::new(path),
                    std::io::Error::new(
                        std::io::ErrorKind::IsADirectory,
                        "is a directory, not a file",
                    ),
                ));
            }
            // an empty file holds no records, compressed or not (as Python's gzip reads it)
            let empty = f.metadata().is_ok_and(|m| m.is_file() && m.len() == 0);
            let kind = if empty {
                Compression::Plain
            } else {
                Compression::of(path)
            };
            (Box::new(f), kind)
        };
        let h = opts.hash.then(Digest::new);
        let b2 = opts
            .blake2b
            .then(|| blake2b_simd::Params::new().hash_length(16).to_state());
        let src = Hashing(Arc::new(Mutex::new(Source {
            f,
            h,
            b2,
            failed: false,
        })));
        let mut gz = None;
        let raw = BufReader::with_capacity(CHUNK, src.clone());
        let lines: Box<dyn BufRead + Send> = match kind {
            Compression::Plain => Box::new(raw),
            Compression::Gzip => {
                // one gzip decoder for every job, recording where its blocks are only when asked
                let ev = opts.gz_blocks.then(GzEvents::default);
                gz = ev.clone();
                let d = GzBlockDecoder::new(src.clone(), ev)
                    .map_err(|e| Error::io(Path::new(path), e))?;
                Box::new(BufReader::with_capacity(CHUNK, d))
            }
            Compression::Zstd => {
                let d = zstd::stream::read::Decoder::with_buffer(raw)
                    .map_err(|e| Error::io(Path::new(path), e))?;
                Box::new(BufReader::with_capacity(CHUNK, d))
            }
        };
        Ok(RecordReader {
            path: path.to_string(),
            opts,
            lines,
            src,
            compressed: kind != Compression::Plain,
            line: 0,
            record: 0,
            done: false,
            pending: None,
            cap: FIRST_BATCH_BYTES,
            upos: 0,
            gz,
        })
    }

    /// The next batch (possibly empty of records), or None after the last. Its lines are read
    /// first (up to `batch_size` non-blank ones or [`BATCH_BYTES`], less for the first batches:
    /// see [`FIRST_BATCH_BYTES`]), then parsed on `threads`.
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        if self.done {
            return Ok(None);
        }
        let mut b = Batch::default();
        // (line, record, start, content end, end, offset in the file's bytes) of each non-blank
        // line in `raw`
        let mut spans: Vec<(usize, usize, usize, usize, usize, u64)> = Vec::new();
        let mut appended = false;
        let mut raw: Vec<u8> = Vec::new();
        let bs = self.opts.batch_size.max(1);
        let cap = self.cap;
        self.cap = (cap * 2).min(BATCH_BYTES);
        while spans.len() < bs && raw.len() < cap {
            let start = raw.len();
            match self.lines.read_until(b'\n', &mut raw) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    raw.truncate(start);
                    let failed = self.src.0.lock().map(|s| s.failed).unwrap_or(true);
                    if !self.compressed || failed {
                        return Err(Error::io(Path::new(&self.path), e));
                    }
                    let detail = e
                        .to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    let msg = format!(
                        "truncated/corrupt compressed data after {} records (line {}): {detail}",
                        self.record,
                        self.line + 1
                    );
                    if !self.opts.skip_bad {
                        // the records before the damage are judged by the caller first only with
                        // skip_bad; without it a bad line earlier in this batch wins
                        self.done = true;
                        self.pending = Some(Error::format(
                            &self.path,
                            0,
                            format!("{msg} (pass --skip-bad to keep the records before it)"),
                        ));
                    } else {
                        b.damage = Some(Damage {
                            line: self.line + 1,
                            records_before: self.record,
                            reason: msg,
                        });
                    }
                    self.done = true;
                    break;
                }
            }
            b.nbytes += (raw.len() - start) as u64;
            let mut upos = self.upos;
            self.upos += (raw.len() - start) as u64;
            if self.line == 0 && raw[start..].starts_with(BOM) {
                upos += BOM.len() as u64;
                // a UTF-8 byte order mark at the very start of the file (as Windows tools write
                // it; Python's "utf-8-sig"): not part of the first record, nor of its raw bytes
                raw.drain(start..start + BOM.len());
                if raw.len() == start {
                    continue; // the file is the mark alone: no line at all
                }
            }
            self.line += 1;
            let mut end = raw.len();
            if raw[end - 1] == b'\n' {
                end -= 1;
            }
            if end > start && raw[end - 1] == b'\r' {
                end -= 1;
            }
            if is_blank(&raw[start..end]) {
                b.blank += 1;
                raw.truncate(start);
                continue;
            }
            if raw.last() != Some(&b'\n') {
                raw.push(b'\n'); // an output line never runs into the next
                appended = true;
            }
            spans.push((self.line, self.record, start, end, raw.len(), upos));
            self.record += 1;
        }
        let rules = &self.opts.rules;
        let extra = self.opts.extra_field.as_deref();
        let parsed = parallel::map(&spans, self.opts.threads, |&(_, _, s, e, _, _)| {
            record_item_extra(&raw[s..e], rules, extra)
        });
        let last = spans.len();
        for (k, (&(line, record, s, e, end, upos), r)) in spans.iter().zip(parsed).enumerate() {
            match r {
                Ok((item, x)) => {
                    if self.opts.gz_blocks {
                        b.upos.push(upos);
                    }
                    b.appended = appended && k + 1 == last;
                    if extra.is_some() {
                        b.extras.push(x);
                    }
                    b.items.push(item);
                    b.spans.push((s, end));
                    b.lines.push(line);
                    b.records.push(record);
                }
                Err(why) => {
                    if !self.opts.skip_bad {
                        self.done = true;
                        return Err(Error::format(
                            &self.path,
                            line,
                            format!("{why} (pass --skip-bad to count, list and keep such lines)"),
                        ));
                    }
                    b.bad.push(Bad {
                        line,
                        record,
                        reason: why,
                        raw: raw[s..e].to_vec(),
                    });
                }
            }
        }
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        b.data = raw; // no copy: records are located by their spans
        if let Some(ev) = &self.gz {
            b.gz = std::mem::take(&mut *ev.lock().unwrap_or_else(|p| p.into_inner()));
        }
        Ok(Some(b))
    }

    /// After the last batch: the digests asked for (hex) of every byte of the file.
    pub fn finish(&self) -> Result<Digests> {
        self.src.finish(&self.path)
    }
}

/// A [`RecordReader`] on its own thread, one or two batches ahead of the consumer.
pub struct BatchStream {
    rx: Option<Receiver<Result<Batch>>>,
    thread: Option<JoinHandle<Result<Digests>>>,
    ended: bool,
}

impl BatchStream {
    pub fn open(path: &str, opts: ReadOptions) -> Result<Self> {
        let mut r = RecordReader::open(path, opts)?;
        let (tx, rx) = sync_channel::<Result<Batch>>(2);
        let thread = std::thread::Builder::new()
            .name("qwen25-reader".into())
            .spawn(move || {
                loop {
                    match r.next_batch() {
                        Ok(Some(b)) => {
                            if tx.send(Ok(b)).is_err() {
                                return Ok(Digests::default()); // the consumer stopped
                            }
                        }
                        Ok(None) => return r.finish(),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return Ok(Digests::default());
                        }
                    }
                }
            })
            .map_err(|e| Error::io(Path::new(path), e))?;
        Ok(BatchStream {
            rx: Some(rx),
            thread: Some(thread),
            ended: false,
        })
    }

    /// The next batch, None at the end.
    pub fn next_batch(&mut self) -> Result<Option<Batch>> {
        if self.ended {
            return Ok(None);
        }
        match self.rx.as_ref().map(|rx| rx.recv()) {
            Some(Ok(Ok(b))) => Ok(Some(b)),
            Some(Ok(Err(e))) => {
                self.ended = true;
                Err(e)
            }
            _ => {
                self.ended = true;
                Ok(None)
            }
        }
    }

    /// After the end: the file's digests (hex), those asked for.
    pub fn finish(&mut self) -> Result<Digests> {
        self.rx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::Value("the reader thread panicked".into())),
            None => Ok(Digests::default()),
        }
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.rx = None; // the thread's next send fails and it returns
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
