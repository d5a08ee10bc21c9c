"""`qwen25 data run --stop-after STAGE` (or `[pipeline] stop_after`): the run ends after the stage
with a JSONL of its survivors, which are exactly the documents a full run lets through that
stage; nothing is lost (survivors + removed = input), and a later full run resumes."""

from __future__ import annotations

import json

import pytest

from qwen25.cli import main
from qwen25.data.pipeline import run_pipeline
from qwen25.errors import Qwen25ValueError
from tests.unit.test_pipeline import CONFIG, read_jsonl, write_corpus

ITEM = "a held-out test item about the orchards of the northern valley and the apples they grow each year"
ORDER = ("read", "filter", "exact_dedup", "minhash_dedup", "decontaminate", "score", "classify", "mix")
THROUGH = {"filter": "filter", "dedup": "minhash_dedup", "decontaminate": "decontaminate"}


def setup(tmp_path):
    web, code = write_corpus(tmp_path)
    leak = dict(code[4])
    leak["text"] = leak["text"] + "\n" + ITEM
    lines = (tmp_path / "code" / "c.jsonl").read_text().splitlines()
    lines[4] = json.dumps(leak)
    (tmp_path / "code" / "c.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "bench.jsonl").write_text(json.dumps({"text": ITEM}) + "\n")
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=2.0) + '\n[decontaminate]\noptions = { test_set = "bench.jsonl", mode = "ngram", ngram = 8 }\n')
    inputs = {}
    for name in ("web/a.jsonl", "web/b.jsonl", "code/c.jsonl"):
        for line, raw in enumerate((tmp_path / name).read_text().splitlines(), 1):
            if raw.strip():
                inputs[(name, line)] = json.loads(raw)
    return cfg, inputs


@pytest.mark.parametrize("stop", ["filter", "dedup", "decontaminate"])
def test_survivors_are_what_a_full_run_lets_through(tmp_path, stop, capsys):
    cfg, inputs = setup(tmp_path)
    full = run_pipeline(cfg, progress=False)
    assert full["removed_by_stage"]["decontaminate"] == {"benchmark_overlap": 1}
    last = ORDER.index(THROUGH[stop])
    gone = {(r["file"], r["line"]) for r in read_jsonl(tmp_path / "out" / "removed.jsonl") if ORDER.index(r["stage"]) <= last}
    expected = [k for k in inputs if k not in gone]  # input order
    assert main(["data", "run", str(cfg), "--no-progress", "--stop-after", stop]) == 0
    assert f"stopped after {stop}: {len(expected)} documents" in capsys.readouterr().out
    out = tmp_path / "out"
    surv = read_jsonl(out / "survivors.jsonl")
    assert [(r["file"], r["line"]) for r in surv] == expected
    assert all(r["text"] == inputs[(r["file"], r["line"])]["text"] and r["id"] == inputs[(r["file"], r["line"])]["id"] for r in surv)
    removed = read_jsonl(out / "removed.jsonl")
    assert len(surv) + len(removed) == len(inputs)  # nothing lost
    assert {r["stage"] for r in removed} <= set(ORDER[: last + 1])
    rep = json.loads((out / "report.json").read_text())
    assert rep["stopped_after"] == stop and rep["survivors"] == {"file": "survivors.jsonl", "docs": len(expected)}
    assert not (out / "kept.jsonl").exists() and not (out / "packed").exists()
    # a full run afterwards: the outputs of the full run again, the survivors gone
    again = run_pipeline(cfg, progress=False)
    assert again["documents_packed"] == full["documents_packed"] and not (out / "survivors.jsonl").exists()


def test_stop_after_mix_writes_the_mixed_documents_unpacked(tmp_path, capsys):
    cfg, inputs = setup(tmp_path)
    run_pipeline(cfg, progress=False)
    kept = read_jsonl(tmp_path / "out" / "kept.jsonl")
    capsys.readouterr()
    cfg.write_text(cfg.read_text().replace("[pipeline]", '[pipeline]\nstop_after = "mix"'))
    rep = run_pipeline(cfg)
    assert "mix_pack: already done" not in capsys.readouterr().err  # the packing is skipped: a new mix phase
    surv = read_jsonl(tmp_path / "out" / "survivors.jsonl")
    assert [{k: v for k, v in r.items() if k != "text"} for r in surv] == kept  # same documents, order, repeats
    assert all(r["text"] == inputs[(r["file"], r["line"])]["text"] for r in surv)
    assert rep["pack"] == {} and rep["survivors"]["docs"] == len(kept)
    assert not (tmp_path / "out" / "packed").exists() and not (tmp_path / "out" / "kept.jsonl").exists()
    rep = run_pipeline(cfg)  # resumed: the count comes from the phase's part, still the file's lines
    assert "mix_pack: already done" in capsys.readouterr().err and rep["survivors"]["docs"] == len(surv)


def test_stop_after_dedup_then_a_full_run_resumes_after_the_scan(tmp_path, capsys):
    cfg, _ = setup(tmp_path)
    run_pipeline(cfg, stop_after="dedup")
    capsys.readouterr()
    run_pipeline(cfg)
    err = capsys.readouterr().err
    assert "scan: already done" in err and "near_dedup: already done" not in err


def test_a_bad_stop_names_file_and_key(tmp_path):
    cfg, _ = setup(tmp_path)
    cfg.write_text(cfg.read_text().replace("[pipeline]", '[pipeline]\nstop_after = "pack"'))
    with pytest.raises(Qwen25ValueError, match=r"\[pipeline\]: stop_after must be 'filter' or 'dedup' or 'decontaminate' or 'mix'") as e:
        run_pipeline(cfg, progress=False)
    assert str(cfg) in str(e.value)
