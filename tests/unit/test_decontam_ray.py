"""qwen25.data.ray on a local Ray instance decides exactly as the local engine (skipped when ray
is not installed)."""

from __future__ import annotations

import random

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")


def test_ray_matches_local_engine(local_ray):
    import qwen25.data.ray as qray
    from qwen25.data import Decontaminator, benchmarks

    he = benchmarks.load("humaneval")[:30]
    rnd = random.Random(3)
    rows = []
    for i in range(120):
        if i % 7 == 0:
            src = he[rnd.randrange(len(he))]["text"]
            text = " ".join(w for w in src.split(" ") if rnd.random() > 0.1)
        else:
            text = f"record {i} " + " ".join(rnd.choice(["alpha", "beta", "gamma", "def", "return"]) for _ in range(40))
        rows.append({"i": i, "text": text})
    local = Decontaminator(he).check(rows)
    ds = ray.data.from_items(rows, override_num_blocks=4)
    ann = qray.annotate(ds, he, batch_size=16, concurrency=2).take_all()
    got = {r["i"]: (r[qray.INDEX_COL], r[qray.LCS_COL]) for r in ann}
    want = {i: ((m.test_index, m.lcs) if m else (-1, -1)) for i, m in enumerate(local)}
    assert got == want
    assert any(v[0] >= 0 for v in want.values())
    clean, removed = qray.split(ds, he, batch_size=32)
    assert sorted(r["i"] for r in removed.take_all()) == [i for i, m in enumerate(local) if m]
    assert sorted(r["i"] for r in clean.take_all()) == [i for i, m in enumerate(local) if not m]
