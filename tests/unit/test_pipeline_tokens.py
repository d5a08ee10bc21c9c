"""Mix quotas by tokens: ``docs_for_token_quota`` against a brute-force simulation of its rule,
and ``qwen25 data run``'s realized token shares checked with HF tokenizers on the kept texts."""

from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qwen25.data import PackedDataset
from qwen25.data.mix import docs_for_token_quota
from qwen25.data.pipeline import run_pipeline
from qwen25.errors import Qwen25ValueError

from .test_pipeline import good_doc, read_jsonl


def brute_force(lengths: list[int], quota: float) -> tuple[int, int]:
    """The documented rule, one document at a time: take documents in order, cycling, while
    below the quota; the one crossing it only when at least half of it fits."""
    if quota <= 0 or sum(lengths) == 0:
        return 0, 0
    m = t = 0
    while True:
        n = lengths[m % len(lengths)]
        if t >= quota or 2 * (quota - t) < n:
            return m, t
        t += n
        m += 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=1, max_size=12),
    st.floats(min_value=-5, max_value=2000, allow_nan=False),
)
@example([0, 2], 5e-324)  # quota / size underflows to 0 in floats; a positive quota allows one pass
def test_docs_for_token_quota_matches_brute_force(lengths, quota):
    got = docs_for_token_quota(lengths, quota)
    assert got == brute_force(lengths, quota)
    m, t = got
    if sum(lengths) and quota > 0:
        assert abs(t - quota) <= max(lengths) / 2  # within half a document of the quota
        # no pass beyond ceil(quota / size), computed exactly (a float quotient can round to 0)
        assert m <= math.ceil(Fraction(quota) / sum(lengths)) * len(lengths)


def test_docs_for_token_quota_edges():
    assert docs_for_token_quota([], 10) == (0, 0)
    assert docs_for_token_quota([0, 0], 10) == (0, 0)
    assert docs_for_token_quota([4, 6], 0) == (0, 0)
    assert docs_for_token_quota([4, 6], 10) == (2, 10)  # exactly one pass: no repeat
    assert docs_for_token_quota([4, 6], 10 + 1e-9) == (2, 10)
    assert docs_for_token_quota([4, 6], 12) == (3, 14)  # half of the next document fits
    assert docs_for_token_quota([4, 6], 11.9) == (2, 10)
    assert docs_for_token_quota([4, 6], 1e6 * 10) == (2 * 10**6, 10**7)
    with pytest.raises(Qwen25ValueError):
        docs_for_token_quota([3, -1], 5)
    with pytest.raises(Qwen25ValueError):
        docs_for_token_quota([3], float("inf"))


CODE_VOCAB = (
    "function variable return loop array string integer compile debug module class object method "
    "python rust value index parser token buffer pointer thread socket stream vector"
).split()


def write_lengthy_corpus(tmp_path):
    """web: long documents; code: short ones (so token and document shares differ)."""
    rng = random.Random(5)
    web = [{"id": f"w{i}", "text": "\n".join(good_doc(rng, f"w{i}") for _ in range(3))} for i in range(14)]
    code = []
    for i in range(10):
        words = " ".join(rng.choice(CODE_VOCAB) if rng.random() < 0.7 else "the" for _ in range(rng.randint(5, 30)))
        code.append({"id": f"c{i}", "text": f"Code note {i}: {words}."})
    (tmp_path / "web").mkdir()
    (tmp_path / "code").mkdir()
    (tmp_path / "web" / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in web))
    (tmp_path / "code" / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in code))
    return {("web", r["id"]): r["text"] for r in web} | {("code", r["id"]): r["text"] for r in code}


TOKENS_CONFIG = """
[pipeline]
output = "out"
batch_size = 4

[[sources]]
name = "web"
paths = ["web/*.jsonl"]
id_field = "id"

[[sources]]
name = "code"
paths = ["code/*.jsonl"]
id_field = "id"

[filter]
enabled = false

[dedup]
exact = true
minhash = false

[mix]
weights = {{ web = 0.6, code = 0.4 }}
max_repeat = 3.0
{extra}

[pack]
seq_len = 128
seqs_per_shard = 8
"""


def run(tmp_path, extra=""):
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(TOKENS_CONFIG.format(extra=extra))
    rep = run_pipeline(cfg, progress=False)
    out = tmp_path / "out"
    return rep, read_jsonl(out / "kept.jsonl"), read_jsonl(out / "removed.jsonl"), PackedDataset(out / "packed")


def independent_counts(texts, kept, removed, hf_tok):
    """Per domain, from HF tokenizers on the input texts: the tokens of every document that
    reached the mix (size), taken (repeats included) and the longest document."""
    n = {k: len(hf_tok.encode(t, add_special_tokens=False).ids) for k, t in texts.items()}
    size, longest, taken = Counter(), Counter(), Counter()
    for r in [k for k in kept if k["repeat"] == 0] + [r for r in removed if r["stage"] == "mix"]:
        size[r["domain"]] += n[(r["source"], r["id"])]
        longest[r["domain"]] = max(longest[r["domain"]], n[(r["source"], r["id"])])
    for k in kept:
        taken[k["domain"]] += n[(k["source"], k["id"])]
    return n, size, longest, taken


def target_tokens(size, weights, max_repeat, budget):
    """Two-domain water-filling written out: a domain whose share of ``budget`` exceeds
    ``max_repeat`` epochs is capped there and the other gets the rest."""
    want = {d: w * budget for d, w in weights.items()}
    capped = [d for d in want if want[d] > max_repeat * size[d]]
    if capped:
        (c,) = capped
        (o,) = set(want) - {c}
        want = {c: max_repeat * size[c], o: budget - max_repeat * size[c]}
    return want


@pytest.mark.parametrize("total", [None, "uncapped", "capped"])
def test_token_shares_meet_targets(tmp_path, hf_tok, total):
    texts = write_lengthy_corpus(tmp_path)
    weights, max_repeat = {"web": 0.6, "code": 0.4}, 3.0
    count = {k: len(hf_tok.encode(t, add_special_tokens=False).ids) for k, t in texts.items()}
    code_tokens = sum(v for k, v in count.items() if k[0] == "code")
    # no filter, no near-dup: every document reaches the mix; budgets in whole tokens
    budget = {None: None, "uncapped": 2 * code_tokens, "capped": sum(count.values()) // 2}[total]
    rep, kept, removed, ds = run(tmp_path, "" if budget is None else f"total_tokens = {budget}")
    n, size, longest, taken = independent_counts(texts, kept, removed, hf_tok)
    assert size == {"web": sum(count.values()) - code_tokens, "code": code_tokens}
    if budget is None:  # the most tokens meeting the weights within max_repeat epochs
        budget = min(max_repeat * size[d] / w for d, w in weights.items())
    want = target_tokens(size, weights, max_repeat, budget)
    assert (total == "capped") == (want["code"] == max_repeat * size["code"] != weights["code"] * budget)
    for d in weights:
        assert abs(taken[d] - want[d]) <= longest[d] / 2, (d, taken[d], want[d])
        assert rep["mix"]["taken"][d] == {"docs": sum(k["domain"] == d for k in kept), "tokens": taken[d]}
        assert abs(rep["mix"]["quota"][d]["tokens"] - want[d]) < 1e-3
    weights = {d: want[d] / sum(want.values()) for d in want}
    share = {d: taken[d] / sum(taken.values()) for d in weights}
    assert all(abs(share[d] - w) <= longest[d] / sum(taken.values()) for d, w in weights.items())
    # document shares are far from the token shares here: mixing is by tokens, not documents
    doc_share = sum(k["domain"] == "code" for k in kept) / len(kept)
    assert abs(doc_share - 0.4) > 0.1
    # the packed output holds exactly those tokens per domain (from docs.idx)
    packed = Counter()
    for i in range(ds.num_documents):
        packed[ds.document_source(i)] += int(ds.doc_index[i][1])
    assert dict(packed) == dict(taken) == rep["pack"]["tokens_by_domain"]
    assert [int(x[1]) for x in ds.doc_index] == [n[(k["source"], k["id"])] for k in kept]
    # repeats: at most ceil(max_repeat) passes per document, in order, cycling
    per_doc = Counter((k["source"], k["id"]) for k in kept)
    assert max(per_doc.values()) <= math.ceil(max_repeat)
    order = defaultdict(list)
    for k in kept:
        order[k["domain"]].append((k["source"], k["id"]))
    for d, seq in order.items():
        first = [x for i, x in enumerate(seq) if x not in seq[:i]]
        assert seq == [first[i % len(first)] for i in range(len(seq))]
    if total is None:
        assert rep["repeats"] > 0  # code is short: it is repeated to reach 40% of the tokens
    # nothing lost
    firsts = [(k["source"], k["file"], k["line"]) for k in kept if k["repeat"] == 0]
    gone = [(r["source"], r["file"], r["line"]) for r in removed]
    assert len(firsts) + len(gone) == len(set(firsts) | set(gone)) == len(texts) == rep["documents_in"]
    assert rep["documents_packed"] + rep["documents_removed"] == len(texts)


def test_unit_docs_keeps_document_proportions(tmp_path):
    write_lengthy_corpus(tmp_path)
    rep, kept, removed, _ = run(tmp_path, 'unit = "docs"\ntotal_docs = 20')
    docs = Counter(k["domain"] for k in kept)
    assert docs == {"web": 12, "code": 8}  # 0.6 and 0.4 of 20 documents
    assert rep["mix"]["unit"] == "docs"
    assert {d: q["docs"] for d, q in rep["mix"]["quota"].items()} == {"web": 12, "code": 8}
    assert rep["documents_packed"] + rep["documents_removed"] == 24


def test_mix_config_errors(tmp_path):
    write_lengthy_corpus(tmp_path)
    for extra, msg in (
        ('unit = "bytes"', "unit must be"),
        ("total_docs = 5", "total_docs needs unit = 'docs'"),
        ('unit = "docs"\ntotal_tokens = 5', "total_tokens needs unit = 'tokens'"),
    ):
        with pytest.raises(Qwen25ValueError, match=msg):
            run(tmp_path, extra)


def test_packer_bulk_add_equals_per_document_add(tmp_path, hf_tok):
    """TokenPacker.add_token_arrays (one native call) writes what add_tokens writes document by
    document; the ids come from HF tokenizers."""
    import numpy as np

    from qwen25.data import TokenPacker

    texts = ["first document", "", "a third, longer document " * 9, "x"]
    docs = [hf_tok.encode(t, add_special_tokens=False).ids for t in texts]
    src = ["a", "b", "a", "c"]
    with TokenPacker(tmp_path / "one", seq_len=16, seqs_per_shard=2) as p:
        for d, s in zip(docs, src):
            p.add_tokens(d, source=s)
    with TokenPacker(tmp_path / "bulk", seq_len=16, seqs_per_shard=2) as p:
        flat = np.array([t for d in docs for t in d], dtype=np.uint32)
        assert p.add_token_arrays(flat[:0], [], source=[]) == 0
        assert p.add_token_arrays(flat, [len(d) for d in docs], source=src) == len(flat)
        with pytest.raises(Qwen25ValueError, match="lengths add up to"):
            p.add_token_arrays(flat, [1], source="a")
        with pytest.raises(Qwen25ValueError, match="sources"):
            p.add_token_arrays(flat[:2], [1, 1], source=["a"])
        with pytest.raises(Qwen25ValueError, match="non-negative"):
            p.add_token_arrays(flat[:2], [3, -1], source="a")
    one = {f.name: f.read_bytes() for f in (tmp_path / "one").iterdir()}
    bulk = {f.name: f.read_bytes() for f in (tmp_path / "bulk").iterdir()}
    assert one == bulk and len(one) > 3
    ds = PackedDataset(tmp_path / "bulk")
    assert [ds.document(i).tolist() for i in range(len(docs))] == docs


def test_everything_removed(tmp_path):
    """No document survives: empty kept list and packed folder, counts still add up."""
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "a.jsonl").write_text('{"text": "too short"}\n\n{"text": "also short"}')
    (tmp_path / "pipeline.toml").write_text('[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "web/*.jsonl"\n')
    rep = run_pipeline(tmp_path / "pipeline.toml", progress=False)
    assert rep["documents_in"] == rep["documents_removed"] == 2 and rep["documents_packed"] == 0
    assert [r["line"] for r in read_jsonl(tmp_path / "out" / "removed.jsonl")] == [1, 3]
    assert PackedDataset(tmp_path / "out" / "packed").num_documents == 0


def test_not_utf8_names_file_and_line(tmp_path):
    from qwen25.errors import FormatError

    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "a.jsonl").write_bytes(
        b'{"text": "fine"}\n{"text": "caf\xe9"}\n{"text": "lone \\ud800 surrogate"}\n{"text": "ok \\u00e9"}\n'
    )
    toml = '[pipeline]\noutput = "out"\non_bad_line = "{}"\n[[sources]]\nname = "web"\npaths = "web/*.jsonl"\n[filter]\nenabled = false\n'
    (tmp_path / "pipeline.toml").write_text(toml.format("error"))
    with pytest.raises(FormatError, match=r"a\.jsonl:2: not UTF-8"):
        run_pipeline(tmp_path / "pipeline.toml", progress=False)
    (tmp_path / "pipeline.toml").write_text(toml.format("skip"))  # bad lines are listed, never lost
    rep = run_pipeline(tmp_path / "pipeline.toml", progress=False)
    bad = [(r["line"], r["reason"]) for r in read_jsonl(tmp_path / "out" / "removed.jsonl")]
    assert [x[0] for x in bad] == [2, 3]
    assert bad[0][1].startswith("bad_line: not UTF-8") and "lone surrogate" in bad[1][1]
    assert rep["documents_packed"] == 2 and rep["documents_in"] == 4
