"""The pipeline's TOML schema (qwen25.data.pipeline.config): frozen keyword-only sections whose
defaults are the library's own, unknown keys rejected naming the file, the table, the key and the
known keys, before anything is read."""

from __future__ import annotations

import dataclasses
import json
import inspect

import pytest

from qwen25.data.dedup import ExactDeduplicator, MinHashDeduplicator
from qwen25.data.pipeline import load_config, parse_config, run_pipeline
from qwen25.data.pipeline.config import DedupSection
from qwen25.errors import Qwen25ValueError
from tests.unit.test_pipeline import CONFIG, write_corpus


def _defaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def test_dedup_defaults_are_the_deduplicators_defaults():
    d = DedupSection()
    mh = _defaults(MinHashDeduplicator.__init__)
    assert {k: getattr(d, k) for k in ("num_perm", "bands", "rows", "ngram", "seed")} == {
        k: mh[k] for k in ("num_perm", "bands", "rows", "ngram", "seed")}
    assert (d.minhash_lowercase, d.minhash_strip_punct, d.minhash_collapse_ws) == (
        mh["lowercase"], mh["strip_punct"], mh["collapse_ws"])
    assert (d.minhash_datatrove_words, d.minhash_sign_short_docs) == (mh["datatrove_words"], mh["sign_short_docs"])
    ex = _defaults(ExactDeduplicator.__init__)
    assert (d.exact_lowercase, d.exact_strip_punct, d.exact_collapse_ws) == (
        ex["lowercase"], ex["strip_punct"], ex["collapse_ws"])


def test_sections_are_frozen_and_keyword_only(tmp_path):
    write_corpus(tmp_path)
    (tmp_path / "p.toml").write_text(CONFIG.format(max_repeat=1.0))
    cfg = parse_config(load_config(tmp_path / "p.toml"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dedup.num_perm = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        DedupSection(True)  # type: ignore[misc]
    assert cfg.pipeline.batch_size == 7 and cfg.pack.seq_len == 64 and cfg.mix.weights == {"web": 0.75, "code": 0.25}
    assert [s.name for s in cfg.sources] == ["web", "code"] and cfg.sources[0].domain == "web"


@pytest.mark.parametrize(
    "edit,table,key,a_known",
    [
        (("[dedup]", "[dedup]\nnum_perms = 64"), "[dedup]", "num_perms", "num_perm"),
        (("[pipeline]", "[pipeline]\nthreads = 2"), "[pipeline]", "threads", "num_threads"),
        (("seq_len = 64", "seq_len = 64\nseq_length = 9"), "[pack]", "seq_length", "seqs_per_shard"),
        (('mode = "smooth"', 'mode = "smooth"\nweight = 1'), "[mix]", "weight", "weights"),
        (('id_field = "id"\ndomain = "code"', 'id_field = "id"\ndomain = "code"\ntextfield = "t"'), "sources[1]", "textfield", "text_field"),
    ],
)
def test_unknown_keys_name_file_table_key_and_the_known_keys(tmp_path, edit, table, key, a_known):
    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    text = CONFIG.format(max_repeat=1.0)
    assert edit[0] in text
    cfg.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(Qwen25ValueError) as e:
        run_pipeline(cfg, progress=False)
    msg = str(e.value)
    assert str(cfg) in msg and table in msg and repr(key) in msg and "known" in msg and repr(a_known) in msg, msg
    assert not (tmp_path / "out").exists()


def test_the_documented_schema_names_every_key():
    """The package docstring is the schema users read: every key the parser takes is in it."""
    import re

    import qwen25.data.pipeline as pl
    from qwen25.data.pipeline import config as c

    doc = pl.__doc__
    sections = {"pipeline": c.PipelineSection, "sources": c.SourceTable, "filter": c.FilterSection, "dedup": c.DedupSection,
                "decontaminate": c.DecontaminateSection, "score": c.ScoreSection, "classify": c.ClassifySection,
                "mix": c.MixSection, "pack": c.PackSection, "mix.phases": c.MixPhase}  # fmt: skip
    missing = []
    for sec, cls in sections.items():
        for f in dataclasses.fields(cls):
            name = {"total": "total_tokens"}.get(f.name, f.name)
            if not re.search(rf"\b{re.escape(name)}\b", doc):
                missing.append(f"[{sec}] {name}")
    assert not missing, missing


SHORT_TOML = """
[pipeline]
output = "out"
[[sources]]
name = "web"
paths = ["web.jsonl"]
[filter]
enabled = false
[dedup]
exact = false
minhash_sign_short_docs = {sign}
minhash_datatrove_words = {words}
[decontaminate]
enabled = false
"""


@pytest.mark.parametrize("sign,words", [("false", "true"), ("true", "true"), ("true", "false")])
def test_minhash_shingling_keys_reach_the_deduplicator(tmp_path, sign, words):
    # two copies of a 3-word text, then an unrelated long one: survivors are those that
    # MinHashDeduplicator, built with the same switches, keeps
    texts = ["red green blue", "red green blue", " ".join(f"w{i} x{i}" for i in range(40)),
             # the same under datatrove's words (digits become 0), different when split on spaces
             "alpha1 beta2 gamma3 delta4 epsilon5 zeta6 eta7 theta8 iota9",
             "alpha9 beta8 gamma7 delta6 epsilon5 zeta4 eta3 theta2 iota1"]  # fmt: skip
    (tmp_path / "web.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (tmp_path / "p.toml").write_text(SHORT_TOML.format(sign=sign, words=words))
    run_pipeline(str(tmp_path / "p.toml"), progress=False, stop_after="dedup")
    got = [json.loads(x)["text"] for x in (tmp_path / "out" / "survivors.jsonl").read_text().splitlines()]
    ref = MinHashDeduplicator(sign_short_docs=sign == "true", datatrove_words=words == "true").deduplicate(texts)
    want = [t for t, k in zip(texts, ref.tolist()) if k]
    assert got == want
    # datatrove leaves a short text unsigned; its words make the last two one near duplicate
    assert len(want) == (3 if sign == "false" else 2) + (1 if words == "true" else 2)
