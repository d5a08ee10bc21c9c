"""qwen25.Tokenizer against HF `tokenizers` built from the same Qwen2.5 files (conftest.build_hf_qwen25).

Every assertion compares our ids with the reference's on the same input: generated text,
real source code, real multilingual text, text containing the control tokens, and inputs with
no split point.
"""

from __future__ import annotations

import base64
import glob
import os
import random
import sysconfig
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

import qwen25

CONTROL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
]

# Characters where pre-tokenizers and normalisers usually go wrong.
TRICKY = (
    list(" \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2007\u200a\u2028\u2029\u202f\u205f\u3000\u200b\ufeff")
    + list("'’\"`´") + list("sStTrReEvVmMlLdDſK")
    + list("0123456789٠١٢٣४५৬௭๘໙０１²³½Ⅻↂ")
    + ["e\u0301", "\u0065\u0308\u0301", "\u1100\u1161\u11a8", "A\u030a", "\u212b", "\u2126", "\u0344", "\u0f73",
       "\u00c5", "ﬁ", "ǅ", "ß", "İ", "ﬀ"]
    + ["👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "❤️", "👍🏽", "🇯🇵", "🦀", "\U0001f600"]
    + list("你好世界日本語한국어Русскийالعربيةעבריתहिन्दीไทย")
    + list(".,;:!?-_()[]{}<>|/\\@#$%^&*+=~…—–«»")
)


def words() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(TRICKY) | st.text(min_size=1, max_size=4), max_size=40).map("".join)


def test_published_values(tok: qwen25.Tokenizer) -> None:
    # the transformers Qwen2Tokenizer docstring
    assert tok.encode("Hello world") == [9707, 1879]
    assert tok.encode(" Hello world") == [21927, 1879]


def test_sizes_and_control_tokens(tok: qwen25.Tokenizer, hf_tok) -> None:  # type: ignore[no-untyped-def]
    assert tok.vocab_size == 151_665 == hf_tok.get_vocab_size(with_added_tokens=True)
    assert tok._tok.n_bpe_tokens == 151_643
    assert tok._tok.n_merges == 151_387
    assert [a.content for a in tok.added_tokens] == CONTROL
    assert [a.id for a in tok.added_tokens] == list(range(151_643, 151_665))
    assert tok.special_tokens == {c: hf_tok.token_to_id(c) for c in CONTROL}
    specials = {a.content for a in tok.added_tokens if a.special}
    assert specials == set(CONTROL[:14])
    assert tok.get_vocab() == hf_tok.get_vocab(with_added_tokens=True)
    assert tok.eos_token_id == 151_645 and tok.pad_token_id == 151_643


@given(st.text())
def test_any_text(tok: qwen25.Tokenizer, hf_tok, text: str) -> None:  # type: ignore[no-untyped-def]
    assert tok.encode(text) == hf_tok.encode(text).ids


@given(words())
def test_tricky_text(tok: qwen25.Tokenizer, hf_tok, text: str) -> None:  # type: ignore[no-untyped-def]
    assert tok.encode(text) == hf_tok.encode(text).ids


@given(st.lists(words() | st.sampled_from(CONTROL) | st.sampled_from(["<|", "|>", "<|im_", "<tool_call"]), max_size=12))
def test_text_with_control_tokens(tok: qwen25.Tokenizer, hf_tok, parts: list[str]) -> None:  # type: ignore[no-untyped-def]
    text = "".join(parts)
    assert tok.encode(text) == hf_tok.encode(text).ids


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_decode_inverts_encode_up_to_nfc(tok: qwen25.Tokenizer, hf_tok, text: str) -> None:  # type: ignore[no-untyped-def]
    ids = tok.encode(text)
    assert tok.decode(ids) == hf_tok.normalizer.normalize_str(text) == hf_tok.decode(ids, skip_special_tokens=False)


@given(st.text(alphabet=st.sampled_from("aeiouAEIOU\u0301\u0300\u0308\u0327\u030a\u1100\u1161\u11a8 "), max_size=60))
def test_nfc_agrees_with_unicodedata_on_stable_characters(tok: qwen25.Tokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == unicodedata.normalize("NFC", text)


def _stdlib_sources(n: int) -> list[str]:
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    rng = random.Random(0)
    out = []
    for f in rng.sample(files, n):
        with open(f, encoding="utf-8", errors="replace") as fh:
            out.append(fh.read())
    return out


def test_real_source_code(tok: qwen25.Tokenizer, hf_tok) -> None:  # type: ignore[no-untyped-def]
    sources = _stdlib_sources(25)
    ours = tok.encode_batch(sources)
    for src, ids in zip(sources, ours):
        assert ids == hf_tok.encode(src).ids
    # C-like code with CRLF line ends and tabs
    crlf = [s.replace("\n", "\r\n").replace("    ", "\t") for s in sources[:5]]
    for src, ids in zip(crlf, tok.encode_batch(crlf)):
        assert ids == hf_tok.encode(src).ids


LOCALES = ["zh_CN", "zh_TW", "ja_JP", "ko_KR", "ru_RU", "uk_UA", "ar_AA", "he_IL", "hi_IN", "th_TH",
           "el_GR", "hy_AM", "fa_IR", "bn_BD", "ta_IN", "de_DE", "fr_FR", "es_ES", "pl_PL", "vi_VN",
           "tr_TR", "cs_CZ", "ka_GE", "az_AZ"]


def _multilingual() -> list[str]:
    faker = pytest.importorskip("faker")
    texts = []
    for loc in LOCALES:
        try:
            f = faker.Faker(loc)
        except AttributeError:
            continue
        f.seed_instance(1234)
        texts.append(" ".join([f.text(400), f.name(), f.address(), f.company(), f.job()]))
    return texts


def test_real_multilingual_text(tok: qwen25.Tokenizer, hf_tok) -> None:  # type: ignore[no-untyped-def]
    texts = _multilingual()
    assert len(texts) >= 20
    for t, ids in zip(texts, tok.encode_batch(texts)):
        assert ids == hf_tok.encode(t).ids
        assert tok.decode(ids) == unicodedata.normalize("NFC", t)


def test_every_code_point_classifies_like_the_reference(tok: qwen25.Tokenizer, hf_tok) -> None:  # type: ignore[no-untyped-def]
    # One text per block of code points: each char sits between a letter and a digit and before
    # a space, so its class (letter, number, space, other) decides the split.
    texts = []
    for start in range(0x80, 0x110000, 512):  # noqa: B007
        texts.append("".join(f"a{chr(c)}1 " for c in range(start, min(start + 512, 0x110000)) if not 0xD800 <= c < 0xE000))
    ours = tok.encode_batch(texts)
    for t, ids in zip(texts, ours):
        assert ids == hf_tok.encode(t).ids


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "的" * 400_000,
        base64.b64encode(random.Random(0).randbytes(750_000)).decode(),
        " " * 1_000_000,
        "\n" * 300_000 + "x",
        "é" * 300_000,
    ],
    ids=["letters", "cjk", "base64", "spaces", "newlines", "accents"],
)
def test_megabyte_inputs_without_split_points(tok: qwen25.Tokenizer, hf_tok, text: str) -> None:  # type: ignore[no-untyped-def]
    assert tok.encode(text) == hf_tok.encode(text).ids


def test_ten_megabyte_mixed_document(tok: qwen25.Tokenizer) -> None:
    doc = ("".join(_stdlib_sources(3)) + "你好，世界！" * 100 + "x" * 5000 + " \t\n" * 100)
    doc = (doc * (10_000_000 // len(doc) + 1))[:10_000_000]
    ids = tok.encode(doc)
    assert tok.decode(ids) == doc
    # the same document in 100 independent pieces cut at newlines encodes to the same ids
    cut = [doc[i: i + 100_000] for i in range(0, len(doc), 100_000)]
    assert len(ids) > 1_000_000 and sum(map(len, tok.encode_batch(cut))) >= len(ids)


@given(st.lists(words() | st.sampled_from(CONTROL), max_size=10))
def test_allowed_special_empty_is_plain_text(tok: qwen25.Tokenizer, hf_plain, parts: list[str]) -> None:  # type: ignore[no-untyped-def]
    text = "".join(parts)
    expected = hf_plain.encode(text).ids
    assert tok.encode(text, allowed_special=set()) == expected
    assert tok.encode_ordinary(text) == expected


def test_tiktoken_semantics_of_allowed_and_disallowed(tok: qwen25.Tokenizer, tiktoken_enc) -> None:  # type: ignore[no-untyped-def]
    text = "hi <|im_start|>user\nyo<|im_end|> and <|endoftext|>"
    assert tok.encode(text, allowed_special={"<|im_start|>"}) == tiktoken_enc.encode(
        text, allowed_special={"<|im_start|>"}, disallowed_special=()
    )
    assert tok.encode(text, allowed_special="all") == tiktoken_enc.encode(text, allowed_special="all")
    with pytest.raises(ValueError, match="<\\|im_start\\|>"):
        tok.encode(text, allowed_special=set(), disallowed_special="all")
    with pytest.raises(qwen25.DisallowedSpecialTokenError) as ei:
        tok.encode(text, allowed_special={"<|im_start|>"}, disallowed_special={"<|endoftext|>"})
    assert ei.value.token == "<|endoftext|>"
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode(text, allowed_special={"<|nope|>"})


def test_decode_skips_only_special_flagged_tokens(tok: qwen25.Tokenizer, hf_tok) -> None:  # type: ignore[no-untyped-def]
    text = "<|im_start|>user\n<tool_call>{}</tool_call><|fim_prefix|>x<|im_end|><|endoftext|>"
    ids = tok.encode(text)
    for skip in (False, True):
        assert tok.decode(ids, skip_special_tokens=skip) == hf_tok.decode(ids, skip_special_tokens=skip)
    assert tok.decode_batch([ids, ids[:3]], skip_special_tokens=True) == hf_tok.decode_batch(
        [ids, ids[:3]], skip_special_tokens=True
    )


def test_decode_partial_utf8(tok: qwen25.Tokenizer, hf_tok) -> None:  # type: ignore[no-untyped-def]
    ids = tok.encode("🦀 crab")
    for k in range(len(ids) + 1):
        part = ids[:k]
        assert tok.decode(part) == hf_tok.decode(part)
        assert tok.decode(part, errors="ignore") == tok.decode_bytes(part).decode("utf-8", "ignore")
        raw = tok.decode_bytes(part)
        try:
            expected = raw.decode("utf-8")
        except UnicodeDecodeError:
            with pytest.raises(ValueError):
                tok.decode(part, errors="strict")
        else:
            assert tok.decode(part, errors="strict") == expected


def test_token_lookups(tok: qwen25.Tokenizer, hf_tok) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    for i in [0, 255, 256, 9707, 151_642, 151_643, 151_664] + rng.sample(range(151_665), 500):
        t = tok.id_to_token(i)
        assert t == hf_tok.id_to_token(i)
        assert tok.token_to_id(t) == i
    assert tok.id_to_token(151_665) is None and tok.id_to_token(-1) is None
    assert tok.token_to_id("not a token at all") is None
