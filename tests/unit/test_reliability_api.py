"""Hostile input to the Python API and to ``qwen25 generate`` (issue 16, item 6): every failure is a
:class:`qwen25.Qwen25Error` that names the fault (and keeps the builtin meaning), never a raw
``jinja2``/``TypeError``/``OverflowError``/``UnicodeError``; valid input renders as transformers does.

The references: transformers' ``apply_chat_template`` on the shipped Qwen2.5 files (it too refuses
each bad conversation below, with a raw error, and renders the valid edge cases we must match), and
HF ``tokenizers`` for the ids that are in range."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import qwen25
from qwen25.cli import main
from qwen25.data import MinHashDeduplicator

USER = {"role": "user", "content": "weather?"}
CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}


@pytest.fixture(scope="module")
def hf_auto(qwen25_data_dir: Path):  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(qwen25_data_dir))


# -- apply_chat_template ----------------------------------------------------------------------------

BAD_CONVERSATIONS: list[tuple[str, list[Any], tuple[str, ...]]] = [
    # (name, messages, what the message must name)
    ("user without content", [{"role": "user"}], ("messages[0]", "content")),
    ("content None", [USER, {"role": "user", "content": None}], ("messages[1]", "content")),
    ("assistant, empty tool_calls, no content", [USER, {"role": "assistant", "tool_calls": []}], ("messages[1]", "content")),
    ("tool_calls a string", [USER, {"role": "assistant", "content": "", "tool_calls": "get_weather"}], ("messages[1]", "tool_calls")),
    ("tool_calls a dict", [USER, {"role": "assistant", "content": "", "tool_calls": CALL}], ("messages[1]", "tool_calls")),
    ("tool call an int", [USER, {"role": "assistant", "content": "", "tool_calls": [5]}], ("messages[1]", "tool_calls[0]")),
    ("tool call without arguments", [USER, {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]}],
     ("messages[1]", "tool_calls[0]", "arguments")),
    ("tool call, function a string", [USER, {"role": "assistant", "content": "", "tool_calls": [{"function": "f"}]}],
     ("messages[1]", "tool_calls[0]", "function")),
    ("content a list, for a string-only template", [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
     ("messages[0]", "content")),
]


@pytest.mark.parametrize("name,messages,what", BAD_CONVERSATIONS, ids=[c[0] for c in BAD_CONVERSATIONS])
def test_bad_conversations_raise_qwen25_errors_naming_the_message(tok: qwen25.Tokenizer, hf_auto, name, messages, what) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception) as hf_err:  # the reference refuses it too, with a raw error
        hf_auto.apply_chat_template(messages, tokenize=False)
    assert not isinstance(hf_err.value, qwen25.Qwen25Error)
    for tokenize in (False, True):
        with pytest.raises(qwen25.Qwen25Error) as e:
            tok.apply_chat_template(messages, tokenize=tokenize)
        assert isinstance(e.value, ValueError)
        for w in what:
            assert w in str(e.value), (w, str(e.value))


def test_empty_conversation(tok: qwen25.Tokenizer, hf_auto) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        hf_auto.apply_chat_template([], tokenize=False)
    with pytest.raises(qwen25.Qwen25ValueError, match="empty"):
        tok.apply_chat_template([], tokenize=False)


def test_tool_calls_transformers_would_render_as_garbage_are_refused(tok: qwen25.Tokenizer, hf_auto) -> None:  # type: ignore[no-untyped-def]
    # transformers renders a call without a name as `{"name": "", ...}`: refused here, naming it
    msgs = [USER, {"role": "assistant", "content": "", "tool_calls": [{"arguments": {}}]}]
    assert '{"name": "", "arguments": {}}' in hf_auto.apply_chat_template(msgs, tokenize=False)
    with pytest.raises(qwen25.Qwen25ValueError, match=r"messages\[1\]\.tool_calls\[0\].*name"):
        tok.apply_chat_template(msgs, tokenize=False)
    msgs = [USER, {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "{city: Oslo"}}]}]
    with pytest.raises(qwen25.Qwen25ValueError, match=r"messages\[1\]\.tool_calls\[0\].*arguments"):
        tok.apply_chat_template(msgs, tokenize=False)


VALID_EDGES: list[tuple[str, list[dict[str, Any]]]] = [
    ("empty tool_calls with content", [USER, {"role": "assistant", "content": "sunny", "tool_calls": []}]),
    ("tool_calls None with content", [USER, {"role": "assistant", "content": "sunny", "tool_calls": None}]),
    ("tool call, content None", [USER, {"role": "assistant", "content": None, "tool_calls": [CALL]}]),
    ("tool call, no content", [USER, {"role": "assistant", "tool_calls": [CALL]}]),
    ("flat tool call", [USER, {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {"a": 1}}]}]),
    ("JSON string arguments", [USER, {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": '{"city": "Oslo"}'}}]}]),
]


@pytest.mark.parametrize("name,messages", VALID_EDGES, ids=[c[0] for c in VALID_EDGES])
def test_valid_edge_cases_render_as_transformers(tok: qwen25.Tokenizer, hf_auto, name, messages) -> None:  # type: ignore[no-untyped-def]
    for agp in (False, True):
        expected = hf_auto.apply_chat_template(messages, add_generation_prompt=agp, tokenize=False)
        assert tok.apply_chat_template(messages, add_generation_prompt=agp, tokenize=False) == expected


def test_template_errors_are_qwen25_errors(tok: qwen25.Tokenizer) -> None:
    with pytest.raises(qwen25.Qwen25ValueError, match="chat template"):
        tok.apply_chat_template([USER], tokenize=False, chat_template="{{ raise_exception('no users here') }}")
    with pytest.raises(qwen25.Qwen25ValueError, match="no users here"):
        tok.apply_chat_template([USER], tokenize=False, chat_template="{{ raise_exception('no users here') }}")
    with pytest.raises(qwen25.Qwen25ValueError, match="chat template"):
        tok.apply_chat_template([USER], tokenize=False, chat_template="{% if %}")
    with pytest.raises(qwen25.Qwen25ValueError, match="chat template"):  # a template that fails on valid input
        tok.apply_chat_template([USER], tokenize=False, chat_template="{{ messages[0].content + 1 }}")


# -- encode / decode --------------------------------------------------------------------------------

def test_lone_surrogates_are_qwen25_errors(tok: qwen25.Tokenizer, hf_tok) -> None:  # type: ignore[no-untyped-def]
    text = "ab\ud800c"
    with pytest.raises(Exception) as ref:  # HF tokenizers cannot encode it either
        hf_tok.encode(text)
    assert not isinstance(ref.value, qwen25.Qwen25Error)
    for call in (lambda: tok.encode(text), lambda: tok.encode_ordinary(text), lambda: tok.pre_tokenize(text)):
        with pytest.raises(qwen25.Qwen25ValueError, match=r"U\+D800 at index 2"):
            call()
    for flat in (False, True):
        with pytest.raises(qwen25.Qwen25ValueError, match=r"texts\[1\].*U\+D800 at index 2"):
            tok.encode_batch(["fine", text], flat=flat)
    with pytest.raises(qwen25.Qwen25ValueError, match="U\\+DFFF"):
        tok.apply_chat_template([{"role": "user", "content": "x\udfff"}])
    assert tok.token_to_id("\ud800") is None


@pytest.mark.parametrize("bad", [2**64, 2**63, -1, -(2**70), 10**6])
def test_out_of_range_ids_are_unknown_token_errors(tok: qwen25.Tokenizer, hf_tok, bad: int) -> None:  # type: ignore[no-untyped-def]
    assert tok.decode([9707, 1879]) == hf_tok.decode([9707, 1879])
    calls = [
        lambda: tok.decode([9707, bad]),
        lambda: tok.decode([9707, bad], errors="ignore"),
        lambda: tok.decode_bytes([9707, bad]),
        lambda: tok.decode_batch([[9707], [1879, bad]]),
        lambda: tok.decode_batch([[9707], [1879, bad]], errors="ignore"),
        lambda: tok.incremental_decoder().step([9707, bad]),
        lambda: tok.incremental_decoder().step(bad),
    ]
    for call in calls:
        with pytest.raises(qwen25.UnknownTokenError) as e:
            call()
        assert isinstance(e.value, (KeyError, ValueError)) and e.value.token_id == bad
        assert str(bad) in str(e.value)
    assert tok.id_to_token(bad) is None


# -- MinHashDeduplicator ----------------------------------------------------------------------------

def test_minhash_num_perm_is_bounded() -> None:
    MinHashDeduplicator(num_perm=MinHashDeduplicator.MAX_NUM_PERM, bands=14, rows=8)
    for v in (10**9, MinHashDeduplicator.MAX_NUM_PERM + 1):
        with pytest.raises(qwen25.Qwen25ValueError, match=f"num_perm.*{v}"):
            MinHashDeduplicator(num_perm=v)
    with pytest.raises(qwen25.Qwen25ValueError, match="bands"):
        MinHashDeduplicator(num_perm=112, bands=10**9, rows=1)


# -- qwen25 generate --------------------------------------------------------------------------------

def _no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_generate_on_a_missing_cuda_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    _no_cuda(monkeypatch)
    for dev in ("cuda:7", "cuda"):
        assert main(["generate", "hi", "--model", str(tmp_path), "--device", dev]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--device {dev}" in err and "CUDA" in err, err
    assert main(["generate", "hi", "--model", str(tmp_path), "--device", "tpu:0"]) == 2
    assert "--device tpu:0" in capsys.readouterr().err


def test_generate_on_a_cuda_index_past_the_last_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert main(["generate", "hi", "--model", str(tmp_path), "--device", "cuda:7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda:7" in err and "2 CUDA device(s), cuda:0 to cuda:1" in err, err


def test_generate_prompt_that_is_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "prompt.txt"
    bad.write_bytes(b"hello \xff world")
    assert main(["generate", "--prompt-file", str(bad), "--model", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "UTF-8" in err and "byte 6" in err, err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9\n"), encoding="utf-8"))
    assert main(["generate", "--model", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stdin" in err and "UTF-8" in err and "byte 3" in err, err
    # argv: Python hands undecodable bytes over as surrogate escapes
    assert main(["generate", os.fsdecode(b"caf\xe9"), "--model", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument" in err and "UTF-8" in err and "byte 3" in err, err
    assert main(["generate", "x", "--prompt-file", str(bad), "--model", str(tmp_path)]) == 2  # one prompt, not two
    capsys.readouterr()


def test_generate_errors_without_a_traceback_in_a_real_process(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    for args, code, what in (
        ([b"hi", b"--device", b"cuda:7"], 2, b"--device cuda:7"),
        ([b"caf\xe9"], 1, b"not valid UTF-8"),
    ):
        p = subprocess.run([sys.executable, "-m", "qwen25.cli", b"generate", *args, b"--model", os.fsencode(tmp_path)],
                           capture_output=True, env=env, timeout=300)
        assert p.returncode == code, p.stderr
        assert b"Traceback" not in p.stderr and what in p.stderr and p.stderr.count(b"\n") == 1, p.stderr
