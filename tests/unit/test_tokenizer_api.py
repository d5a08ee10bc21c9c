"""The qwen25.Tokenizer API: loading and saving HF folders, batches, streaming decode, errors."""

from __future__ import annotations

import json
import multiprocessing as mp
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qwen25

SAMPLES = [
    "Hello world",
    "",
    "def f(x):\n\treturn x  # ok\r\n",
    "你好，世界！今天天气很好。",
    "<|im_start|>user\nHi<|im_end|>\n",
    "I ❤️ Rust 🦀 12345 don't I'LL ſ",
    " \u3000\xa0 x  ",
]


# -- loading ----------------------------------------------------------------------------------------

def test_from_pretrained_on_the_shipped_folder_equals_embedded(tok: qwen25.Tokenizer, qwen25_data_dir: Path) -> None:
    t = qwen25.Tokenizer.from_pretrained(qwen25_data_dir)
    assert t.vocab_size == tok.vocab_size
    assert t.added_tokens == tok.added_tokens
    assert t.encode_batch(SAMPLES) == tok.encode_batch(SAMPLES)
    assert t.chat_template == tok.chat_template


def test_from_pretrained_reads_hf_tokenizer_json(tmp_path: Path, hf_tok, tok: qwen25.Tokenizer) -> None:  # type: ignore[no-untyped-def]
    hf_tok.save(str(tmp_path / "tokenizer.json"))
    for src in (tmp_path, tmp_path / "tokenizer.json"):
        t = qwen25.Tokenizer.from_pretrained(src)
        assert t.encode_batch(SAMPLES) == [hf_tok.encode(s).ids for s in SAMPLES]
        assert [a.content for a in t.added_tokens] == [a.content for a in tok.added_tokens]


def test_save_pretrained_loads_in_hf_tokenizers_and_transformers(tmp_path: Path, tok: qwen25.Tokenizer) -> None:
    from tokenizers import Tokenizer as HFTokenizer
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"}
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(tmp_path))
    for s in SAMPLES:
        ids = tok.encode(s)
        assert hf.encode(s).ids == ids
        assert auto(s, add_special_tokens=False)["input_ids"] == ids
    # and back: our loader reads what we wrote, both ways of reading it
    assert qwen25.Tokenizer.from_pretrained(tmp_path).encode_batch(SAMPLES) == tok.encode_batch(SAMPLES)
    (tmp_path / "tokenizer.json").unlink()
    assert qwen25.Tokenizer.from_pretrained(tmp_path).encode_batch(SAMPLES) == tok.encode_batch(SAMPLES)


def _gpt2_style_folder(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A GPT-2-format byte-level BPE trained by HF tokenizers (GPT-2 regex, no NFC)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = [s * 3 for s in SAMPLES] + ["The quick brown fox jumps over the lazy dog's back."] * 20
    hf.train_from_iterator(corpus, trainer)
    hf.save(str(tmp_path / "tokenizer.json"))
    hf.model.save(str(tmp_path))  # vocab.json + merges.txt
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GPT2Tokenizer",
        "added_tokens_decoder": {str(hf.token_to_id("<|endoftext|>")): {
            "content": "<|endoftext|>", "lstrip": False, "rstrip": False, "normalized": False,
            "single_word": False, "special": True}},
    }))
    return hf


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("gpt2")
    hf = _gpt2_style_folder(d)
    from_json = qwen25.Tokenizer.from_pretrained(d)
    (d / "tokenizer.json").unlink()
    from_files = qwen25.Tokenizer.from_pretrained(d)
    assert from_json._tok.pattern == from_files._tok.pattern == "gpt2"
    return hf, from_json, from_files


@given(text=st.text(max_size=80))
@settings(max_examples=60)
def test_gpt2_format_folders(gpt2_folder, text: str) -> None:  # type: ignore[no-untyped-def]
    hf, from_json, from_files = gpt2_folder
    for s in (text, "x <|endoftext|>'s 'S  12\n\n"):
        assert from_json.encode(s) == from_files.encode(s) == hf.encode(s).ids


# -- bad files ----------------------------------------------------------------------------------------

@pytest.fixture()
def copy_of_data(tmp_path: Path, qwen25_data_dir: Path) -> Path:
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(qwen25_data_dir / f, tmp_path / f)
    return tmp_path


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as ei:
        qwen25.Tokenizer.from_pretrained(tmp_path / "nope")
    assert "nope" in str(ei.value)
    with pytest.raises(qwen25.Qwen25FileNotFoundError, match="no tokenizer.json"):
        qwen25.Tokenizer.from_pretrained(tmp_path)


def test_broken_json_names_file_and_line(copy_of_data: Path) -> None:
    text = (copy_of_data / "vocab.json").read_text(encoding="utf-8")
    (copy_of_data / "vocab.json").write_text(text[:1000] + "\n\n,,oops" + text[1000:], encoding="utf-8")
    with pytest.raises(qwen25.FormatError) as ei:
        qwen25.Tokenizer.from_pretrained(copy_of_data)
    assert ei.value.path.endswith("vocab.json") and ei.value.line == 3
    assert "vocab.json:3:" in str(ei.value)


def test_merge_naming_an_unknown_token_names_file_and_line(copy_of_data: Path) -> None:
    lines = (copy_of_data / "merges.txt").read_text(encoding="utf-8").split("\n")
    lines[41] = "Ġzzzzqqqq Ġx"
    (copy_of_data / "merges.txt").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(qwen25.FormatError) as ei:
        qwen25.Tokenizer.from_pretrained(copy_of_data)
    assert ei.value.line == 42 and "Ġzzzzqqqq" in str(ei.value) and str(ei.value).startswith(str(copy_of_data / "merges.txt"))


def test_malformed_merge_line(copy_of_data: Path) -> None:
    with open(copy_of_data / "merges.txt", "a", encoding="utf-8") as f:
        f.write("onlyone\n")
    with pytest.raises(ValueError, match=r"merges.txt:151389: expected two tokens"):
        qwen25.Tokenizer.from_pretrained(copy_of_data)


def test_duplicate_id_names_file_and_line(tmp_path: Path) -> None:
    from tests.conftest import bytes_to_unicode

    b2u = bytes_to_unicode()
    lines = [f"  {json.dumps(b2u[b])}: {b}," for b in range(256)]
    lines.append('  "ab": 7')
    (tmp_path / "vocab.json").write_text("{\n" + "\n".join(lines) + "\n}\n", encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    with pytest.raises(qwen25.FormatError) as ei:
        qwen25.Tokenizer.from_pretrained(tmp_path)
    assert "id 7 is given to two tokens" in str(ei.value)
    assert ei.value.line == 258 and ei.value.path.endswith("vocab.json")


def test_unsupported_pre_tokenizer_is_refused(tmp_path: Path, hf_tok) -> None:  # type: ignore[no-untyped-def]
    hf_tok.save(str(tmp_path / "tokenizer.json"))
    spec = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\w+"
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(qwen25.FormatError, match="unsupported pre_tokenizer"):
        qwen25.Tokenizer.from_pretrained(tmp_path)


# -- bad values -----------------------------------------------------------------------------------------

def test_bad_inputs(tok: qwen25.Tokenizer) -> None:
    assert tok.encode("") == [] and tok.encode_batch([]) == [] and tok.decode([]) == ""
    for bad in (None, 3, b"bytes", ["a"]):
        with pytest.raises(TypeError):
            tok.encode(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tok.encode_batch(["ok", 5])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        tok.encode_batch("a single string")
    for bad_id in (151_665, 10**12, -1):
        with pytest.raises(KeyError) as ei:
            tok.decode([1, bad_id])
        assert str(bad_id) in str(ei.value)
        with pytest.raises(ValueError):
            tok.decode_batch([[1], [bad_id]])
    with pytest.raises(qwen25.Qwen25ValueError):
        tok.encode_batch(["a"], num_threads=0)


# -- batches and threads ---------------------------------------------------------------------------------

@given(st.lists(st.text(max_size=50), max_size=30), st.integers(1, 4))
@settings(max_examples=40)
def test_batch_equals_single_for_any_thread_count(tok: qwen25.Tokenizer, texts: list[str], n: int) -> None:
    single = [tok.encode(t) for t in texts]
    assert tok.encode_batch(texts, num_threads=n) == single
    flat, offsets = tok.encode_batch(texts, num_threads=n, flat=True)
    assert flat.dtype == np.uint32 and offsets.dtype == np.uint64 and len(offsets) == len(texts) + 1
    assert [flat[offsets[i]: offsets[i + 1]].tolist() for i in range(len(texts))] == single
    assert tok.decode_batch(single, num_threads=n) == [tok.decode(ids) for ids in single]


def test_decode_accepts_numpy(tok: qwen25.Tokenizer) -> None:
    ids = tok.encode("numpy ids")
    assert tok.decode(np.array(ids, dtype=np.uint32)) == "numpy ids"


def _child(q) -> None:  # type: ignore[no-untyped-def]
    import qwen25 as q25

    q.put(q25.Tokenizer.qwen25().encode_batch(["forked child", "works"] * 50, num_threads=2)[:2])


def test_batches_work_in_forked_children(tok: qwen25.Tokenizer) -> None:
    tok.encode_batch(["start the pool in the parent"] * 64, num_threads=2)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert q.get(timeout=5) == [tok.encode("forked child"), tok.encode("works")]


def test_pickle_round_trip(tok: qwen25.Tokenizer, qwen25_data_dir: Path) -> None:
    assert pickle.loads(pickle.dumps(tok)).encode("pickled") == tok.encode("pickled")
    t = qwen25.Tokenizer.from_pretrained(qwen25_data_dir)
    assert pickle.loads(pickle.dumps(t)).encode("pickled") == tok.encode("pickled")


# -- streaming decode ------------------------------------------------------------------------------------

@given(st.text(max_size=60))
def test_incremental_decoder_never_emits_half_a_character(tok: qwen25.Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    dec = tok.incremental_decoder()
    pieces = [dec.step(i) for i in ids]
    pieces.append(dec.flush())
    assert "".join(pieces) == tok.decode(ids)
    assert all("\ufffd" not in p for p in pieces) or "\ufffd" in tok.decode(ids)


def test_incremental_decoder_holds_back_partial_bytes(tok: qwen25.Tokenizer) -> None:
    ch = next(c for c in "\U0002a6a5\U0001f9ec\U00010348\U0001d518" if len(tok.encode(c)) > 1)
    ids = tok.encode(ch)  # one character, several tokens
    dec = tok.incremental_decoder()
    assert dec.step(ids[:-1]) == "" and dec.pending > 0
    assert dec.step(ids[-1:]) == ch and dec.pending == 0
    dec.step(ids[:1])
    assert dec.flush() == "\ufffd"
    skip = tok.incremental_decoder(skip_special_tokens=True)
    assert skip.step(tok.encode("<|im_end|>ok")) == "ok"


def test_a_merge_listed_twice_ranks_like_hf(tmp_path: Path) -> None:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    from tests.conftest import bytes_to_unicode

    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    vocab.update({"ab": 256, "bc": 257, "abc": 258})
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\nb c\nab c\na b\n", encoding="utf-8")
    hf = HFTokenizer(models.BPE.from_file(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    hf.decoder = decoders.ByteLevel()
    ours = qwen25.Tokenizer.from_pretrained(tmp_path)
    for s in ("abc", "ab", "abcabc", "cab", "xabcx"):
        assert ours.encode_ordinary(s) == hf.encode(s).ids
