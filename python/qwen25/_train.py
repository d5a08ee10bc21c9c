"""Training a byte-level BPE vocabulary with the Qwen2 pre-tokenization: :func:`train_bpe`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import _native
from .errors import Qwen25ValueError
from .tokenizer import Tokenizer

__all__ = ["train_bpe"]

_DEFAULT_CHUNK_CHARS = 1 << 22


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    *,
    special_tokens: Sequence[str] = ("<|endoftext|>",),
    min_frequency: int = 2,
    num_threads: int | None = None,
    chunk_chars: int = _DEFAULT_CHUNK_CHARS,
) -> Tokenizer:
    """Learn a byte-level BPE vocabulary from ``texts`` and return it as a :class:`Tokenizer`.

    Pre-tokenization is the Qwen2 tokenizer's: each text is cut at the special tokens (their
    text never feeds the BPE, since ``encode`` turns them into their ids), then NFC-normalised
    and split by the Qwen2 pattern. ``texts`` may be any iterable of ``str``, e.g. a generator
    over a large corpus: it is read once, in chunks of about ``chunk_chars`` characters, whose
    pre-tokens are counted in Rust on ``num_threads`` threads (default: ``QWEN25_NUM_THREADS``,
    else all cores) with the GIL released, while the next chunk is read. Only the distinct
    pre-tokens are kept in memory.

    Vocabulary layout:

    - ids 0..255: the 256 byte symbols, ordered by the code point of their byte-level char
      (``!``...``~``, ``¡``...``ÿ``, then ``Ā``, ``ā``, ... for the remapped bytes; the order HF
      ``BpeTrainer`` gives ``ByteLevel.alphabet()``);
    - ids 256...: one per merge whose result is a new byte string, in merge (rank) order;
    - then ``special_tokens``, in the order given (all ``special``).

    ``vocab_size`` counts all of these: 256 byte tokens + merged tokens + special tokens, so it
    must be at least ``256 + len(special_tokens)``. Training stops earlier when the most frequent
    pair occurs fewer than ``min_frequency`` times. Among pairs of equal frequency the one with
    the smaller ``(left id, right id)`` is merged first, the rule of HF's ``BpeTrainer``. The
    result depends neither on ``num_threads`` nor on ``chunk_chars``.

    Save it with :meth:`Tokenizer.save_pretrained`; HF ``tokenizers`` and ``transformers`` load
    that folder and give the same ids.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be an iterable of str (e.g. a list), not a single " + type(texts).__name__)
    if isinstance(special_tokens, str):
        raise TypeError('special_tokens must be a sequence of str, e.g. ("<|endoftext|>",), not a str')
    specials = list(special_tokens)
    for i, s in enumerate(specials):
        if not isinstance(s, str):
            raise TypeError(f"special_tokens[{i}] is {type(s).__name__}, not str")
        if not s:
            raise Qwen25ValueError(f"special_tokens[{i}] is empty")
    if len(set(specials)) != len(specials):
        dup = sorted({s for s in specials if specials.count(s) > 1})
        raise Qwen25ValueError(f"special_tokens has duplicates: {dup}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be int, not {type(vocab_size).__name__}")
    if vocab_size < 256 + len(specials):
        raise Qwen25ValueError(
            f"vocab_size={vocab_size} is too small: it counts the 256 byte tokens and the {len(specials)} "
            f"special tokens, so it must be at least {256 + len(specials)}"
        )
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int):
        raise TypeError(f"min_frequency must be int, not {type(min_frequency).__name__}")
    if min_frequency < 0:
        raise Qwen25ValueError(f"min_frequency={min_frequency} must be >= 0")
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1):
        raise Qwen25ValueError(f"num_threads={num_threads!r} must be a positive int or None")
    if isinstance(chunk_chars, bool) or not isinstance(chunk_chars, int) or chunk_chars < 1:
        raise Qwen25ValueError(f"chunk_chars={chunk_chars!r} must be a positive int")

    trainer = _native.BpeTrainer(specials)
    # Rust counts one chunk (GIL released) while this thread pulls the next one from `texts`.
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwen25-train-bpe") as pool:
        pending: Future[None] | None = None
        chunk: list[str] = []
        size = 0
        start = 0
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, not str")
            chunk.append(t)
            size += len(t)
            if size >= chunk_chars:
                if pending is not None:
                    pending.result()
                pending = pool.submit(trainer.feed, chunk, num_threads, start)
                start = i + 1
                chunk = []
                size = 0
        if pending is not None:
            pending.result()
        if chunk:
            trainer.feed(chunk, num_threads, start)
    return Tokenizer(trainer.train(vocab_size, min_frequency, num_threads), ("trained",))
