"""The native reader's extra field (``read_batches(extra_field=...)``, ``batch.extras()``): per good
record the raw JSON text of one more field, checked against Python's ``json.loads`` of the whole
line (the last of duplicate keys, None when absent); and ``data run`` takes its ids from it with
the same ids in its outputs as a parse of each input line gives."""

from __future__ import annotations

import gzip
import json
import math
import random

import pytest

from qwen25.data.records import read_batches

LINES = [
    '{"id": "a1", "text": "plain"}',
    '{"text": "nested", "id": {"k": [1, 2.5, {"deep": "x y"}], "n": null, "t": true}}',
    '{"text": "spaces inside", "id" :  { "a" : [ 1 , 2 ] }  , "z": 0}',
    '{"text": "escapes", "id": "tab\\t quote\\" back\\\\ uni\\u00e9 pair\\ud83d\\ude00 nl\\n"}',
    '{"text": "numbers", "id": -12.5e+3}',
    '{"text": "big int", "id": 123456789012345678901234567890}',
    '{"text": "float", "id": 1e2}',
    '{"text": "nan", "id": NaN}',
    '{"text": "inf in nested", "id": [Infinity, -Infinity, "NaN"]}',
    '{"id": "first", "text": "dup keys", "id": "second"}',
    '{"id": {"a": 1}, "text": "dup to other type", "id": [3]}',
    '{"text": "missing id", "other": "id"}',
    '{"text": "null id", "id": null}',
    '{"text": "key with escape", "i\\u0064": "escaped key"}',
    '{"text": "raw utf8", "id": "caf\u00e9 \u4e2d\u6587"}',
    '{"text": "empty", "id": ""}',
    '{"text": "bool", "id": false}',
    '{"text": "id in text", "note": {"id": "inner"}}',
]


def _check(path, lines, field="id", **kw):
    got = []
    for b in read_batches(path, extra_field=field, batch_size=5, **kw):
        ex = b.extras()
        assert len(ex) == len(b) == len(b.lines)
        got.extend(zip(b.lines, ex))
    want = {i + 1: json.loads(ln).get(field) for i, ln in enumerate(lines)}
    assert [n for n, _ in got] == sorted(want)
    for n, raw in got:
        w = want[n]
        if raw is None:
            assert field not in json.loads(lines[n - 1]), lines[n - 1]
            continue
        v = json.loads(raw)
        same = v == w or (isinstance(v, float) and math.isnan(v) and math.isnan(w))
        assert same or json.dumps(v) == json.dumps(w), (lines[n - 1], raw)
        assert raw == raw.strip() and raw in lines[n - 1]  # the text as in the line


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz"])
def test_extras_equal_json_loads_of_the_line(tmp_path, suffix):
    data = ("\n".join(LINES) + "\n").encode()
    p = tmp_path / f"x.{suffix}"
    p.write_bytes(gzip.compress(data) if suffix.endswith("gz") else data)
    _check(p, LINES)


def test_extras_random_records(tmp_path):
    rnd = random.Random(3)

    def value(d=0):
        k = rnd.randrange(7 if d < 3 else 4)
        if k == 0:
            return rnd.randrange(-10**20, 10**20)
        if k == 1:
            return rnd.random() * 10 ** rnd.randrange(-5, 5)
        if k == 2:
            return "".join(rnd.choice('ab "\\\n\t\u00e9\u4e2d\U0001f600/') for _ in range(rnd.randrange(8)))
        if k == 3:
            return rnd.choice([None, True, False])
        if k in (4, 5):
            return [value(d + 1) for _ in range(rnd.randrange(4))]
        return {f"k{j}": value(d + 1) for j in range(rnd.randrange(4))}

    lines = []
    for i in range(400):
        obj = {"text": f"doc {i}"}
        if rnd.random() < 0.8:
            obj["meta"] = value()
        ln = json.dumps(obj, ensure_ascii=rnd.random() < 0.5, separators=rnd.choice([(",", ":"), (", ", ": ")]))
        lines.append(ln)
    p = tmp_path / "r.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _check(p, lines, field="meta")


def test_extras_with_bad_lines_and_other_fields(tmp_path):
    lines = ['{"text": "ok", "id": 1}', '{"text": 5, "id": 2}', '{"text": "x", "id": broken}',
             '{"text": "s\\ud800", "id": 4}', '{"text": "ok2", "id": [5]}']
    p = tmp_path / "b.jsonl"
    p.write_text("\n".join(lines) + "\n")
    bs = list(read_batches(p, extra_field="id", skip_bad=True))
    assert [x for b in bs for x in b.extras()] == ["1", "[5]"]  # bad lines have none: they are in bad
    assert [x[0] for b in bs for x in b.bad] == [2, 3, 4]
    with pytest.raises(Exception, match="b.jsonl:2"):
        list(read_batches(p, extra_field="id"))
    # the extra field may be the text field itself, or "messages"; without the option: all None
    p2 = tmp_path / "m.jsonl"
    p2.write_text('{"messages": [{"role": "u", "content": "hi"}], "text": "t"}\n')
    (b,) = list(read_batches(p2, "messages", extra_field="messages"))
    assert b.items() == ["hi"] and json.loads(b.extras()[0]) == [{"role": "u", "content": "hi"}]
    (b,) = list(read_batches(p2, "text", extra_field="text"))
    assert b.items() == ["t"] and b.extras() == ['"t"']
    (b,) = list(read_batches(p2, ""))  # no text asked for
    assert b.extras() == [None]
    (b,) = list(read_batches(p2, "", extra_field="text"))
    assert b.extras() == ['"t"']


def test_extras_under_encoding_errors_replace(tmp_path):
    p = tmp_path / "u.jsonl"
    p.write_bytes(b'{"text": "a", "id": "caf\xe9"}\n')
    (b,) = list(read_batches(p, extra_field="id", encoding_errors="replace"))
    line = p.read_bytes().decode("utf-8", "replace")
    assert json.loads(b.extras()[0]) == json.loads(line)["id"] == "caf\ufffd"


def test_data_run_ids_as_a_parse_of_each_line_gives(tmp_path):
    from qwen25.data.pipeline import run_pipeline
    from tests.unit.test_pipeline import CONFIG, read_jsonl, write_corpus

    write_corpus(tmp_path)
    ids = [{"k": [1, 2.5e3], "s": "a b\\u00e9"}, 7, 1.5, "plain", None, [True, {"x": "y"}], "x\u4e2d\U0001f600"]
    want: dict[str, object] = {}
    for name in ("a.jsonl", "b.jsonl"):
        p = tmp_path / "web" / name
        out = []
        for k, ln in enumerate(p.read_text().splitlines()):
            if not ln.strip():
                out.append(ln)
                continue
            r = json.loads(ln)
            tag = (f"web/{name}", k + 1)
            if k % 4 == 3:  # no id
                out.append(json.dumps({"text": r["text"]}))
                want[tag] = "absent"
            else:
                v = ids[k % len(ids)]
                # spaced out, the id twice (the last counts), ASCII escapes or not
                body = json.dumps(r["text"], ensure_ascii=k % 2 == 0)
                raw_id = json.dumps(v, indent=1 if k % 3 else None).replace("\n", " ")
                out.append('{"id": "dropped", "text": ' + body + ' ,  "id" :  ' + raw_id + " }")
                want[tag] = v
        p.write_text("\n".join(out) + "\n")
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0).replace("[pipeline]", '[pipeline]\nstop_after = "dedup"'))
    run_pipeline(cfg, progress=False)
    seen = 0
    for name in ("survivors.jsonl", "removed.jsonl"):
        for r in read_jsonl(tmp_path / "out" / name):
            if r.get("source") != "web":
                continue
            w = want[(r["file"], r["line"])]
            assert (r["id"] if "id" in r else "absent") == w, r
            seen += 1
    assert seen > 10
