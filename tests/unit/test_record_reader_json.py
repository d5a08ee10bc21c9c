"""The native JSONL reader (``records.read_batches``: a one-pass fast path for the common record,
serde for every other line) judges each line as Python's ``json.loads`` and a plain re-statement of
the record rule do: the same text (or token ids, or messages joined), the same raw extra field, or a
bad line. Checked on generated lines shaped like real ones (code with every escape, non-ASCII,
astral characters as surrogate pairs, duplicate keys, whitespace variants, nested values in other
fields), on hand-written edge cases, and on a few thousand copies with random byte flips, deletions,
insertions and truncations (fixed seed).

The reference reads Python's ``json`` rules, less what the reader documents it refuses: a lone
surrogate escape anywhere in the record. (Not generated: nesting deeper than serde's limit of 128,
integers longer than Python's 4300 digits.)"""

from __future__ import annotations

import json
import random

import pytest

from qwen25.data.records import read_batches

BLANK = b" \t\n\r\x0b\x0c"


def _lone(x: object) -> bool:
    """Does a string anywhere in `x` (keys too) hold a lone surrogate?"""
    if isinstance(x, str):
        return any(0xD800 <= ord(c) < 0xE000 for c in x)
    if isinstance(x, list):
        return any(_lone(v) for v in x)
    if isinstance(x, dict):
        return any(_lone(k) or _lone(v) for k, v in x.items())
    return False


def _messages(v: object) -> str | None:
    if not isinstance(v, list):
        return None
    parts = []
    for m in v:
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m):
            return None
        if m["content"] is not None and not isinstance(m["content"], str):
            return None
        parts.append(m["content"] or "")
    return "\n".join(parts)


def reference(line: bytes, field: str, allow_ids: bool) -> tuple[object, object] | None:
    """(item, obj) by ``json.loads`` and the record rule, or None for a bad line."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(obj, dict) or _lone(obj):
        return None
    if field in obj:
        v = obj[field]
        if isinstance(v, str):
            return v, obj
        if allow_ids and isinstance(v, list) and v and all(type(x) is int and 0 <= x < 2**32 for x in v):
            return list(v), obj
        t = _messages(v)
        return None if t is None else (t, obj)
    t = _messages(obj["messages"]) if "messages" in obj else None
    return None if t is None else (t, obj)


PIECES = [
    "def f(x):\n", "    return x\n", "\t", 'say "hi"', "C:\\path\\to", "a/b", "\b\f\r", "\x00\x01\x1f",
    "\x7f", "caf\u00e9", "\u4e2d\u6587", "\U0001f600", "\u20ac", "\ufeff", "\uffff", "\U0010ffff", " ", "#",
    "'", "{}[],:",
]  # fmt: skip


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 40)))


def _value(rng: random.Random, depth: int = 0) -> object:
    k = rng.randrange(9 if depth < 4 else 6)
    if k == 0:
        return _text(rng)
    if k == 1:
        return rng.choice([0, -1, 7, 2**31, 2**40, -(2**70), 10**30])
    if k == 2:
        return rng.choice([1.5, -0.25, 1e-7, 2.5e10, 1e300, 0.1])
    if k == 3:
        return rng.choice([True, False, None])
    if k == 4:
        return rng.choice([float("nan"), float("inf"), float("-inf"), "x"])
    if k == 5:
        return [rng.randrange(2**32) for _ in range(rng.randrange(1, 4))]
    if k in (6, 7):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["a", "b", "text", "role", "content", "\u00e9"]
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(3)}


def _line(rng: random.Random) -> bytes:
    """One JSONL line as ``json.dumps`` or a hand-built writer would give it."""
    kind = rng.randrange(10)
    text: object = _text(rng)
    if kind == 0:
        text = [{"role": "user", "content": _text(rng)}, {"role": "assistant", "content": None}]
    elif kind == 1:
        text = _value(rng)
    fields: list[tuple[str, object]] = [("id", f"doc-{rng.randrange(10**6)}"), ("path", "pkg/mod.py")]
    if rng.randrange(3) == 0:
        fields.append(("meta", _value(rng)))
    if rng.randrange(8) == 0:
        fields.append(("messages", [{"role": "u", "content": "m"}]))
    fields.append(("text", text))
    if rng.randrange(6) == 0:  # a duplicate key: the last wins
        fields.insert(rng.randrange(len(fields) + 1), rng.choice([("text", _text(rng)), ("id", 3)]))
    if rng.randrange(4) == 0:
        rng.shuffle(fields)
    if rng.randrange(3) == 0:  # hand-built: whitespace variants around every token

        def ws() -> str:
            return rng.choice(["", "", " ", "  ", "\t", "\r", " \t "])

        asc = rng.randrange(2) == 0

        def dump(x: object) -> str:
            return json.dumps(x, ensure_ascii=asc)

        body = f"{ws()},{ws()}".join(f"{dump(k)}{ws()}:{ws()}{dump(v)}" for k, v in fields)
        s = f"{ws()}{{{ws()}{body}{ws()}}}{ws()}"
    else:
        s = json.dumps(dict(fields), ensure_ascii=rng.randrange(2) == 0)
    return s.encode("utf-8")


EDGE = [
    rb'{"text": "\"\\\/\b\f\n\r\t\u00e9\u20AC\ud83d\ude00\uD83D\uDE00"}',
    rb'{"text": "a\ud800b"}',
    rb'{"text": "\udc00\ud800"}',
    rb'{"text": "\ud800\ud800"}',
    rb'{"text": "ok", "x": "\udfff"}',
    rb'{"\ud800": 1, "text": "ok"}',
    rb'{"text": "\\ud800"}',
    rb'{"te\u0078t": "escaped key"}',
    rb'{"text": "a", "text": "b"}',
    rb'{"text": 1, "text": "b"}',
    rb'{"text": "a", "text": 1}',
    rb'{"text": "a", "x": NaN, "y": -Infinity, "z": [Infinity]}',
    rb'{"text": "a", "x": 1e400, "y": -0, "z": 0.5e-3, "w": 1E+2}',
    rb'{"text": "a", "x": 01}',
    rb'{"text": "a", "x": 1.}',
    rb'{"text": "a", "x": .5}',
    rb'{"text": "a", "x": -}',
    rb'{"text": "a", "x": tru}',
    rb'{"text": "a",}',
    rb'{"text": "a"} x',
    b'{"text": "a\x01"}',
    b'{"text": "a\x7f"}',
    b'{"text": "caf\xc3\xa9"}',
    b'{"text": "caf\xe9"}',
    b'{"text": "\xed\xa0\x80"}',
    b'{"text": "\xf4\x90\x80\x80"}',
    b'{"text": "\xc0\xaf"}',
    b'\xef\xbb\xbf{"text": "bom"}',
    b'{"text":"a"\x0c}',
    rb'{"text": "a", "deep": ' + b"[" * 100 + b"]" * 100 + b"}",
    rb'{"text": "a", "deep": ' + b"[" * 127 + b"]" * 127 + b"}",
    rb'{"text": "a", "x": "\u00"}',
    rb'{"text": "a", "x": "\x41"}',
    rb'{"messages": [{"role": "u", "content": "m"}], "text": "t"}',
    rb'{"messages": [{"role": "u", "content": "m"}]}',
    rb'{"text": [1, 2, 4294967295]}',
    rb'{"text": [1, -1]}',
    rb'{"text": []}',
    rb'{}',
    rb'[1]',
    rb'"s"',
    rb' {"text" : "spaced" } ',
]


def _mutate(rng: random.Random, line: bytes) -> bytes:
    b = bytearray(line)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(b) + 1)
        c = rng.choice(b'"\\{}[],: 0e-.u\x01\xff\xc3\x80\xed\tnt')
        op = rng.randrange(4)
        if op == 0 and at < len(b):
            b[at] = c
        elif op == 1 and at < len(b):
            del b[at]
        elif op == 2:
            del b[at:]
        else:
            b.insert(at, c)
    return bytes(b)


def _lines() -> list[bytes]:
    rng = random.Random(16)
    base = [_line(rng) for _ in range(2500)]
    lines = base + EDGE + [_mutate(rng, rng.choice(base + EDGE)) for _ in range(3500)]
    return [x for x in lines if x.strip(BLANK)]  # a blank line is not a record


@pytest.mark.parametrize("allow_ids", [True, False])
def test_reader_judges_lines_as_json_loads(tmp_path, allow_ids):
    lines = _lines()
    p = tmp_path / "x.jsonl"
    p.write_bytes(b"".join(x + b"\n" for x in lines))
    got: dict[int, object] = {}
    extras: dict[int, str | None] = {}
    reasons = []
    for b in read_batches(p, skip_bad=True, allow_ids=allow_ids, extra_field="id", num_threads=2):
        for line, item, x in zip(b.lines, b.items(), b.extras()):
            got[line] = list(item) if not isinstance(item, str) else item
            extras[line] = x
        for line, _rec, why, _raw in b.bad:
            got[line] = None
            reasons.append(why)
    assert sorted(got) == list(range(1, len(lines) + 1))
    n_ok = 0
    for i, line in enumerate(lines, 1):
        want = reference(line, "text", allow_ids)
        if want is None:
            assert got[i] is None, (line, got[i])
            continue
        n_ok += 1
        item, obj = want
        assert got[i] == item, line
        # the raw extra value reads back as the object's own (NaN compares by its repr)
        assert extras[i] is not None if "id" in obj else extras[i] is None, line
        if "id" in obj:
            assert repr(json.loads(extras[i])) == repr(obj["id"]), line
    # both outcomes are well represented, and every bad line says why
    assert n_ok > 2000 and len(reasons) > 1500, (n_ok, len(reasons))
    assert all(reasons)
