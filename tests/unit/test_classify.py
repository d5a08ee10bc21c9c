"""Domain classifier: the Rust SGD against a numpy re-implementation of the documented training
rule on the same features; held-out accuracy on synthetic domains; save/load; scorer interface
with a small deterministic scorer."""

from __future__ import annotations

import random

import numpy as np
import pytest

from qwen25.data.classify import CallableScorer, DomainClassifier, Scorer, classifier_features
from qwen25.errors import FormatError, Qwen25ValueError

M64 = (1 << 64) - 1


def splitmix(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def ref_train(texts, labels, dim, epochs, lr, seed, **cfg):
    names = sorted(set(labels))
    y = [names.index(lab) for lab in labels]
    xs = [classifier_features(t, dim=dim, seed=seed, **cfg) for t in texts]
    k = len(names)
    W = np.zeros((dim, k))
    b = np.zeros(k)
    n = len(xs)
    order = list(range(n))
    rng = seed ^ 0x5EED
    step, total = 0, max(epochs * n, 1)
    for _ in range(epochs):
        for i in range(n - 1, 0, -1):
            rng, r = splitmix(rng)
            j = r % (i + 1)
            order[i], order[j] = order[j], order[i]
        for i in order:
            a = lr * (1 - step / total)
            step += 1
            z = b.copy()
            for f, v in xs[i]:
                z += W[f] * v
            p = np.exp(z - z.max())
            p /= p.sum()
            p[y[i]] -= 1
            b -= a * p
            for f, v in xs[i]:
                W[f] -= a * p * v
    return names, W, b


def corpus(seed, n):
    rng = random.Random(seed)
    code = "def return import class self lambda yield print for while if else none true".split()
    web = "the town river market people story garden bread winter children music history".split()
    math = "theorem proof lemma integral equation matrix prime number sum limit vector".split()
    out = []
    for _ in range(n):
        lab, vocab = rng.choice([("code", code), ("web", web), ("math", math)])
        words = [rng.choice(vocab) if rng.random() < 0.6 else rng.choice(code + web + math) for _ in range(20)]
        out.append((" ".join(words), lab))
    return out


def test_training_matches_numpy_reference():
    data = corpus(0, 40)
    texts, labels = [t for t, _ in data], [lab for _, lab in data]
    cfg = dict(dim=512, epochs=3, lr=0.5, seed=7, char_min=2, char_max=3)
    clf = DomainClassifier.train(texts, labels, **cfg)
    names, W, b = ref_train(texts, labels, **cfg)
    assert clf.labels == names
    probe = [t for t, _ in corpus(1, 10)]
    got = clf.predict_proba(probe)
    for t, row in zip(probe, got):
        z = b.copy()
        for f, v in classifier_features(t, dim=512, seed=7, char_min=2, char_max=3):
            z += W[f] * v
        p = np.exp(z - z.max())
        p /= p.sum()
        np.testing.assert_allclose(row, p, rtol=2e-3, atol=2e-4)


def test_heldout_accuracy_and_determinism(tmp_path):
    train, test = corpus(2, 600), corpus(3, 200)
    clf = DomainClassifier.train([t for t, _ in train], [lab for _, lab in train], dim=1 << 14, num_threads=2)
    acc = np.mean([p == lab for p, (_, lab) in zip(clf.predict([t for t, _ in test]), test)])
    assert acc > 0.9
    again = DomainClassifier.train([t for t, _ in train], [lab for _, lab in train], dim=1 << 14, num_threads=1)
    probe = [t for t, _ in test[:20]]
    assert np.array_equal(again.predict_proba(probe), clf.predict_proba(probe))
    path = tmp_path / "clf.bin"
    clf.save(path)
    loaded = DomainClassifier.load(path)
    assert loaded.labels == clf.labels and loaded.config == clf.config
    assert np.array_equal(loaded.predict_proba(probe), clf.predict_proba(probe))
    assert isinstance(clf, Scorer) and clf.score(probe).shape == (20, 3)


def test_bad_inputs(tmp_path):
    with pytest.raises(Qwen25ValueError, match="unknown classifier option"):
        DomainClassifier.train(["a"], ["x"], epoch=3)
    with pytest.raises(Qwen25ValueError, match="labels"):
        DomainClassifier.train(["a", "b"], ["x"])
    with pytest.raises(Qwen25ValueError, match="no training"):
        DomainClassifier.train([], [])
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a model")
    with pytest.raises(FormatError, match="bad.bin"):
        DomainClassifier.load(bad)


def test_callable_scorer_with_deterministic_scorer():
    def length_scorer(batch):  # a tiny deterministic "model"
        return {"length": [len(t) for t in batch], "vowels": [sum(c in "aeiou" for c in t) for t in batch]}

    s = CallableScorer(length_scorer, batch_size=2)
    texts = ["abc", "hello world", "", "queue"]
    got = s.score(texts)
    assert s.dimensions == ["length", "vowels"]
    assert got.tolist() == [[3, 1], [11, 3], [0, 0], [5, 4]]
    assert isinstance(s, Scorer)
    arr = CallableScorer(lambda b: np.ones((len(b), 3)), batch_size=3).score(texts)
    assert arr.shape == (4, 3)
    with pytest.raises(Qwen25ValueError, match="shape"):
        CallableScorer(lambda b: np.ones((1, 2))).score(texts)
    with pytest.raises(Qwen25ValueError, match="lacks"):
        CallableScorer(lambda b: {"x": [0] * len(b)}, ["y"]).score(texts)
