"""`report.json` stages: documents and tokens in and out of every stage, per domain, checked
against HF tokenizers (the independent token counter) on the texts each stage removed, and the
stages chain (what leaves one enters the next)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from qwen25.data.filters import FilterConfig
from qwen25.data.pipeline import STAGES, run_pipeline
from tests.unit.test_filters import ref_apply
from tests.unit.test_pipeline import CONFIG, read_jsonl, write_corpus


def hf_count(hf_tok, text: str) -> int:
    return len(hf_tok.encode(text, add_special_tokens=False).ids)


def test_stage_tokens_match_hf_counts(tmp_path, hf_tok):
    web, code = write_corpus(tmp_path)
    with open(tmp_path / "code" / "c.jsonl", "a") as f:
        f.write("{broken\n")  # a bad line: counted in, removed at read, no tokens
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=2.0).replace("batch_size = 7", 'batch_size = 7\non_bad_line = "skip"'))
    rep = run_pipeline(cfg, progress=False)
    st = rep["stages"]
    assert list(st) == list(STAGES)
    text = {("web", r["id"]): r["text"] for r in web} | {("code", r["id"]): r["text"] for r in code}
    removed = read_jsonl(tmp_path / "out" / "removed.jsonl")
    # tokens each stage removed, counted independently on the removed documents' texts
    want: Counter[str] = Counter()
    docs: Counter[str] = Counter()
    for r in removed:
        docs[r["stage"]] += 1
        if r["stage"] != "read":
            want[r["stage"]] += hf_count(hf_tok, text[(r["source"], r["id"])])
    for stage in STAGES:
        assert st[stage]["removed"]["docs"] == docs[stage], stage
        assert st[stage]["removed"]["tokens"] == want[stage], stage
    # what goes in: every record; the tokens of every parsed one
    assert st["read"]["in"]["docs"] == len(web) + len(code) + 1
    assert st["read"]["out"]["tokens"] == sum(hf_count(hf_tok, t) for t in text.values())
    assert st["read"]["domains"]["web"]["in_docs"] == len(web) and st["read"]["domains"]["code"]["in_docs"] == len(code) + 1
    # the stages chain, and in = out + removed (the mix also repeats documents)
    for a, b in zip(STAGES, STAGES[1:]):
        assert st[a]["out"] == st[b]["in"], (a, b)
    for stage in STAGES:
        rep_d = st[stage].get("repeats", {}).get("docs", 0)
        rep_t = st[stage].get("repeats", {}).get("tokens", 0)
        assert st[stage]["in"]["docs"] == st[stage]["out"]["docs"] - rep_d + st[stage]["removed"]["docs"]
        trim = st[stage].get("trimmed_tokens", 0)
        assert st[stage]["in"]["tokens"] == st[stage]["out"]["tokens"] - rep_t + st[stage]["removed"]["tokens"] + trim
    # what comes out of the mix is what was packed, per domain, repeats included
    assert st["mix"]["out"]["tokens"] == rep["pack"]["document_tokens"]
    kept = read_jsonl(tmp_path / "out" / "kept.jsonl")
    for dom in ("web", "code"):
        got = sum(hf_count(hf_tok, text[(k["source"], k["id"])]) for k in kept if k["domain"] == dom)
        assert st["mix"]["domains"][dom]["out_tokens"] == got == rep["pack"]["tokens_by_domain"][dom]
    assert st["mix"]["repeats"]["docs"] == rep["repeats"] > 0
    json.dumps(rep)  # the report stays JSON


def test_c4_line_removal_counts_the_text_that_goes_on(tmp_path, hf_tok):
    web, code = write_corpus(tmp_path)
    with open(tmp_path / "web" / "a.jsonl", "a") as f:  # a line without terminal punctuation: C4 drops it
        f.write(json.dumps({"id": "c4", "text": web[7]["text"] + "\nclick here for more"}) + "\n")
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0).replace("[filter.default]\nc4 = false\n", ""))
    st = run_pipeline(cfg, progress=False)["stages"]
    # the pure-Python filter reference decides and trims; HF tokenizers count
    texts = [json.loads(x)["text"] for p in sorted((tmp_path / "web").iterdir()) + [tmp_path / "code" / "c.jsonl"]
             for x in open(p) if x.strip()]  # fmt: skip
    removed = trimmed = out = 0
    for t in texts:
        flt, _, new = ref_apply(t, FilterConfig())
        n = hf_count(hf_tok, t)
        if flt is not None:
            removed += n
        else:
            m = hf_count(hf_tok, t if new is None else new)
            out += m
            trimmed += n - m
    f = st["filter"]
    assert trimmed > 0
    assert (f["removed"]["tokens"], f["trimmed_tokens"], f["out"]["tokens"]) == (removed, trimmed, out)
    assert f["in"]["tokens"] == removed + trimmed + out
    for a, b in zip(STAGES, STAGES[1:]):
        assert st[a]["out"] == st[b]["in"], (a, b)


def test_demo_pipeline(capsys):
    """`make demo`'s pipeline part: the planted exact copy and the edited HumanEval problems are
    removed by their stages, and the packed output mixes web and code by tokens."""
    from qwen25.commands.demo import pipeline_demo

    rep = pipeline_demo()
    out = capsys.readouterr().out
    assert "stage" in out and "mix quota" in out
    assert rep["removed_by_stage"]["exact_dedup"] == {"exact_duplicate": 1}
    assert rep["removed_by_stage"]["decontaminate"]["benchmark_overlap"] >= 10
    toks = rep["pack"]["tokens_by_domain"]
    assert abs(toks["web"] / (toks["web"] + toks["code"]) - 0.6) < 0.05
    assert rep["documents_in"] == rep["documents_removed"] + rep["documents_packed"]


def test_report_gives_clusters_and_filter_statistics(tmp_path):
    from tests.unit.test_filters import ref_apply

    web, code = write_corpus(tmp_path)  # web[3] copied exactly into b.jsonl:11, web[5] nearly into b.jsonl:12
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0))
    rep = run_pipeline(cfg, progress=False)
    cl = rep["clusters"]
    assert cl["exact"]["clusters"] == 1 and cl["exact"]["largest"] == [{"first": "web/a.jsonl:4", "size": 2}]
    assert cl["near"]["clusters"] == 1 and cl["near"]["largest"] == [{"first": "web/a.jsonl:6", "size": 2}]
    assert cl["exact"]["size_histogram"] == {"2": 1} and cl["near"]["duplicates_removed"] == 1
    # a filtered document carries the statistics behind its reason (the reference decides the same)
    short = next(r for r in read_jsonl(tmp_path / "out" / "removed.jsonl") if r["stage"] == "filter")
    flt, reason, _ = ref_apply("too short", FilterConfig.from_dict({"c4": False}))
    assert short["reason"] == f"{flt}:{reason}"
    # "too short": its one 2-gram covers every character, so the top 2-gram fraction is 1 (> 0.2)
    assert short["stats"]["gopher_repetition.top_2_gram"] == 1.0


def test_stats_all_gives_every_document_its_statistics(tmp_path):
    from tests.unit.test_filters import ref_stats

    web, code = write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0).replace("[filter.default]", '[filter]\nstats = "all"\n\n[filter.default]'))
    run_pipeline(cfg, progress=False)
    text = {("web", r["id"]): r["text"] for r in web} | {("code", r["id"]): r["text"] for r in code}
    fc = FilterConfig.from_dict({"c4": False})
    rows = read_jsonl(tmp_path / "out" / "kept.jsonl") + read_jsonl(tmp_path / "out" / "removed.jsonl")
    assert rows and all("stats" in r for r in rows)
    for r in rows:  # the pure-Python reference computes the same statistics, in the same order
        want = ref_stats(text[(r["source"], r["id"])], fc)[2]
        if r.get("stage") == "filter":  # the filters stop at the statistic that drops the document
            want = dict(list(want.items())[: len(r["stats"])])
            assert r["reason"].split(":")[1] in list(r["stats"])[-1]
        assert list(r["stats"]) == list(want) and r["stats"] == pytest.approx(want), r["id"]
    cfg.write_text(CONFIG.format(max_repeat=1.0))  # the default: only filtered documents carry them
    run_pipeline(cfg, progress=False)
    assert not any("stats" in r for r in read_jsonl(tmp_path / "out" / "kept.jsonl"))
