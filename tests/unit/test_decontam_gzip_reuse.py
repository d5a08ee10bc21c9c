"""`qwen25 decontaminate` on gzip shards reuses the input's deflate blocks: without ``recompress``
the ``clean/`` output of a ``.gz`` shard copies the input's blocks bit for bit away from the dropped
lines and recompresses only around them. Whatever the producer of the input (Python's gzip at
levels 0-9, zlib with every flush, strategy and memLevel, several members, a bgzip layout, a
hand-made header with every optional field, zero padding, our own writer, a hand-made fixed-code
stream that refers exactly 32 KiB back into a removed line) and whatever the corpus (removed records
first, last, adjacent, everywhere or nowhere, CRLF, a BOM, blank and malformed lines, a record over
1 MiB, a shard cut short), the output must decompress to exactly the bytes ``recompress=True``
writes, and both to the bytes computed here from the input.

The oracles are independent of qwen25: the expected bytes are the input as Python's ``gzip`` (or,
for a damaged file, ``zlib``) decodes it, split into lines here, minus blank lines and the lines
planted as contaminated or malformed (the report must list exactly those); gzip validity is Python's
``gzip.decompress`` (every member's CRC-32 and length) and the ``gzip`` command's ``-t`` and ``-dc``;
the reuse itself is seen in the members' deflate bodies, parsed here from RFC 1952 headers, and in
the output sizes, which follow the input's compression and not ``compress_level``."""

from __future__ import annotations

import gzip
import inspect
import json
import random
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qwen25.data import records
from qwen25.data.decontam_job import run_job

BOM = b"\xef\xbb\xbf"
KiB = 1024

# -- corpus --------------------------------------------------------------------------------------
_RND = random.Random(2024)
# the test set: long strings of random letters, which the generated text below never contains
ITEMS = [" ".join("".join(_RND.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_RND.randrange(4, 9)))
                  for _ in range(40)) for _ in range(6)]  # fmt: skip
WORDS = (
    "the of and to in is that for it as was with be by on not this are or from at which but have an they you "
    "were her she there one all we their can has more when will would if so no out up into what about who them "
    "some could time than first been its two like other only new now my over also after these may most such "
    "where people way year good well through must very even back much down should our because while those last "
    "each any just how before right too made part between both life being under work same never another world "
    "day house long three own state many water great school small little river bridge town market winter "
    "garden letter number table window morning evening station engine"
).split()
ACCENTED = ["café", "naïve", "façade", "Zürich", "日本語", "Ελλάδα", "—", "déjà vu", "smörgåsbord"]
CODE = [
    "def {f}(x, y):", "    return {f}(x) + y * {n}", "for i in range({n}):", "    if not items:",
    "        raise ValueError('empty {f}')", "import os, sys", "class {F}(Base):", "    total += {n}",
    "xs = [a for a in ys if a > {n}]", "print(f'{f}: {{x}}')", "// TODO: {f} overflows at {n}",
    "int {f}(int n) {{ return n * {n}; }}", "#include <stdio.h>", "}}", "    }}",
]


def _sentence(rnd: random.Random) -> str:
    ws = [rnd.choice(WORDS) for _ in range(rnd.randrange(5, 18))]
    if rnd.random() < 0.15:
        ws.insert(rnd.randrange(len(ws)), rnd.choice(ACCENTED))
    s = " ".join(ws)
    return s[0].upper() + s[1:] + rnd.choice([".", ".", ".", "?", "!", ";"])


def _code(rnd: random.Random) -> str:
    f = "_".join(rnd.choice(WORDS) for _ in range(2))
    return "\n".join(rnd.choice(CODE).format(f=f, F=f.title().replace("_", ""), n=rnd.randrange(1000))
                     for _ in range(rnd.randrange(3, 15)))  # fmt: skip


def _text(rnd: random.Random, size: int) -> str:
    parts: list[str] = []
    n = 0
    while n < size:
        p = _code(rnd) if rnd.random() < 0.3 else " ".join(_sentence(rnd) for _ in range(rnd.randrange(1, 6)))
        parts.append(p)
        n += len(p) + 1
    return "\n".join(parts)


def _record(rnd: random.Random, i: int, dirty: bool, size: int | None = None) -> bytes:
    text = _text(rnd, size if size is not None else rnd.choice([150, 400, 800, 1500, 3000]))
    if dirty:  # an item copied verbatim into the middle of the record
        cut = text.find(" ", len(text) // 2)
        cut = len(text) if cut < 0 else cut
        text = f"{text[:cut]} {rnd.choice(ITEMS)} {text[cut:]}"
    rec: dict[str, Any] = {"id": i, "text": text}
    if rnd.random() < 0.5:
        rec["meta"] = {"source": rnd.choice(["web", "code", "books"]), "score": round(rnd.random(), 4)}
    return json.dumps(rec, ensure_ascii=rnd.random() < 0.5).encode()


def _noise(rnd: random.Random, i: int, dirty: bool) -> bytes:
    alphabet = bytes(b for b in range(0x20, 0x100) if b not in b'"\\')
    junk = bytes(rnd.choice(alphabet) for _ in range(40 * KiB))
    mid = f" {rnd.choice(ITEMS)} ".encode() if dirty else b""
    return b'{"id": %d, "text": "' % i + junk[: 20 * KiB] + mid + junk[20 * KiB:] + b'"}'


MALFORMED = [b'{"text": broken', b'{"text": 5}', b'{"text": "caf\xe9"}', b"[1, 2]"]


def corpus(seed: int = 1, *, size: int = 300 * KiB, dirty: str = "scattered", eol: str = "lf",
           last_newline: bool = True, bom: bool = False, blanks: bool = False, bad: bool = False,
           huge: str | None = None, noise: int = 0) -> tuple[bytes, set[int], set[int]]:
    """(the shard's decompressed bytes, the line numbers (from 1) of the contaminated records, the
    line numbers of the malformed ones). ``dirty``: which records carry a test item: none, first,
    last, adjacent (two in the middle), every32k (the first record starting in each 32 KiB
    region), all or scattered (about one in 15). ``huge``: a record over 1 MiB in the middle,
    ``"clean"`` or ``"dirty"``. ``noise``: that many records of 40 KB of random bytes (not UTF-8:
    for ``encoding_errors="replace"``), which zlib stores rather than compresses, the second of them
    contaminated."""
    rnd = random.Random(seed)
    count = -(-size // 1200)  # records of 1.2 KB on average
    recs: list[tuple[int, bool]] = []  # (index, dirty) per record
    for i in range(count):
        d = {"none": False, "first": i == 0, "last": i == count - 1, "all": True, "every32k": False,
             "adjacent": i in (count // 2, count // 2 + 1),
             "scattered": rnd.random() < 1 / 15}[dirty]  # fmt: skip
        recs.append((i, d))
    lines: list[bytes] = []
    dirty_lines: set[int] = set()
    bad_lines: set[int] = set()
    offset, region = 0, -1
    for i, d in recs:
        if dirty == "every32k" and offset // (32 * KiB) != region:
            region, d = offset // (32 * KiB), True
        if huge is not None and i == count // 3:
            body = _record(rnd, i, huge == "dirty", size=1100 * KiB)
            d = huge == "dirty"
        elif noise and i % (count // noise) == count // noise // 2 and i // (count // noise) < noise:
            d = i // (count // noise) == 1
            body = _noise(rnd, i, d)
        else:
            body = _record(rnd, i, d)
        if blanks and rnd.random() < 0.1:
            lines.append(rnd.choice([b"\n", b"  \n", b"\t\r\n", b"\r\n", b" \x0c \n"]))
        if bad and rnd.random() < 0.05:
            lines.append(rnd.choice(MALFORMED) + b"\n")
            bad_lines.add(len(lines))
        end = {"lf": b"\n", "crlf": b"\r\n", "mixed": rnd.choice([b"\n", b"\r\n"])}[eol]
        lines.append(body + end)
        if d:
            dirty_lines.add(len(lines))
        offset += len(lines[-1])
    if blanks:
        lines.insert(0, b"\n")  # a blank first line, too
        dirty_lines = {x + 1 for x in dirty_lines}
        bad_lines = {x + 1 for x in bad_lines}
    if not last_newline:
        lines[-1] = lines[-1].rstrip(b"\r\n")
    data = b"".join(lines)
    return (BOM + data if bom else data), dirty_lines, bad_lines


# -- gzip producers ------------------------------------------------------------------------------
def _member(body_raw: bytes, data: bytes, header: bytes) -> bytes:
    return header + body_raw + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def _raw_deflate(data: bytes, level: int = 6) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def gz_python(level: int) -> Callable[[bytes], bytes]:
    return lambda data: gzip.compress(data, level, mtime=0)  # 10-byte header, no file name


def gz_zlib_flush(mode: int, every: int = 5000) -> Callable[[bytes], bytes]:
    def make(data: bytes) -> bytes:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        out = []
        for i in range(0, len(data), every):
            out.append(c.compress(data[i:i + every]))
            out.append(c.flush(mode))
        return b"".join(out) + c.flush()
    return make


def gz_members(cuts: list[float], empty_at: tuple[int, ...] = ()) -> Callable[[bytes], bytes]:
    """Members cut at the fractions ``cuts`` of the data (so mid-line); an empty member inserted
    before the part numbered in ``empty_at`` (len(cuts)+1: at the end)."""
    def make(data: bytes) -> bytes:
        at = [0] + [int(len(data) * c) for c in cuts] + [len(data)]
        parts = [data[a:b] for a, b in zip(at, at[1:])]
        out = []
        for k, part in enumerate(parts + [None]):
            if k in empty_at:
                out.append(gzip.compress(b"", mtime=0))
            if part is not None:
                out.append(gzip.compress(part, 6, mtime=0))
        return b"".join(out)
    return make


BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def gz_bgzf(data: bytes) -> bytes:
    """bgzip's layout: members of 65280 input bytes (cutting lines anywhere), each with a 'BC'
    extra field giving the member's size, then bgzip's empty end-of-file member."""
    out = []
    for i in range(0, len(data), 0xFF00):
        chunk = data[i:i + 0xFF00]
        body = _raw_deflate(chunk, 6)
        bsize = 18 + len(body) + 8
        bc = struct.pack("<HBBHH", 6, 66, 67, 2, bsize - 1)  # XLEN, 'B', 'C', SLEN, BSIZE - 1
        header = b"\x1f\x8b\x08\x04" + b"\0\0\0\0" + b"\x00\xff" + bc
        out.append(_member(body, chunk, header))
    return b"".join(out) + BGZF_EOF


def _full_header(name: bytes, comment: bytes, extra: bytes, mtime: int) -> bytes:
    h = b"\x1f\x8b\x08" + bytes([0x02 | 0x04 | 0x08 | 0x10]) + struct.pack("<I", mtime) + b"\x02\x03"
    h += struct.pack("<H", len(extra)) + extra + name + b"\0" + comment + b"\0"
    return h + struct.pack("<H", zlib.crc32(h) & 0xFFFF)  # FHCRC: the low 16 bits of the header's CRC-32


def gz_full_header(data: bytes) -> bytes:
    """Two members with FEXTRA, FNAME, FCOMMENT and FHCRC, built by hand around raw deflate."""
    half = len(data) // 2
    extra = b"AB" + struct.pack("<H", 5) + b"hello" + b"ZZ" + struct.pack("<H", 0)
    h1 = _full_header(b"shard-a.jsonl", b"made by hand", extra, 1_700_000_000)
    h2 = _full_header(b"b", b"second \xe9 comment", b"", 0)
    return _member(_raw_deflate(data[:half], 9), data[:half], h1) + \
        _member(_raw_deflate(data[half:], 1), data[half:], h2)


def gz_full_header_one(data: bytes) -> bytes:
    extra = b"XY" + struct.pack("<H", 3) + b"abc"
    return _member(_raw_deflate(data, 6), data, _full_header(b"x.jsonl", b"one member", extra, 12345))


def gz_trailing_zeros(data: bytes) -> bytes:
    return gzip.compress(data, 6, mtime=0) + b"\0" * 1000


def gz_zeros_between(data: bytes) -> bytes:
    """Two members with zero bytes between them (Python's gzip skips them, as after the last)."""
    half = len(data) // 3
    return gzip.compress(data[:half], 6, mtime=0) + b"\0" * 37 + gzip.compress(data[half:], 6, mtime=0)


def gz_own_writer(tmp: Path) -> Callable[[bytes], bytes]:
    def make(data: bytes) -> bytes:
        p = tmp / "own-writer.jsonl.gz"
        records.write_bytes(p, data)
        return p.read_bytes()
    return make


PRODUCERS: dict[str, Any] = {
    "py0": gz_python(0), "py1": gz_python(1), "py6": gz_python(6), "py9": gz_python(9),
    "full_flush": gz_zlib_flush(zlib.Z_FULL_FLUSH), "sync_flush": gz_zlib_flush(zlib.Z_SYNC_FLUSH),
    "sync_flush_small": gz_zlib_flush(zlib.Z_SYNC_FLUSH, every=700),
    "members3": gz_members([0.31, 0.77]), "empty_members": gz_members([0.5], empty_at=(1, 2)),
    "bgzf": gz_bgzf, "full_header": gz_full_header, "full_header_one": gz_full_header_one,
    "trailing_zeros": gz_trailing_zeros, "zeros_between": gz_zeros_between, "own_writer": "own_writer",
}
SINGLE_MEMBER = ["py0", "py1", "py6", "py9", "full_flush", "sync_flush", "sync_flush_small",
                 "full_header_one", "trailing_zeros", "own_writer"]


def _produce(name: str, data: bytes, tmp: Path) -> bytes:
    p = PRODUCERS[name]
    return gz_own_writer(tmp)(data) if p == "own_writer" else p(data)


# -- reading gzip here (RFC 1952), independently of qwen25 -----------------------------------------
def _header_len(data: bytes, at: int) -> int:
    assert data[at:at + 3] == b"\x1f\x8b\x08", f"no gzip member at byte {at}"
    flg = data[at + 3]
    i = at + 10
    if flg & 0x04:
        i += 2 + struct.unpack_from("<H", data, i)[0]
    for bit in (0x08, 0x10):
        if flg & bit:
            i = data.index(b"\0", i) + 1
    if flg & 0x02:
        i += 2
    return i - at


def members(data: bytes) -> list[tuple[bytes, bytes]]:
    """(deflate body, decompressed bytes) of each member, in order; zero bytes after a member are
    padding (as Python's gzip reads them)."""
    out: list[tuple[bytes, bytes]] = []
    at = 0
    while at < len(data):
        if out:
            at = len(data) - len(data[at:].lstrip(b"\0"))
            if at == len(data):
                break
        h = _header_len(data, at)
        d = zlib.decompressobj(-15)
        plain = d.decompress(data[at + h:])
        assert d.eof, f"member at byte {at} is incomplete"
        end = len(data) - len(d.unused_data)
        crc, isize = struct.unpack_from("<II", data, end)
        want = (zlib.crc32(plain), len(plain) & 0xFFFFFFFF)
        assert (crc, isize) == want, f"member at byte {at}: bad trailer"
        out.append((data[at + h:end], plain))
        at = end + 8
    return out


def decode_damaged(data: bytes) -> bytes:
    """What zlib recovers from a damaged multi-member file: every member up to the damage."""
    out, at = b"", 0
    while at < len(data):
        d = zlib.decompressobj(31)
        try:
            out += d.decompress(data[at:])
        except zlib.error:
            break
        if not d.eof:
            break
        at = len(data) - len(d.unused_data)
    return out


def split_lines(data: bytes) -> list[bytes]:
    """Lines with their endings (only b"\\n" ends a line; a CR stays part of it)."""
    return re.findall(rb"[^\n]*\n|[^\n]+$", data)


def expected_clean(decoded: bytes, drop: set[int]) -> bytes:
    """The clean output the docs promise: the input's lines, a leading BOM removed, minus blank
    lines and the line numbers ``drop``, byte for byte; a last line without newline gets one."""
    if decoded.startswith(BOM):
        decoded = decoded[len(BOM):]
    out = []
    for no, ln in enumerate(split_lines(decoded), 1):
        if no in drop or not ln.strip():  # bytes.strip(): space, \t, \n, \r, \v, \f, the reader's blanks
            continue
        out.append(ln if ln.endswith(b"\n") else ln + b"\n")
    return b"".join(out)


def gzip_tool_check(path: Path, want: bytes) -> None:
    """The gzip command accepts the file and decodes it to ``want`` (skipped where it is missing)."""
    exe = shutil.which("gzip")
    if exe is None:
        return
    t = subprocess.run([exe, "-t", str(path)], capture_output=True)
    assert t.returncode == 0 and not t.stderr, f"gzip -t {path.name}: rc={t.returncode} {t.stderr!r}"
    d = subprocess.run([exe, "-dc", str(path)], capture_output=True)
    assert d.returncode == 0 and not d.stderr, f"gzip -dc {path.name}: rc={d.returncode} {d.stderr!r}"
    assert d.stdout == want


# -- running the job -----------------------------------------------------------------------------
def _tests_file(tmp: Path) -> Path:
    p = tmp / "tests.jsonl"
    if not p.exists():
        p.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(ITEMS)))
    return p


def run_both(tmp: Path, gz: bytes, *, name: str = "shard.jsonl.gz", skip_bad: bool = False,
             compress_level: int = 6, encoding_errors: str = "strict") -> dict[str, Any]:
    """The job on the shard ``gz``, with reuse (the default) and with ``recompress=True``."""
    src = tmp / "corpus" / name
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(gz)
    res: dict[str, Any] = {"input": src}
    for tag in ("reuse", "recompress"):
        out = tmp / f"out-{tag}"
        rep = run_job(train=[str(src)], tests=[str(_tests_file(tmp))], out=str(out), skip_bad=skip_bad,
                      compress_level=compress_level, recompress=tag == "recompress", progress=False,
                      encoding_errors=encoding_errors, log=lambda _: None)  # fmt: skip
        res[tag] = {"report": rep, "clean": out / "clean" / name, "removed": out / "removed" / name,
                    "bad": out / "bad" / f"{name}.jsonl"}  # fmt: skip
    return res


def check(res: dict[str, Any], decoded: bytes, dirty: set[int], bad: set[int]) -> bytes:
    """(a) reuse and recompress decompress to the same bytes, (b) those are the expected bytes,
    (c) the gzip tool agrees; the report lists exactly the planted lines, and removed/ and bad/
    do not depend on reuse. Returns the reuse output's bytes."""
    rep = res["reuse"]["report"]
    removed = {r["line"] for r in rep["removed"]}
    bad_listed = {b["line"] for b in rep["bad"]}
    assert removed == dirty, f"removed lines {sorted(removed ^ dirty)[:10]} differ from the planted ones"
    assert bad_listed == bad
    want = expected_clean(decoded, removed | bad_listed)
    reuse = res["reuse"]["clean"].read_bytes()
    recompress = res["recompress"]["clean"].read_bytes()
    got_reuse, got_recompress = gzip.decompress(reuse), gzip.decompress(recompress)  # checks CRC-32, ISIZE
    assert got_reuse == got_recompress, _first_diff(got_reuse, got_recompress)
    assert got_recompress == want, _first_diff(got_recompress, want)
    gzip_tool_check(res["reuse"]["clean"], want)
    other = res["recompress"]["report"]
    assert [(r["line"], r["record"]) for r in other["removed"]] == \
        [(r["line"], r["record"]) for r in rep["removed"]]
    assert other["counts"] == rep["counts"] and other["bad"] == rep["bad"]
    assert [_where(d) for d in other["damaged"]] == [_where(d) for d in rep["damaged"]]
    assert gzip.decompress(res["reuse"]["removed"].read_bytes()) == \
        gzip.decompress(res["recompress"]["removed"].read_bytes())
    assert res["reuse"]["bad"].exists() == res["recompress"]["bad"].exists() == bool(bad or rep["damaged"])
    if bad or rep["damaged"]:
        a, b = ([_where(json.loads(x)) for x in res[k]["bad"].read_bytes().splitlines()]
                for k in ("reuse", "recompress"))  # fmt: skip
        assert a == b
    return reuse


def _where(entry: dict[str, Any]) -> dict[str, Any]:
    """A bad/ or damage entry without the decoder's words for the damage (``after N records (line
    L): <detail>``); test_damage_is_reported_in_the_same_words pins those."""
    return {**entry, "reason": re.sub(r"(\(line \d+\)): .*", r"\1", entry["reason"])}


def _same_member_count(out: bytes, gz: bytes) -> None:
    """One output member per input member (an empty one included)."""
    n_out, n_in = len(members(out)), len(members(gz))
    assert n_out == n_in, f"{n_out} output members for {n_in} input members"


def _first_diff(a: bytes, b: bytes) -> str:
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return f"lengths {len(a)} != {len(b)} or first difference at byte {i}: {a[i:i + 40]!r} vs {b[i:i + 40]!r}"


# -- corpus shapes, on a one-member and a bgzip input --------------------------------------------
SHAPES: dict[str, dict[str, Any]] = {
    "none_removed": {"dirty": "none"},
    "first": {"dirty": "first"},
    "last": {"dirty": "last"},
    "two_adjacent": {"dirty": "adjacent"},
    "one_per_32k": {"dirty": "every32k"},
    "all_removed": {"dirty": "all", "size": 120 * KiB},
    "scattered": {"dirty": "scattered"},
    "last_no_newline_dirty": {"dirty": "last", "last_newline": False},
    "last_no_newline_clean": {"dirty": "first", "last_newline": False},
    "crlf": {"eol": "crlf"},
    "crlf_last_no_newline": {"eol": "crlf", "dirty": "last", "last_newline": False},
    "mixed_eol_blanks": {"eol": "mixed", "blanks": True},
    "blanks_only_dropped": {"dirty": "none", "blanks": True},
    "bom_none_removed": {"bom": True, "dirty": "none"},
    "bom_first_removed": {"bom": True, "dirty": "first"},
    "malformed_skip_bad": {"bad": True},
    "malformed_only_dropped": {"bad": True, "dirty": "none", "blanks": True},
    "huge_clean_record": {"huge": "clean", "size": 200 * KiB},
    "huge_dirty_record": {"huge": "dirty", "size": 200 * KiB, "dirty": "none"},
    "stored_blocks_between": {"noise": 4, "dirty": "scattered"},
    "stored_blocks_none_removed": {"noise": 3, "dirty": "none"},
}


@pytest.mark.parametrize("producer", ["py6", "bgzf"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_shapes(tmp_path: Path, shape: str, producer: str) -> None:
    kw = SHAPES[shape]
    data, dirty, bad = corpus(seed=len(shape), **kw)
    gz = _produce(producer, data, tmp_path)
    res = run_both(tmp_path, gz, skip_bad=bool(bad), encoding_errors="replace" if "noise" in kw else "strict")
    out = check(res, gzip.decompress(gz), dirty, bad)
    _same_member_count(out, gz)


# -- producers, on a corpus with a bit of everything --------------------------------------------
@pytest.mark.parametrize("producer", list(PRODUCERS))
def test_producers(tmp_path: Path, producer: str) -> None:
    data, dirty, bad = corpus(seed=5, eol="mixed", blanks=True, bad=True, bom=True, last_newline=False)
    gz = _produce(producer, data, tmp_path)
    assert gzip.decompress(gz) == data  # the producer itself is sound
    res = run_both(tmp_path, gz, skip_bad=True)
    out = check(res, data, dirty, bad)
    _same_member_count(out, gz)


@pytest.mark.parametrize("producer", list(PRODUCERS))
@pytest.mark.parametrize("dirty", ["every32k", "all"])
def test_producers_heavy_removal(tmp_path: Path, producer: str, dirty: str) -> None:
    data, dirty_lines, _ = corpus(seed=9, dirty=dirty, size=160 * KiB, eol="crlf")
    gz = _produce(producer, data, tmp_path)
    res = run_both(tmp_path, gz)
    out = check(res, data, dirty_lines, set())
    _same_member_count(out, gz)


# -- (d) the reuse itself: nothing dropped, the deflate bodies come through unchanged -------------
@pytest.mark.parametrize("producer", SINGLE_MEMBER + ["members3", "empty_members", "bgzf", "full_header"])
def test_nothing_removed_copies_every_deflate_body(tmp_path: Path, producer: str) -> None:
    data, dirty, _ = corpus(seed=11, dirty="none", eol="mixed")
    gz = _produce(producer, data, tmp_path)
    res = run_both(tmp_path, gz)
    out = check(res, data, dirty, set())
    _same_member_count(out, gz)
    ins, outs = members(gz), members(out)
    for k, ((body_in, _), (body_out, _)) in enumerate(zip(ins, outs)):
        assert body_out == body_in, f"member {k}: body not copied ({len(body_out)} vs {len(body_in)} bytes)"
    if producer in ("py0", "py1", "py6", "py9"):  # the 10-byte header of gzip.compress(mtime=0), no name
        assert gz[10:-8] == out[_header_len(out, 0):-8]


def at_some_bit_shift(hay: bytes, needle: bytes) -> bool:
    """Whether ``needle`` occurs in the bit stream ``hay`` starting at any bit (deflate packs bits
    from the least significant end of each byte, so the stream is one little-endian integer)."""
    n = int.from_bytes(hay, "little")
    return any(needle in (n >> k).to_bytes(len(hay), "little") for k in range(8))


@pytest.mark.parametrize("producer", ["py1", "py6", "py9", "sync_flush"])
@pytest.mark.parametrize("dirty", ["first", "adjacent"])
def test_blocks_away_from_a_removal_are_copied_bit_for_bit(tmp_path: Path, dirty: str, producer: str) -> None:
    """Slices of the input's deflate body far (> 32 KiB and a block) from the dropped records are
    found, shifted by some bits, in the output's body, and not in the recompressed one."""
    data, dirty_lines, _ = corpus(seed=37, dirty=dirty, size=400 * KiB)
    gz = _produce(producer, data, tmp_path)
    res = run_both(tmp_path, gz)
    out = check(res, data, dirty_lines, set())
    (body_in, _), = members(gz)
    (body_out, _), = members(out)
    (body_re, _), *_ = members(res["recompress"]["clean"].read_bytes())
    where = [0.6, 0.8, 0.95] if dirty == "first" else [0.05, 0.15, 0.85, 0.95]
    for f in where:
        at = int(len(body_in) * f)
        needle = body_in[at:at + 1500]
        assert at_some_bit_shift(body_out, needle), f"the input's body at {f:.0%} is not in the output"
        assert not at_some_bit_shift(body_re, needle)  # the check can tell


@pytest.mark.parametrize("producer", ["members3", "bgzf"])
def test_members_after_a_removal_are_copied_whole(tmp_path: Path, producer: str) -> None:
    data, dirty_lines, _ = corpus(seed=41, dirty="first", size=400 * KiB)
    gz = _produce(producer, data, tmp_path)
    out = check(run_both(tmp_path, gz), data, dirty_lines, set())
    _same_member_count(out, gz)
    ins, outs = members(gz), members(out)
    assert ins[0][0] != outs[0][0]  # the first member lost its first record
    for k in range(1, len(ins)):
        assert outs[k][0] == ins[k][0], f"member {k} of {len(ins)} not copied"


@pytest.mark.parametrize("case", [
    # (input level, compress_level of the run, corpus dirty, reuse vs recompress)
    (0, 6, "none", "larger"), (0, 6, "adjacent", "larger"), (0, 9, "first", "larger"),
    (1, 9, "none", "larger"), (1, 9, "adjacent", "larger"),
    (9, 1, "none", "smaller"), (9, 0, "first", "smaller"),
])  # fmt: skip
def test_output_size_follows_the_input_not_compress_level(tmp_path: Path,
                                                          case: tuple[int, int, str, str]) -> None:
    """Text that zlib level 1 leaves ~19% larger than libdeflate level 9, and libdeflate level 1
    ~9% larger than zlib level 9 (measured on this corpus); stored blocks are 3.4x the size."""
    level_in, level_out, dirty, how = case
    data, dirty_lines, _ = corpus(seed=13, dirty=dirty, size=400 * KiB)
    gz = gzip.compress(data, level_in, mtime=0)
    res = run_both(tmp_path, gz, compress_level=level_out)
    out = check(res, data, dirty_lines, set())
    n_reuse, n_re = len(out), res["recompress"]["clean"].stat().st_size
    if dirty == "none":
        assert abs(n_reuse - len(gz)) <= 64, (n_reuse, len(gz))  # only the header may differ
    if how == "larger":
        assert n_reuse > 1.08 * n_re, (n_reuse, n_re, len(gz))
    else:
        assert n_reuse < 0.95 * n_re, (n_reuse, n_re, len(gz))


# -- several shards in one run ------------------------------------------------------------------
def test_several_shards_in_one_run(tmp_path: Path) -> None:
    """gzip shards of different producers beside a plain one, in one run (the next shard is read
    while the one before it is judged): each clean output is its own input's kept lines."""
    plan = {"a.jsonl.gz": ("py9", "scattered"), "b.jsonl.gz": ("bgzf", "every32k"), "c.jsonl": (None, "first"),
            "d/e.jsonl.gz": ("sync_flush", "none"), "f.jsonl.gz": ("members3", "last")}  # fmt: skip
    want: dict[str, tuple[bytes, set[int], bytes]] = {}
    for k, (name, (producer, dirty)) in enumerate(plan.items()):
        data, dl, _ = corpus(seed=60 + k, dirty=dirty, size=120 * KiB)
        raw = data if producer is None else _produce(producer, data, tmp_path)
        p = tmp_path / "corpus" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(raw)
        want[name] = (data, dl, raw)
    for rc in (False, True):
        rep = run_job(train=[str(tmp_path / "corpus" / "**" / "*.jsonl*")], tests=[str(_tests_file(tmp_path))],
                      out=str(tmp_path / f"o{rc}"), recompress=rc, num_threads=2, batch_size=64, progress=False,
                      log=lambda _: None)  # fmt: skip
        for name, (data, dl, raw) in want.items():
            assert {r["line"] for r in rep["removed"] if r["shard"] == name} == dl, name
            got = (tmp_path / f"o{rc}" / "clean" / name).read_bytes()
            plain = gzip.decompress(got) if name.endswith(".gz") else got
            assert plain == expected_clean(data, dl), (name, rc)
            if name.endswith(".gz"):
                gzip_tool_check(tmp_path / f"o{rc}" / "clean" / name, expected_clean(data, dl))
            if not rc and name.endswith(".gz"):
                _same_member_count(got, raw)


def test_a_rerun_resumes_the_spliced_output(tmp_path: Path) -> None:
    """The state file's fingerprint of a spliced output is that of its bytes (XXH3-128, as the
    docs say), so a rerun resumes instead of redoing the shard."""
    xxhash = pytest.importorskip("xxhash")
    data, dirty, _ = corpus(seed=59, size=150 * KiB)
    src = tmp_path / "corpus" / "s.jsonl.gz"
    src.parent.mkdir()
    src.write_bytes(gz_bgzf(data))
    args: dict[str, Any] = {"train": [str(src)], "tests": [str(_tests_file(tmp_path))],
                            "out": str(tmp_path / "o"), "progress": False, "log": lambda _: None}  # fmt: skip
    run_job(**args)
    clean = tmp_path / "o" / "clean" / "s.jsonl.gz"
    first = clean.read_bytes()
    state = json.loads((tmp_path / "o" / ".state" / "s.jsonl.gz.json").read_text())
    assert state["outputs"]["clean/s.jsonl.gz"] == [len(first), xxhash.xxh3_128(first).hexdigest()]
    rep = run_job(**args)
    assert [s["resumed"] for s in rep["shards"]] == [True]
    assert clean.read_bytes() == first and gzip.decompress(first) == expected_clean(data, dirty)


# -- batches and threads -------------------------------------------------------------------------
@pytest.mark.parametrize("producer", ["py6", "bgzf"])
def test_batch_size_and_threads_change_nothing(tmp_path: Path, producer: str) -> None:
    """Dropped lines at batch edges (batch_size 1 and 7) give the same content; the same batch
    size on 1 and 2 threads gives the same file; with nothing dropped the bodies are the input's
    whatever the batch size."""
    data, dirty, _ = corpus(seed=29, size=200 * KiB, eol="mixed", blanks=True)
    gz = _produce(producer, data, tmp_path)
    src = tmp_path / "corpus" / "s.jsonl.gz"
    src.parent.mkdir()
    src.write_bytes(gz)
    outs = {}
    for bs, nt in ((2048, None), (1, 1), (7, 1), (7, 2), (100_000, 2)):
        o = tmp_path / f"o-{bs}-{nt}"
        rep = run_job(train=[str(src)], tests=[str(_tests_file(tmp_path))], out=str(o), batch_size=bs,
                      num_threads=nt, progress=False, log=lambda _: None)  # fmt: skip
        assert {r["line"] for r in rep["removed"]} == dirty
        outs[bs, nt] = (o / "clean" / "s.jsonl.gz").read_bytes()
    want = expected_clean(data, dirty)
    for k, v in outs.items():
        assert gzip.decompress(v) == want, k
    assert outs[7, 1] == outs[7, 2]
    clean_data, _, _ = corpus(seed=31, size=150 * KiB, dirty="none")
    gz = _produce(producer, clean_data, tmp_path)
    src.write_bytes(gz)
    for bs in (1, 7):
        o = tmp_path / f"none-{bs}"
        run_job(train=[str(src)], tests=[str(_tests_file(tmp_path))], out=str(o), batch_size=bs,
                progress=False, log=lambda _: None)  # fmt: skip
        out = (o / "clean" / "s.jsonl.gz").read_bytes()
        bodies_out, bodies_in = [b for b, _ in members(out)], [b for b, _ in members(gz)]
        assert bodies_out == bodies_in, f"batch_size={bs}: bodies not copied"


# -- damaged shards read with skip_bad ---------------------------------------------------------
@pytest.mark.parametrize("producer", ["py6", "py0", "bgzf", "sync_flush"])
def test_truncated_shard_keeps_the_records_before_the_damage(tmp_path: Path, producer: str) -> None:
    data, dirty, _ = corpus(seed=17, eol="mixed")
    gz = _produce(producer, data, tmp_path)
    cut = gz[: len(gz) * 3 // 5]
    got = decode_damaged(cut)
    n = got.count(b"\n")
    assert 0 < n < data.count(b"\n")
    res = run_both(tmp_path, cut, skip_bad=True)
    for tag in ("reuse", "recompress"):
        dmg = res[tag]["report"]["damaged"]
        assert [(d["line"], d["records_before"]) for d in dmg] == [(n + 1, n)]
    check(res, got[: got.rindex(b"\n") + 1], {x for x in dirty if x <= n}, set())


@pytest.mark.parametrize("where", ["in_header", "after_header", "in_body", "in_trailer", "at_member_end",
                                   "in_last_trailer"])  # fmt: skip
def test_cut_anywhere_in_a_member(tmp_path: Path, where: str) -> None:
    """bgzip members cut short at each part of the third member (or the last one's trailer): the
    records Python's zlib recovers before the cut are kept, in both modes alike; a cut at a member
    end leaves a valid, shorter file."""
    data, dirty, _ = corpus(seed=47, eol="mixed")
    gz = gz_bgzf(data)
    starts = [m.start() for m in re.finditer(b"\x1f\x8b\x08\x04", gz)]
    m3, m4 = starts[2], starts[3]
    at = {"in_header": m3 + 5, "after_header": m3 + 18, "in_body": (m3 + m4) // 2, "in_trailer": m4 - 3,
          "at_member_end": m4, "in_last_trailer": len(gz) - len(BGZF_EOF) - 4}[where]  # fmt: skip
    cut = gz[:at]
    try:
        got, whole = gzip.decompress(cut), True
    except (EOFError, gzip.BadGzipFile):
        got, whole = decode_damaged(cut), False
    bad: set[int] = set()
    if whole:  # a file of whole members: its last line, cut short, is a line of its own
        n = len(split_lines(got))
        try:
            json.loads(split_lines(got)[-1])
        except ValueError:
            bad = {n}
    else:  # the records before the damage: whole lines
        got = got[: got.rindex(b"\n") + 1]
        n = got.count(b"\n")
    res = run_both(tmp_path, cut, skip_bad=True)
    for tag in ("reuse", "recompress"):
        dmg = res[tag]["report"]["damaged"]
        assert [(d["line"], d["records_before"]) for d in dmg] == ([] if whole else [(n + 1, n)]), tag
    check(res, got, {x for x in dirty if x <= n} - bad, bad)


@pytest.mark.parametrize("producer", ["py6", "py0", "bgzf"])
@pytest.mark.parametrize("where", [0.1, 0.37, 0.5, 0.81])
def test_a_corrupt_byte_mid_stream(tmp_path: Path, producer: str, where: float) -> None:
    """A byte flipped inside the compressed data: both modes keep the same records before the
    damage (what Python's zlib decodes before it fails, whole lines, or less where the flip makes
    a wrong byte that still decodes) and report it at the same line."""
    data, dirty, _ = corpus(seed=67, eol="mixed")
    gz = bytearray(_produce(producer, data, tmp_path))
    at = int(len(gz) * where)
    gz[at] ^= 0x5A
    res = run_both(tmp_path, bytes(gz), skip_bad=True)
    reps = [res[k]["report"] for k in ("reuse", "recompress")]
    assert [_where(d) for d in reps[0]["damaged"]] == [_where(d) for d in reps[1]["damaged"]]
    assert reps[0]["counts"] == reps[1]["counts"] and reps[0]["bad"] == reps[1]["bad"]
    a, b = (gzip.decompress(res[k]["clean"].read_bytes()) for k in ("reuse", "recompress"))
    assert a == b, _first_diff(a, b)
    gzip_tool_check(res["reuse"]["clean"], a)


def test_bad_crc_shard_keeps_every_record_with_a_correct_crc(tmp_path: Path) -> None:
    data, dirty, _ = corpus(seed=19)
    z = bytearray(gzip.compress(data, 6, mtime=0))
    z[-6] ^= 0xFF  # the CRC-32 in the trailer: every line decodes, the check at the end fails
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(bytes(z))
    res = run_both(tmp_path, bytes(z), skip_bad=True)
    n = data.count(b"\n")
    assert [(d["line"], d["records_before"]) for d in res["reuse"]["report"]["damaged"]] == [(n + 1, n)]
    check(res, data, dirty, set())  # gzip.decompress of the outputs checks their own CRC-32


@pytest.mark.parametrize("damage", ["truncated", "bad_crc"])
def test_damage_is_reported_in_the_same_words(tmp_path: Path, damage: str) -> None:
    """The report's ``damaged`` entry and its line in ``bad/`` do not depend on ``recompress``."""
    data, _, _ = corpus(seed=43, size=150 * KiB)
    gz = gzip.compress(data, 6, mtime=0)
    bad = gz[: len(gz) // 2] if damage == "truncated" else gz[:-8] + bytes([gz[-8] ^ 0xFF]) + gz[-7:]
    res = run_both(tmp_path, bad, skip_bad=True)
    assert res["reuse"]["report"]["damaged"] == res["recompress"]["report"]["damaged"]
    assert res["reuse"]["bad"].read_bytes() == res["recompress"]["bad"].read_bytes()


# -- every block type and flush, at random -------------------------------------------------------
FLUSHES = [zlib.Z_NO_FLUSH, zlib.Z_PARTIAL_FLUSH, zlib.Z_SYNC_FLUSH, zlib.Z_FULL_FLUSH, zlib.Z_BLOCK]
STRATEGIES = [zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE, zlib.Z_FIXED]


def gz_random(rnd: random.Random) -> tuple[Callable[[bytes], bytes], str]:
    """A producer drawn at random: 1-3 members cut anywhere, each with its own zlib level, memLevel
    (1 makes many small blocks), strategy (Z_FIXED: fixed-code blocks; Z_HUFFMAN_ONLY, Z_RLE) and
    flushes (partial and Z_BLOCK flushes leave blocks at odd bit positions) every few KB."""
    n = rnd.choice([1, 1, 2, 3])
    cuts = sorted(rnd.random() for _ in range(n - 1))
    confs = [(rnd.choice([0, 1, 3, 6, 9]), rnd.choice([1, 8, 9]), rnd.choice(STRATEGIES), rnd.choice(FLUSHES),
              rnd.choice([300, 2000, 9000])) for _ in range(n)]  # fmt: skip

    def make(data: bytes) -> bytes:
        at = [0] + [int(len(data) * c) for c in cuts] + [len(data)]
        out = []
        for (level, mem, strategy, flush, every), a, b in zip(confs, at, at[1:]):
            c = zlib.compressobj(level, zlib.DEFLATED, 31, mem, strategy)
            for i in range(a, b, every):
                out.append(c.compress(data[i:min(i + every, b)]))
                if flush != zlib.Z_NO_FLUSH:
                    out.append(c.flush(flush))
            out.append(c.flush())
        return b"".join(out)

    return make, repr(confs)


@pytest.mark.parametrize("seed", range(24))
def test_random_producers_and_corpora(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(1000 + seed)
    make, what = gz_random(rnd)
    kw: dict[str, Any] = {"size": rnd.choice([40, 90, 150]) * KiB, "eol": rnd.choice(["lf", "crlf", "mixed"]),
                          "dirty": rnd.choice(["none", "first", "last", "adjacent", "every32k", "scattered"]),
                          "blanks": rnd.random() < 0.5, "bom": rnd.random() < 0.3, "bad": rnd.random() < 0.3,
                          "last_newline": rnd.random() < 0.7}  # fmt: skip
    data, dirty, bad = corpus(seed=seed, **kw)
    gz = make(data)
    assert gzip.decompress(gz) == data
    res = run_both(tmp_path, gz, skip_bad=bool(bad), compress_level=rnd.choice([0, 1, 6, 9]))
    out = check(res, data, dirty, bad)
    _same_member_count(out, gz)
    if kw["dirty"] == "none" and not (kw["blanks"] or kw["bom"] or bad or not kw["last_newline"]):
        assert [b for b, _ in members(out)] == [b for b, _ in members(gz)], what


# -- a back-reference that reaches exactly 32 KiB back ------------------------------------------
class FixedDeflate:
    """A tiny deflate encoder of fixed-code blocks (RFC 1951 3.2.6) with the matches chosen by the
    caller: zlib never refers further back than 32506 bytes, other encoders go to 32768."""

    def __init__(self) -> None:
        self.acc, self.n, self.out = 0, 0, bytearray()
        # (base, extra bits) of length codes 257..285 and distance codes 0..29
        lb, le = [3, 4, 5, 6, 7, 8, 9, 10], [0] * 8
        for e in range(1, 6):
            for _ in range(4):
                lb.append(lb[-1] + (1 << le[-1]))
                le.append(e)
        lb.append(258)
        le.append(0)
        self.len_codes = list(zip(lb, le))
        db, de = [1, 2, 3, 4], [0, 0, 0, 0]
        for e in range(1, 14):
            for _ in range(2):
                db.append(db[-1] + (1 << de[-1]))
                de.append(e)
        self.dist_codes = list(zip(db, de))

    def bits(self, value: int, n: int) -> None:
        self.acc |= value << self.n
        self.n += n
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def huff(self, code: int, n: int) -> None:  # Huffman codes go most significant bit first
        self.bits(int(format(code, f"0{n}b")[::-1], 2), n)

    def symbol(self, sym: int) -> None:
        if sym < 144:
            self.huff(0x30 + sym, 8)
        elif sym < 256:
            self.huff(0x190 + sym - 144, 9)
        elif sym < 280:
            self.huff(sym - 256, 7)
        else:
            self.huff(0xC0 + sym - 280, 8)

    def block(self, final: bool) -> None:
        self.bits(int(final), 1)
        self.bits(1, 2)  # BTYPE 01: fixed codes

    def literals(self, data: bytes) -> None:
        for b in data:
            self.symbol(b)

    def match(self, length: int, dist: int) -> None:
        i = max(k for k, (b, _) in enumerate(self.len_codes) if b <= length)
        b, e = self.len_codes[i]
        self.symbol(257 + i)
        self.bits(length - b, e)
        j = max(k for k, (b, _) in enumerate(self.dist_codes) if b <= dist)
        b, e = self.dist_codes[j]
        self.huff(j, 5)
        self.bits(dist - b, e)

    def end_block(self) -> None:
        self.symbol(256)

    def finish(self) -> bytes:
        if self.n:
            self.bits(0, 8 - self.n)
        return bytes(self.out)


@pytest.mark.parametrize("lead", [0, 1, 700])
def test_a_block_referring_exactly_32k_back_into_a_removed_line(tmp_path: Path, lead: int) -> None:
    """Line 1 is removed. At byte ``u`` a 3-byte match at distance 32768 copies line 1's newline and
    the next two bytes; the block holding it starts ``lead`` bytes before ``u``. Copying that block
    would make the output decode wrong: it must be compressed again (the rule's edge: the last
    byte of its 32 KiB window, for lead 0)."""
    rnd = random.Random(53)
    first = _record(rnd, 0, True) + b"\n"
    u = len(first) - 1 + 32768  # data[u - 32768] is line 1's newline
    lines, n = [first], len(first)
    while n < u - 3000:
        lines.append(_record(rnd, len(lines), False, size=rnd.choice([150, 400, 800])) + b"\n")
        n += len(lines[-1])
    pad = u - n - len(b'{"id": 999999, "text": ""}')  # one more line whose newline lands at byte u
    lines.append(b'{"id": 999999, "text": "' + b"x" * pad + b'"}\n')
    head = b"".join(lines)
    assert len(head) == u + 1 and head[u:u + 1] == b"\n"
    tail = b"".join(_record(rnd, 10**6 + k, k == 5) + b"\n" for k in range(20))  # lines starting '{"'
    data = head + tail
    assert data[u - 32768:u - 32768 + 3] == data[u:u + 3] == b'\n{"'
    enc = FixedDeflate()
    enc.block(False)
    enc.literals(data[:u - lead])
    enc.end_block()
    enc.block(True)
    enc.literals(data[u - lead:u])
    enc.match(3, 32768)
    enc.literals(data[u + 3:])
    enc.end_block()
    gz = b"\x1f\x8b\x08\0\0\0\0\0\0\xff" + enc.finish() + struct.pack("<II", zlib.crc32(data), len(data))
    assert gzip.decompress(gz) == data
    dirty = {1, len(lines) + 6}
    check(run_both(tmp_path, gz), data, dirty, set())


# -- tiny shards ---------------------------------------------------------------------------------
TINY = {
    "empty_member": b"", "one_line": b'{"text": "one short line"}\n', "no_newline": b'{"text": "x"}',
    "cr_last": b'{"text": "a"}\n{"text": "b"}\r', "blank_only": b"\n \r\n\t\n", "bom_only": BOM,
    "bom_line": BOM + b'{"text": "after a mark"}\r\n',
}


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("producer", ["py6", "py0", "bgzf", "empty_members"])
def test_tiny_shards(tmp_path: Path, name: str, producer: str) -> None:
    data = TINY[name]
    gz = _produce(producer, data, tmp_path)
    assert gzip.decompress(gz) == data
    res = run_both(tmp_path, gz)
    out = check(res, data, set(), set())
    _same_member_count(out, gz)


@pytest.mark.parametrize("cuts", [[1], [2], [0, 3], [1, 2, 3], [3, 4]])
def test_a_bom_or_crlf_split_across_members(tmp_path: Path, cuts: list[int]) -> None:
    """Members cut inside the BOM, right after it, and inside a CRLF (the cut positions, in bytes;
    0 makes an empty first member)."""
    lines = [b'{"text": "first"}\r\n', b'{"text": "' + ITEMS[0].encode() + b'"}\r\n', b"\r\n",
             b'{"text": "last"}\r\n']  # fmt: skip
    data = BOM + b"".join(lines)
    crlf = len(BOM) + len(lines[0]) - 1  # between the first line's CR and LF
    at = [0, *cuts, crlf, crlf + 1 + len(lines[1]) - 1, len(data)]
    gz = b"".join(gzip.compress(data[a:b], 6, mtime=0) for a, b in zip(at, at[1:]))
    assert gzip.decompress(gz) == data
    out = check(run_both(tmp_path, gz), data, {2}, set())
    _same_member_count(out, gz)


@pytest.mark.parametrize("name", ["s.JSONL.GZ", "s.gz"])
def test_other_gz_names(tmp_path: Path, name: str) -> None:
    data, dirty, _ = corpus(seed=71, size=100 * KiB)
    gz = gzip.compress(data, 6, mtime=0)
    out = check(run_both(tmp_path, gz, name=name), data, dirty, set())
    _same_member_count(out, gz)


def test_an_empty_file_named_gz(tmp_path: Path) -> None:
    """Zero bytes: Python's gzip reads no data; both modes must agree on what it is."""
    assert gzip.decompress(b"") == b""
    outcome: dict[bool, tuple[Any, ...]] = {}
    for rc in (False, True):
        src = tmp_path / "c" / "e.jsonl.gz"
        src.parent.mkdir(exist_ok=True)
        src.write_bytes(b"")
        try:
            rep = run_job(train=[str(src)], tests=[str(_tests_file(tmp_path))], out=str(tmp_path / f"o{rc}"),
                          recompress=rc, progress=False, log=lambda _: None)  # fmt: skip
            clean = (tmp_path / f"o{rc}" / "clean" / "e.jsonl.gz").read_bytes()
            outcome[rc] = ("ok", rep["counts"], gzip.decompress(clean))
        except Exception as e:  # noqa: BLE001 - what matters is that both modes say the same
            outcome[rc] = ("error", type(e).__name__, re.sub(r"\S*e\.jsonl\.gz", "FILE", str(e)))
    assert outcome[False] == outcome[True]


# -- the CLI -------------------------------------------------------------------------------------
def test_cli_recompress_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qwen25.cli import build_parser, main

    data, dirty, _ = corpus(seed=23, dirty="adjacent")
    gz = gzip.compress(data, 0, mtime=0)  # stored blocks: reuse keeps them, a recompress shrinks them
    src = tmp_path / "corpus" / "c.jsonl.gz"
    src.parent.mkdir()
    src.write_bytes(gz)
    base = ["decontaminate", "--train", str(src), "--test", str(_tests_file(tmp_path)), "--no-progress"]
    for extra, want_flag in (([], False), (["--recompress"], True)):
        argv = [*base, "--out", "x", *extra]
        assert build_parser(argv).parse_args(argv).recompress is want_flag
    assert inspect.signature(run_job).parameters["recompress"].default is False  # the CLI's default
    assert main([*base, "--out", str(tmp_path / "a")]) == 0, capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--recompress"]) == 0, capsys.readouterr().err
    a, b = ((tmp_path / d / "clean" / "c.jsonl.gz").read_bytes() for d in "ab")
    want = expected_clean(data, dirty)
    assert gzip.decompress(a) == gzip.decompress(b) == want
    assert len(a) > 2 * len(b)  # the default kept the input's stored blocks, --recompress did not
    for d in ("a", "b"):
        rep = json.loads((tmp_path / d / "report.json").read_text())
        assert {r["line"] for r in rep["removed"]} == dirty
