//! Gzip block reuse: write a subset of a gzip file's lines without recompressing the blocks that
//! did not change.
//!
//! A job that drops a few lines of a `.gz` shard (decontamination drops well under 1%) would
//! otherwise decompress the shard and compress it again whole, which costs about as much CPU as
//! the engine that judged the lines. Deflate blocks can be copied instead: a block decodes the
//! same wherever it stands in a stream as long as the 32 KiB before it (its back-references'
//! reach) are the same bytes. So:
//!
//! - [`GzBlockDecoder`] inflates a gzip file (any number of members, as Python's `gzip` reads
//!   them: zero bytes between or after members are padding) with zlib's `inflate(Z_BLOCK)`,
//!   which stops at each block boundary, and records where each block starts in the file (in
//!   bits) and in the decompressed stream ([`GzEvent`]). It checks every member's CRC-32 and
//!   length, as `gzip -t` does.
//! - [`Splicer`] is given the lines to keep, in order, each with its offset in the decompressed
//!   stream, and the decoder's events. A block is copied bit for bit when every byte of it and of
//!   the [`WINDOW`] bytes before it (within its member) is kept unchanged; runs of the other
//!   blocks are compressed again (zlib, at the writer's level) from the kept bytes. One output
//!   member per input member, each with its own CRC-32 and length. The output decompresses to
//!   exactly the kept lines, whatever produced the input (zlib at any level, stored blocks,
//!   libdeflate, flushes, many members).
//!
//! Bits are counted from the start of the file, least significant bit of each byte first (the
//! order deflate packs them in).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use libz_rs_sys as z;

use super::reader::Batch;

/// How far back a deflate block can refer.
pub const WINDOW: u64 = 32 * 1024;

/// Where a gzip file's deflate blocks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GzEvent {
    /// A deflate block starts at file bit `bit` and decompressed offset `u` (the first of a
    /// member starts the member).
    Block { bit: u64, u: u64 },
    /// The member's last block ends at file bit `bit`, decompressed offset `u`.
    End { bit: u64, u: u64 },
}

/// The events a decoder records, drained by the reader into each batch.
pub type GzEvents = Arc<Mutex<Vec<GzEvent>>>;

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn crc32(crc: u32, data: &[u8]) -> u32 {
    let mut c = crc as z::uLong;
    // zlib takes at most 4 GiB a call
    for part in data.chunks(1 << 30) {
        // SAFETY: `part` is a valid slice of `part.len()` bytes
        c = unsafe { z::crc32(c, part.as_ptr(), part.len() as z::uInt) };
    }
    c as u32
}

fn zmsg(s: &z::z_stream, what: &str) -> String {
    if s.msg.is_null() {
        what.to_string()
    } else {
        // SAFETY: zlib's messages are static NUL-terminated strings
        let m = unsafe { std::ffi::CStr::from_ptr(s.msg) };
        format!("{what}: {}", m.to_string_lossy())
    }
}

/// A raw-deflate zlib stream (inflate or deflate), ended on drop.
struct Stream {
    s: Box<z::z_stream>,
    deflate: bool,
}

impl Stream {
    fn inflate() -> io::Result<Self> {
        let mut s = Box::<z::z_stream>::default();
        // SAFETY: `s` is a default-initialised stream (allocators set by libz-rs-sys)
        let rc = unsafe {
            z::inflateInit2_(
                &mut *s,
                -15,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as i32,
            )
        };
        if rc != z::Z_OK {
            return Err(io::Error::other(format!("inflateInit2 failed ({rc})")));
        }
        Ok(Stream { s, deflate: false })
    }

    fn deflate(level: i32) -> io::Result<Self> {
        let mut s = Box::<z::z_stream>::default();
        // SAFETY: as above
        let rc = unsafe {
            z::deflateInit2_(
                &mut *s,
                level,
                z::Z_DEFLATED,
                -15,
                8,
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as i32,
            )
        };
        if rc != z::Z_OK {
            return Err(io::Error::other(format!("deflateInit2 failed ({rc})")));
        }
        Ok(Stream { s, deflate: true })
    }
}

// SAFETY: the stream owns its zlib state (allocated by zlib for it alone); its pointers into the
// caller's buffers are set afresh before every call and never used after one returns. Moving it
// to another thread is moving that owned state.
unsafe impl Send for Stream {}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by the matching init
        unsafe {
            if self.deflate {
                z::deflateEnd(&mut *self.s);
            } else {
                z::inflateEnd(&mut *self.s);
            }
        }
    }
}

const IN_BUF: usize = 1 << 18;

#[derive(PartialEq, Eq)]
enum State {
    Header,
    Body,
    Done,
}

/// A gzip decoder that records where its deflate blocks are (see the module's docs).
pub struct GzBlockDecoder<R: Read> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    z: Stream,
    state: State,
    crc: u32,
    size: u32,
    /// Decompressed bytes so far.
    u: u64,
    members: u64,
    end_bit: Option<u64>,
    /// Where the blocks' events go (None: not recorded).
    events: Option<GzEvents>,
}

impl<R: Read> GzBlockDecoder<R> {
    /// A decoder of the gzip bytes `inner`, recording its block events into `events` if given.
    pub fn new(inner: R, events: Option<GzEvents>) -> io::Result<Self> {
        Ok(GzBlockDecoder {
            inner,
            buf: vec![0u8; IN_BUF],
            pos: 0,
            len: 0,
            base: 0,
            eof: false,
            z: Stream::inflate()?,
            state: State::Header,
            crc: 0,
            size: 0,
            u: 0,
            members: 0,
            end_bit: None,
            events,
        })
    }

    /// Read more input, keeping the 16 bytes before `pos` (a trailer can start there: zlib's bit
    /// reader takes up to 8 bytes past a stream's end).
    fn fill(&mut self) -> io::Result<usize> {
        let keep = self.pos.saturating_sub(16);
        if keep > 0 {
            self.buf.copy_within(keep..self.len, 0);
            self.base += keep as u64;
            self.pos -= keep;
            self.len -= keep;
        }
        if self.len == self.buf.len() {
            let n = self.buf.len() * 2;
            self.buf.resize(n, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.len..]) {
                Ok(n) => {
                    if n == 0 {
                        self.eof = true;
                    }
                    self.len += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Make `n` bytes available at `pos`; false at the end of the file.
    fn need(&mut self, n: usize) -> io::Result<bool> {
        while self.len - self.pos < n {
            if self.eof || self.fill()? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn push(&self, e: GzEvent) {
        let Some(events) = &self.events else {
            return;
        };
        let mut ev = events.lock().unwrap_or_else(|p| p.into_inner());
        if ev.last() != Some(&e) {
            ev.push(e);
        }
    }

    /// Parse a member's header; false at the end of the file (after padding).
    fn header(&mut self) -> io::Result<bool> {
        loop {
            if !self.need(1)? {
                if self.members == 0 {
                    return Err(bad("not a gzip file: it is empty"));
                }
                return Ok(false);
            }
            if self.members > 0 && self.buf[self.pos] == 0 {
                self.pos += 1; // padding after a member
                continue;
            }
            break;
        }
        if !self.need(10)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated gzip header",
            ));
        }
        let h = &self.buf[self.pos..self.pos + 10];
        if h[0] != 0x1f || h[1] != 0x8b {
            return Err(bad("invalid gzip header (not a gzip member)"));
        }
        if h[2] != 8 {
            return Err(bad(format!("unknown gzip compression method {}", h[2])));
        }
        let flags = h[3];
        self.pos += 10;
        let short = || io::Error::new(io::ErrorKind::UnexpectedEof, "truncated gzip header");
        if flags & 4 != 0 {
            if !self.need(2)? {
                return Err(short());
            }
            let n = u16::from_le_bytes([self.buf[self.pos], self.buf[self.pos + 1]]) as usize;
            self.pos += 2;
            if !self.need(n)? {
                return Err(short());
            }
            self.pos += n;
        }
        for flag in [8u8, 16] {
            if flags & flag != 0 {
                loop {
                    if !self.need(1)? {
                        return Err(short());
                    }
                    self.pos += 1;
                    if self.buf[self.pos - 1] == 0 {
                        break;
                    }
                }
            }
        }
        if flags & 2 != 0 {
            if !self.need(2)? {
                return Err(short());
            }
            self.pos += 2;
        }
        // SAFETY: the stream is initialised
        if unsafe { z::inflateReset(&mut *self.z.s) } != z::Z_OK {
            return Err(io::Error::other("inflateReset failed"));
        }
        self.crc = 0;
        self.size = 0;
        self.end_bit = None;
        let bit = (self.base + self.pos as u64) * 8;
        self.push(GzEvent::Block { bit, u: self.u });
        Ok(true)
    }

    /// After a member's last block: its trailer (CRC-32 and length checked).
    fn trailer(&mut self) -> io::Result<()> {
        let end = self
            .end_bit
            .ok_or_else(|| io::Error::other("gzip: the end of the last block was not seen"))?;
        let at = end.div_ceil(8);
        if at < self.base || at > self.base + self.len as u64 {
            return Err(io::Error::other("gzip: the trailer left the input buffer"));
        }
        self.pos = (at - self.base) as usize;
        if !self.need(8)? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated gzip trailer",
            ));
        }
        let t = &self.buf[self.pos..self.pos + 8];
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if crc != self.crc {
            return Err(bad("gzip member's CRC-32 does not match its data"));
        }
        if size != self.size {
            return Err(bad("gzip member's length does not match its data"));
        }
        self.pos += 8;
        self.members += 1;
        Ok(())
    }
}

impl<R: Read> Read for GzBlockDecoder<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header => {
                    if self.header()? {
                        self.state = State::Body;
                    } else {
                        self.state = State::Done;
                    }
                    continue;
                }
                State::Body => {}
            }
            if self.pos == self.len && !self.eof {
                self.fill()?;
            }
            let avail = self.len - self.pos;
            let room = out.len().min(u32::MAX as usize);
            let s = &mut *self.z.s;
            s.next_in = self.buf[self.pos..].as_ptr();
            s.avail_in = avail as z::uInt;
            s.next_out = out.as_mut_ptr();
            s.avail_out = room as z::uInt;
            // SAFETY: next_in/next_out point into live buffers of the given sizes
            let rc = unsafe { z::inflate(s, z::Z_BLOCK) };
            let consumed = avail - s.avail_in as usize;
            let produced = room - s.avail_out as usize;
            let dt = s.data_type;
            self.pos += consumed;
            if produced > 0 {
                self.crc = crc32(self.crc, &out[..produced]);
                self.size = self.size.wrapping_add(produced as u32);
                self.u += produced as u64;
            }
            if dt & 128 != 0 && rc != z::Z_STREAM_END {
                let bit = (self.base + self.pos as u64) * 8 - (dt & 63) as u64;
                if dt & 64 != 0 {
                    if self.end_bit.is_none() {
                        self.end_bit = Some(bit);
                        self.push(GzEvent::End { bit, u: self.u });
                    }
                } else {
                    self.push(GzEvent::Block { bit, u: self.u });
                }
            }
            match rc {
                z::Z_STREAM_END => {
                    self.trailer()?;
                    self.state = State::Header;
                    if produced > 0 {
                        return Ok(produced);
                    }
                }
                z::Z_OK | z::Z_BUF_ERROR => {
                    if produced > 0 {
                        return Ok(produced);
                    }
                    if consumed == 0 && (self.eof || self.fill()? == 0) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "gzip stream ends inside a member",
                        ));
                    }
                }
                _ => return Err(bad(zmsg(&self.z.s, "corrupt deflate stream"))),
            }
        }
    }
}

/// The output's bits: whole bytes in `buf`, up to 7 more in `acc`.
struct BitOut {
    buf: Vec<u8>,
    acc: u64,
    nacc: u32,
}

impl BitOut {
    fn put(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 32 && (n == 32 || v >> n == 0));
        self.acc |= v << self.nacc;
        self.nacc += n;
        while self.nacc >= 8 {
            self.buf.push(self.acc as u8);
            self.acc >>= 8;
            self.nacc -= 8;
        }
    }

    /// Append bits `sbit..sbit + n` of `src`.
    fn put_bits(&mut self, src: &[u8], sbit: u64, n: u64) {
        if self.nacc == 0 && sbit.is_multiple_of(8) && n.is_multiple_of(8) {
            let s = (sbit / 8) as usize;
            self.buf.extend_from_slice(&src[s..s + (n / 8) as usize]);
            return;
        }
        let load = |p: u64| -> u64 {
            let i = (p / 8) as usize;
            let mut w = [0u8; 8];
            let k = (src.len() - i).min(5);
            w[..k].copy_from_slice(&src[i..i + k]);
            (u64::from_le_bytes(w) >> (p % 8)) & 0xffff_ffff
        };
        let end = sbit + n;
        let mut p = sbit;
        while end - p >= 32 {
            self.put(load(p), 32);
            p += 32;
        }
        let r = end - p;
        if r > 0 {
            self.put(load(p) & ((1u64 << r) - 1), r as u32);
        }
    }

    fn put_bytes(&mut self, b: &[u8]) {
        if self.nacc == 0 {
            self.buf.extend_from_slice(b);
        } else {
            self.put_bits(b, 0, b.len() as u64 * 8);
        }
    }

    fn pad(&mut self) {
        if self.nacc > 0 {
            self.put(0, 8 - self.nacc);
        }
    }
}

/// The compressed input, read forward in large pieces.
struct Source {
    f: File,
    buf: Vec<u8>,
    off: u64,
}

impl Source {
    /// File bytes `a..b`.
    fn bytes(&mut self, a: u64, b: u64) -> io::Result<&[u8]> {
        let have = self.off <= a && b <= self.off + self.buf.len() as u64;
        if !have {
            let want = ((b - a) as usize).max(1 << 20);
            self.buf.resize(want, 0);
            self.f.seek(SeekFrom::Start(a))?;
            let mut got = 0;
            while got < want {
                match self.f.read(&mut self.buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.buf.truncate(got);
            self.off = a;
            if ((b - a) as usize) > got {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the gzip input got shorter while it was copied",
                ));
            }
        }
        let s = (a - self.off) as usize;
        Ok(&self.buf[s..s + (b - a) as usize])
    }
}

/// A kept line: its offset and length in the input's decompressed stream, and its bytes in the
/// output (the same bytes unless `same` is false: a last line that got a `\n`).
struct Piece {
    u: u64,
    ulen: u64,
    same: bool,
    batch: Arc<Batch>,
    start: usize,
    end: usize,
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        &self.batch.data[self.start..self.end]
    }
}

/// The output member being written.
struct Member {
    /// Decompressed offset of the input member's start.
    u0: u64,
    crc: u32,
    size: u32,
    /// The last block written so far was a copied final block (the deflate stream is complete).
    ended: bool,
}

/// The most decompressed bytes of one block whose lines wait for its end (so it can be copied):
/// far above any encoder's blocks (zlib's hold at most 32768 symbols, about 8 MiB).
const HOLD: u64 = 64 << 20;

const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Writes the kept lines of a gzip file, reusing its unchanged deflate blocks (see the module's
/// docs). Feed it with [`put`](Self::put) in the input's order, then [`finish`](Self::finish).
pub struct Splicer {
    src: Source,
    level: i32,
    events: VecDeque<GzEvent>,
    pieces: VecDeque<Piece>,
    /// Decompressed ranges not kept as they are (dropped lines, a changed last line), recent ones.
    breaks: VecDeque<(u64, u64)>,
    /// The decompressed offset up to which kept lines and gaps are known.
    covered: u64,
    out: BitOut,
    member: Option<Member>,
    /// The recompression of the current run of changed blocks, if one is open.
    run: Option<Stream>,
    run_open: bool,
    zbuf: Vec<u8>,
    /// The current member's last output bytes (up to 2 x [`WINDOW`]): a run's compressor starts
    /// with the last [`WINDOW`] of them as its dictionary, as the decoder has them in its window.
    hist: Vec<u8>,
    /// Decompressed bytes of one block's lines held before they are recompressed without
    /// waiting for its end ([`HOLD`]), and the offset up to which lines were so recompressed.
    hold: u64,
    fed: u64,
    members: u64,
    /// Blocks copied and recompressed (for tests and reports).
    pub copied_blocks: u64,
    pub recompressed_blocks: u64,
}

impl Splicer {
    /// Splice from the gzip file `source` (the file the batches are read from), recompressing
    /// changed blocks at `level` (0-9).
    pub fn new(source: &Path, level: u32) -> io::Result<Self> {
        Ok(Splicer {
            src: Source {
                f: File::open(source)?,
                buf: Vec::new(),
                off: 0,
            },
            level: level.min(9) as i32,
            events: VecDeque::new(),
            pieces: VecDeque::new(),
            breaks: VecDeque::new(),
            covered: 0,
            out: BitOut {
                buf: Vec::with_capacity(1 << 20),
                acc: 0,
                nacc: 0,
            },
            member: None,
            run: None,
            run_open: false,
            zbuf: vec![0u8; 1 << 16],
            hist: Vec::with_capacity(2 * WINDOW as usize),
            hold: HOLD,
            fed: 0,
            members: 0,
            copied_blocks: 0,
            recompressed_blocks: 0,
        })
    }

    /// The records `i` of `b` with `pick[i] == want` are kept; `b`'s block events are taken.
    pub fn put(
        &mut self,
        b: &Arc<Batch>,
        pick: &[bool],
        want: bool,
        w: &mut impl Write,
    ) -> io::Result<()> {
        self.events.extend(b.gz.iter().copied());
        let n = b.len();
        if b.upos.len() != n {
            return Err(io::Error::other(
                "gzip block reuse needs the reader's record offsets (read with gz_blocks)",
            ));
        }
        for (i, &p) in pick.iter().enumerate().take(n) {
            if p != want {
                continue;
            }
            let (s, e) = b.spans[i];
            let u = b.upos[i];
            let same = !(b.appended && i + 1 == n);
            let ulen = (e - s) as u64 - u64::from(!same);
            if u < self.covered {
                return Err(io::Error::other("gzip block reuse: records out of order"));
            }
            if u > self.covered {
                self.breaks.push_back((self.covered, u));
            }
            if !same {
                self.breaks.push_back((u, u + ulen));
            }
            self.covered = u + ulen;
            self.pieces.push_back(Piece {
                u,
                ulen,
                same,
                batch: Arc::clone(b),
                start: s,
                end: e,
            });
        }
        self.advance(false)?;
        self.drain(w, false)
    }

    /// Write what is left and the last member's trailer.
    pub fn finish(mut self, w: &mut impl Write) -> io::Result<()> {
        self.breaks.push_back((self.covered, u64::MAX));
        self.covered = u64::MAX;
        self.advance(true)?;
        if !self.pieces.is_empty() || self.member.is_some() {
            // lines past the last block seen (a damaged input): one recompressed run
            if self.member.is_none() {
                self.start_member(self.pieces.front().map(|p| p.u).unwrap_or(0));
            }
            self.feed_range(0, u64::MAX)?;
            self.end_member()?;
        }
        if self.members == 0 {
            self.start_member(0);
            self.end_member()?;
        }
        self.drain(w, true)
    }

    fn drain(&mut self, w: &mut impl Write, all: bool) -> io::Result<()> {
        if all || self.out.buf.len() >= 1 << 20 {
            w.write_all(&self.out.buf)?;
            self.out.buf.clear();
        }
        Ok(())
    }

    fn start_member(&mut self, u0: u64) {
        self.out.put_bytes(&HEADER);
        self.hist.clear(); // a member's window starts empty
        self.member = Some(Member {
            u0,
            crc: 0,
            size: 0,
            ended: false,
        });
    }

    /// Is any byte of `lo..hi` not kept as it is?
    fn broken(&mut self, lo: u64, hi: u64) -> bool {
        while self.breaks.front().is_some_and(|&(_, e)| e <= lo) {
            self.breaks.pop_front();
        }
        self.breaks.iter().any(|&(s, e)| s < hi && e > lo && s < e)
    }

    fn advance(&mut self, finishing: bool) -> io::Result<()> {
        while let Some(&ev) = self.events.front() {
            match ev {
                GzEvent::Block { bit, u } => {
                    if self.member.is_none() {
                        self.start_member(u);
                    }
                    let next = match self.events.get(1) {
                        Some(&GzEvent::Block { bit, u }) | Some(&GzEvent::End { bit, u }) => {
                            Some((bit, u))
                        }
                        None => None,
                    };
                    let nu = next.map_or(u64::MAX, |(_, nu)| nu);
                    if !finishing && (next.is_none() || self.covered < nu) {
                        // the block's end or some of its lines are still to come: its lines wait,
                        // but not without bound (a block can be any length: a made-up one can
                        // hold a whole file). Past `hold` bytes it is recompressed as they come.
                        if self.covered > u && self.covered - u > self.hold {
                            self.feed_range(u, self.covered)?;
                            self.fed = self.covered;
                            // nor do the dropped lines' ranges wait: a later block is recompressed
                            // if it starts before `fed`, else it looks back from `fed` at most
                            let lo = self.fed.saturating_sub(WINDOW);
                            while self.breaks.front().is_some_and(|&(_, e)| e <= lo) {
                                self.breaks.pop_front();
                            }
                        }
                        return Ok(());
                    }
                    let u0 = self.member.as_ref().map_or(u, |m| m.u0);
                    let lo = u.saturating_sub(WINDOW).max(u0);
                    // it or its window was recompressed ahead (maybe into an earlier member)
                    let forced = lo < self.fed;
                    match next {
                        Some((nbit, nu)) if !forced && !self.broken(lo, nu) => {
                            self.close_run()?;
                            self.copy_block(bit, nbit, u, nu)?;
                            if matches!(self.events.get(1), Some(GzEvent::End { .. })) {
                                if let Some(m) = self.member.as_mut() {
                                    m.ended = true;
                                }
                            }
                        }
                        _ => {
                            self.recompressed_blocks += 1;
                            self.feed_range(u, nu)?;
                        }
                    }
                    self.events.pop_front();
                }
                GzEvent::End { .. } => {
                    self.events.pop_front();
                    if self.member.is_none() {
                        continue; // cannot happen: a member starts with a block
                    }
                    self.end_member()?;
                }
            }
        }
        Ok(())
    }

    /// Copy the block at file bits `bit..nbit` (decompressed `u..nu`) as it is.
    fn copy_block(&mut self, bit: u64, nbit: u64, u: u64, nu: u64) -> io::Result<()> {
        let a = bit / 8;
        let b = nbit.div_ceil(8);
        let src = self.src.bytes(a, b)?;
        let two = u16::from(src[0]) | (u16::from(src.get(1).copied().unwrap_or(0)) << 8);
        let head = (two >> (bit % 8)) & 0b111;
        if head & 0b110 == 0 {
            // a stored block: after its 3 header bits the stream skips to a byte boundary, so it
            // is written again at this output's alignment (header, padding, then its LEN, NLEN
            // and bytes, which are byte-aligned in both)
            if !nbit.is_multiple_of(8) {
                return Err(io::Error::other(
                    "gzip: a stored block ends off a byte boundary",
                ));
            }
            self.out.put(u64::from(head & 1), 3);
            self.out.pad();
            let from = ((bit + 3).div_ceil(8) - a) as usize;
            self.out.put_bytes(&src[from..]);
        } else {
            self.out.put_bits(src, bit % 8, nbit - bit);
        }
        self.copied_blocks += 1;
        // the member's CRC over the block's bytes, from the kept lines
        let mut crc = self.member.as_ref().map_or(0, |m| m.crc);
        let mut size = self.member.as_ref().map_or(0, |m| m.size);
        let mut seen = 0u64;
        let hist = &mut self.hist;
        // only the block's last WINDOW bytes can be a later run's dictionary
        let tail = nu.saturating_sub(WINDOW).max(u);
        take_range(&mut self.pieces, u, nu, |bytes| {
            let at = u + seen;
            if at + bytes.len() as u64 > tail {
                remember(hist, &bytes[tail.saturating_sub(at) as usize..]);
            }
            crc = crc32(crc, bytes);
            size = size.wrapping_add(bytes.len() as u32);
            seen += bytes.len() as u64;
            Ok(())
        })?;
        if seen != nu - u {
            return Err(io::Error::other(
                "gzip block reuse: a copied block's bytes are not all kept",
            ));
        }
        if let Some(m) = self.member.as_mut() {
            m.crc = crc;
            m.size = size;
        }
        Ok(())
    }

    /// Recompress the kept bytes of decompressed `a..b` into the open run.
    fn feed_range(&mut self, a: u64, b: u64) -> io::Result<()> {
        if self.run.is_none() {
            self.run = Some(Stream::deflate(self.level)?);
        } else if !self.run_open {
            let st = self.run.as_mut().map(|r| &mut *r.s);
            // SAFETY: an initialised deflate stream
            if st.is_some_and(|s| unsafe { z::deflateReset(s) } != z::Z_OK) {
                return Err(io::Error::other("deflateReset failed"));
            }
        }
        if !self.run_open && !self.hist.is_empty() {
            let d = &self.hist[self.hist.len().saturating_sub(WINDOW as usize)..];
            let st = self.run.as_mut().map(|r| &mut *r.s);
            // SAFETY: an initialised raw deflate stream, before its first input; `d` is live
            let rc =
                st.map(|s| unsafe { z::deflateSetDictionary(s, d.as_ptr(), d.len() as z::uInt) });
            if rc != Some(z::Z_OK) {
                return Err(io::Error::other("deflateSetDictionary failed"));
            }
        }
        if !self.run_open && self.out.nacc != 0 {
            // a run starts on a byte boundary: its stored blocks (a sync flush ends with one)
            // are aligned as zlib wrote them. An empty stored block gets there.
            self.out.put(0, 3);
            self.out.pad();
            self.out.put_bytes(&[0, 0, 0xff, 0xff]);
        }
        self.run_open = true;
        let (Some(run), Some(m)) = (self.run.as_mut(), self.member.as_mut()) else {
            return Err(io::Error::other("gzip block reuse: no open member"));
        };
        let (out, zbuf, hist) = (&mut self.out, &mut self.zbuf, &mut self.hist);
        take_range(&mut self.pieces, a, b, |bytes| {
            remember(hist, bytes);
            m.crc = crc32(m.crc, bytes);
            m.size = m.size.wrapping_add(bytes.len() as u32);
            deflate(run, out, zbuf, bytes, z::Z_NO_FLUSH)
        })
    }

    /// End the open run with a sync flush (its blocks end on a byte boundary, not final).
    fn close_run(&mut self) -> io::Result<()> {
        if self.run_open {
            if let Some(run) = self.run.as_mut() {
                deflate(run, &mut self.out, &mut self.zbuf, &[], z::Z_SYNC_FLUSH)?;
            }
            self.run_open = false;
        }
        Ok(())
    }

    /// Close the deflate stream (an empty final block unless a copied final block closed it),
    /// then the trailer.
    fn end_member(&mut self) -> io::Result<()> {
        self.close_run()?;
        let Some(m) = self.member.take() else {
            return Ok(());
        };
        if !m.ended {
            // an empty final block with fixed codes: BFINAL=1, BTYPE=01, end-of-block (7 zeros)
            self.out.put(0b011, 3);
            self.out.put(0, 7);
        }
        self.out.pad();
        self.out.put_bytes(&m.crc.to_le_bytes());
        self.out.put_bytes(&m.size.to_le_bytes());
        self.members += 1;
        Ok(())
    }
}

/// Keep the last [`WINDOW`] bytes of the output in `hist` (which holds up to twice that).
fn remember(hist: &mut Vec<u8>, bytes: &[u8]) {
    let w = WINDOW as usize;
    if bytes.len() >= w {
        hist.clear();
        hist.extend_from_slice(&bytes[bytes.len() - w..]);
        return;
    }
    if hist.len() + bytes.len() > 2 * w {
        hist.drain(..hist.len() - w);
    }
    hist.extend_from_slice(bytes);
}

/// Hand `f` the output bytes of the kept lines within decompressed `a..b` (a changed line whole,
/// in the block where it starts), dropping the lines used up.
fn take_range(
    pieces: &mut VecDeque<Piece>,
    a: u64,
    b: u64,
    mut f: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    while let Some(p) = pieces.front() {
        if p.u >= b {
            break;
        }
        if !p.same {
            f(p.bytes())?;
            pieces.pop_front();
            continue;
        }
        let end = p.u + p.ulen;
        let (lo, hi) = (p.u.max(a), end.min(b));
        if hi > lo {
            f(&p.bytes()[(lo - p.u) as usize..(hi - p.u) as usize])?;
        }
        if end > b {
            break;
        }
        pieces.pop_front();
    }
    Ok(())
}

/// Compress `data` into the run `st` (zlib's `flush`), its output appended to `out`.
fn deflate(
    st: &mut Stream,
    out: &mut BitOut,
    zbuf: &mut [u8],
    data: &[u8],
    flush: i32,
) -> io::Result<()> {
    let s = &mut *st.s;
    s.next_in = data.as_ptr();
    s.avail_in = data.len() as z::uInt;
    loop {
        s.next_out = zbuf.as_mut_ptr();
        s.avail_out = zbuf.len() as z::uInt;
        // SAFETY: next_in/next_out point into live buffers of the given sizes
        let rc = unsafe { z::deflate(s, flush) };
        if rc != z::Z_OK && rc != z::Z_BUF_ERROR && rc != z::Z_STREAM_END {
            return Err(io::Error::other(zmsg(s, "deflate failed")));
        }
        let n = zbuf.len() - s.avail_out as usize;
        out.put_bytes(&zbuf[..n]);
        if s.avail_out != 0 && s.avail_in == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::reader::{BatchStream, ReadOptions};
    use super::super::record::Rules;
    use super::super::writer::AtomicWriter;
    use super::*;
    fn lines(n: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut rng = crate::lcg::Lcg(seed);
        (0..n)
            .map(|i| {
                let words: String = (0..(rng.next_u64() % 200) as usize)
                    .map(|_| format!("w{} ", rng.next_u64() % 5000))
                    .collect();
                format!("{{\"id\": {i}, \"text\": \"{words}\"}}\n").into_bytes()
            })
            .collect()
    }

    fn gz_members(data: &[u8], level: u32, cut: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in data.chunks(cut.max(1)) {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(part).unwrap();
            out.extend(e.finish().unwrap());
        }
        out
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Keep the records `keep(i)` of `input` through a splicing writer; the output's bytes.
    fn splice(dir: &Path, input: &[u8], keep: impl Fn(usize) -> bool) -> (Vec<u8>, Vec<u8>) {
        let src = dir.join("in.jsonl.gz");
        std::fs::write(&src, input).unwrap();
        let opts = ReadOptions {
            rules: Rules::new("text"),
            skip_bad: true,
            batch_size: 37,
            hash: false,
            blake2b: false,
            extra_field: None,
            threads: 1,
            gz_blocks: true,
        };
        let mut s = BatchStream::open(src.to_str().unwrap(), opts).unwrap();
        let dst = dir.join("out.jsonl.gz");
        let mut w = AtomicWriter::create_spliced(&dst, 6, 1, &src).unwrap();
        let mut want = Vec::new();
        let mut k = 0;
        while let Some(b) = s.next_batch().unwrap() {
            let pick: Vec<bool> = (0..b.len()).map(|i| keep(k + i)).collect();
            k += b.len();
            want.extend(b.select(&pick, true));
            w.write_selected(Arc::new(b), pick, true).unwrap();
        }
        w.commit().unwrap();
        (std::fs::read(&dst).unwrap(), want)
    }

    #[test]
    fn spliced_outputs_decompress_to_the_kept_lines() {
        let dir = std::env::temp_dir().join(format!("qwen25-gzsplice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // blank lines, a bad line (skipped: a gap like a dropped record), a BOM, CRLF endings
        // and a last line without an ending (its output gets one: a changed line)
        let mut ls = lines(3000, 7);
        ls[5] = b"\n".to_vec();
        ls[6] = b"  \r\n".to_vec();
        ls[1200] = b"{not json}\n".to_vec();
        ls[0].splice(0..0, b"\xef\xbb\xbf".iter().copied());
        let n = ls[77].len();
        ls[77].splice(n - 1..n - 1, [b'\r']);
        ls[2999].pop();
        let data: Vec<u8> = ls.concat();
        for (level, cut) in [
            (6, usize::MAX),
            (1, usize::MAX),
            (9, usize::MAX),
            (0, usize::MAX),
            (6, 65536),
            (6, 1000),
        ] {
            let input = gz_members(&data, level, cut);
            let keeps: Vec<Box<dyn Fn(usize) -> bool>> = vec![
                Box::new(|_| true),
                Box::new(|_| false),
                Box::new(|i| i != 0),
                Box::new(|i| i != 2999),
                Box::new(|i| i % 400 != 17),
                Box::new(|i| i % 3 != 0),
                Box::new(|i| !(1000..1010).contains(&i)),
                Box::new(|i| i < 2990),
            ];
            for (j, keep) in keeps.iter().enumerate() {
                let (out, want) = splice(&dir, &input, keep);
                let back = gunzip(&out);
                assert!(
                    back == want,
                    "level {level} cut {cut} keep #{j}: {} vs {} bytes",
                    back.len(),
                    want.len()
                );
            }
        }
        // zero bytes between and after members are padding (as Python's gzip reads them)
        let mut padded = gz_members(&data[..data.len() / 2], 6, usize::MAX);
        padded.extend([0u8; 37]);
        padded.extend(gz_members(&data[data.len() / 2..], 6, usize::MAX));
        padded.extend([0u8; 5]);
        let (out, want) = splice(&dir, &padded, |i| i % 500 != 3);
        assert!(gunzip(&out) == want);
        // nothing dropped: every block is copied, so the file is the input's bytes (flate2
        // writes the same 10-byte header as the splicer, but for the OS byte)
        let plain: Vec<u8> = lines(3000, 8).concat();
        for (level, cut) in [(9, usize::MAX), (6, 4096), (0, usize::MAX)] {
            let input = gz_members(&plain, level, cut);
            let (out, want) = splice(&dir, &input, |_| true);
            assert_eq!(want, plain);
            assert_eq!(out.len(), input.len());
            let differ = input.iter().zip(&out).filter(|(a, b)| a != b).count();
            assert!(differ <= input.len() / cut.min(input.len()) + 1, "{differ}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
#[cfg(test)]
#[path = "gzsplice_tests.rs"]
mod review_tests;
