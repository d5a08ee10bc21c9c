"""Packing: concatenating the shards and removing separators gives back exactly the tokens of
the documents (reference: qwen25.Tokenizer.encode_ordinary per document, itself checked against
HF tokenizers elsewhere); the reader returns them by sequence and by document."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen25.data import PackedDataset, TokenPacker
from qwen25.errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError

PIECES = st.sampled_from(list("ab cé中\n!") + ["<|endoftext|>", " the", "Hello"])
DOCS = st.lists(st.lists(PIECES, max_size=20).map("".join), max_size=30)


@settings(max_examples=25, deadline=None)
@given(DOCS, st.integers(1, 17), st.integers(1, 4), st.integers(1, 9))
def test_roundtrip_any_shape(tmp_path_factory, tok, docs, seq_len, per_shard, batch):
    out = tmp_path_factory.mktemp("packed")
    with TokenPacker(out, seq_len=seq_len, seqs_per_shard=per_shard, seed=3, num_threads=2) as p:
        for k in range(0, len(docs), batch):
            p.add(docs[k : k + batch], source="a" if k % 2 == 0 else "b")
    ds = PackedDataset(out)
    eos = tok.token_to_id("<|endoftext|>")
    want = [tok.encode_ordinary(d) for d in docs]
    # the stream is doc, eos, doc, eos, ... then padding eos up to a whole sequence
    flat = np.concatenate([ds[i] for i in range(len(ds))]) if len(ds) else np.zeros(0, np.uint32)
    stream = [t for w in want for t in (*w, eos)]
    assert flat[: len(stream)].tolist() == stream
    assert (flat[len(stream) :] == eos).all() and len(flat) - len(stream) < seq_len
    assert len(flat) % seq_len == 0
    # removing separators gives exactly the documents' tokens (no document token is eos)
    assert flat[flat != eos].tolist() == [t for w in want for t in w]
    assert ds.num_documents == len(docs)
    for i, w in enumerate(want):
        assert ds.document(i).tolist() == w
    m = ds.manifest
    assert m["counts"]["documents"] == len(docs)
    assert m["counts"]["document_tokens"] == sum(map(len, want))
    assert m["counts"]["sequences"] == len(ds)
    assert sum(s["tokens"] for s in m["sources"]) == sum(map(len, want))
    assert m["seed"] == 3
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_document_starts_and_seek(tmp_path, tok):
    docs = ["one two three", "four", "five six seven eight nine ten eleven"]
    with TokenPacker(tmp_path, seq_len=4, seqs_per_shard=2) as p:
        p.add(docs, source=["x", "y", "x"])
    ds = PackedDataset(tmp_path)
    starts = [int(s) for s, _, _ in ds.doc_index]
    for i in range(len(ds)):
        want = sorted({0} | {s - 4 * i for s in starts if 4 * i <= s < 4 * i + 4})
        assert ds.document_starts(i).tolist() == want
    assert [ds.document_source(i) for i in range(3)] == ["x", "y", "x"]
    seqs = list(ds.iter_sequences(start=1))
    assert len(seqs) == len(ds) - 1 and np.array_equal(seqs[0], ds[1])
    assert np.array_equal(ds[-1], ds[len(ds) - 1])
    with pytest.raises(IndexError):
        ds.sequence(len(ds))
    with pytest.raises(IndexError):
        ds.document(3)


def test_identical_for_thread_counts(tmp_path):
    docs = [f"document number {i} " * (i % 7 + 1) for i in range(200)]
    outs = []
    for threads, batch in ((1, 200), (4, 13)):
        d = tmp_path / f"t{threads}"
        with TokenPacker(d, seq_len=64, seqs_per_shard=5, num_threads=threads) as p:
            for k in range(0, len(docs), batch):
                p.add(docs[k : k + batch])
        outs.append(b"".join((d / f).read_bytes() for f in sorted(os.listdir(d)) if f.endswith((".bin", ".idx"))))
    assert outs[0] == outs[1]


def test_bad_inputs(tmp_path):
    with pytest.raises(Qwen25ValueError):
        TokenPacker(tmp_path / "a", seq_len=0)
    p = TokenPacker(tmp_path / "b", seq_len=8)
    with pytest.raises(TypeError):
        p.add("a single string")
    with pytest.raises(Qwen25ValueError, match="sources"):
        p.add(["a", "b"], source=["x"])
    p.finish()
    with pytest.raises(Qwen25FileNotFoundError):
        PackedDataset(tmp_path / "missing")
    bad = tmp_path / "b" / "manifest.json"
    bad.write_text("{\n  oops")
    with pytest.raises(FormatError, match="manifest.json:2"):
        PackedDataset(tmp_path / "b")
    m = json.loads("{}")
    bad.write_text(json.dumps(m))
    with pytest.raises(FormatError, match="format"):
        PackedDataset(tmp_path / "b")
