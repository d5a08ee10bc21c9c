"""Hostile-input trial of the Tokenizer API: every wrong-type argument raises an error that is
both a ``TypeError`` (the builtin a Python user expects) and a ``Qwen25Error`` (the README: "the
base of every error"), and a bad token id is named by its position, found here independently."""

from __future__ import annotations

import re
from typing import Any

import pytest

from qwen25.errors import Qwen25Error
from qwen25.tokenizer import IncrementalDecoder, Tokenizer


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.qwen25()


CALLS = {
    "encode None": lambda t: t.encode(None),
    "encode bytes": lambda t: t.encode(b"abc"),
    "encode_ordinary int": lambda t: t.encode_ordinary(5),
    "encode_batch str": lambda t: t.encode_batch("abc"),
    "encode_batch None item": lambda t: t.encode_batch(["a", None]),
    "encode_batch flat int item": lambda t: t.encode_batch(["a", 5], flat=True),
    "allowed_special str": lambda t: t.encode("x", allowed_special="nope"),
    "token_to_id int": lambda t: t.token_to_id(5),
    "decode str": lambda t: t.decode("abc"),
    "decode float id": lambda t: t.decode([1, 1.5]),
    "decode None id": lambda t: t.decode([None]),
    "decode_bytes float id": lambda t: t.decode_bytes([2.0]),
    "decode ignore float id": lambda t: t.decode([1.5], errors="ignore"),
    "decode_batch str id": lambda t: t.decode_batch([[1], [2, "x"]]),
    "chat messages str": lambda t: t.apply_chat_template("hello", tokenize=False),
    "chat message None": lambda t: t.apply_chat_template([None], tokenize=False),
    "chat tools str": lambda t: t.apply_chat_template([{"role": "user", "content": "hi"}], tools="x"),
    "incremental float id": lambda t: IncrementalDecoder(t).step([1.5]),
    "encode_batch None": lambda t: t.encode_batch(None),
    "encode_batch int": lambda t: t.encode_batch(5),
    "decode_batch None": lambda t: t.decode_batch(None),
    "decode_batch str": lambda t: t.decode_batch("abc"),
    "chat_template int": lambda t: t.apply_chat_template([{"role": "user", "content": "hi"}], chat_template=5),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_wrong_type_is_a_type_error_and_a_qwen25_error(tok: Tokenizer, name: str) -> None:
    with pytest.raises(TypeError) as e:
        CALLS[name](tok)
    assert isinstance(e.value, Qwen25Error), (name, type(e.value).__mro__)


@pytest.mark.parametrize("ids", [[1, 2, 3.5, 4], [None], [5, "7"], [0, 1, 2, [3]]])
def test_a_non_int_id_is_named_by_its_position(tok: Tokenizer, ids: list[Any]) -> None:
    first = next(i for i, v in enumerate(ids) if not isinstance(v, int))
    with pytest.raises(TypeError, match=rf"^ids\[{first}\] = {re.escape(repr(ids[first]))} is "):
        tok.decode(ids)
    batch = [[1, 2], ids]
    with pytest.raises(TypeError, match=rf"^batch\[1\]\[{first}\]"):
        tok.decode_batch(batch)


@pytest.mark.parametrize("make", [False, True], ids=["missing", "empty-folder"])
def test_from_pretrained_without_files_is_enoent(tmp_path: Any, make: bool) -> None:
    import errno

    p = tmp_path / "tok"
    if make:
        p.mkdir()
    with pytest.raises(FileNotFoundError) as e:
        Tokenizer.from_pretrained(p)
    assert e.value.errno == errno.ENOENT and isinstance(e.value, Qwen25Error)  # was "[Errno 0]"
    assert e.value.filename == str(p)


def test_decode_batch_checks_num_threads_as_encode_batch_does(tok: Tokenizer) -> None:
    for call in (lambda: tok.encode_batch(["a"], num_threads=0), lambda: tok.decode_batch([[1]], num_threads=0)):
        with pytest.raises(ValueError, match="num_threads must be a positive int, got 0") as e:
            call()
        assert isinstance(e.value, Qwen25Error)
