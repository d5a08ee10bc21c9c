"""`qwen25 data run` on a local Ray (engine = "ray") writes byte for byte what the local engine
writes: kept and removed lists, report (apart from its engine field) and packed folder, with
every stage at work. Nothing is lost under Ray either; bad lines and resume behave the same.
Skipped when ray or pyarrow is not installed."""

from __future__ import annotations

import json
import random
import shutil

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from qwen25.cli import main  # noqa: E402
from qwen25.data import DomainClassifier, benchmarks  # noqa: E402
from qwen25.data.pipeline import run_pipeline  # noqa: E402
from qwen25.errors import FormatError  # noqa: E402

from .test_pipeline import good_doc, read_jsonl, write_corpus  # noqa: E402
from .test_pipeline_tokens import CODE_VOCAB  # noqa: E402


def code_doc(rng: random.Random, tag: str) -> str:
    lines = []
    for _ in range(6):
        words = [rng.choice(CODE_VOCAB) if rng.random() < 0.7 else rng.choice(["the", "of", "and", "to"]) for _ in range(14)]
        lines.append(" ".join(words).capitalize() + ".")
    return "\n".join(lines) + f"\nThis is code note {tag} and it ends with a full stop."


CONFIG = """
[pipeline]
output = "out"
batch_size = 5
on_bad_line = "skip"
concurrency = 2

[[sources]]
name = "web"
paths = ["web/*.jsonl"]
id_field = "id"

[[sources]]
name = "code"
paths = ["code/*.jsonl"]
id_field = "id"

[filter.default]
c4 = false

[dedup]
mem_budget = 2000

[decontaminate]
options = { test_set = "humaneval" }

[classify]
model = "domain.bin"

[mix]
weights = { web = 0.5, code = 0.5 }
max_repeat = 2.0

[pack]
seq_len = 64
seqs_per_shard = 4
"""


def make_job(tmp_path):
    """Two sources, three files, a blank and a bad line, an exact and a near duplicate, a
    filtered record, a HumanEval leak, a trained classifier (its labels become the domains)."""
    web, _ = write_corpus(tmp_path)  # web/a.jsonl, web/b.jsonl (with a blank line), code/c.jsonl
    rng = random.Random(4)
    code = [{"id": f"k{i}", "text": code_doc(rng, f"k{i}")} for i in range(10)]
    problem = benchmarks.load("humaneval")[3]["text"]
    code.append({"id": "leak", "text": code_doc(rng, "leak1") + "\n" + problem + "\n" + code_doc(rng, "leak2")})
    with open(tmp_path / "code" / "c.jsonl", "w", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(r) for r in code))  # no newline after the last line
    with open(tmp_path / "web" / "b.jsonl", "a", encoding="utf-8") as f:
        f.write("{not json\n")
        f.write(json.dumps({"id": "late", "text": good_doc(rng, "late")}) + "\n")
    train = [good_doc(rng, f"t{i}") for i in range(20)] + [code_doc(rng, f"t{i}") for i in range(20)]
    clf = DomainClassifier.train(train, ["web"] * 20 + ["code"] * 20, epochs=5, dim=1 << 12)
    clf.save(tmp_path / "domain.bin")
    (tmp_path / "pipeline.toml").write_text(CONFIG)
    return len(web) + 1 + 1 + len(code)  # + bad line + late record


def outputs(out):
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    keep = {k: v for k, v in files.items() if k in ("kept.jsonl", "removed.jsonl") or k.startswith("packed/")}
    rep = json.loads(files["report.json"])
    return keep, rep


def test_ray_engine_writes_what_local_writes(tmp_path, local_ray):
    n_in = make_job(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    local = run_pipeline(cfg, progress=False)  # engine "local" (the default)
    shutil.move(tmp_path / "out", tmp_path / "out_local")
    got = run_pipeline(cfg, progress=False, engine="ray")
    want_files, want_rep = outputs(tmp_path / "out_local")
    got_files, got_rep = outputs(tmp_path / "out")
    assert local["engine"] == want_rep.pop("engine") == "local"
    assert got["engine"] == got_rep.pop("engine") == "ray"
    assert got_rep == want_rep
    assert sorted(got_files) == sorted(want_files)
    for name in want_files:
        assert got_files[name] == want_files[name], name
    # every stage did something in this job
    by_stage = want_rep["removed_by_stage"]
    assert set(by_stage) == {"read", "filter", "exact_dedup", "minhash_dedup", "decontaminate", "mix"}
    assert want_rep["classify"] == "DomainClassifier" and want_rep["repeats"] > 0
    assert sum(name.startswith("packed/shard_") for name in want_files) > 2
    removed = read_jsonl(tmp_path / "out" / "removed.jsonl")
    assert [r["id"] for r in removed if r["stage"] == "decontaminate"] == ["leak"]
    assert [r["line"] for r in removed if r["stage"] == "read"] == [15]  # b.jsonl: 13 records, a blank line
    # nothing lost under Ray: every input record is packed or removed, exactly once
    kept = read_jsonl(tmp_path / "out" / "kept.jsonl")
    firsts = [(r["source"], r["file"], r["line"]) for r in kept if r["repeat"] == 0]
    gone = [(r["source"], r["file"], r["line"]) for r in removed]
    assert len(firsts) + len(gone) == len(set(firsts) | set(gone)) == n_in == got["documents_in"]
    assert got["documents_packed"] + got["documents_removed"] == n_in
    assert sum(sum(v.values()) for v in got["removed_by_stage"].values()) == len(removed)
    assert got["documents_packed"] + got["repeats"] == len(kept)

    # resume under Ray: a crash after the scan phase, rerun from the CLI with --engine ray
    st = json.loads((tmp_path / "out" / "state.json").read_text())
    st["done"] = ["scan"]
    (tmp_path / "out" / "state.json").write_text(json.dumps(st))
    (tmp_path / "out" / "kept.jsonl").unlink()
    assert main(["data", "run", str(cfg), "--no-progress", "--engine", "ray"]) == 0
    again, _ = outputs(tmp_path / "out")
    assert again == got_files

    # on_bad_line = "error": the driver names the file and line, as the local engine does
    cfg.write_text(CONFIG.replace('on_bad_line = "skip"', 'on_bad_line = "error"'))
    with pytest.raises(FormatError, match=r"b\.jsonl:15: "):
        run_pipeline(cfg, progress=False, engine="ray")
