"""One rule for the text of a record: ``records.record_item`` (and ``text_of``, ``decontam._item_of``
built on it) judges an in-memory record exactly as the native reader (``records.read_batches``, the
Rust core's ``io::record``) judges the same record written to a JSONL file: the same item, or the
same reason.

And one JSON writer: ``records.write_json`` / ``write_jsonl`` write the bytes ``json.dumps`` gives, and
``write_bytes`` (which ``write_json`` is built on) the bytes it is given."""

from __future__ import annotations

import json
import os

import pytest

from qwen25.data.decontam import _item_of
from qwen25.data.records import BadRecord, read_batches, record_item, text_of, write_bytes, write_json, write_jsonl
from qwen25.errors import Qwen25ValueError

MSG = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}, {"role": "x", "content": "ok"}]
RECORDS = [
    # good
    {"text": "plain"},
    {"text": ""},
    {"text": "caf\u00e9 \u4e2d\u6587 \U0001f600"},
    {"messages": MSG},
    {"text": MSG},
    {"text": []},
    {"messages": []},
    {"text": "field wins", "messages": 5},
    {"text": [1, 2, 3]},
    {"text": [0, 2**32 - 1]},
    {"id": 7, "text": "x", "extra": {"a": [1, None]}},
    # bad
    {"text": None},
    {"text": 5},
    {"text": 1.5},
    {"text": True},
    {"text": {"a": 1}},
    {"text": [1, True]},
    {"text": [-1]},
    {"text": [2**32]},
    {"text": [1.0]},
    {"text": ["a"]},
    {"messages": ["plain string"]},
    {"messages": [{"content": "no role"}]},
    {"messages": [{"role": "user"}]},
    {"messages": [{"role": "user", "content": 3}]},
    {"messages": [{"role": 1, "content": "x"}]},
    {"messages": "not a list"},
    {"messages": None},
    {"other": 1, "more": 2},
    {},
    [1, 2],
    "a string line",
    5,
    None,
]


def _native(tmp_path, allow_ids):
    """What the native reader says of each record: ("ok", item) or ("bad", reason)."""
    p = tmp_path / f"r{int(allow_ids)}.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    out: dict[int, tuple[str, object]] = {}
    for b in read_batches(p, skip_bad=True, allow_ids=allow_ids):
        for i, item in zip(b.records, b.items()):
            out[i] = ("ok", item)
        for _line, i, reason, _raw in b.bad:
            out[i] = ("bad", reason)
    assert sorted(out) == list(range(len(RECORDS)))
    return [out[i] for i in range(len(RECORDS))]


def _ours(f, r):
    try:
        return ("ok", f(r))
    except BadRecord as e:
        return ("bad", str(e))


@pytest.mark.parametrize("allow_ids", [True, False])
def test_record_item_is_the_native_readers_rule(tmp_path, allow_ids):
    native = _native(tmp_path, allow_ids)
    ours = [_ours(lambda r: record_item(r, "text", allow_ids=allow_ids), r) for r in RECORDS]
    assert ours == native
    assert sum(k == "bad" for k, _ in native) >= 20  # the bad cases are bad, not silently texts


def test_text_of_and_item_of_follow_the_same_rule(tmp_path):
    no_ids, ids = _native(tmp_path, False), _native(tmp_path, True)
    for r, a, b in zip(RECORDS, no_ids, ids):
        if not isinstance(r, dict):
            continue
        assert _ours(lambda r: text_of(r, "text"), r) == a, r
        assert _ours(lambda r: _item_of(r, "text", ""), r) == b, r
    # in memory a str is its own text, and a list or tuple goes to the engine as token ids
    assert text_of("just text") == "just text"
    assert _item_of((1, 2), "text", "") == (1, 2)
    with pytest.raises(TypeError, match="item 3: record is int"):
        text_of(5, "text", "item 3: ")


def test_errors_name_where_and_are_value_errors():
    with pytest.raises(BadRecord, match=r"^record 4: field 'text' is null, not a string") as e:
        text_of({"text": None}, "text", "record 4: ")
    assert isinstance(e.value, Qwen25ValueError) and isinstance(e.value, ValueError)
    with pytest.raises(BadRecord, match=r"^test item 0: no field 'prompt' .*its fields: 'text'"):
        _item_of({"text": "x"}, "prompt", "test item 0: ")


OBJ = {"b": [1, 2.5, None, True], "a": "caf\u00e9 \u4e2d", "nested": {"z": {}, "y": []}}


@pytest.mark.parametrize(
    "newline, kw",
    [
        (True, {"indent": 2, "sort_keys": True}),
        (False, {"indent": 2, "ensure_ascii": False}),
        (True, {"indent": 2, "ensure_ascii": False}),
        (False, {"indent": 1, "ensure_ascii": False}),
        (False, {"indent": 2}),
        (True, {}),
    ],
)
def test_write_json_is_json_dumps(tmp_path, newline, kw):
    p = tmp_path / "o.json"
    write_json(p, OBJ, newline=newline, **kw)
    assert p.read_bytes() == (json.dumps(OBJ, **kw) + ("\n" if newline else "")).encode("utf-8")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.json"]  # no temporary file left


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n\x00\xff" * 1000, "caf\u00e9\n".encode() * 70_000])
def test_write_bytes_stores_the_bytes(tmp_path, data):
    import gzip

    write_bytes(tmp_path / "o.bin", data)
    write_bytes(tmp_path / "o.bin.gz", data)
    assert (tmp_path / "o.bin").read_bytes() == data
    assert gzip.decompress((tmp_path / "o.bin.gz").read_bytes()) == data  # compressed by its name
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.bin", "o.bin.gz"]  # no temporary file left


def test_write_jsonl_lines_and_reexport(tmp_path):
    from qwen25.train.rejection import write_jsonl as old_name

    assert old_name is write_jsonl
    rows = [OBJ, {"x": "\u00e9"}, {}]
    p = tmp_path / "o.jsonl"
    assert write_jsonl(p, iter(rows)) == 3
    assert p.read_bytes() == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def test_an_output_that_is_a_fifo_or_device_is_written_through_not_replaced(tmp_path):
    """`-o /dev/null` or a FIFO: the atomic writer writes straight to it; renaming a temporary file
    over it (as for a regular file) would replace the device node with a regular file, which as
    root breaks /dev/null for the whole machine. Checked on a FIFO (read by a thread, as `cat`
    would) and, as root, on a copy of the null device made in tmp_path (never the real one)."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)  # a failure must not hang
    t.start()
    write_bytes(fifo, b"through the pipe\n" * 1000)
    t.join(timeout=30)
    assert got == [b"through the pipe\n" * 1000]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO
    assert sorted(x.name for x in tmp_path.iterdir()) == ["pipe"]  # no temporary file
    if os.geteuid() == 0:
        null = tmp_path / "null"
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the null device's numbers
        write_json(null, {"discarded": True})
        write_bytes(null, b"x" * 10_000)
        assert stat.S_ISCHR(os.stat(null).st_mode) and null.read_bytes() == b""  # still the null device
