//! Adversarial tests of gzip block reuse, against references that share no code with it: a
//! small strict DEFLATE/gzip decoder written here (in the manner of zlib's `puff.c`), a
//! fixed-Huffman/stored block encoder written here (so streams can be built bit by bit), and
//! flate2 and libdeflate as producers and as a second decoder.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::reader::Batch;
use super::super::record::Item;
use super::*;
use crate::lcg::Lcg;

// ---------------------------------------------------------------------------------------------
// A strict reference decoder (RFC 1951 / RFC 1952)
// ---------------------------------------------------------------------------------------------

const LBASE: [u32; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEXT: [u32; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DBASE: [u32; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DEXT: [u32; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

struct BitR<'a> {
    d: &'a [u8],
    p: u64,
}

impl BitR<'_> {
    fn bit(&mut self) -> Result<u32, String> {
        let i = (self.p / 8) as usize;
        let b = *self.d.get(i).ok_or("input ends inside a block")?;
        let v = (b >> (self.p % 8)) & 1;
        self.p += 1;
        Ok(u32::from(v))
    }

    fn bits(&mut self, n: u32) -> Result<u32, String> {
        let mut v = 0;
        for k in 0..n {
            v |= self.bit()? << k;
        }
        Ok(v)
    }
}

struct Huff {
    count: [u16; 16],
    symbol: Vec<u16>,
}

fn huff(lengths: &[u8]) -> Result<Huff, String> {
    let mut count = [0u16; 16];
    for &l in lengths {
        count[l as usize] += 1;
    }
    let mut left: i32 = 1;
    for &c in &count[1..] {
        left = left * 2 - i32::from(c);
        if left < 0 {
            return Err("over-subscribed code".into());
        }
    }
    let mut offs = [0u16; 16];
    for l in 1..15 {
        offs[l + 1] = offs[l] + count[l];
    }
    let mut symbol = vec![0u16; lengths.len()];
    for (s, &l) in lengths.iter().enumerate() {
        if l != 0 {
            symbol[offs[l as usize] as usize] = s as u16;
            offs[l as usize] += 1;
        }
    }
    Ok(Huff { count, symbol })
}

fn decode(br: &mut BitR, h: &Huff) -> Result<u16, String> {
    let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
    for len in 1..16 {
        code |= br.bit()? as i32;
        let count = i32::from(h.count[len]);
        if code - count < first {
            return Ok(h.symbol[(index + (code - first)) as usize]);
        }
        index += count;
        first += count;
        first <<= 1;
        code <<= 1;
    }
    Err("bad Huffman code".into())
}

/// Inflate one raw deflate stream from bit `start` of `d` into a fresh `out`: each block's
/// (start bit, decompressed offset) and the bit after the last block. Back-references must stay
/// within `out`.
fn inflate_ref(d: &[u8], start: u64, out: &mut Vec<u8>) -> Result<(Vec<(u64, u64)>, u64), String> {
    let mut br = BitR { d, p: start };
    let mut blocks = Vec::new();
    let fixed_l: Vec<u8> = (0..288)
        .map(|s| match s {
            0..=143 => 8,
            144..=255 => 9,
            256..=279 => 7,
            _ => 8,
        })
        .collect();
    loop {
        blocks.push((br.p, out.len() as u64));
        let last = br.bit()?;
        let t = br.bits(2)?;
        match t {
            0 => {
                br.p = br.p.div_ceil(8) * 8;
                let len = br.bits(16)?;
                let nlen = br.bits(16)?;
                if len != !nlen & 0xffff {
                    return Err("stored lengths".into());
                }
                for _ in 0..len {
                    out.push(br.bits(8)? as u8);
                }
            }
            1 | 2 => {
                let (lh, dh) = if t == 1 {
                    (huff(&fixed_l)?, huff(&[5u8; 30])?)
                } else {
                    let nlen = br.bits(5)? as usize + 257;
                    let ndist = br.bits(5)? as usize + 1;
                    let ncode = br.bits(4)? as usize + 4;
                    if nlen > 286 || ndist > 30 {
                        return Err("bad counts".into());
                    }
                    const ORDER: [usize; 19] = [
                        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                    ];
                    let mut cl = [0u8; 19];
                    for &o in &ORDER[..ncode] {
                        cl[o] = br.bits(3)? as u8;
                    }
                    let ch = huff(&cl)?;
                    let mut lens = Vec::new();
                    while lens.len() < nlen + ndist {
                        let sym = decode(&mut br, &ch)?;
                        match sym {
                            0..=15 => lens.push(sym as u8),
                            16 => {
                                let prev = *lens.last().ok_or("repeat with no length")?;
                                for _ in 0..3 + br.bits(2)? {
                                    lens.push(prev);
                                }
                            }
                            17 => lens.extend(std::iter::repeat_n(0, 3 + br.bits(3)? as usize)),
                            _ => lens.extend(std::iter::repeat_n(0, 11 + br.bits(7)? as usize)),
                        }
                    }
                    if lens.len() > nlen + ndist || lens[256] == 0 {
                        return Err("bad lengths".into());
                    }
                    (huff(&lens[..nlen])?, huff(&lens[nlen..])?)
                };
                loop {
                    let sym = decode(&mut br, &lh)? as usize;
                    if sym < 256 {
                        out.push(sym as u8);
                    } else if sym == 256 {
                        break;
                    } else {
                        let i = sym - 257;
                        if i >= 29 {
                            return Err("bad length symbol".into());
                        }
                        let len = LBASE[i] + br.bits(LEXT[i])?;
                        let ds = decode(&mut br, &dh)? as usize;
                        if ds >= 30 {
                            return Err("bad distance symbol".into());
                        }
                        let dist = (DBASE[ds] + br.bits(DEXT[ds])?) as usize;
                        if dist > out.len() {
                            return Err("distance too far back".into());
                        }
                        for _ in 0..len {
                            out.push(out[out.len() - dist]);
                        }
                    }
                }
            }
            _ => return Err("reserved block type".into()),
        }
        if last == 1 {
            return Ok((blocks, br.p));
        }
    }
}

/// A gzip file through the reference decoder: its bytes, its block events and its member count.
fn gunzip_ref(f: &[u8]) -> Result<(Vec<u8>, Vec<GzEvent>, usize), String> {
    let mut all = Vec::new();
    let mut events = Vec::new();
    let mut pos = 0usize;
    let mut members = 0;
    loop {
        if members > 0 {
            while f.get(pos) == Some(&0) {
                pos += 1;
            }
            if pos == f.len() {
                return Ok((all, events, members));
            }
        }
        let h = f.get(pos..pos + 10).ok_or("short header")?;
        if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 {
            return Err("not gzip".into());
        }
        let flags = h[3];
        pos += 10;
        if flags & 4 != 0 {
            let x = f.get(pos..pos + 2).ok_or("short extra")?;
            pos += 2 + (usize::from(x[0]) | usize::from(x[1]) << 8);
        }
        for flag in [8u8, 16] {
            if flags & flag != 0 {
                let n = f.get(pos..).ok_or("short")?.iter().position(|&c| c == 0);
                pos += n.ok_or("unterminated string")? + 1;
            }
        }
        if flags & 2 != 0 {
            pos += 2;
        }
        if pos > f.len() {
            return Err("short header".into());
        }
        let mut out = Vec::new();
        let (blocks, end) = inflate_ref(f, pos as u64 * 8, &mut out)?;
        let u0 = all.len() as u64;
        for (bit, u) in blocks {
            events.push(GzEvent::Block { bit, u: u0 + u });
        }
        events.push(GzEvent::End {
            bit: end,
            u: u0 + out.len() as u64,
        });
        pos = end.div_ceil(8) as usize;
        let t = f.get(pos..pos + 8).ok_or("short trailer")?;
        let mut crc = flate2::Crc::new();
        crc.update(&out);
        if u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != crc.sum()
            || u32::from_le_bytes([t[4], t[5], t[6], t[7]]) != out.len() as u32
        {
            return Err("bad trailer".into());
        }
        pos += 8;
        members += 1;
        all.extend(out);
    }
}

// ---------------------------------------------------------------------------------------------
// A bit-level encoder (fixed Huffman and stored blocks), to build streams by hand
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct BitW {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitW {
    fn put(&mut self, v: u32, n: u32) {
        self.acc |= u64::from(v) << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, most significant bit first.
    fn code(&mut self, c: u32, len: u32) {
        for k in (0..len).rev() {
            self.put((c >> k) & 1, 1);
        }
    }

    fn align(&mut self) {
        if self.n > 0 {
            self.put(0, 8 - self.n);
        }
    }

    fn sym(&mut self, s: u32) {
        match s {
            0..=143 => self.code(0x30 + s, 8),
            144..=255 => self.code(0x190 + s - 144, 9),
            256..=279 => self.code(s - 256, 7),
            _ => self.code(0xc0 + s - 280, 8),
        }
    }

    fn copy(&mut self, len: u32, dist: u32) {
        let i = LBASE.iter().rposition(|&b| b <= len).unwrap();
        self.sym(257 + i as u32);
        self.put(len - LBASE[i], LEXT[i]);
        let j = DBASE.iter().rposition(|&b| b <= dist).unwrap();
        self.code(j as u32, 5);
        self.put(dist - DBASE[j], DEXT[j]);
    }

    fn stored(&mut self, last: bool, data: &[u8]) {
        self.put(u32::from(last), 3);
        self.align();
        let n = data.len() as u32;
        self.put(n, 16);
        self.put(!n & 0xffff, 16);
        self.out.extend_from_slice(data);
    }

    fn finish(mut self) -> Vec<u8> {
        self.align();
        self.out
    }
}

/// One fixed-Huffman block of `data[a..b]` (greedy matches reaching back to `floor`).
fn fixed_block(w: &mut BitW, data: &[u8], floor: usize, a: usize, b: usize, last: bool) {
    w.put(u32::from(last) | 2, 3);
    let mut i = a;
    while i < b {
        let mut best = (0usize, 0usize);
        let lo = i.saturating_sub(32768).max(floor);
        // a few candidate distances: the nearest repeats and the farthest reach
        let mut cands: Vec<usize> = (1..=64).collect();
        cands.extend([32768, 32767, 16384, 1000, 4096]);
        for d in cands {
            if d > i - lo {
                continue;
            }
            let mut l = 0;
            while l < 258 && i + l < b && data[i + l] == data[i + l - d] {
                l += 1;
            }
            if l > best.0 {
                best = (l, d);
            }
        }
        if best.0 >= 3 {
            w.copy(best.0 as u32, best.1 as u32);
            i += best.0;
        } else {
            w.sym(u32::from(data[i]));
            i += 1;
        }
    }
    w.sym(256);
}

fn gz_wrap(deflated: &[u8], data: &[u8], header: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    let mut out = header.to_vec();
    out.extend_from_slice(deflated);
    out.extend(crc.sum().to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

const PLAIN_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// A random gzip header: names, comments, extra fields and a header CRC.
fn random_header(rng: &mut Lcg) -> Vec<u8> {
    let flags = [0u8, 2, 4, 8, 16, 30][rng.below(6)];
    let mut h = vec![0x1f, 0x8b, 8, flags, 1, 2, 3, 4, 0, 3];
    if flags & 4 != 0 {
        let n = rng.below(300);
        h.extend((n as u16).to_le_bytes());
        h.extend((0..n).map(|i| i as u8));
    }
    for f in [8u8, 16] {
        if flags & f != 0 {
            h.extend((0..rng.below(100)).map(|i| b'a' + (i % 26) as u8));
            h.push(0);
        }
    }
    if flags & 2 != 0 {
        h.extend([0xab, 0xcd]);
    }
    h
}

/// One gzip member of `data`, made by a random producer.
fn random_member(rng: &mut Lcg, data: &[u8]) -> Vec<u8> {
    match rng.below(6) {
        0 => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(rng.below(10) as u32),
            );
            // sync flushes at random places
            let mut i = 0;
            while i < data.len() {
                let n = (rng.below(20000) + 1).min(data.len() - i);
                e.write_all(&data[i..i + n]).unwrap();
                if rng.below(2) == 0 {
                    e.flush().unwrap();
                }
                i += n;
            }
            e.finish().unwrap()
        }
        1 => {
            // zlib's partial and full flushes (partial: empty fixed blocks, off byte boundaries)
            let mut c =
                flate2::Compress::new(flate2::Compression::new(rng.below(10) as u32), false);
            let mut out = Vec::with_capacity(data.len() * 2 + (1 << 20));
            let mut i = 0;
            loop {
                let n = (rng.below(5000) + 1).min(data.len() - i);
                let last = i + n == data.len();
                let flush = if last {
                    flate2::FlushCompress::Finish
                } else {
                    [
                        flate2::FlushCompress::None,
                        flate2::FlushCompress::Partial,
                        flate2::FlushCompress::Full,
                        flate2::FlushCompress::Sync,
                    ][rng.below(4)]
                };
                let before = c.total_in();
                let st = c.compress_vec(&data[i..i + n], &mut out, flush).unwrap();
                assert_eq!((c.total_in() - before) as usize, n);
                assert!(out.len() < out.capacity());
                i += n;
                if last {
                    assert_eq!(st, flate2::Status::StreamEnd);
                    break;
                }
            }
            gz_wrap(&out, data, &random_header(rng))
        }
        2 => {
            let lvl = libdeflater::CompressionLvl::new(rng.below(13) as i32).unwrap();
            let mut c = libdeflater::Compressor::new(lvl);
            let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
            let n = c.gzip_compress(data, &mut out).unwrap();
            out.truncate(n);
            out
        }
        _ => {
            // hand-built: fixed and stored blocks of random sizes, empty ones, and a final block
            // that may be empty
            let mut w = BitW::default();
            let mut i = 0;
            while i < data.len() {
                let n = [0, 1, 7, 100, 3000, 40000, 70000][rng.below(7)].min(data.len() - i);
                let n = if n == 0 { 0 } else { rng.below(n) + 1 };
                if rng.below(3) == 0 && n <= 65535 {
                    w.stored(false, &data[i..i + n]);
                } else {
                    fixed_block(&mut w, data, 0, i, i + n, false);
                }
                i += n;
            }
            if rng.below(2) == 0 {
                w.stored(true, &[]);
            } else {
                fixed_block(&mut w, data, 0, i, i, true);
            }
            gz_wrap(&w.finish(), data, &random_header(rng))
        }
    }
}

/// Random JSONL-ish lines: short, long (past the window), repetitive (long back-references).
fn random_lines(rng: &mut Lcg, total: usize) -> Vec<u8> {
    let mut d = Vec::new();
    while d.len() < total {
        match rng.below(40) {
            0 => {
                let n = rng.below(80_000);
                d.extend((0..n).map(|i| b"abcdefgh"[(i * 7 + n) % 8]));
            }
            1..=4 => {
                // a repeat of something far back
                if d.len() > 40_000 {
                    let a = d.len() - 32768 - rng.below(100);
                    let n = rng.below(500);
                    let chunk: Vec<u8> = d[a..a + n]
                        .iter()
                        .filter(|&&c| c != b'\n')
                        .copied()
                        .collect();
                    d.extend(chunk);
                }
            }
            _ => {
                let n = rng.below(300);
                for _ in 0..n {
                    d.push(b"qwertyuiop{}\": ,"[rng.below(16)]);
                }
            }
        }
        d.push(b'\n');
    }
    if rng.below(2) == 0 {
        d.pop(); // a last line without an ending
    }
    d
}

/// A gzip file of `data`: members cut at random bytes (not at line ends), empty members, zero
/// padding; and the cuts.
fn random_gzip(rng: &mut Lcg, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let n = match rng.below(4) {
            0 => data.len() - i,
            1 => 0,
            _ => rng.below(data.len() - i + 1),
        };
        out.extend(random_member(rng, &data[i..i + n]));
        i += n;
        if rng.below(8) == 0 {
            out.extend(std::iter::repeat_n(0u8, rng.below(20) + 1));
        }
        if i == data.len() && rng.below(3) != 0 {
            break;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Driving the decoder
// ---------------------------------------------------------------------------------------------

/// A reader that hands out a few bytes at a time (sometimes one, sometimes interrupted).
struct Chunky<'a> {
    d: &'a [u8],
    pos: usize,
    rng: Lcg,
    max: usize,
}

impl Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rng.below(50) == 0 {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "again"));
        }
        let n = (self.rng.below(self.max) + 1)
            .min(buf.len())
            .min(self.d.len() - self.pos);
        buf[..n].copy_from_slice(&self.d[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Decode `f` with [`GzBlockDecoder`], reading it `max` bytes at most at a time and asking for
/// `outmax` bytes at most at a time: the bytes (or the error) and the events.
fn decode_with(
    f: &[u8],
    seed: u64,
    max: usize,
    outmax: usize,
) -> (io::Result<Vec<u8>>, Vec<GzEvent>) {
    let ev = GzEvents::default();
    let src = Chunky {
        d: f,
        pos: 0,
        rng: Lcg(seed),
        max,
    };
    let mut d = match GzBlockDecoder::new(src, Some(ev.clone())) {
        Ok(d) => d,
        Err(e) => return (Err(e), Vec::new()),
    };
    let mut rng = Lcg(seed ^ 0x5555);
    let mut out = Vec::new();
    let mut buf = vec![0u8; outmax];
    let mut calls = 0u64;
    let r = loop {
        calls += 1;
        assert!(calls < 50_000_000, "the decoder does not finish");
        let want = rng.below(outmax) + 1;
        match d.read(&mut buf[..want]) {
            Ok(0) => break Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    let events = ev.lock().unwrap().clone();
    (r, events)
}

#[test]
fn decoder_events_match_the_reference_decoder() {
    let mut rng = Lcg(0x9e37);
    for round in 0..40 {
        let data = random_lines(&mut rng, [0, 10, 5000, 100_000, 300_000][round % 5]);
        let f = random_gzip(&mut rng, &data);
        let (want, want_ev, _) = gunzip_ref(&f).unwrap();
        assert!(
            want == data,
            "round {round}: the reference decoder disagrees"
        );
        let (max, outmax) = [(1, 1), (7, 3), (1 << 20, 1 << 20), (300, 70_000)][round % 4];
        let (got, ev) = decode_with(&f, round as u64, max, outmax);
        let got = got.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(got == data, "round {round}: wrong bytes");
        assert_eq!(ev, want_ev, "round {round}: wrong block events");
    }
}

#[test]
fn decoder_rejects_damage_and_never_panics() {
    let mut rng = Lcg(77);
    for round in 0..12 {
        let data = random_lines(&mut rng, [100, 3000, 30_000][round % 3]);
        let f = random_gzip(&mut rng, &data);
        // every truncation: an error, unless it cuts between members or in trailing padding
        let step = (f.len() / 120).max(1);
        for cut in (0..f.len()).step_by(step) {
            let g = &f[..cut];
            let refr = gunzip_ref(g);
            let (got, _) = decode_with(g, cut as u64, 1 + cut % 4096, 1 << 16);
            match (refr, got) {
                (Ok((w, _, _)), Ok(b)) => assert!(w == b, "cut {cut}"),
                (Err(_), Err(_)) => {}
                (r, g) => panic!(
                    "round {round} cut {cut}/{}: reference {:?} decoder {:?}",
                    f.len(),
                    r.map(|x| x.0.len()),
                    g.map(|x| x.len())
                ),
            }
        }
        // flipped bits: an error, or (a header byte that does not matter) the same bytes
        for k in 0..200 {
            let mut g = f.clone();
            let i = rng.below(g.len());
            g[i] ^= 1 << rng.below(8);
            let (got, _) = decode_with(&g, k, 1 << 12, 1 << 16);
            if let Ok(b) = got {
                let refr = gunzip_ref(&g);
                assert!(
                    refr.as_ref().map(|r| &r.0) == Ok(&b),
                    "round {round}: byte {i} flipped: the decoder accepted {} bytes, the \
                     reference says {:?}",
                    b.len(),
                    refr.map(|r| r.0.len())
                );
            }
        }
    }
}

fn decode_all(f: &[u8]) -> io::Result<Vec<u8>> {
    decode_with(f, 1, 1 << 16, 1 << 16).0
}

#[test]
fn decoder_odd_files() {
    let member = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let ok = member(b"hello\n");
    // empty and zero-only files, a header alone, a member and garbage
    assert!(decode_all(b"").is_err());
    assert!(decode_all(&[0u8; 100]).is_err());
    assert!(decode_all(&ok[..10]).is_err());
    let mut g = ok.clone();
    g.extend(b"garbage");
    assert!(decode_all(&g).is_err());
    let mut g = ok.clone();
    g.extend([0, 0, 0, 0x1f]);
    assert!(decode_all(&g).is_err());
    // a member, padding, another member, padding: the two members' bytes
    let mut g = ok.clone();
    g.extend([0u8; 3000]);
    g.extend(member(b"world\n"));
    g.extend([0u8; 1 << 19]);
    assert_eq!(decode_all(&g).unwrap(), b"hello\nworld\n");
    // many empty members (20 bytes each)
    let mut g = Vec::new();
    for _ in 0..10_000 {
        g.extend(member(b""));
    }
    g.extend(&ok);
    let (got, ev) = decode_with(&g, 3, 1 << 12, 1 << 16);
    assert_eq!(got.unwrap(), b"hello\n");
    assert_eq!(ev, gunzip_ref(&g).unwrap().1);
    // FEXTRA longer than the rest of the file, and longer than the input buffer would be
    let mut g = vec![0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 3, 0xff, 0xff];
    g.extend([1u8; 100]);
    assert!(decode_all(&g).is_err());
    // a 64 KiB extra field and a 3 MiB name (both longer than the 256 KiB buffer's share)
    let mut g = vec![0x1f, 0x8b, 8, 4 | 8 | 16 | 2, 0, 0, 0, 0, 0, 3, 0xff, 0xff];
    g.extend([7u8; 65535]);
    g.extend(std::iter::repeat_n(b'n', 3 << 20));
    g.push(0);
    g.extend(b"comment\0\x12\x34");
    g.extend(&ok[10..]);
    let (got, ev) = decode_with(&g, 4, 1 << 20, 1 << 16);
    assert_eq!(got.unwrap(), b"hello\n");
    assert_eq!(ev, gunzip_ref(&g).unwrap().1);
    // an unterminated name
    let mut g = vec![0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 3];
    g.extend([b'x'; 1000]);
    assert!(decode_all(&g).is_err());
    // a wrong CRC, a wrong length
    for at in [ok.len() - 8, ok.len() - 1] {
        let mut g = ok.clone();
        g[at] ^= 0x10;
        assert!(decode_all(&g).is_err(), "byte {at}");
    }
    // method other than deflate
    let mut g = ok.clone();
    g[2] = 7;
    assert!(decode_all(&g).is_err());
    // a back-reference reaching into the member before: the window is cleared per member
    let mut w = BitW::default();
    w.put(3, 3); // final, fixed
    w.copy(3, 3);
    w.sym(256);
    let mut g = member(b"abcdef");
    g.extend(gz_wrap(&w.finish(), b"def", &PLAIN_HEADER));
    assert!(gunzip_ref(&g).is_err());
    assert!(
        decode_all(&g).is_err(),
        "a reference into the previous member was accepted"
    );
    // a reserved block type
    let mut w = BitW::default();
    w.put(0b111, 3);
    w.put(0, 13);
    assert!(decode_all(&gz_wrap(&w.finish(), b"", &PLAIN_HEADER)).is_err());
}

// ---------------------------------------------------------------------------------------------
// Driving the splicer with hand-made batches
// ---------------------------------------------------------------------------------------------

struct Case {
    dir: PathBuf,
}

impl Case {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "qwen25-gzsplice-review-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Case { dir }
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

thread_local! {
    static MAX_HELD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static MAX_BREAKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The output, the kept bytes, and the blocks (copied, recompressed) before `finish`.
type Spliced = (Vec<u8>, Vec<u8>, (u64, u64));

/// Splice `f` (decompressing to `data`, whose lines are its records) keeping the records
/// `keep`: batches of random sizes, events handed over as the reader does (never behind the
/// batch's lines, some way ahead) or, with `lag`, late. The output and the kept bytes.
#[allow(clippy::too_many_arguments)]
fn splice_direct(
    dir: &Path,
    f: &[u8],
    data: &[u8],
    keep: &dyn Fn(usize) -> bool,
    rng: &mut Lcg,
    max_batch: usize,
    level: u32,
    lag: bool,
    hold: u64,
) -> io::Result<Spliced> {
    let path = dir.join("in.gz");
    std::fs::write(&path, f).unwrap();
    let (_, events, _) = gunzip_ref(f).unwrap();
    let mut lines = Vec::new();
    let mut s = 0;
    for (i, &c) in data.iter().enumerate() {
        if c == b'\n' {
            lines.push((s, i + 1));
            s = i + 1;
        }
    }
    if s < data.len() {
        lines.push((s, data.len()));
    }
    let mut sp = Splicer::new(&path, level)?;
    sp.hold = hold;
    MAX_HELD.with(|m| m.set(0));
    MAX_BREAKS.with(|m| m.set(0));
    let mut out = Vec::new();
    let mut want = Vec::new();
    let mut ei = 0;
    let mut i = 0;
    while i < lines.len() {
        let n = (rng.below(max_batch) + 1).min(lines.len() - i);
        let mut b = Batch::default();
        let mut pick = Vec::new();
        for (k, &(s, e)) in lines[i..i + n].iter().enumerate() {
            let a = b.data.len();
            b.data.extend_from_slice(&data[s..e]);
            if data[e - 1] != b'\n' {
                b.data.push(b'\n');
                b.appended = true;
                assert_eq!(k + 1, n);
            }
            b.spans.push((a, b.data.len()));
            b.upos.push(s as u64);
            b.items.push(Item::Text(String::new()));
            let p = keep(i + k);
            if p {
                want.extend_from_slice(&b.data[a..]);
            }
            pick.push(p);
        }
        let end = lines[i + n - 1].1 as u64;
        // the events of the blocks begun so far, and a few more
        let u_of = |e: &GzEvent| match *e {
            GzEvent::Block { u, .. } | GzEvent::End { u, .. } => u,
        };
        let mut upto = ei;
        if !lag || rng.below(3) == 0 {
            while upto < events.len() && u_of(&events[upto]) <= end {
                upto += 1;
            }
            upto = (upto + rng.below(4)).min(events.len());
        }
        b.gz = events[ei..upto].to_vec();
        ei = upto;
        sp.put(&Arc::new(b), &pick, true, &mut out)?;
        if let (Some(a), Some(z)) = (sp.pieces.front(), sp.pieces.back()) {
            MAX_HELD.with(|m| m.set(m.get().max(z.u + z.ulen - a.u)));
        }
        MAX_BREAKS.with(|m| m.set(m.get().max(sp.breaks.len())));
        i += n;
    }
    // the reader's last batch: no records, the events left
    let b = Batch {
        gz: events[ei..].to_vec(),
        ..Batch::default()
    };
    sp.put(&Arc::new(b), &[], true, &mut out)?;
    // every event is in: the counts are final (`finish` only closes the last member)
    let counts = (sp.copied_blocks, sp.recompressed_blocks);
    sp.finish(&mut out)?;
    Ok((out, want, counts))
}

fn check_output(out: &[u8], want: &[u8], input_members: usize, what: &str) {
    let mut back = Vec::new();
    flate2::read::MultiGzDecoder::new(out)
        .read_to_end(&mut back)
        .unwrap_or_else(|e| panic!("{what}: flate2: {e}"));
    assert!(
        back == want,
        "{what}: flate2 reads {} bytes, want {}",
        back.len(),
        want.len()
    );
    let (r, _, members) = gunzip_ref(out).unwrap_or_else(|e| panic!("{what}: reference: {e}"));
    assert!(r == want, "{what}: the reference decoder disagrees");
    assert_eq!(
        members, input_members,
        "{what}: one output member per input member"
    );
}

#[test]
fn splicer_random_inputs_cuts_and_drops() {
    let case = Case::new("random");
    let mut rng = Lcg(0xfeed);
    for round in 0..30 {
        let data = random_lines(&mut rng, [50, 20_000, 200_000][round % 3]);
        let f = random_gzip(&mut rng, &data);
        let (_, _, members) = gunzip_ref(&f).unwrap();
        let nlines = data.split(|&c| c == b'\n').count();
        let r = rng.next_u64();
        let which = round % 6;
        let keep = move |i: usize| match which {
            0 => true,
            1 => i % 97 != (r % 97) as usize,
            2 => !(i as u64 ^ r).is_multiple_of(3),
            3 => i + 1 != nlines,
            4 => i != 0 && i + 2 != nlines,
            _ => false,
        };
        let level = [6, 0, 1, 9][round % 4];
        let lag = round % 5 == 4;
        let hold = [HOLD, 0, 1000, 50_000][round % 7 % 4];
        let (out, want, sp) = splice_direct(
            &case.dir,
            &f,
            &data,
            &keep,
            &mut rng,
            [1, 5, 1000][round % 3],
            level,
            lag,
            hold,
        )
        .unwrap();
        let what = format!("round {round} keep #{which} level {level} lag {lag} hold {hold}");
        check_output(&out, &want, members, &what);
        if which == 0 && hold == HOLD && !data.is_empty() && *data.last().unwrap() == b'\n' {
            assert_eq!(sp.1, 0, "{what}: nothing dropped");
        }
    }
}

/// A block whose back-reference reaches exactly 32768 bytes back, behind a dropped line that
/// ends right before or right at the referenced byte.
#[test]
fn splicer_window_edge() {
    let case = Case::new("window");
    for gap in [0usize, 1] {
        // line 0: dropped; then 40000 bytes of kept lines; the block at `u` refers to byte
        // u - 32768, which is the first kept byte (gap 0) or the dropped line's newline (gap 1)
        let mut data = b"DROP-ME-0123456789\n".to_vec();
        let first_kept = data.len() - gap;
        while data.len() < first_kept + 32768 {
            let n = (first_kept + 32768 - data.len()).min(100);
            let mut l = vec![b'x'; n.saturating_sub(1)];
            l.push(b'\n');
            data.extend(l);
        }
        let u = data.len();
        assert_eq!(u - 32768, first_kept);
        // the block: a copy of the 5 bytes at u - 32768 then a newline
        let mut w = BitW::default();
        fixed_block(&mut w, &data, 0, 0, u, false);
        let copy: Vec<u8> = data[u - 32768..u - 32768 + 5].to_vec();
        w.put(3, 3);
        w.copy(5, 32768);
        w.sym(u32::from(b'\n'));
        w.sym(256);
        data.extend(&copy);
        data.push(b'\n');
        let f = gz_wrap(&w.finish(), &data, &PLAIN_HEADER);
        assert_eq!(gunzip_ref(&f).unwrap().0, data);
        let mut rng = Lcg(gap as u64);
        let (out, want, sp) = splice_direct(
            &case.dir,
            &f,
            &data,
            &|i| i != 0,
            &mut rng,
            3,
            6,
            false,
            HOLD,
        )
        .unwrap();
        check_output(&out, &want, 1, &format!("gap {gap}"));
        assert_eq!(sp.0, 1 - gap as u64, "gap {gap}");
    }
}

/// A block far larger than a batch (one fixed block of 3 MiB, batches of one line), stored
/// blocks at every bit alignment, and a last line without an ending across a member boundary.
#[test]
fn splicer_big_blocks_alignment_and_split_last_line() {
    let case = Case::new("big");
    let mut rng = Lcg(5);
    let mut data = Vec::new();
    for i in 0..40_000 {
        data.extend(format!("{{\"id\": {i}, \"t\": \"{}\"}}\n", "ab".repeat(i % 40)).bytes());
    }
    let mut w = BitW::default();
    fixed_block(&mut w, &data, 0, 0, data.len(), true);
    let f = gz_wrap(&w.finish(), &data, &PLAIN_HEADER);
    for keep in [|_| true, |i| i != 20_000, |i| i % 2 == 0] as [fn(usize) -> bool; 3] {
        let (out, want, _) =
            splice_direct(&case.dir, &f, &data, &keep, &mut rng, 1, 6, false, HOLD).unwrap();
        check_output(&out, &want, 1, "one big block");
        assert!(
            MAX_HELD.with(|m| m.get()) > 2 << 20,
            "the block's lines wait for its end"
        );
        // at most `hold` bytes of its lines wait: past them the block is recompressed
        let (out, want, c) =
            splice_direct(&case.dir, &f, &data, &keep, &mut rng, 1, 6, false, 1 << 16).unwrap();
        check_output(&out, &want, 1, "one big block, recompressed as it comes");
        let held = MAX_HELD.with(|m| m.get());
        assert!(held <= (1 << 16) + 200, "{held} bytes of lines held");
        // and the dropped lines' ranges are let go of too (a line is 20-100 bytes)
        let breaks = MAX_BREAKS.with(|m| m.get());
        assert!(breaks < 4000, "{breaks} ranges held");
        assert_eq!(c.0, 0, "nothing copied");
    }
    // stored blocks behind 0..7 literal bits of fixed block, so each lands at another alignment;
    // the first line is dropped, so what precedes the stored blocks is recompressed
    let lines: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("line {i} {}\n", "z".repeat(i * 37 % 500)).into_bytes())
        .collect();
    for shift in 0..8 {
        // (bytes, stored?) segments: before each even line, `shift` 9-bit literals in a fixed block
        let mut segs: Vec<(Vec<u8>, bool)> = Vec::new();
        for (k, l) in lines.iter().enumerate() {
            if k % 2 == 0 {
                segs.push((vec![0x90; shift], false));
                segs.push((l.clone(), true));
            } else {
                segs.push((l.clone(), false));
            }
        }
        let d: Vec<u8> = segs.iter().flat_map(|s| s.0.clone()).collect();
        let mut w = BitW::default();
        let mut i = 0;
        for (seg, stored) in &segs {
            if *stored {
                w.stored(false, seg);
            } else {
                fixed_block(&mut w, &d, 0, i, i + seg.len(), false);
            }
            i += seg.len();
        }
        w.stored(true, &[]);
        let f = gz_wrap(&w.finish(), &d, &PLAIN_HEADER);
        assert_eq!(gunzip_ref(&f).unwrap().0, d);
        for drop in [0usize, 7, 150] {
            let (out, want, sp) = splice_direct(
                &case.dir,
                &f,
                &d,
                &|i| i != drop,
                &mut rng,
                4,
                6,
                false,
                HOLD,
            )
            .unwrap();
            check_output(&out, &want, 1, &format!("shift {shift} drop {drop}"));
            assert!(sp.0 > 0);
        }
    }
    // a last line without an ending that starts in one member and ends two members later
    let data = b"{\"a\": 1}\n{\"b\": 2}\n{\"c\": 3, \"long\": \"xxxxxxxxxxxx\"}".to_vec();
    let mut f = Vec::new();
    for part in [&data[..20], &data[20..30], &data[30..30], &data[30..]] {
        f.extend(random_member(&mut rng, part));
    }
    for keep in [|_| true, |i| i != 1, |i| i == 2] as [fn(usize) -> bool; 3] {
        let (out, want, _) =
            splice_direct(&case.dir, &f, &data, &keep, &mut rng, 2, 6, false, HOLD).unwrap();
        check_output(&out, &want, 4, "split last line");
    }
}

#[test]
fn splicer_source_shorter_than_its_events() {
    let case = Case::new("short");
    let mut rng = Lcg(11);
    let mut data = Vec::new();
    for _ in 0..20_000 {
        data.extend(rng.string(b"abcdefghijklmnopqrstuvwxyz ", 30).bytes());
        data.push(b'\n');
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&data).unwrap();
    let f = e.finish().unwrap();
    let (_, events, _) = gunzip_ref(&f).unwrap();
    let path = case.dir.join("in.gz");
    std::fs::write(&path, &f[..f.len() / 2]).unwrap();
    let mut sp = Splicer::new(&path, 6).unwrap();
    let mut b = Batch::default();
    let mut s = 0;
    for (i, &c) in data.iter().enumerate() {
        if c == b'\n' || i + 1 == data.len() {
            b.spans.push((s, i + 1));
            b.upos.push(s as u64);
            b.items.push(Item::Text(String::new()));
            s = i + 1;
        }
    }
    b.data = data.clone();
    if data.last() != Some(&b'\n') {
        b.data.push(b'\n');
        b.appended = true;
        let last = b.spans.len() - 1;
        b.spans[last].1 += 1;
    }
    let b_events = events.len();
    b.gz = events;
    let pick = vec![true; b.len()];
    let mut out = Vec::new();
    let r = sp.put(&Arc::new(b), &pick, true, &mut out);
    let sp_copied = sp.copied_blocks;
    let r = r.and_then(|()| sp.finish(&mut out));
    assert!(r.is_err(), "a source shorter than its events was spliced");
    assert!(sp_copied > 0 && b_events > 4);
}

// ---------------------------------------------------------------------------------------------
// Through the reader: its batches, its record offsets and its decoder's events as they come
// ---------------------------------------------------------------------------------------------

/// JSONL with what real shards hold: a BOM, blank and whitespace lines, CRLF endings, bad lines,
/// long lines, and maybe a last line without an ending.
fn json_lines(rng: &mut Lcg, total: usize) -> Vec<u8> {
    let mut d = Vec::new();
    if rng.below(3) == 0 {
        d.extend(b"\xef\xbb\xbf");
    }
    while d.len() < total {
        match rng.below(30) {
            0 => d.extend(b"\n"),
            1 => d.extend(b"  \t\r\n"),
            2 => d.extend(b"{not json\n"),
            3 => {
                let n = rng.below(70_000);
                d.extend(format!("{{\"text\": \"{}\"}}\r\n", "xy".repeat(n / 2)).bytes());
            }
            _ => {
                let n = rng.below(200);
                let t = rng.string(b"abcdefghijklmnop qrst", n);
                d.extend(format!("{{\"id\": {}, \"text\": \"{t}\"}}\n", d.len()).bytes());
            }
        }
    }
    if rng.below(2) == 0 {
        d.pop();
    }
    d
}

/// Read `f` with the reader (batches of `batch_size`), keep the records `keep`, splice: the
/// output and the kept lines as the reader gives them.
fn splice_read(
    dir: &Path,
    f: &[u8],
    keep: &dyn Fn(usize) -> bool,
    batch_size: usize,
    level: u32,
    hold: u64,
) -> (Vec<u8>, Vec<u8>) {
    use super::super::reader::{ReadOptions, RecordReader};
    use super::super::record::Rules;
    let path = dir.join("in.jsonl.gz");
    std::fs::write(&path, f).unwrap();
    let opts = ReadOptions {
        rules: Rules::new("text"),
        skip_bad: true,
        batch_size,
        hash: false,
        blake2b: false,
        extra_field: None,
        threads: 1,
        gz_blocks: true,
    };
    let mut r = RecordReader::open(path.to_str().unwrap(), opts).unwrap();
    let mut sp = Splicer::new(&path, level).unwrap();
    sp.hold = hold;
    let (mut out, mut want) = (Vec::new(), Vec::new());
    let mut k = 0;
    while let Some(b) = r.next_batch().unwrap() {
        let pick: Vec<bool> = (0..b.len()).map(|i| keep(k + i)).collect();
        k += b.len();
        want.extend(b.select(&pick, true));
        sp.put(&Arc::new(b), &pick, true, &mut out).unwrap();
    }
    sp.finish(&mut out).unwrap();
    (out, want)
}

#[test]
fn splicer_through_the_reader_whole_and_damaged() {
    let case = Case::new("reader");
    let mut rng = Lcg(0xabc);
    for round in 0..24 {
        let data = json_lines(&mut rng, [0, 300, 50_000, 400_000][round % 4]);
        let f = random_gzip(&mut rng, &data);
        let (_, _, members) = gunzip_ref(&f).unwrap();
        let r = rng.next_u64();
        let keep = move |i: usize| match r % 4 {
            0 => true,
            1 => !(i as u64 + r).is_multiple_of(61),
            2 => (i as u64 ^ r).is_multiple_of(2),
            _ => i > 3,
        };
        let bs = [1, 9, 10_000][round % 3];
        let level = [6, 1, 0][round % 3];
        let hold = [HOLD, 0, 5000, 100_000][round % 5 % 4];
        let (out, want) = splice_read(&case.dir, &f, &keep, bs, level, hold);
        check_output(&out, &want, members, &format!("round {round}"));
        // damaged copies: cut short, or one byte changed; the output still holds exactly the
        // kept records read before the damage, as a sound gzip file
        for _ in 0..3 {
            let mut g = f.clone();
            if rng.below(2) == 0 {
                g.truncate(rng.below(g.len()) + 1);
            } else {
                let i = rng.below(g.len());
                g[i] ^= 0x55;
            }
            let (out, want) = splice_read(&case.dir, &g, &keep, bs, level, hold);
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap_or_else(|e| panic!("round {round} damaged: {e}"));
            assert!(back == want, "round {round}: damaged input");
            assert_eq!(gunzip_ref(&out).unwrap().0, want);
        }
    }
}

/// A batch of the lines of `data` starting at the offsets `starts` (each ends at the next
/// `\n`), with the events `gz`, every record picked.
fn batch_of(data: &[u8], starts: &[usize], gz: Vec<GzEvent>) -> (Arc<Batch>, Vec<bool>) {
    let mut b = Batch {
        gz,
        ..Batch::default()
    };
    for &s in starts {
        let e = s + data[s..].iter().position(|&c| c == b'\n').unwrap() + 1;
        let a = b.data.len();
        b.data.extend_from_slice(&data[s..e]);
        b.spans.push((a, b.data.len()));
        b.upos.push(s as u64);
        b.items.push(Item::Text(String::new()));
    }
    let n = b.len();
    (Arc::new(b), vec![true; n])
}

/// Lines recompressed ahead of their block's end (past `hold`) while the block events lag
/// behind the lines, so that they run on into the next member: a later block of that member
/// whose window reaches them is not copied (they went out in the member before).
#[test]
fn splicer_lines_recompressed_ahead_into_the_next_member() {
    let case = Case::new("ahead");
    let lines = |tag: &str| -> Vec<u8> {
        (0..60)
            .flat_map(|i| {
                format!("{{\"{tag}\": {i}, \"pad\": \"{}\"}}\n", "q".repeat(i)).into_bytes()
            })
            .collect()
    };
    let m1 = lines("a");
    let half = lines("b");
    let m2: Vec<u8> = [half.clone(), half.clone()].concat(); // its second block repeats the first
    let mut w = BitW::default();
    fixed_block(&mut w, &m1, 0, 0, m1.len(), true);
    let mut f = gz_wrap(&w.finish(), &m1, &PLAIN_HEADER);
    let mut w = BitW::default();
    fixed_block(&mut w, &m2, 0, 0, half.len(), false);
    fixed_block(&mut w, &m2, 0, half.len(), m2.len(), true);
    f.extend(gz_wrap(&w.finish(), &m2, &PLAIN_HEADER));
    let data = [m1.clone(), m2.clone()].concat();
    let (back, events, _) = gunzip_ref(&f).unwrap();
    assert_eq!(back, data);
    assert_eq!(events.len(), 5); // member 1's block and end, member 2's two blocks and end
    let path = case.dir.join("in.gz");
    std::fs::write(&path, &f).unwrap();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            data.iter()
                .enumerate()
                .filter(|c| *c.1 == b'\n')
                .map(|c| c.0 + 1),
        )
        .filter(|&s| s < data.len())
        .collect();
    // first batch: the lines up to the end of member 2's first block, with member 1's first
    // event only; then the rest, with the other events
    let cut = m1.len() + half.len();
    let k = starts.iter().position(|&s| s == cut).unwrap();
    let mut sp = Splicer::new(&path, 6).unwrap();
    sp.hold = 100;
    let mut out = Vec::new();
    let (b, pick) = batch_of(&data, &starts[..k], events[..1].to_vec());
    sp.put(&b, &pick, true, &mut out).unwrap();
    assert_eq!(sp.fed, cut as u64, "recompressed ahead into member 2");
    let (b, pick) = batch_of(&data, &starts[k..], events[1..].to_vec());
    sp.put(&b, &pick, true, &mut out).unwrap();
    sp.finish(&mut out).unwrap();
    check_output(&out, &data, 2, "ahead");
}
