"""`qwen25 decontaminate` reports a user can act on: every removal names its test item (set, id,
index), where in the record the rule was met (character offsets) and the LCS, checked against the
brute-force reference (HF tokenizer + O(mn) DP); per test set the fraction of items hit; the
most-hit items; a warning for an item that removes an unusual number of records; the demo's
precision and recall; and the layering (no library module imports qwen25.commands)."""

from __future__ import annotations

import ast
import gzip
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "parity"))
import decontam_ref as ref  # noqa: E402

from qwen25.cli import main  # noqa: E402
from qwen25.data import benchmarks  # noqa: E402
from qwen25.data.decontam_job import run_job  # noqa: E402

HE = benchmarks.load("humaneval")
RND = random.Random(5)
PROSE = ["The river rose after three days of rain and the bridge was closed.",
         "Our team met on Tuesday to plan the release of the storage backend.",
         "She planted tomatoes, basil and peppers along the southern fence."]


def _words(rnd: random.Random, n: int) -> str:
    return " ".join("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randrange(3, 9)))
                    for _ in range(n))


def test_every_removal_is_auditable_against_the_reference(tmp_path, hf_tok, capsys):
    rnd = random.Random(2)
    planted = [3, 17, 17, 60, 99]
    recs = []
    for i in range(24):
        if i % 5 == 0:
            k = planted[i // 5]
            text = " ".join(rnd.sample(PROSE, 2)) + "\n\n" + HE[k]["text"] + "\n" + " ".join(PROSE) * 3
        else:
            text = " ".join(rnd.choice(PROSE) for _ in range(rnd.randrange(1, 6)))
        recs.append({"text": text})
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    tests_ids = [hf_tok.encode(ref.normalize(r["text"]), add_special_tokens=False).ids for r in HE]
    for window in ("none", "auto"):
        out = tmp_path / f"o-{window}"
        assert main(["decontaminate", "--train", str(tmp_path / "c" / "x.jsonl"), "--test", "humaneval",
                     "--window", window, "--out", str(out), "--no-progress"]) == 0
        printed = capsys.readouterr().out
        rep = json.loads((out / "report.json").read_text())
        assert [r["line"] for r in rep["removed"]] == [1, 6, 11, 16, 21]
        for r in rep["removed"]:
            text = recs[r["line"] - 1]["text"]
            t = hf_tok.encode(ref.normalize(text), add_special_tokens=False).ids
            (w,) = r["witnesses"]
            assert (w["test_set"], w["test_index"], w["test_id"]) == \
                ("humaneval", planted[r["record"] // 5], HE[planted[r["record"] // 5]]["id"])
            s, e = w["window"]
            assert 0 <= s < e <= len(text)
            e_ids = tests_ids[w["test_index"]]
            if window == "none":  # the whole record, the report's literal rule
                assert ref.normalize(text[s:e]) == ref.normalize(text)
                assert w["lcs"] == ref.lcs_dp(t, e_ids)
            else:  # the window is the part of the record the rule was met on, and it holds the item
                ts, te = w["token_window"]
                assert w["lcs"] == ref.lcs_dp(t[ts:te], e_ids)
                assert ref.rule(w["lcs"], te - ts, len(e_ids), 13, 0.6)
                assert hf_tok.decode(t[ts:te]).strip() == ref.normalize(text[s:e])
                assert ref.normalize(HE[w["test_index"]]["text"]) in ref.normalize(text[s:e])
                assert e - s < len(text)
        # per test set: items hit and their fraction; the most-hit items, in the summary too
        he = rep["test_sets"]["humaneval"]
        assert he["items"] == len(HE) and he["items_hit"] == 4
        assert he["fraction_hit"] == pytest.approx(4 / len(HE))
        assert sorted(he["hits"]) == sorted(HE[k]["id"] for k in set(planted))
        assert rep["most_hit"][0] == {"test_set": "humaneval", "test_id": HE[17]["id"], "test_index": 17, "records": 2}
        assert f"humaneval: 4 of {len(HE)} test items hit training records ({100 * 4 / len(HE):.1f}%)" in printed
        assert f"most-hit test items: humaneval {HE[17]['id']} (2 records)" in printed
        assert rep["warnings"] == []


def _generic_corpus(tmp: Path, generic_hits: int, others: list[int]) -> None:
    """Test items g (generic) and o0.. ; each record carries exactly one item verbatim."""
    rnd = random.Random(9)
    items = {"g": _words(rnd, 30)} | {f"o{i}": _words(rnd, 30) for i in range(len(others))}
    (tmp / "t.jsonl").write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in items.items()))
    lines = [items["g"]] * generic_hits + [items[f"o{i}"] for i, n in enumerate(others) for _ in range(n)]
    lines += [_words(rnd, 20).upper() for _ in range(5)]
    (tmp / "c").mkdir(exist_ok=True)
    (tmp / "c" / "x.jsonl").write_text("".join(json.dumps({"text": f"intro {k} " + t}) + "\n"
                                               for k, t in enumerate(lines)))


@pytest.mark.parametrize("generic,others,warned", [
    (30, [2, 2, 2, 2, 2], True),   # 6 items hit, median 2: the bar is max(10, 5 x 2) = 10
    (10, [2, 2, 2, 2, 2], False),  # at the bar, not over it
    (11, [3, 3, 3, 3, 3], False),  # median 3: the bar is 15
    (16, [3, 3, 3, 3, 3], True),
    (12, [1], True),               # fewer than 5 items hit: the median is not used, the bar is 10
    (10, [1], False),
])
def test_an_item_removing_an_unusual_number_of_records_is_warned_about(tmp_path, capsys, generic, others, warned):
    _generic_corpus(tmp_path, generic, others)
    assert main(["decontaminate", "--train", str(tmp_path / "c" / "x.jsonl"), "--test", str(tmp_path / "t.jsonl"),
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["counts"]["removed"] == generic + sum(others)
    assert rep["most_hit"][0]["test_id"] == "g" and rep["most_hit"][0]["records"] == generic
    flagged = [w for w in rep["warnings"] if "t.jsonl g (index 0)" in w]
    assert bool(flagged) == warned
    assert len(rep["warnings"]) == int(warned)  # no other item is ever flagged here
    if warned:
        assert f"removed {generic} records" in flagged[0]
        assert f"warning: test item t.jsonl g (index 0) removed {generic} records" in printed


def test_demo_states_precision_and_recall(capsys, tmp_path):
    from qwen25.data import decontaminate_demo
    from qwen25.data.decontam import __file__ as mod

    report = decontaminate_demo(str(tmp_path / "demo"))
    out = capsys.readouterr().out
    corpus = Path(mod).parent / "demo" / "decontam_demo.jsonl.gz"
    recs = [json.loads(x) for x in gzip.open(corpus, "rt", encoding="utf-8")]
    # what was removed, read from the removed shard itself
    removed_ids = {json.loads(x)["id"] for x in gzip.open(tmp_path / "demo" / "removed" / corpus.name, "rt")}
    planted = {r["id"]: r["planted"].rpartition(": ")[2] for r in recs if "planted" in r}
    caught = removed_ids & set(planted)
    assert f"recall {len(caught)}/{len(planted)} = {len(caught) / len(planted):.2f}" in out
    assert f"precision {len(caught)}/{len(removed_ids)} = {len(caught) / len(removed_ids):.2f}" in out
    for kind in set(planted.values()):
        ids = {i for i, k in planted.items() if k == kind}
        assert f"{kind} {len(ids & removed_ids)}/{len(ids)}" in out
    assert report["demo"]["recall"] == len(caught) / len(planted)
    assert report["demo"]["precision"] == len(caught) / len(removed_ids)


def test_no_library_module_imports_commands():
    root = Path(__file__).resolve().parents[2] / "python" / "qwen25"
    offenders = []
    for p in root.rglob("*.py"):
        if "commands" in p.relative_to(root).parts or p.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                names = [a.name for a in node.names]
                if re.search(r"(^|\.)commands(\.|$)", mod) or (mod.strip(".") in ("", "qwen25") and "commands" in names):
                    offenders.append(f"{p.relative_to(root)}: from {mod} import {', '.join(names)}")
            elif isinstance(node, ast.Import):
                offenders += [f"{p.relative_to(root)}: import {a.name}" for a in node.names if "commands" in a.name]
    assert offenders == []
    # and at run time: the job and the demo leave qwen25.commands unimported
    code = ("import sys, io, contextlib\nfrom qwen25.data import decontaminate_demo\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    decontaminate_demo()\n"
            "print(sorted(m for m in sys.modules if m.startswith('qwen25.commands')))")
    got = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert got.strip() == "[]"


def test_job_in_process_matches_the_cli(tmp_path, capsys):
    _generic_corpus(tmp_path, 3, [1, 2])
    rep = run_job(train=[str(tmp_path / "c" / "x.jsonl")], tests=[str(tmp_path / "t.jsonl")], out=str(tmp_path / "a"),
                  progress=False)
    assert main(["decontaminate", "--train", str(tmp_path / "c" / "x.jsonl"), "--test", str(tmp_path / "t.jsonl"),
                 "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    cli = json.loads((tmp_path / "b" / "report.json").read_text())
    for k in ("params", "counts", "test_sets", "most_hit", "removed", "bad", "warnings"):
        assert rep[k] == cli[k], k
    assert (tmp_path / "a" / "removed" / "x.jsonl").read_bytes() == (tmp_path / "b" / "removed" / "x.jsonl").read_bytes()
