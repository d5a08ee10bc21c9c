"""The binding's little-endian byte buffers (``convert::le_bytes`` / ``from_le_bytes``): what
numpy reads with ``<u4``/``<u8``/``<f4`` and Python with ``int.from_bytes(.., "little")``, and a
ValueError (a ``Qwen25Error``) naming the buffer when its length is not a whole number of values."""

from __future__ import annotations

import numpy as np
import pytest

from qwen25 import _native
from qwen25.errors import Qwen25Error

TEXTS = ["the cat sat on the mat", "a dog", "the cat sat on the mat", "", "é ü"]


def test_u128_hashes_read_back_as_python_ints() -> None:
    raw = _native.exact_hashes(TEXTS)
    assert len(raw) == 16 * len(TEXTS)
    got = [int.from_bytes(raw[16 * i:16 * i + 16], "little") for i in range(len(TEXTS))]
    assert got == [_native.exact_hash(t) for t in TEXTS]
    # and they go back in: the cluster ids (first index of each text) from the hashes equal the texts'
    by_hash = np.frombuffer(_native.ExactDedup().add_hashes(raw), dtype="<u8").tolist()
    by_text = np.frombuffer(_native.ExactDedup().add(TEXTS), dtype="<u8").tolist()
    assert by_hash == by_text == [0, 1, 0, 3, 4]


def test_u32_signatures_round_trip_through_a_stream() -> None:
    h = _native.MinHasher(num_perm=16, bands=4, rows=4, ngram=2)
    sigs = h.signatures(TEXTS)
    arr = np.frombuffer(sigs, dtype="<u4").reshape(len(TEXTS), 16)
    assert [int(x) for x in arr[0]] == [int(x) for x in arr[2]]  # equal texts, equal signatures
    a, b = _native.MinHashStream(h), _native.MinHashStream(h)
    a.add(TEXTS)
    b.add_signatures(sigs)
    assert a.finish() == b.finish()


@pytest.mark.parametrize("call, what", [
    (lambda: _native.ExactDedup().add_hashes(b"\0" * 15), "16-byte hashes"),
    (lambda: _native.MinHashStream(_native.MinHasher(num_perm=16, bands=4, rows=4)).add_signatures(b"\0" * 6),
     "whole number of uint32"),
])
def test_a_ragged_buffer_is_a_value_error(call, what) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=what) as e:
        call()
    assert isinstance(e.value, Qwen25Error)


def test_packer_token_batch_checks_its_buffers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qwen25 import Tokenizer

    p = _native.Packer(Tokenizer.qwen25()._tok, str(tmp_path / "p"), 4, 8, 0)
    toks = np.array([5, 6, 7, 8, 9], dtype="<u4").tobytes()
    lens = np.array([2, 3], dtype="<u8").tobytes()
    for bad_toks, bad_lens, what in [(toks[:-1], lens, "uint32 bytes"), (toks, lens[:-1], "uint64 bytes"),
                                     (toks[:-4], lens, "add up to 5 tokens but 4")]:
        with pytest.raises(ValueError, match=what) as e:
            p.add_token_batch(bad_toks, bad_lens, [0, 1])
        assert isinstance(e.value, Qwen25Error)
    assert p.add_token_batch(toks, lens, [0, 1]) == 5
