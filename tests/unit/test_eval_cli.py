"""``qwen25 eval`` end to end: a real decontamination run (qwen25.data.decontam_job) finds the test
items planted in a training corpus, and the eval's contamination table must name exactly those
items and give the score on the rest, recomputed here from the per-item samples. Bad input is
named in one-line errors."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from qwen25.cli import main  # noqa: E402
from qwen25.data.decontam_job import run_job  # noqa: E402
from qwen25.model import Qwen2ForCausalLM, Qwen25Config  # noqa: E402

SUBJECTS = ["rivers", "mountains", "trains", "bridges", "forests", "islands", "deserts", "harbours"]


WORDS = ("amber basalt cobalt dune ember fjord glacier heron iris juniper kelp lagoon meadow nettle orchard pebble "
         "quarry reed sorrel tundra umber valley willow yarrow zephyr anchor beacon canal delta estuary ferry grove "
         "harvest inlet jetty kiln lantern marsh").split()


def _items() -> list[dict]:
    import random

    out = []
    for i, s in enumerate(SUBJECTS):
        words = random.Random(i).sample(WORDS, 24)  # no 13 words in a row shared between items
        q = f"Question {i} about {s}: " + " ".join(words) + "?"
        out.append({"id": f"q{i}", "question": q, "text": q,
                    "choices": [f"{s} grew", f"{s} shrank", "nothing changed", "no records exist"], "answer": i % 4})
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("eval_cli")
    m = Qwen2ForCausalLM.from_config(Qwen25Config.from_preset("debug", max_position_embeddings=256), seed=5)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if not name.endswith("norm.weight"):
                p.mul_(20)
    m.save_pretrained(d / "model")
    items = _items()
    (d / "items.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    planted = [1, 4, 6]
    train = [{"text": "An unrelated training document about cooking pasta with garlic and olive oil."}]
    for i in planted:  # the test question copied inside a longer training record
        train.append({"text": "Forum post: I saw this in an exam. " + items[i]["text"] + " Any ideas?"})
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    run_job(train=[str(d / "train.jsonl")], tests=[str(d / "items.jsonl")], out=str(d / "decon"), progress=False,
            log=lambda s: None)
    return d, [f"q{i}" for i in planted]


def test_eval_prints_scores_next_to_the_decontamination_hits(setup, capsys) -> None:  # type: ignore[no-untyped-def]
    d, planted = setup
    rep = json.loads((d / "decon" / "report.json").read_text())
    assert sorted(rep["test_sets"]["items.jsonl"]["hits"]) == planted  # the job found the plants
    rc = main(["eval", "--model", str(d / "model"), "--task", "mc", "--data", str(d / "items.jsonl"),
               "--decontam-report", str(d / "decon" / "report.json"), "--out", str(d / "ev"), "--no-progress",
               "--format", "cloze"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "score(clean)" in printed and "q1, q4, q6" in printed
    res = json.loads((d / "ev" / "results.json").read_text())
    c = res["tasks"]["mc"]["contamination"]
    assert c["test_set"] == "items.jsonl" and c["hit_ids"] == planted and c["hits_not_evaluated"] == []
    samples = [json.loads(x) for x in (d / "ev" / "samples" / "mc.jsonl").read_text().splitlines()]
    assert [s["id"] for s in samples] == [f"q{i}" for i in range(len(SUBJECTS))]
    for metric, col in (("acc", "correct"), ("acc_norm", "correct_norm")):
        clean = [s[col] for s in samples if s["id"] not in planted]
        hit = [s[col] for s in samples if s["id"] in planted]
        m = c["metrics"][metric]
        assert (m["n_hit"], m["n_clean"]) == (3, 5)
        assert m["clean_score"] == pytest.approx(sum(clean) / 5) and m["hit_score"] == pytest.approx(sum(hit) / 3)
        assert m["score"] == pytest.approx(res["tasks"]["mc"][metric])
    # a rerun gives the same files (deterministic)
    assert main(["eval", "--model", str(d / "model"), "--task", "mc", "--data", str(d / "items.jsonl"),
                 "--out", str(d / "ev2"), "--no-progress", "--format", "cloze"]) == 0
    assert (d / "ev2" / "samples" / "mc.jsonl").read_text() == (d / "ev" / "samples" / "mc.jsonl").read_text()


@pytest.mark.parametrize("args, message", [
    (["--task", "nope"], "unknown task 'nope'"),
    (["--task", "mc,gsm8k", "--data", "x.jsonl"], "with several tasks give TASK=PATH"),
    (["--task", "perplexity"], "needs --data PATH"),
    (["--task", "mc", "--data", "missing.jsonl"], "missing.jsonl"),
    (["--task", "mc", "--data", "ITEMS", "--decontam-report", "ITEMS"], "items.jsonl:2: not a JSON report"),
    (["--task", "mc", "--data", "ITEMS", "--decontam-report", "MODEL/config.json"], "no 'test_sets'"),
])
def test_eval_errors_name_the_fault(setup, capsys, args, message) -> None:  # type: ignore[no-untyped-def]
    d, _ = setup
    args = [str(d / "items.jsonl") if a == "ITEMS" else a.replace("MODEL", str(d / "model")) for a in args]
    rc = main(["eval", "--model", str(d / "model"), "--out", str(d / "bad"), "--no-progress", *args])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and err.startswith("qwen25 eval: error:")
