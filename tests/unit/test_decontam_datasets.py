"""HF `datasets` inputs for the decontaminator: a Dataset and an IterableDataset give exactly the
decisions of the same records passed as a list of dicts."""

from __future__ import annotations

import pytest

from qwen25.data import Decontaminator

datasets = pytest.importorskip("datasets")

TEST = [
    "def add(a, b):\n    return a + b  # adds two numbers and returns the sum of them all",
    "The quick brown fox jumps over the lazy dog while the cat sleeps under the warm sun today.",
]
TRAIN = [
    {"text": "unrelated text about the weather in Oslo, cold and windy all week long", "id": 0},
    {"text": "Notes: The quick brown fox jumps over the lazy dog while the cat sleeps under the warm sun today!", "id": 1},
    {"text": "", "id": 2},
    {"text": "def add(a, b):\n    return a + b  # adds two numbers and returns the sum of them all", "id": 3},
    {"text": "def sub(a, b): return a - b", "id": 4},
]


@pytest.mark.parametrize("mode", ["qwen", "lcs", "ngram"])
def test_dataset_and_iterable_dataset_inputs(mode: str) -> None:
    d = Decontaminator(TEST, mode=mode)
    expected = [m is not None for m in d.check(TRAIN)]
    assert expected[1] and expected[3] and not expected[0]
    ds = datasets.Dataset.from_list(TRAIN)
    for source in (ds, ds.to_iterable_dataset()):
        clean, removed = d.filter(source, batch_size=2)
        clean_ids = [r["id"] for r in clean]
        removed_ids = [r["id"] for r, _ in removed]
        assert removed_ids == [r["id"] for r, e in zip(TRAIN, expected) if e]
        assert clean_ids == [r["id"] for r, e in zip(TRAIN, expected) if not e]
    # a Dataset as the test set
    d2 = Decontaminator(datasets.Dataset.from_list([{"text": t} for t in TEST]), mode=mode)
    assert [m is not None for m in d2.check(TRAIN)] == expected
