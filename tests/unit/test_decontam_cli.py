"""`qwen25 decontaminate`: outputs partition the input (same format, order, shards), the report
adds up and agrees with the brute-force reference, reruns resume, bad input fails clearly."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "parity"))
import decontam_ref as ref  # noqa: E402

from qwen25.cli import main  # noqa: E402
from qwen25.data import benchmarks  # noqa: E402

HE = benchmarks.load("humaneval")
# a test item long enough to be indexed (a set of only too-short items is an error) that no record hits
PLAIN = "the quick brown fox jumps over the lazy dog while seven wizards quietly judge boxing matches " * 2


def _edited(text: str, rnd: random.Random, drop: float) -> str:
    return " ".join(w for w in text.split(" ") if rnd.random() > drop)


def _corpus(tmp: Path) -> dict[str, list[dict]]:
    rnd = random.Random(1)
    shards: dict[str, list[dict]] = {}
    for s in range(3):
        recs = []
        for i in range(12):
            r = rnd.random()
            if r < 0.25:
                text = _edited(HE[rnd.randrange(len(HE))]["text"], rnd, rnd.choice([0.05, 0.2, 0.5]))
            elif r < 0.3:
                text = ""
            else:
                text = f"shard {s} record {i}: " + " ".join(rnd.choice(["alpha", "beta", "for", "x", "def", "(", ")"])
                                                           for _ in range(rnd.randrange(5, 60)))
            recs.append({"id": f"{s}-{i}", "text": text})
        shards[f"part-{s}.jsonl.gz" if s < 2 else "sub/part-2.jsonl"] = recs
    for name, recs in shards.items():
        p = tmp / "corpus" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(r) + "\n" for r in recs).encode()
        p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    extra = tmp / "extra.jsonl"
    extra.write_text(json.dumps({"id": "x0", "text": shards["part-0.jsonl.gz"][3]["text"] + " unique tail words"}) + "\n")
    return shards


def _read(p: Path) -> list[bytes]:
    data = p.read_bytes()
    if p.name.endswith(".gz"):
        data = gzip.decompress(data)
    return [ln for ln in data.split(b"\n") if ln]


def _decisions(rep: dict) -> dict:
    """A report without what names the run (id, times, notes): what two equal runs agree on."""
    keep = ("params", "counts", "test_sets", "most_hit", "removed", "bad", "damaged")
    return {k: rep[k] for k in keep} | {"shards": [{k: v for k, v in s.items() if k not in ("resumed", "redone")}
                                                  for s in rep["shards"]]}


def _run(tmp: Path, *extra: str, out: str = "out") -> int:
    return main(["decontaminate", "--train", str(tmp / "corpus" / "**" / "*.jsonl*"), "--test", "humaneval",
                 "--test", str(tmp / "extra.jsonl"), "--field", "text", "--mode", "qwen", "--out", str(tmp / out),
                 "--report", str(tmp / out / "report.json"), "--no-progress", *extra])


def test_job_partitions_and_matches_reference(tmp_path, hf_tok, capsys):
    shards = _corpus(tmp_path)
    assert _run(tmp_path, "--window", "none") == 0  # the report's literal rule, as the reference
    assert "removed" in capsys.readouterr().out
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    c = rep["counts"]
    assert c["in"] == c["clean"] + c["removed"] + c["bad"] == sum(len(v) for v in shards.values())

    # the reference decision per record: literal 13-gram gate + O(mn) DP, HF tokenizer
    tests = [r["text"] for r in HE] + [json.loads((tmp_path / "extra.jsonl").read_text())["text"]]
    test_ids = [hf_tok.encode(ref.normalize(t), add_special_tokens=False).ids for t in tests]
    grams = [ref.grams(e, 13) for e in test_ids]
    removed_by_shard = {}
    for r in rep["removed"]:
        removed_by_shard.setdefault(r["shard"], []).append(r)
    for name, recs in shards.items():
        clean = _read(tmp_path / "out" / "clean" / name)
        removed = _read(tmp_path / "out" / "removed" / name)
        want_removed = []
        for i, r in enumerate(recs):
            t = hf_tok.encode(ref.normalize(r["text"]), add_special_tokens=False).ids
            tg = ref.grams(t, 13)
            cand = [j for j, g in enumerate(grams) if g & tg]
            wit = ref.witnesses([test_ids[j] for j in cand], t, mode="qwen")
            if wit:
                want_removed.append((i, [(cand[k], lcs) for k, lcs in wit]))
        assert [json.loads(x)["id"] for x in removed] == [recs[i]["id"] for i, _ in want_removed]
        assert [json.loads(x)["id"] for x in clean] == [r["id"] for i, r in enumerate(recs)
                                                        if i not in dict(want_removed)]
        got = removed_by_shard.get(name, [])
        assert [g["record"] for g in got] == [i for i, _ in want_removed]
        for g, (_, wit) in zip(got, want_removed):
            flat = [(w["test_index"] + (0 if w["test_set"] == "humaneval" else len(HE)), w["lcs"])
                    for w in g["witnesses"]]
            assert flat == wit
    assert c["removed"] >= 3
    assert rep["test_sets"]["extra.jsonl"]["items"] == 1
    assert rep["test_sets"]["extra.jsonl"]["items_hit"] == 1


def test_independent_of_threads_and_batch_size_and_resumes(tmp_path):
    _corpus(tmp_path)
    assert _run(tmp_path, "--batch-size", "1", "--num-threads", "1", out="a") == 0
    assert _run(tmp_path, "--batch-size", "5", "--num-threads", "3", out="b") == 0
    ra = json.loads((tmp_path / "a" / "report.json").read_text())
    rb = json.loads((tmp_path / "b" / "report.json").read_text())
    assert _decisions(ra) == _decisions(rb)
    # .gz outputs are one gzip member per batch: the same lines whatever the batch size, the
    # same bytes whatever the thread count, and readable by the system's gzip as one file
    assert _run(tmp_path, "--batch-size", "5", "--num-threads", "1", out="c") == 0
    for kind in ("clean", "removed"):
        for shard in ("part-0.jsonl.gz", "part-1.jsonl.gz"):
            pa, pb, pc = (tmp_path / o / kind / shard for o in "abc")
            assert _read(pa) == _read(pb)
            assert pb.read_bytes() == pc.read_bytes()
            if shutil.which("gzip"):
                got = subprocess.run(["gzip", "-dc", str(pa)], check=True, capture_output=True).stdout
                assert got == gzip.decompress(pa.read_bytes())
    # interrupted run: shard 2 unfinished (a temp file and no state) -> redone; others resumed
    (tmp_path / "b" / ".state" / "sub" / "part-2.jsonl.json").unlink()
    (tmp_path / "b" / "clean" / "sub" / "part-2.jsonl").unlink()
    (tmp_path / "b" / "clean" / "sub" / ".tmp-part-2.jsonl").write_text("partial")
    assert _run(tmp_path, out="b") == 0
    rb2 = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [s["resumed"] for s in rb2["shards"]] == [True, True, False]
    assert _decisions(rb2) == _decisions(ra)
    assert rb2["stale_removed"] == ["clean/sub/.tmp-part-2.jsonl"]
    assert (tmp_path / "b" / "clean" / "sub" / "part-2.jsonl").read_bytes() == \
        (tmp_path / "a" / "clean" / "sub" / "part-2.jsonl").read_bytes()
    assert not (tmp_path / "b" / "clean" / "sub" / ".tmp-part-2.jsonl").exists()
    # other settings on the same folder redo every shard, saying why
    assert _run(tmp_path, "--lcs-ratio", "0.7", out="b") == 0
    rb3 = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [s["resumed"] for s in rb3["shards"]] == [False, False, False]
    assert all("lcs_ratio: 0.6 -> 0.7" in s["redone"] for s in rb3["shards"])
    assert rb3["params"]["lcs_ratio"] == 0.7


def _bad_corpus(tmp: Path, lines: list[bytes]) -> None:
    (tmp / "corpus").mkdir(parents=True, exist_ok=True)
    (tmp / "corpus" / "x.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (tmp / "extra.jsonl").write_text(json.dumps({"text": HE[0]["text"]}) + "\n")


def test_malformed_line_fails_with_file_and_line(tmp_path, capsys):
    _bad_corpus(tmp_path, [b'{"text": "ok"}', b'{"text": "ok"}', b'{"text": broken', json.dumps({"text": HE[0]["text"]}).encode()])
    assert _run(tmp_path) == 1
    err = capsys.readouterr().err
    assert "x.jsonl:3:" in err and "malformed JSON" in err
    assert not (tmp_path / "out" / "clean" / "x.jsonl").exists()  # nothing presented as done
    assert _run(tmp_path, "--skip-bad") == 0
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["counts"] == {"in": 4, "clean": 2, "removed": 1, "bad": 1, "blank": 0}
    assert rep["bad"][0]["line"] == 3 and rep["removed"][0]["line"] == 4


def test_missing_field_names_it(tmp_path, capsys):
    _bad_corpus(tmp_path, [b'{"text": "ok"}', b'{"body": "no text here"}'])
    assert _run(tmp_path) == 1
    err = capsys.readouterr().err
    assert "x.jsonl:2:" in err and "'text'" in err


def test_non_utf8_strict_or_replace(tmp_path, capsys):
    raw = b'{"text": "caf\xe9 ' + json.dumps(HE[1]["text"])[1:-1].encode() + b'"}'
    _bad_corpus(tmp_path, [b'{"text": ""}', raw, b'{"messages": [{"role": "user", "content": "hi"}]}'])
    assert _run(tmp_path) == 1
    assert "x.jsonl:2:" in capsys.readouterr().err
    assert _run(tmp_path, "--encoding-errors", "replace", out="r") == 0
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["counts"] == {"in": 3, "clean": 2, "removed": 1, "bad": 0, "blank": 0}
    assert _read(tmp_path / "r" / "removed" / "x.jsonl") == [raw]  # bytes kept as they were


def test_parquet_shard(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    (tmp_path / "corpus").mkdir()
    texts = ["plain", HE[5]["text"], "", _edited(HE[6]["text"], random.Random(0), 0.05), "more plain text"]
    pq.write_table(pa.table({"text": texts, "n": list(range(5))}), tmp_path / "corpus" / "p.parquet")
    (tmp_path / "extra.jsonl").write_text(json.dumps({"text": "nothing"}) + "\n")
    assert main(["decontaminate", "--train", str(tmp_path / "corpus" / "*.parquet"), "--test", "humaneval",
                 "--test", str(tmp_path / "extra.jsonl"), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    clean = pq.read_table(tmp_path / "o" / "clean" / "p.parquet").to_pydict()
    removed = pq.read_table(tmp_path / "o" / "removed" / "p.parquet").to_pydict()
    assert removed["n"] == [1, 3] and clean["n"] == [0, 2, 4]


def test_demo(capsys):
    import gzip
    import os

    from qwen25.data import decontaminate_demo
    from qwen25.data.decontam import __file__ as mod

    report = decontaminate_demo()
    out = capsys.readouterr().out
    assert "humaneval:" in out and "planted" in out
    corpus = os.path.join(os.path.dirname(mod), "demo", "decontam_demo.jsonl.gz")
    recs = [json.loads(x) for x in gzip.open(corpus, "rt", encoding="utf-8")]
    removed = {r["record"] for r in report["removed"]}
    assert all("planted" in recs[i] for i in removed)  # no plain record removed
    for i, r in enumerate(recs):  # every light edit is caught
        if "planted" in r and "heavy-edit" not in r["planted"]:
            assert i in removed, r["planted"]
    assert report["counts"]["in"] == len(recs)


def test_zst_shard_and_path_inputs(tmp_path):
    zstd = pytest.importorskip("zstandard")
    from qwen25.data import Decontaminator

    recs = [{"text": "plain"}, {"text": HE[7]["text"]}, {"messages": [{"role": "user", "content": HE[8]["text"]}]}]
    data = "".join(json.dumps(r) + "\n" for r in recs).encode()
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "z.jsonl.zst").write_bytes(zstd.ZstdCompressor().compress(data))
    (tmp_path / "extra.jsonl").write_text(json.dumps({"text": PLAIN}) + "\n")
    assert _run(tmp_path) == 0
    out = zstd.ZstdDecompressor().stream_reader(open(tmp_path / "out" / "removed" / "z.jsonl.zst", "rb")).read()
    assert [json.loads(x) for x in out.splitlines()] == recs[1:]
    # the library takes the same paths
    d = Decontaminator(str(tmp_path / "extra.jsonl"))
    assert len(d) == 1
    clean, removed = Decontaminator("humaneval").filter(str(tmp_path / "corpus" / "z.jsonl.zst"))
    assert list(clean) == recs[:1] and [r for r, _ in removed] == recs[1:]
