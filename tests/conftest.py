"""Shared fixtures. The independent references are built here from the vocabulary files the
repository ships (rust/qwen25-core/data/qwen25/), never from qwen25's own code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QWEN25_DATA = ROOT / "rust" / "qwen25-core" / "data" / "qwen25"

# transformers.Qwen2Tokenizer.PRETOKENIZE_REGEX, copied from its documentation
QWEN2_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def hf_qwen2_pre_tokenizer():  # type: ignore[no-untyped-def]
    """Qwen2's split regex, then the byte-level alphabet (transformers' Qwen2Converter)."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def hf_train_qwen2_bpe(texts, vocab_size: int, specials: list[str], min_frequency: int = 2):  # type: ignore[no-untyped-def]
    """HF tokenizers' BpeTrainer with the Qwen2 pipeline (NFC, split, byte-level alphabet)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = hf_qwen2_pre_tokenizer()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def build_hf_qwen25(data_dir: Path = QWEN25_DATA, with_added: bool = True):  # type: ignore[no-untyped-def]
    """HF `tokenizers` pipeline of Qwen2TokenizerFast, as transformers' Qwen2Converter builds it
    (``with_added=False``: the same without the 22 control tokens, i.e. plain-text encoding)."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    tok = Tokenizer(
        BPE.from_file(
            str(data_dir / "vocab.json"),
            str(data_dir / "merges.txt"),
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = hf_qwen2_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    if not with_added:
        return tok
    added = json.loads((data_dir / "tokenizer_config.json").read_text(encoding="utf-8"))["added_tokens_decoder"]
    for tid, spec in sorted(added.items(), key=lambda kv: int(kv[0])):
        at = AddedToken(spec["content"], lstrip=False, rstrip=False, single_word=False, normalized=False,
                        special=spec["special"])
        (tok.add_special_tokens if spec["special"] else tok.add_tokens)([at])
        assert tok.token_to_id(spec["content"]) == int(tid)
    return tok


@pytest.fixture(scope="session")
def hf_tok():  # type: ignore[no-untyped-def]
    pytest.importorskip("tokenizers")
    return build_hf_qwen25()


@pytest.fixture(scope="session")
def hf_plain():  # type: ignore[no-untyped-def]
    pytest.importorskip("tokenizers")
    return build_hf_qwen25(with_added=False)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet (the published algorithm, written out here)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def build_tiktoken_qwen25(data_dir: Path = QWEN25_DATA):  # type: ignore[no-untyped-def]
    """tiktoken built in-process from the same files: ranks = ids, same regex, same specials."""
    import tiktoken

    dec = {c: b for b, c in bytes_to_unicode().items()}
    vocab = json.loads((data_dir / "vocab.json").read_text(encoding="utf-8"))
    ranks = {bytes(dec[c] for c in k): v for k, v in vocab.items()}
    cfg = json.loads((data_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    specials = {v["content"]: int(k) for k, v in cfg["added_tokens_decoder"].items()}
    return tiktoken.Encoding("qwen25", pat_str=QWEN2_REGEX, mergeable_ranks=ranks, special_tokens=specials)


@pytest.fixture(scope="session")
def tiktoken_enc():  # type: ignore[no-untyped-def]
    pytest.importorskip("tiktoken")
    return build_tiktoken_qwen25()


@pytest.fixture(scope="session")
def tok():  # type: ignore[no-untyped-def]
    import qwen25

    return qwen25.Tokenizer.qwen25()


@pytest.fixture(scope="session")
def qwen25_data_dir() -> Path:
    return QWEN25_DATA


def pytest_configure(config: pytest.Config) -> None:
    # Hypothesis: deterministic in CI, bounded time everywhere.
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "qwen25", deadline=None, derandomize=bool(os.environ.get("CI")), suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile("qwen25")


@pytest.fixture(scope="session")
def local_ray():  # type: ignore[no-untyped-def]
    """One local Ray instance (2 CPUs) for every Ray test of the session; skips without ray."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()
