"""qwen25.data.stage_io (the standalone data stages' input and output on the native record I/O):
texts, line numbers and bad lines as Python's json/zstandard read the same files; batches across
files; bad lines reported in line order; the atomic output; `data dedup` and `data pack` on a
.zst input write what they write on the plain input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwen25.cli import main
from qwen25.data.stage_io import Inputs, Output
from qwen25.errors import FormatError

zstandard = pytest.importorskip("zstandard")

LINES = [
    b'{"id": 1, "text": "first document"}\n',
    b"\n",  # blank: not a record, still a line
    b'{"id": 2, "text": "second \\u00e9 document"}\n',
    b"{not json\n",
    b'{"id": 3, "text": 7}\n',
    b'{"id": 4, "text": "fourth"}\n',
]


def reference(lines: list[bytes]) -> tuple[list[tuple[int, str]], list[int]]:
    """(line, text) of the good records and the line numbers of the bad ones, by Python's json."""
    good, bad = [], []
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            bad.append(n)
            continue
        if isinstance(rec.get("text"), str):
            good.append((n, rec["text"]))
        else:
            bad.append(n)
    return good, bad


def test_inputs_match_python_on_plain_and_zst(tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(b"".join(LINES))
    zst = tmp_path / "b.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(b"".join(LINES)))
    good, bad = reference(LINES)
    seen: list[tuple[str, int]] = []
    inp = Inputs([str(plain), str(zst)], skip_bad=True, on_bad=lambda p, n, why: seen.append((p, n)), batch_size=3)
    batches = list(inp.batches())
    docs = [d for b in batches for d in b]
    assert [len(b) for b in batches] == [3, 3]  # batches run across files
    assert [(d.line, d.text) for d in docs] == good + good
    assert [d.path for d in docs] == [str(plain)] * 3 + [str(zst)] * 3
    assert seen == [(str(plain), n) for n in bad] + [(str(zst), n) for n in bad] and inp.bad == 2 * len(bad)
    assert [d.rec for d in docs[:3]] == [json.loads(LINES[i]) for i in (0, 2, 5)]
    with pytest.raises(FormatError, match=r"a\.jsonl:4: malformed JSON"):
        list(Inputs([str(plain)]))


def test_bad_lines_are_reported_between_the_records_around_them(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"".join(LINES))
    events: list[tuple[str, int]] = []
    for d in Inputs([str(p)], skip_bad=True, on_bad=lambda _p, n, _w: events.append(("bad", n))):
        events.append(("doc", d.line))
    assert events == [("doc", 1), ("doc", 3), ("bad", 4), ("bad", 5), ("doc", 6)]


def test_output_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "o.jsonl"
    w = Output(str(out))
    w.write({"text": "é", "n": 1})
    assert not out.exists()
    w.close()
    assert out.read_bytes() == (json.dumps({"text": "é", "n": 1}, ensure_ascii=False) + "\n").encode()
    w = Output(str(out))
    w.write({"text": "other"})
    w.discard()
    assert out.read_bytes().startswith(b'{"text": "\xc3\xa9"') and [p.name for p in out.parent.iterdir()] == ["o.jsonl"]
    n = Output(None)
    n.write({"a": 1})
    n.close()
    assert n.n == 1


@pytest.mark.parametrize("stage", ["dedup", "pack"])
def test_stage_on_zst_writes_what_it_writes_on_plain(tmp_path: Path, stage: str) -> None:
    lines = [(json.dumps({"id": i, "text": f"document {i % 7} about rivers and {'x' * (i % 5)} bridges"}) + "\n").encode()
             for i in range(60)]  # fmt: skip
    plain = tmp_path / "in.jsonl"
    plain.write_bytes(b"".join(lines))
    zst = tmp_path / "in.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines)))
    outs = []
    for src, name in ((plain, "p"), (zst, "z")):
        out = tmp_path / name
        args = ["--seq-len", "16"] if stage == "pack" else ["--removed", str(tmp_path / f"{name}.removed.jsonl")]
        assert main(["data", stage, str(src), "-o", str(out), "--no-progress", *args]) == 0
        if out.is_dir():  # the shards and their index (the manifest names the input file)
            outs.append(sorted(p.read_bytes() for p in out.iterdir() if p.name != "manifest.json"))
        else:
            outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    if stage == "dedup":  # exact duplicates by text: the first of each of the 7 x 5 texts survives, as written
        kept = [json.loads(x) for x in outs[0].splitlines()]
        firsts = {}
        for raw in lines:
            firsts.setdefault(json.loads(raw)["text"], raw)
        assert len(kept) <= len(firsts) and all(json.dumps(r).encode() + b"\n" in firsts.values() for r in kept)
