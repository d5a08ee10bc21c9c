"""The native record I/O (`qwen25.data.records.read_batches` / `open_writer`), against references
written here: Python's `json`, `gzip`, `zlib`, `zstandard` and `xxhash` (XXH3-128 digests), and a
plain re-statement of the text rules (a string field, a chat messages list joined by newlines,
token ids)."""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen25.data.records import open_writer, read_batches
from qwen25.errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError


# -- the reference -------------------------------------------------------------------------------
def ref_item(content: bytes, field: str = "text", allow_ids: bool = False, errors: str = "strict") -> Any:
    """(True, item) or (False, None) for one line's content, by Python's json and the rules."""
    try:
        obj = json.loads(content.decode("utf-8", errors))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False, None

    def strings(v: Any) -> list[str]:
        if isinstance(v, str):
            return [v]
        if isinstance(v, dict):
            return [s for k, x in v.items() for s in strings(k) + strings(x)]
        if isinstance(v, list):
            return [s for x in v for s in strings(x)]
        return []

    def msgs(v: Any) -> Any:
        if not isinstance(v, list):
            return None
        out = []
        for m in v:
            if not (isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m
                    and (m["content"] is None or isinstance(m["content"], str))):  # fmt: skip
                return None
            out.append(m["content"] or "")
        return "\n".join(out)

    if not isinstance(obj, dict):
        return False, None
    try:
        for s in strings(obj):
            s.encode("utf-8")
    except UnicodeEncodeError:
        return False, None
    if field in obj:
        v = obj[field]
        if isinstance(v, str):
            return True, v
        if isinstance(v, list):
            if allow_ids and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                return True, v
            t = msgs(v)
            return (t is not None), t
        return False, None
    if "messages" in obj:
        t = msgs(obj["messages"])
        return (t is not None), t
    return False, None


def split_lines(data: bytes) -> list[bytes]:
    return re.findall(rb"[^\n]*\n|[^\n]+$", data)


def write(p: Path, data: bytes) -> Path:
    if p.name.endswith(".gz"):
        data = gzip.compress(data)
    elif p.name.endswith(".zst"):
        data = pytest.importorskip("zstandard").ZstdCompressor().compress(data)
    p.write_bytes(data)
    return p


def read_all(p: Path, **kw: Any) -> tuple[list[Any], Any]:
    r = read_batches(p, **kw)
    return list(r), r


RND = random.Random(11)
GOOD = [
    {"text": "plain"},
    {"text": "caf\u00e9 \u4f60\u597d \U0001f600", "id": 3},
    {"id": 1, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}]},
    {"text": [{"role": "system", "content": "a"}, {"role": "user", "content": "b\nc"}]},
    {"text": "", "pad": [1, 2, {"x": None}]},
    {"text": "tab\tand \"quotes\" and \\ back", "n": 1e400 if False else 1.5e300},
    {"text": "json.dumps writes these", "s": float("nan"), "t": [float("-inf"), float("inf")]},
]
BAD_LINES = [
    b'{"text": broken',
    b'{"text": "caf\xe9"}',
    b'{"text": "a\\ud800b"}',
    b'{"id": 1, "text": "x", "note": "\\udfff"}',
    b'{"\\ud800": 1, "text": "x"}',
    b'{"text": 5}',
    b'{"text": null}',
    b'{"text": ["a"]}',
    b'{"messages": [{"content": "no role"}]}',
    b'{"body": "no text"}',
    b"[1, 2]",
    b'"s"',
    b'{"text": "x"} trailing',
    b"NaN",
    b'{"text": "ctrl \x01 char"}',
]


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "jsonl.zst"])
def test_records_match_python_json_and_the_rules(tmp_path, kind):
    lines = []
    for i in range(400):
        if RND.random() < 0.08:
            lines.append(RND.choice([b"", b"   ", b"\t"]) + b"\n")
            continue
        if RND.random() < 0.15:
            raw = RND.choice(BAD_LINES)
        else:
            raw = json.dumps(RND.choice(GOOD), ensure_ascii=RND.random() < 0.5).encode()
        lines.append(raw + RND.choice([b"\n", b"\r\n"]))
    data = b"".join(lines) + json.dumps({"text": "last, no ending"}).encode()
    p = write(tmp_path / f"x.{kind}", data)
    batches, r = read_all(p, skip_bad=True, batch_size=37, hash=True)
    got_items = [it for b in batches for it in b.items()]
    got_lines = [ln for b in batches for ln in b.lines]
    got_recs = [x for b in batches for x in b.records]
    got_raw = [b.raw(i) for b in batches for i in range(len(b))]
    got_bad = [(ln, rec, raw) for b in batches for (ln, rec, _, raw) in b.bad]
    want_items, want_lines, want_recs, want_raw, want_bad = [], [], [], [], []
    rec = 0
    for n, line in enumerate(split_lines(data), 1):
        content = line.rstrip(b"\n")
        content = content[:-1] if content.endswith(b"\r") else content
        if not content.strip():
            continue
        ok, item = ref_item(content)
        if ok:
            want_items.append(item)
            want_lines.append(n)
            want_recs.append(rec)
            want_raw.append(line if line.endswith(b"\n") else line + b"\n")
        else:
            want_bad.append((n, rec, content))
        rec += 1
    assert got_items == want_items
    assert (got_lines, got_recs) == (want_lines, want_recs)
    assert got_raw == want_raw
    assert got_bad == want_bad
    assert sum(b.nbytes for b in batches) == len(data)
    assert sum(b.blank for b in batches) == sum(1 for x in split_lines(data) if not x.strip())
    assert r.digest == xxhash.xxh3_128(p.read_bytes()).hexdigest()


def test_each_bad_line_is_a_file_line_format_error(tmp_path):
    for i, raw in enumerate(BAD_LINES):
        p = write(tmp_path / f"b{i}.jsonl", b'{"text": "ok"}\n\n' + raw + b"\n")
        with pytest.raises(FormatError) as e:
            read_all(p)
        assert str(e.value).startswith(f"{p}:3: "), str(e.value)
        assert "--skip-bad" in str(e.value)


@pytest.mark.parametrize("line,why", [
    (b'{"text": "a\\ud800b"}', "lone surrogate U+D800"),
    (b'{"text": "caf\xe9"}', "invalid UTF-8 at byte 13"),
    (b'{"text": 5}', "field 'text' is a number, not a string"),
    (b'{"body": "x", "n": 2}', "no field 'text' (nor a 'messages' list); its fields: 'body', 'n'"),
    (b"[1]", "a record must be a JSON object, not an array"),
    (b'{"messages": [{"role": "u", "content": 3}]}', "messages[0] is an object, not a {role, content}"),
])
def test_reasons_say_why(tmp_path, line, why):
    p = write(tmp_path / "x.jsonl", line + b"\n")
    (b,), _ = read_all(p, skip_bad=True)
    assert b.bad[0][2].startswith(why), b.bad[0][2]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(alphabet=st.characters(exclude_categories=())),
                          st.sampled_from(["\ud800", "\udfff", "\ud83d\ude00", "\\ud800"])), max_size=4))
def test_surrogate_escapes_agree_with_python(parts):
    # JSON with every character escaped, lone surrogates included where the text holds them
    # (Python's json writes a lone surrogate as its \\uXXXX escape), read back by both sides
    import tempfile

    raw = json.dumps({"text": "".join(parts), "other": parts}).encode()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.jsonl"
        p.write_bytes(raw + b"\n")
        (b,), _ = read_all(p, skip_bad=True)
    ok, item = ref_item(raw)
    assert (len(b) == 1) == ok
    if ok:
        assert b.items() == [item]


def test_lone_surrogate_among_pairs(tmp_path):
    cases = [
        (b'{"text": "\\ud83d\\ude00"}', True),  # a pair
        (b'{"text": "\\ud83d\\u0041"}', False),  # a high surrogate then A
        (b'{"text": "\\ude00\\ud83d"}', False),  # the wrong order
        (b'{"text": "\\\\ud800"}', True),  # an escaped backslash, then plain text
        (b'{"text": "x", "k": ["\\uDBFF\\uDFFF"]}', True),
    ]
    for raw, ok in cases:
        p = write(tmp_path / "x.jsonl", raw + b"\n")
        (b,), _ = read_all(p, skip_bad=True)
        assert (len(b) == 1) == ok == ref_item(raw)[0], raw
        if ok:
            assert b.items() == [ref_item(raw)[1]]


def test_encoding_errors_replace_matches_python(tmp_path):
    raw = b'{"text": "caf\xe9 \xf0\x9f\x98 na\xc3\xafve \xed\xa0\x80 end"}'
    p = write(tmp_path / "x.jsonl", raw + b"\n")
    (b,), _ = read_all(p, encoding_errors="replace")
    assert b.items() == [json.loads(raw.decode("utf-8", "replace"))["text"]]
    assert b.raw(0) == raw + b"\n"  # the bytes as they were
    with pytest.raises(Qwen25ValueError):
        read_batches(p, encoding_errors="ignore")


def test_token_ids_only_where_allowed(tmp_path):
    p = write(tmp_path / "x.jsonl", b'{"text": [5, 7, 151643]}\n{"text": [1, true]}\n{"text": []}\n')
    (b,), _ = read_all(p, skip_bad=True, allow_ids=True)
    assert b.items() == [[5, 7, 151643], ""] and len(b.bad) == 1  # [] is an empty messages list
    (b,), _ = read_all(p, skip_bad=True)
    assert b.items() == [""] and len(b.bad) == 2


def _long(n: int) -> bytes:
    rnd = random.Random(3)
    recs = [{"id": i, "text": " ".join(str(rnd.random()) for _ in range(20))} for i in range(n)]
    return b"".join(json.dumps(r).encode() + b"\n" for r in recs)


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_truncated_compressed_file(tmp_path, kind):
    data = _long(3000)
    p = write(tmp_path / f"x.jsonl.{kind}", data)
    cut = p.read_bytes()[: p.stat().st_size * 3 // 5]
    p.write_bytes(cut)
    if kind == "gz":
        got = zlib.decompressobj(31).decompress(cut)
    else:
        got = pytest.importorskip("zstandard").ZstdDecompressor().decompressobj().decompress(cut)
    n = got.count(b"\n")
    assert 0 < n < 3000
    want = f"{p}: truncated/corrupt compressed data after {n} records (line {n + 1})"
    with pytest.raises(FormatError, match=re.escape(want)):
        read_all(p)
    batches, r = read_all(p, skip_bad=True, batch_size=500, hash=True)
    assert sum(len(b) for b in batches) == n
    assert batches[-1].damage[:2] == (n + 1, n)
    assert r.digest == xxhash.xxh3_128(cut).hexdigest()  # every byte, not only the readable


def test_gzip_crc_damage_and_multi_member(tmp_path):
    data = _long(200)
    z = bytearray(gzip.compress(data))
    z[-6] ^= 0xFF
    p = tmp_path / "x.jsonl.gz"
    p.write_bytes(bytes(z))
    with pytest.raises(FormatError, match="after 200 records \\(line 201\\)"):
        read_all(p)
    p.write_bytes(gzip.compress(data[:5000]) + gzip.compress(data[5000:]))  # two members, one stream
    batches, _ = read_all(p)
    assert b"".join(b.raw(i) for b in batches for i in range(len(b))) == data


@pytest.mark.parametrize("name", ["e.jsonl", "e.jsonl.gz", "e.jsonl.zst"])
def test_an_empty_file_holds_no_records(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"")
    assert gzip.open(tmp_path / name).read() == b"" if name.endswith(".gz") else True  # as Python's gzip
    batches, r = read_all(p, hash=True)
    assert sum(len(b) for b in batches) == 0 and all(b.damage is None for b in batches)
    assert r.digest == xxhash.xxh3_128(b"").hexdigest()


def test_missing_file(tmp_path):
    with pytest.raises(Qwen25FileNotFoundError):
        read_batches(tmp_path / "nope.jsonl")


# -- the writer ----------------------------------------------------------------------------------
def _decompress(p: Path) -> bytes:
    if p.name.endswith(".gz"):
        return gzip.decompress(p.read_bytes())
    if p.name.endswith(".zst"):
        zstd = pytest.importorskip("zstandard")
        return zstd.ZstdDecompressor().decompressobj().decompress(p.read_bytes())
    return p.read_bytes()


@pytest.mark.parametrize("name", ["o.jsonl", "o.jsonl.gz", "o.jsonl.zst"])
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_writer_round_trip_and_atomic(tmp_path, name, level):
    data = _long(6000)  # > 1 MiB: several gzip members
    final = tmp_path / "sub" / name
    w = open_writer(final, compress_level=level, num_threads=2)
    w.write(data[:100])
    w.write(data[100:])
    assert not final.exists() and (tmp_path / "sub" / f".tmp-{name}").exists()
    size = w.commit()
    assert size == final.stat().st_size
    assert _decompress(final) == data
    assert os.listdir(tmp_path / "sub") == [name]


@pytest.mark.parametrize("name", ["o.jsonl", "o.jsonl.gz"])
def test_writer_keeps_what_it_was_given_until_written(tmp_path, name):
    """``write`` hands the bytes object itself to the writer thread (no copy): the caller's
    reference may go at once, and the bytes written are still the ones given, in order."""
    import gc
    import hashlib

    rng = random.Random(7)
    final = tmp_path / name
    want = hashlib.sha256()
    w = open_writer(final, compress_level=1, num_threads=2)
    for i in range(120):
        chunk = rng.randbytes(rng.choice([0, 1, 37, 4096, 1 << 16, 1 << 20]))
        want.update(chunk)
        w.write(chunk)
        del chunk  # the writer's reference is the only one left
        if i % 20 == 0:
            gc.collect()
    with pytest.raises(TypeError):
        w.write("text")  # type: ignore[arg-type]
    w.commit()
    assert hashlib.sha256(_decompress(final)).hexdigest() == want.hexdigest()


@pytest.mark.parametrize("name", ["e.jsonl", "e.jsonl.gz", "e.jsonl.zst"])
def test_writer_empty_output_is_a_valid_file(tmp_path, name):
    with open_writer(tmp_path / name) as w:
        pass
    assert w.path == str(tmp_path / name)
    assert _decompress(tmp_path / name) == b""


def test_writer_selected_lines_and_abort(tmp_path):
    data = b'{"text": "a"}\n{"text": "b"}\r\n{"text": "c"}'
    p = write(tmp_path / "in.jsonl", data)
    (b,), _ = read_all(p)
    with open_writer(tmp_path / "keep.jsonl.gz") as wk, open_writer(tmp_path / "drop.jsonl") as wd:
        wk.write_selected(b, [True, False, True])
        wd.write_selected(b, [True, False, True], False)
    assert gzip.decompress((tmp_path / "keep.jsonl.gz").read_bytes()) == b'{"text": "a"}\n{"text": "c"}\n'
    assert (tmp_path / "drop.jsonl").read_bytes() == b'{"text": "b"}\r\n'
    with pytest.raises(RuntimeError), open_writer(tmp_path / "gone.jsonl.gz") as w:
        w.write(b"x\n")
        raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["drop.jsonl", "in.jsonl", "keep.jsonl.gz"]
    with pytest.raises(Qwen25ValueError):
        open_writer(tmp_path / "x.gz", compress_level=10)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_a_full_disk_blames_the_output_and_leaves_no_tmp(tmp_path, name):
    final = tmp_path / name
    os.symlink("/dev/full", tmp_path / f".tmp-{name}")  # the temporary file is /dev/full: ENOSPC
    w = open_writer(final)
    with pytest.raises(OSError) as e:
        for _ in range(64):
            w.write(_long(2000))
        w.commit()
    assert e.value.errno == 28 and e.value.filename == str(final)
    assert not final.exists() and not os.path.lexists(tmp_path / f".tmp-{name}")


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.exists("/proc"), reason="RLIMIT_FSIZE (Linux)")
@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz"])
def test_decontaminate_write_error_blames_the_output(tmp_path, kind):
    """A write that fails mid-shard (a file-size limit: the same path as a full disk) is a one-line
    error naming the output file, not the input, and leaves no temporary file."""
    import subprocess
    import sys

    data = _long(20000)  # ~7 MB of JSONL
    (tmp_path / "corpus").mkdir()
    src = write(tmp_path / "corpus" / f"x.{kind}", data)
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": " ".join(["zzz"] * 40)}) + "\n")
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))\n"
        "from qwen25.cli import main\n"
        f"sys.exit(main(['decontaminate', '--train', {str(src)!r}, '--test', {str(tmp_path / 't.jsonl')!r},"
        f" '--out', {str(tmp_path / 'out')!r}, '--no-progress', '--compress-level', '0']))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in p.stderr, p.stderr
    assert str(tmp_path / "out" / "clean" / f"x.{kind}") in err[0] and "File too large" in err[0], err[0]
    assert f"corpus/x.{kind}" not in err[0]
    left = [os.path.join(dp, f) for dp, _, fs in os.walk(tmp_path / "out") for f in fs]
    assert not [f for f in left if ".tmp" in f], left


def test_check_records_decides_as_check_all_on_the_same_texts(tmp_path):
    """The engine fed from Rust (`Decontaminator.check_records` on a batch) decides exactly as fed
    the batch's texts as Python strings (`check_all`), witnesses included, ids records too."""
    from qwen25 import Tokenizer
    from qwen25.data import Decontaminator

    rnd = random.Random(5)
    words = ["".join(rnd.choice("abcdefghij") for _ in range(rnd.randrange(3, 8))) for _ in range(300)]
    items = [" ".join(rnd.choice(words) for _ in range(40)) for _ in range(6)]
    tok = Tokenizer.qwen25()
    lines = []
    for i in range(120):
        text = " ".join(rnd.choice(words) for _ in range(rnd.randrange(20, 200)))
        if i % 9 == 0:
            text += " " + items[i % len(items)] + " tail"
        if i % 13 == 0:
            lines.append({"text": tok.encode(text)})
        elif i % 11 == 0:
            lines.append({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]})
        else:
            lines.append({"text": text, "id": i})
    p = write(tmp_path / "x.jsonl", b"".join(json.dumps(x).encode() + b"\n" for x in lines))
    d = Decontaminator(items)
    (b,), _ = read_all(p, allow_ids=True, batch_size=1000)
    got = d.check_records(b, num_threads=2)
    want = d.check_all(b.items(), num_threads=1)
    assert got == want
    assert sum(bool(m) for m in got) >= 10


# -- iter_objects: the same reader, for callers that need dicts ----------------------------------
def ref_object(content: bytes, errors: str = "strict") -> Any:
    """The record (a dict) one line's content is, or None when the line is bad, by Python's json."""
    try:
        obj = json.loads(content.decode("utf-8", errors))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")  # a lone surrogate anywhere, keys too
    except UnicodeEncodeError:
        return None
    return obj


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "jsonl.zst"])
def test_iter_objects_match_python_json(tmp_path, kind):
    from qwen25.data.records import iter_objects

    rnd = random.Random(5)
    lines = []
    for _ in range(3000):  # more than one batch
        r = rnd.random()
        if r < 0.05:
            lines.append(rnd.choice([b"", b"  "]) + b"\n")
            continue
        good = json.dumps(rnd.choice(GOOD), ensure_ascii=rnd.random() < 0.5).encode()
        raw = rnd.choice(BAD_LINES) if r < 0.2 else good
        lines.append(raw + rnd.choice([b"\n", b"\r\n"]))
    data = b"".join(lines) + b'{"no": "ending"}'
    p = write(tmp_path / f"x.{kind}", data)
    want, first_bad = [], None
    for n, line in enumerate(split_lines(data), 1):
        content = line.rstrip(b"\n").removesuffix(b"\r")
        if not content.strip():
            continue
        obj = ref_object(content)
        want.append((n, obj is not None, obj))
        if obj is None and first_bad is None:
            first_bad = n
    got = list(iter_objects(p, skip_bad=True))
    assert [(n, why is None) for n, _, why in got] == [(n, ok) for n, ok, _ in want]
    # dumps compares NaN as equal to itself
    assert [json.dumps(o) for _, o, _ in got] == [json.dumps(o) for _, _, o in want]
    assert all(isinstance(why, str) and why for _, o, why in got if o is None)
    with pytest.raises(FormatError, match=rf"^{re.escape(str(p))}:{first_bad}: ") as e:
        list(iter_objects(p))
    assert (e.value.path, e.value.line) == (str(p), first_bad)


def test_iter_objects_reasons_replace_and_damage(tmp_path):
    from qwen25.data.records import iter_objects

    p = write(tmp_path / "r.jsonl", b'{"a": "caf\xe9"}\n[1]\n{"b": "\\ud800"}\n{"c": 1}\n')
    got = list(iter_objects(p, skip_bad=True))
    assert [n for n, _, _ in got] == [1, 2, 3, 4]
    assert got[0][2].startswith("invalid UTF-8")
    assert got[1][2] == "a record must be a JSON object, not an array"
    assert got[2][2].startswith("lone surrogate U+D800")
    assert got[3] == (4, {"c": 1}, None)
    rep = list(iter_objects(p, skip_bad=True, encoding_errors="replace"))
    assert rep[0] == (1, {"a": "caf\ufffd"}, None)
    # a gzip file cut short: the records before the break, then where it broke
    data = b"".join(json.dumps({"i": i, "t": os.urandom(24).hex()}).encode() + b"\n" for i in range(4000))
    z = gzip.compress(data)
    g = tmp_path / "cut.jsonl.gz"
    g.write_bytes(z[: len(z) // 2])
    d = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(z[: len(z) // 2])
    n = d.count(b"\n")
    got = list(iter_objects(g, skip_bad=True))
    assert [o for _, o, _ in got[:-1]] == [json.loads(x) for x in d.split(b"\n")[:n]]
    assert got[-1][0] == n + 1 and got[-1][1] is None and "truncated" in got[-1][2]
    with pytest.raises(FormatError, match=rf"^{re.escape(str(g))}:{n + 1}: truncated"):
        list(iter_objects(g))


def test_callers_write_through_the_atomic_writer(tmp_path):
    """rejection sampling's write_jsonl: the records as json.dumps writes them, gzip by suffix; a
    record that cannot be written leaves neither the file nor a temporary behind."""
    from qwen25.train.rejection import write_jsonl

    recs = [{"messages": [{"role": "user", "content": "caf\u00e9"}]}, {"n": 1.5}]
    p = tmp_path / "kept.jsonl.gz"
    assert write_jsonl(p, recs) == 2
    assert gzip.decompress(p.read_bytes()) == b"".join(
        json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in recs)
    q = tmp_path / "never.jsonl"
    with pytest.raises(TypeError):
        write_jsonl(q, [{"ok": 1}, {"bad": object()}])
    assert sorted(x.name for x in tmp_path.iterdir()) == ["kept.jsonl.gz"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_gzip_named_pipe_is_read_as_gzip(tmp_path):
    """A FIFO has length 0 like an empty file, but it is not empty: a ``.jsonl.gz`` pipe is
    decompressed (it was read as plain bytes, 'invalid UTF-8 at byte 1')."""
    import threading

    from qwen25.data.records import read_batches

    data = b"".join(json.dumps({"text": f"record {i} \u00e9"}).encode() + b"\n" for i in range(3000))
    p = tmp_path / "pipe.jsonl.gz"
    os.mkfifo(p)

    def feed() -> None:
        with open(p, "wb") as f:
            f.write(gzip.compress(data))

    t = threading.Thread(target=feed)
    t.start()
    try:
        texts = [x for b in read_batches(p) for x in b.items()]
    finally:
        t.join()
    assert texts == [json.loads(x)["text"] for x in data.splitlines()]
