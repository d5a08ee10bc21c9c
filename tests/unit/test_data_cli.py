"""The standalone stage commands of `qwen25 data`: mix (token shares checked with HF tokenizers as
the independent token counter), classify train/predict, and the bad-line and nothing-lost
contracts of filter, dedup, mix and pack."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest

from qwen25.cli import main
from qwen25.data import PackedDataset

WORDS = "river market bread winter garden music story harbour lantern orchard".split()


def write_source(path, name, n, lo, hi, seed):
    rng = random.Random(seed)
    recs = [{"id": f"{name}{i}", "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))} for i in range(n)]
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return recs


def read_jsonl(p):
    return [json.loads(x) for x in open(p)]


@pytest.fixture
def sources(tmp_path):
    (tmp_path / "web").mkdir()
    web = write_source(tmp_path / "web" / "a.jsonl", "w", 40, 20, 60, 1)
    web += write_source(tmp_path / "web" / "b.jsonl", "v", 20, 20, 60, 2)
    code = write_source(tmp_path / "code.jsonl", "c", 12, 150, 250, 3)
    return tmp_path, web, code


def hf_len(hf_tok, text):
    return len(hf_tok.encode(text, add_special_tokens=False).ids)


@pytest.mark.parametrize("max_repeat,weights", [(1.0, {"web": 0.6, "code": 0.4}), (2.0, {"web": 0.3, "code": 0.7})])
def test_mix_token_shares_and_nothing_lost(sources, hf_tok, max_repeat, weights):
    d, web, code = sources
    out, rem, rep = d / "mixed.jsonl", d / "removed.jsonl", d / "report.json"
    wspec = ",".join(f"{k}={v}" for k, v in weights.items())
    args = ["data", "mix", "--source", f"web={d}/web/*.jsonl", "--source", f"code={d}/code.jsonl", "--weights", wspec,
            "--max-repeat", str(max_repeat), "-o", str(out), "--removed", str(rem), "--report", str(rep), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    mixed, removed, report = read_jsonl(out), read_jsonl(rem), json.load(open(rep))
    # token shares, counted independently with HF tokenizers on the output texts
    toks = Counter()
    longest = Counter()
    for r in mixed:
        n = hf_len(hf_tok, r["text"])
        toks[r["_mix"]["source"]] += n
        longest[r["_mix"]["source"]] = max(longest[r["_mix"]["source"]], n)
    total = sum(toks.values())
    for name, w in weights.items():
        # within half a document of the quota, i.e. one longest document of slack on the share
        assert abs(toks[name] / total - w) <= (longest["web"] + longest["code"]) / total, (name, toks)
        assert report["sources"][name]["size_out"] == toks[name]
    # the budget is the largest that meets the weights within the cap: some source is at its cap
    size_in = {"web": sum(hf_len(hf_tok, r["text"]) for r in web), "code": sum(hf_len(hf_tok, r["text"]) for r in code)}
    assert any(abs(toks[n] - max_repeat * size_in[n]) <= longest[n] for n in weights)
    # nothing lost: every input record is in the output or removed; repeats within the cap
    seen = Counter((r["_mix"]["file"], r["_mix"]["line"]) for r in mixed)
    assert max(seen.values()) <= math.ceil(max_repeat)
    gone = {(r["file"], r["line"]) for r in removed}
    assert all(r["stage"] == "mix" and r["reason"] == "downsampled" for r in removed)
    assert not (set(seen) & gone)
    assert len(set(seen)) + len(gone) == len(web) + len(code)
    # records keep their fields; a source's documents come in input order, cycling for repeats
    by_src = {"web": [r["id"] for r in web], "code": [r["id"] for r in code]}
    for name, ids in by_src.items():
        got = [r["id"] for r in mixed if r["_mix"]["source"] == name]
        assert got == [ids[k % len(ids)] for k in range(len(got))]
    # deterministic: the same command gives the same bytes
    first = out.read_bytes()
    assert main(args) == 0
    assert out.read_bytes() == first


def test_mix_docs_unit_temperature_and_smooth_order(sources):
    d, web, code = sources
    out = d / "m.jsonl"
    base = ["data", "mix", "--source", f"web={d}/web/*.jsonl", "--source", f"code={d}/code.jsonl", "-o", str(out), "--no-progress"]
    assert main([*base, "--unit", "docs", "--weights", "web=0.5,code=0.5"]) == 0
    got = Counter(r["_mix"]["source"] for r in read_jsonl(out))
    assert got == {"web": 12, "code": 12}  # code (12 docs) is the binding source at max_repeat 1
    # smooth interleaving: every prefix is within two documents of its target count
    names = [r["_mix"]["source"] for r in read_jsonl(out)]
    for k in range(1, len(names) + 1):
        assert abs(names[:k].count("web") - k / 2) <= 2
    # temperature: p ~ n^(1/T); T=1 keeps the natural proportions, so everything is taken once
    assert main([*base, "--unit", "docs", "--temperature", "1"]) == 0
    assert Counter(r["_mix"]["source"] for r in read_jsonl(out)) == {"web": 60, "code": 12}


def test_mix_bad_input(sources, capsys):
    d, web, code = sources
    with open(d / "code.jsonl", "a") as f:
        f.write("{not json\n")
    base = ["data", "mix", "--source", f"web={d}/web/*.jsonl", "--source", f"code={d}/code.jsonl", "-o", str(d / "m.jsonl"), "--no-progress"]
    assert main([*base, "--unit", "docs"]) == 1
    assert f"code.jsonl:{len(code) + 1}:" in capsys.readouterr().err
    assert not (d / "m.jsonl").exists()
    assert main([*base, "--unit", "docs", "--skip-bad", "--removed", str(d / "r.jsonl")]) == 0
    bad = [r for r in read_jsonl(d / "r.jsonl") if r["stage"] == "read"]
    assert [(r["line"], r["source"]) for r in bad] == [(len(code) + 1, "code")]
    assert main([*base, "--weights", "web=1,nope=1"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main([*base, "--weights", "web=x"]) == 1
    assert "web=x" in capsys.readouterr().err
    assert main(["data", "mix", "--source", f"web={d}/missing*.jsonl", "-o", str(d / "m.jsonl")]) == 1
    assert "missing" in capsys.readouterr().err


def classify_corpus(path, n, seed):
    rng = random.Random(seed)
    code = "def return import class self lambda yield print while none".split()
    prose = "the town river market people story garden bread winter music".split()
    recs = []
    for i in range(n):
        lab, vocab = rng.choice([("code", code), ("web", prose)])
        words = [rng.choice(vocab) if rng.random() < 0.7 else rng.choice(code + prose) for _ in range(25)]
        recs.append({"id": i, "text": " ".join(words), "domain": lab})
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return recs


def test_classify_train_and_predict(tmp_path, capsys):
    train = classify_corpus(tmp_path / "train.jsonl", 300, 0)
    test = classify_corpus(tmp_path / "test.jsonl", 100, 1)
    model = tmp_path / "domain.bin"
    assert main(["data", "classify", "train", str(tmp_path / "train.jsonl"), "-o", str(model), "--valid", str(tmp_path / "test.jsonl"),
                 "--epochs", "5", "--dim", "4096", "--no-progress"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "trained on 300 records" in err and "held-out accuracy" in err
    assert len(train) == 300
    # predict on records without labels: the label field is added, other fields are kept
    unlabelled = tmp_path / "u.jsonl"
    with open(unlabelled, "w") as f:
        for r in test:
            f.write(json.dumps({"id": r["id"], "text": r["text"]}) + "\n")
    out = tmp_path / "labelled.jsonl"
    assert main(["data", "classify", "predict", str(unlabelled), "--model", str(model), "-o", str(out), "--scores", "--no-progress"]) == 0
    got = read_jsonl(out)
    assert [r["id"] for r in got] == [r["id"] for r in test]
    acc = sum(g["domain"] == r["domain"] for g, r in zip(got, test)) / len(test)
    assert acc >= 0.9  # the generator's labels are the reference
    for g in got:
        s = g["domain_scores"]
        assert set(s) == {"code", "web"} and abs(sum(s.values()) - 1) < 1e-3 and max(s, key=s.get) == g["domain"]
    # a record without a label cannot train: file:line
    with open(tmp_path / "bad.jsonl", "w") as f:
        f.write(json.dumps({"text": "x", "domain": "web"}) + "\n" + json.dumps({"text": "y"}) + "\n")
    assert main(["data", "classify", "train", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "m2.bin"), "--no-progress"]) == 1
    assert "bad.jsonl:2:" in capsys.readouterr().err
    assert main(["data", "classify", "predict", str(unlabelled), "--model", str(tmp_path / "nope.bin"), "-o", str(out)]) == 1


def test_stage_commands_account_for_bad_lines(tmp_path, capsys):
    rng = random.Random(5)
    docs = [" ".join(rng.choice(WORDS + ["the", "and", "of"]) for _ in range(80)) + "." for _ in range(6)]
    lines = [json.dumps({"text": t}) for t in docs]
    lines.insert(2, json.dumps({"txt": "wrong field"}))
    lines.insert(4, "\xff not json")
    lines.append(json.dumps({"text": docs[1]}))  # exact duplicate of line 2
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    src = str(tmp_path / "in.jsonl")
    for stage in ("filter", "dedup"):
        assert main(["data", stage, src, "-o", str(tmp_path / f"{stage}.jsonl"), "--no-progress"]) == 1
        assert "in.jsonl:3:" in capsys.readouterr().err
        rem = tmp_path / f"{stage}.removed.jsonl"
        assert main(["data", stage, src, "-o", str(tmp_path / f"{stage}.jsonl"), "--removed", str(rem), "--skip-bad", "--no-progress"]) == 0
        removed = read_jsonl(rem)
        assert [(r["line"], r["stage"]) for r in removed if r["stage"] == "read"] == [(3, "read"), (5, "read")]
        assert len(read_jsonl(tmp_path / f"{stage}.jsonl")) + len(removed) == len(lines)
    dedup_removed = [r for r in read_jsonl(tmp_path / "dedup.removed.jsonl") if r["stage"] != "read"]
    assert [(r["line"], r["stage"], r["reason"]) for r in dedup_removed] == [(9, "exact_dedup", f"duplicate_of {src}:2")]
    rep = tmp_path / "dedup.json"
    assert main(["data", "dedup", src, "-o", str(tmp_path / "d2.jsonl"), "--skip-bad", "--report", str(rep), "--no-progress"]) == 0
    rep = json.loads(rep.read_text())
    assert rep["exact_clusters"] == [{"first": f"{src}:2", "size": 2}] and rep["near_clusters"] == []
    assert rep["records"] == 7 and rep["kept"] == 6 and rep["bad_lines"] == 2
    assert main(["data", "pack", src, "-o", str(tmp_path / "p"), "--seq-len", "64", "--skip-bad", "--no-progress"]) == 0
    assert PackedDataset(tmp_path / "p").num_documents == len(lines) - 2
    assert '"bad_lines_skipped": 2' in capsys.readouterr().err


def test_dedup_report_names_both_clusters(tmp_path):
    from tests.unit.test_pipeline import write_corpus

    write_corpus(tmp_path)  # web[3] is copied exactly (b.jsonl:11), web[5] nearly (b.jsonl:12)
    a, b = str(tmp_path / "web" / "a.jsonl"), str(tmp_path / "web" / "b.jsonl")
    rep = tmp_path / "rep.json"
    assert main(["data", "dedup", a, b, "-o", str(tmp_path / "o.jsonl"), "--removed", str(tmp_path / "r.jsonl"),
                 "--report", str(rep), "--no-progress"]) == 0  # fmt: skip
    r = json.loads(rep.read_text())
    assert r["exact_clusters"] == [{"first": f"{a}:4", "size": 2}]
    assert r["near_clusters"] == [{"first": f"{a}:6", "size": 2}]
    assert [(x["line"], x["stage"]) for x in read_jsonl(tmp_path / "r.jsonl")] == [(11, "exact_dedup"), (12, "minhash_dedup")]
