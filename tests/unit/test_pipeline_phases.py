"""`[[mix.phases]]`: each phase packs its own mix to its own sequence length; the long-context
phase takes 40% of its tokens from documents of at least its length (Qwen2.5-Turbo), counted
here with HF tokenizers; every record is still packed somewhere or removed."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np

from qwen25.data import PackedDataset
from qwen25.data.pipeline import STAGES, run_pipeline
from tests.unit.test_pipeline import CONFIG, good_doc, read_jsonl, write_corpus

PHASES = """
[[mix.phases]]
name = "general"
weights = { web = 0.75, code = 0.25 }
seq_len = 64

[[mix.phases]]
name = "long"
weights = { web = 0.5, code = 0.5 }
seq_len = 256
long_share = 0.4
max_repeat = 2.0
"""


def test_phases_pack_their_own_mix(tmp_path, hf_tok):
    web, code = write_corpus(tmp_path)
    rng = random.Random(7)
    longs = [{"id": f"L{i}", "text": "\n".join(good_doc(rng, f"L{i}-{j}") for j in range(4))} for i in range(6)]
    with open(tmp_path / "code" / "long.jsonl", "w") as f:
        for r in longs:
            f.write(json.dumps(r) + "\n")
    cfg = CONFIG.format(max_repeat=1.0)
    cfg = cfg[: cfg.index("[mix]")] + "[mix]\nmode = \"smooth\"\n" + PHASES + cfg[cfg.index("[pack]") :]
    (tmp_path / "pipeline.toml").write_text(cfg)
    rep = run_pipeline(tmp_path / "pipeline.toml", progress=False)
    out = tmp_path / "out"
    text = {("web", r["id"]): r["text"] for r in web} | {("code", r["id"]): r["text"] for r in code + longs}
    n_tok = {k: len(hf_tok.encode(t, add_special_tokens=False).ids) for k, t in text.items()}
    kept = read_jsonl(out / "kept.jsonl")
    removed = read_jsonl(out / "removed.jsonl")
    for name, seq_len in (("general", 64), ("long", 256)):
        ds = PackedDataset(out / "packed" / name)
        assert ds.seq_len == seq_len and ds.manifest["extra"]["phase"] == name
        rows = [k for k in kept if k["phase"] == name]
        assert [k["doc"] for k in rows] == list(range(len(rows))) == list(range(ds.num_documents))
        for k in rows:  # each packed document is its record's tokens (HF tokenizers)
            assert len(ds.document(k["doc"])) == n_tok[(k["source"], k["id"])]
    # the long phase: 40% of its tokens from documents of >= 256 tokens
    lp = [n_tok[(k["source"], k["id"])] for k in kept if k["phase"] == "long"]
    long_tok = sum(n for n in lp if n >= 256)
    assert abs(long_tok - 0.4 * sum(lp)) <= max(lp) / 2 * 2  # half a document per pool
    assert long_tok > 0 and sum(lp) - long_tok > 0
    # the general phase: web / code token shares at 0.75 / 0.25
    gp = Counter()
    for k in kept:
        if k["phase"] == "general":
            gp[k["domain"]] += n_tok[(k["source"], k["id"])]
    assert abs(gp["web"] - 0.75 * sum(gp.values())) <= max(n_tok.values())
    # nothing lost: every record is packed at least once or removed, never both
    used = {(k["source"], k["file"], k["line"]) for k in kept}
    gone = {(r["source"], r["file"], r["line"]) for r in removed}
    assert not used & gone and len(used) + len(gone) == rep["documents_in"] == len(web) + len(code) + len(longs)
    assert sum(k["repeat"] == 0 for k in kept) == len(used)  # `repeat` counts earlier placements
    st = rep["stages"]
    for a, b in zip(STAGES, STAGES[1:]):
        assert st[a]["out"] == st[b]["in"]
    assert st["mix"]["out"]["tokens"] == sum(p["document_tokens"] for p in rep["pack"]["phases"].values())
    assert set(rep["mix"]["phases"]) == {"general", "long"}
    assert np.isclose(sum(q["target"] for q in rep["mix"]["phases"]["long"]["quota"].values() if q["target"]), 1.0)


def test_temperature_mix(tmp_path, hf_tok):
    """`[mix] temperature`: p ~ size^(1/T); a very high T gives equal token shares (computed here
    with HF tokenizers on the packed records), repeats allowed by max_repeat."""
    web, code = write_corpus(tmp_path)
    cfg = CONFIG.format(max_repeat=3.0).replace("weights = { web = 0.75, code = 0.25 }", "temperature = 1e9")
    (tmp_path / "pipeline.toml").write_text(cfg)
    run_pipeline(tmp_path / "pipeline.toml", progress=False)
    text = {("web", r["id"]): r["text"] for r in web} | {("code", r["id"]): r["text"] for r in code}
    toks = Counter()
    longest = 0
    for k in read_jsonl(tmp_path / "out" / "kept.jsonl"):
        n = len(hf_tok.encode(text[(k["source"], k["id"])], add_special_tokens=False).ids)
        toks[k["domain"]] += n
        longest = max(longest, n)
    assert abs(toks["web"] - toks["code"]) <= 2 * longest and toks["code"] > 0
