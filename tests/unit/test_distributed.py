"""The stages on a local Ray (Ray Data, Arrow batches) give the local run's results exactly,
whatever the block layout."""

from __future__ import annotations

import random

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from qwen25.data import ExactDeduplicator, MinHashDeduplicator, QualityFilter  # noqa: E402
from qwen25.data.distributed import ray_dedup, ray_filter  # noqa: E402


def corpus(n=120):
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(300)] + ["the", "and", "of", "to"]
    base = []
    for _ in range(n // 3):
        lines = [" ".join(rng.choice(vocab) for _ in range(rng.randint(8, 16))) + "." for _ in range(6)]
        base.append("\n".join(lines))
    out = list(base)
    while len(out) < n:
        t = rng.choice(base)
        out.append(t if rng.random() < 0.3 else t.replace(".", "!", 1))
    rng.shuffle(out)
    return out + ["", "short"]


@pytest.mark.parametrize("blocks", [1, 5])
def test_ray_matches_local(local_ray, blocks):
    import ray.data

    texts = corpus()
    ds = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=blocks)
    rows = ray_filter(ds).take_all()
    want = QualityFilter().apply(texts)
    assert [r["keep"] for r in rows] == [r.keep for r in want]
    assert [(r["filter"], r["reason"]) for r in rows] == [(r.filter, r.reason) for r in want]
    assert [r["text"] for r in rows] == [r.final_text(t) for t, r in zip(texts, want)]
    res = ray_dedup(ds, mem_budget=500)
    ex = ExactDeduplicator().cluster(texts)
    mh = MinHashDeduplicator().cluster(texts)
    assert np.array_equal(res["exact_cluster"], ex)
    assert np.array_equal(res["minhash_cluster"], mh)
    idx = np.arange(len(texts))
    assert np.array_equal(res["keep"], (ex == idx) & (mh == idx))
    assert (ex != idx).sum() > 0 and (mh != idx).sum() > (ex != idx).sum()
