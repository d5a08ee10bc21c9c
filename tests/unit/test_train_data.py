"""The training loop's batches (qwen25.train.data) against a pure-Python reference built from the
documents the test packed itself, and its errors on bad packed folders.

The helpers here (a tiny tokenizer, random documents, ``write_packed``, ``reference_rows``) are
shared by the other test_train_* modules."""

from __future__ import annotations

import functools
import json
import os
import random
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")

from qwen25 import train_bpe  # noqa: E402
from qwen25.data import TokenPacker  # noqa: E402
from qwen25.errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError  # noqa: E402
from qwen25.train import Stage  # noqa: E402
from qwen25.train.data import StageData  # noqa: E402

V = 320  # model vocabulary of the tiny test models (the tokenizer's ids all fit below it)


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():  # type: ignore[no-untyped-def]
    """A byte-level BPE of at most 300 tokens; ``<|endoftext|>`` (the packer's separator) is its last id."""
    texts = [f"document {i}: the quick brown fox jumps over {i % 7} lazy dogs." for i in range(200)]
    return train_bpe(texts, 300, num_threads=1)


def sep_id() -> int:
    s = tiny_tokenizer().token_to_id("<|endoftext|>")
    assert s is not None and s < V
    return int(s)


def make_docs(n: int, seed: int, lo: int = 3, hi: int = 40, learnable: bool = False) -> list[list[int]]:
    """``n`` documents of random ids below the separator, lengths in [lo, hi]. ``learnable``:
    each id is its predecessor + 1 (mod the separator) nine times in ten, so a model can learn."""
    r = random.Random(seed)
    s = sep_id()
    docs = []
    for _ in range(n):
        d = [r.randrange(0, s)]
        for _ in range(r.randint(lo, hi) - 1):
            d.append((d[-1] + 1) % s if learnable and r.random() < 0.9 else r.randrange(0, s))
        docs.append(d)
    return docs


def write_packed(path: Path | str, docs: list[list[int]], seq_len: int, seqs_per_shard: int = 16384) -> str:
    with TokenPacker(path, tokenizer=tiny_tokenizer(), seq_len=seq_len, seqs_per_shard=seqs_per_shard) as p:
        for d in docs:
            p.add_tokens(d)
    return str(path)


def reference_rows(docs: list[list[int]], seq_len: int, mask_boundaries: bool = True
                   ) -> list[tuple[list[int], list[int], list[int]]]:
    """(ids, positions, labels) of every packed row, in pure Python from the documents: each
    document then a separator; the last row padded with separators; positions restart at every
    document start and at every row start, the separator and the padding continue the positions
    before them; labels are the ids, -100 on the padding and (mask_boundaries) on each document's
    first token unless it starts the row (that label is never a target: the model shifts)."""
    s = sep_id()
    flat, starts = [], []
    for d in docs:
        starts.append(len(flat))
        flat += d + [s]
    real = len(flat)
    while len(flat) % seq_len:
        flat.append(s)
    start_set = set(starts)
    rows = []
    for r in range(len(flat) // seq_len):
        ids, pos, lab = [], [], []
        p = 0
        for t in range(seq_len):
            g = r * seq_len + t
            p = 0 if (t == 0 or g in start_set) else p + 1
            ids.append(flat[g])
            pos.append(p)
            if g >= real or (mask_boundaries and t > 0 and g in start_set):
                lab.append(-100)
            else:
                lab.append(flat[g])
        rows.append((ids, pos, lab))
    return rows


def test_reference_rows_on_a_worked_example() -> None:
    """The oracle itself, on a case worked by hand (separator s, seq_len 4)."""
    s = sep_id()
    rows = reference_rows([[1, 2], [3, 4, 5]], 4)
    # flat: 1 2 s 3 | 4 5 s s(pad) ; document 2 starts at 3
    assert rows[0] == ([1, 2, s, 3], [0, 1, 2, 0], [1, 2, s, -100])
    assert rows[1] == ([4, 5, s, s], [0, 1, 2, 3], [4, 5, s, -100])


def _stage(data: str | tuple[str, ...], seq_len: int, **kw) -> Stage:  # type: ignore[no-untyped-def]
    return Stage(name="s", data=(data,) if isinstance(data, str) else data, seq_len=seq_len, steps=1, **kw)


@pytest.mark.parametrize("mask", [True, False])
def test_batches_equal_the_reference_in_file_order(tmp_path, mask: bool) -> None:
    docs = make_docs(60, seed=1)
    path = write_packed(tmp_path / "p", docs, 16, seqs_per_shard=7)  # rows span several shards
    ref = reference_rows(docs, 16, mask_boundaries=mask)
    data = StageData(_stage(path, 16), 0, seed=0, shuffle=False, vocab_size=V, mask_document_boundaries=mask)
    got = []
    while len(got) < len(ref):
        rows = data.take_step(6)
        for mb in data.micro_batches(rows, 4):
            for r in range(mb.input_ids.shape[0]):
                got.append((mb.input_ids[r].tolist(), mb.position_ids[r].tolist(), mb.labels[r].tolist()))
            assert mb.n_targets == sum(1 for r in mb.labels.tolist() for x in r[1:] if x != -100)
    assert got[:len(ref)] == ref
    assert got[len(ref):] == ref[:len(got) - len(ref)]  # the next epoch starts over (no shuffle)
    assert data.repeated == [True]


def test_shuffled_epochs_are_permutations_and_resume_exactly(tmp_path) -> None:
    docs = make_docs(80, seed=2)
    path = write_packed(tmp_path / "p", docs, 16)
    n = len(reference_rows(docs, 16))
    stage = _stage(path, 16)
    data = StageData(stage, 0, seed=3, shuffle=True, vocab_size=V)
    order = [i for _ in range(3) for _, i in data.take_step(n)]
    epochs = [order[k * n:(k + 1) * n] for k in range(3)]
    assert all(sorted(e) == list(range(n)) for e in epochs)
    assert epochs[0] != epochs[1] and epochs[0] != list(range(n))
    # the same seed gives the same order; a saved position continues it
    again = StageData(stage, 0, seed=3, shuffle=True, vocab_size=V)
    head = [i for _, i in again.take_step(n + 5)]
    assert head == order[:n + 5]
    resumed = StageData(stage, 0, seed=3, shuffle=True, vocab_size=V)
    resumed.load_state(json.loads(json.dumps(again.state())))
    assert [i for _, i in resumed.take_step(2 * n - 5)] == order[n + 5:]
    other = StageData(stage, 0, seed=4, shuffle=True, vocab_size=V)
    assert [i for _, i in other.take_step(n)] != epochs[0]


def test_two_folders_keep_their_shares_in_every_prefix(tmp_path) -> None:
    long = write_packed(tmp_path / "long", make_docs(40, seed=4, lo=30, hi=60), 32)
    short = write_packed(tmp_path / "short", make_docs(120, seed=5, lo=2, hi=10), 32)
    data = StageData(_stage((long, short), 32, weights=(0.4, 0.6)), 1, seed=0, shuffle=True, vocab_size=V)
    taken = [0, 0]
    for k in range(1, 201):
        (f, _), = data.take_step(1)
        taken[f] += 1
        assert abs(taken[0] - 0.4 * k) <= 1 and abs(taken[1] - 0.6 * k) <= 1
    assert data.state()["taken"] == taken and data.state()["rows"] == 200
    # the rows really come from each folder
    rows = data.take_step(5)
    for mb in data.micro_batches(rows, 1):
        (f, i), = mb.rows
        ref = reference_rows(make_docs(40, 4, 30, 60) if f == 0 else make_docs(120, 5, 2, 10), 32)
        assert mb.input_ids[0].tolist() == ref[i][0]


# ------------------------------------------------------------------------------- bad input
def test_missing_folder(tmp_path) -> None:
    with pytest.raises(Qwen25FileNotFoundError, match=r"stage 's': data folder .*nowhere does not exist"):
        StageData(_stage(str(tmp_path / "nowhere"), 16), 0, seed=0, shuffle=False, vocab_size=V)


def test_unfinished_folder(tmp_path) -> None:
    p = TokenPacker(tmp_path / "p", tokenizer=tiny_tokenizer(), seq_len=16, seqs_per_shard=2)
    for d in make_docs(30, seed=6):
        p.add_tokens(d)  # never finished: shards may be there, the manifest is not
    with pytest.raises(Qwen25FileNotFoundError, match=r"data folder .*/p: no manifest \(unfinished.*still writing"):
        StageData(_stage(str(tmp_path / "p"), 16), 0, seed=0, shuffle=False, vocab_size=V)


def test_missing_shard_and_bad_manifest(tmp_path) -> None:
    path = write_packed(tmp_path / "p", make_docs(40, seed=7), 16, seqs_per_shard=3)
    os.remove(os.path.join(path, "shard_00001.bin"))
    with pytest.raises(Qwen25FileNotFoundError, match=r"data folder .*shard_00001\.bin"):
        StageData(_stage(path, 16), 0, seed=0, shuffle=False, vocab_size=V)
    Path(path, "manifest.json").write_text('{"format": "qwen25-packed-v1",\n  "seq_len": }')
    with pytest.raises(FormatError, match=r"manifest\.json:2"):
        StageData(_stage(path, 16), 0, seed=0, shuffle=False, vocab_size=V)


def test_seq_len_mismatch(tmp_path) -> None:
    path = write_packed(tmp_path / "p", make_docs(20, seed=8), 32)
    with pytest.raises(Qwen25ValueError, match=r"packed at seq_len 32, but the stage trains at seq_len 16"):
        StageData(_stage(path, 16), 0, seed=0, shuffle=False, vocab_size=V)


def test_separator_outside_the_vocabulary(tmp_path) -> None:
    path = write_packed(tmp_path / "p", make_docs(20, seed=9), 16)
    with pytest.raises(Qwen25ValueError, match=rf"separator id {sep_id()} is outside the model's vocabulary \(vocab_size 100\)"):
        StageData(_stage(path, 16), 0, seed=0, shuffle=False, vocab_size=100)


def test_token_ids_outside_the_vocabulary(tmp_path) -> None:
    docs = make_docs(20, seed=10)
    docs[5][2] = V + 7  # one bad id in document 5
    path = write_packed(tmp_path / "p", docs, 16)
    start = sum(len(d) + 1 for d in docs[:5]) + 2  # its global token offset
    data = StageData(_stage(path, 16), 0, seed=0, shuffle=False, vocab_size=V)
    rows = data.take_step(len(reference_rows(docs, 16)))
    with pytest.raises(Qwen25ValueError, match=rf"sequence {start // 16} \(token {start}, offset {start % 16} in the row\) "
                                               rf"holds token id {V + 7}, outside the model's vocabulary"):
        data.micro_batches(rows, 1)


def test_empty_folder(tmp_path) -> None:
    path = write_packed(tmp_path / "p", [], 16)
    with pytest.raises(Qwen25ValueError, match="holds no sequences"):
        StageData(_stage(path, 16), 0, seed=0, shuffle=False, vocab_size=V)
