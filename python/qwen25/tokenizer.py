"""The Qwen2.5 byte-level BPE tokenizer, bit-exact with HF tokenizers, in Rust.

>>> from qwen25 import Tokenizer
>>> tok = Tokenizer.qwen25()          # embedded vocabulary: no files, no network
>>> tok.encode("Hello world")
[9707, 1879]
>>> tok.decode([9707, 1879])
'Hello world'
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Union, overload

from . import _native
from .errors import Qwen25Error, Qwen25TypeError, Qwen25ValueError, UnknownTokenError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import numpy.typing as npt

SpecialSet = Union[Literal["all"], "Iterable[str]"]

__all__ = ["Tokenizer", "AddedToken", "IncrementalDecoder"]


class AddedToken(NamedTuple):
    """A control token matched whole in the text. ``special`` tokens are dropped by
    ``decode(..., skip_special_tokens=True)``."""

    content: str
    id: int
    special: bool


@functools.lru_cache(maxsize=1)
def _embedded() -> _native.Tokenizer:
    return _native.Tokenizer.qwen25()


def _check_str(text: object, what: str = "text") -> None:
    if not isinstance(text, str):
        raise Qwen25TypeError(f"{what} must be str, not {type(text).__name__}")


def _check_threads(num_threads: object) -> None:
    if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
        raise Qwen25ValueError(f"num_threads must be a positive int, got {num_threads!r}")


def _surrogate_error(text: str, what: str = "text") -> Qwen25ValueError:
    """The error for a str that UTF-8 cannot encode (:func:`qwen25.data.records.surrogate_error`)."""
    from .data.records import surrogate_error

    return surrogate_error(text, what) or Qwen25ValueError(f"{what} cannot be encoded as UTF-8")  # pragma: no branch


def _batch_surrogate_error(texts: Sequence[Any]) -> Qwen25ValueError:
    for k, t in enumerate(texts):
        if isinstance(t, str):
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:
                return _surrogate_error(t, f"texts[{k}]")
    return Qwen25ValueError("a text cannot be encoded as UTF-8")  # pragma: no cover


def _unknown_id_error(batch: Sequence[Sequence[Any]], vocab_size: int) -> Exception | None:
    """The error for the first id that is not a token id (out of range, negative, or too large
    for 64 bits); None if every id is in range (the fault lies elsewhere)."""
    for ids in batch:
        for i in ids:
            if isinstance(i, int) and not 0 <= i < vocab_size:
                return UnknownTokenError(f"unknown token id {i} (ids run from 0 to {vocab_size - 1})", i)
    return None


def _decoding(fn: Any, batch: Sequence[Sequence[Any]], vocab_size: int) -> Any:
    """Run a native decode; an id too large for 64 bits (OverflowError) is an unknown token too,
    and an id that is no int (a float, None, a str) a :class:`Qwen25TypeError` naming it."""
    try:
        return fn()
    except OverflowError:
        err = _unknown_id_error(batch, vocab_size)
        if err is None:
            raise
        raise err from None
    except TypeError as e:
        if isinstance(e, Qwen25Error):
            raise
        for k, ids in enumerate(batch):
            for i, v in enumerate(ids):
                if not isinstance(v, int):
                    where = f"ids[{i}]" if len(batch) == 1 else f"batch[{k}][{i}]"
                    raise Qwen25TypeError(f"{where} = {v!r} is {type(v).__name__}, not an int token id") from None
        raise Qwen25TypeError(str(e)) from None


def _as_id_list(ids: Any) -> list[int]:
    if hasattr(ids, "tolist"):  # numpy arrays, torch tensors
        ids = ids.tolist()
    if isinstance(ids, list):
        return ids
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise Qwen25TypeError(f"ids must be a sequence of int, not {type(ids).__name__}")
    return list(ids)


class Tokenizer:
    """A byte-level BPE tokenizer of the Qwen2 family.

    Build one with :meth:`qwen25` (the embedded Qwen2.5 vocabulary) or :meth:`from_pretrained`
    (any HF folder with ``tokenizer.json``, or ``vocab.json`` + ``merges.txt``).
    """

    def __init__(self, native: _native.Tokenizer, source: tuple[str, ...] = ("native",)) -> None:
        self._tok = native
        self._source = source
        self._added = [AddedToken(c, i, s) for c, i, s in native.added_tokens()]
        self._added_names = [a.content for a in self._added]
        self._all = [True] * len(self._added)
        self._none = [False] * len(self._added)
        cfg = native.config_json
        self._config: dict[str, Any] = json.loads(cfg) if cfg else {}

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def qwen25(cls) -> Tokenizer:
        """The Qwen2.5 tokenizer compiled into the package: 151,643 BPE tokens, 151,387 merges
        and 22 control tokens (ids 151643-151664). No network, no files."""
        return cls(_embedded(), ("qwen25",))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load an HF tokenizer folder (``tokenizer.json``, or ``vocab.json`` + ``merges.txt``,
        plus ``tokenizer_config.json`` when present) or a single ``tokenizer.json`` file."""
        p = os.fspath(path)
        if os.path.isfile(p):
            return cls(_native.Tokenizer.from_tokenizer_json(p), ("file", os.path.abspath(p)))
        return cls(_native.Tokenizer.from_dir(p), ("dir", os.path.abspath(p)))  # a missing folder: ENOENT

    def __reduce__(self) -> tuple[Any, ...]:
        kind = self._source[0]
        if kind == "qwen25":
            return (Tokenizer.qwen25, ())
        if kind in ("dir", "file"):
            return (Tokenizer.from_pretrained, (self._source[1],))
        raise Qwen25TypeError("this Tokenizer was built in memory; save_pretrained() it and load that to pickle it")

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, bpe_tokens={self._tok.n_bpe_tokens}, "
            f"merges={self._tok.n_merges}, added={len(self._added)}, pattern={self._tok.pattern!r})"
        )

    # -- encoding -------------------------------------------------------------------------------
    def _masks(self, allowed_special: SpecialSet, disallowed_special: SpecialSet) -> tuple[list[bool], list[bool]]:
        if allowed_special == "all":
            if disallowed_special == () or disallowed_special == "all":
                return self._all, self._none
            allowed = set(self._added_names)
        else:
            if isinstance(allowed_special, str):
                raise Qwen25TypeError('allowed_special must be "all" or a set of token strings')
            allowed = set(allowed_special)
        if disallowed_special == "all":
            disallowed = set(self._added_names) - allowed
        else:
            if isinstance(disallowed_special, str):
                raise Qwen25TypeError('disallowed_special must be "all" or a set of token strings')
            disallowed = set(disallowed_special)
        unknown = (allowed | disallowed) - set(self._added_names)
        if unknown:
            raise Qwen25ValueError(f"not special tokens of this tokenizer: {sorted(unknown)}")
        if allowed & disallowed:
            raise Qwen25ValueError(f"tokens both allowed and disallowed: {sorted(allowed & disallowed)}")
        return [n in allowed for n in self._added_names], [n in disallowed for n in self._added_names]

    def encode(
        self,
        text: str,
        *,
        allowed_special: SpecialSet = "all",
        disallowed_special: SpecialSet = (),
    ) -> list[int]:
        """Token ids of ``text``.

        By default control-token strings in the text (``<|im_start|>``...) become their ids, as
        HF does. ``allowed_special=set()`` encodes them as plain text; a token listed in
        ``disallowed_special`` (or every non-allowed one, with ``"all"``) raises ValueError.
        """
        _check_str(text)
        a, d = self._masks(allowed_special, disallowed_special)
        try:
            return self._tok.encode(text, a, d)
        except UnicodeEncodeError:
            raise _surrogate_error(text) from None

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``, with control-token strings encoded as plain text."""
        _check_str(text)
        try:
            return self._tok.encode_ordinary(text)
        except UnicodeEncodeError:
            raise _surrogate_error(text) from None

    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        allowed_special: SpecialSet = ...,
        disallowed_special: SpecialSet = ...,
        num_threads: int | None = ...,
        flat: Literal[False] = ...,
    ) -> list[list[int]]: ...

    @overload
    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        allowed_special: SpecialSet = ...,
        disallowed_special: SpecialSet = ...,
        num_threads: int | None = ...,
        flat: Literal[True],
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]: ...

    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        allowed_special: SpecialSet = "all",
        disallowed_special: SpecialSet = (),
        num_threads: int | None = None,
        flat: bool = False,
    ) -> Any:
        """Encode many texts in parallel (GIL released, rayon inside), keeping input order.

        Ids never depend on ``num_threads`` (default: ``QWEN25_NUM_THREADS``, else all cores).
        With ``flat=True`` returns ``(ids, offsets)``: one ``numpy.uint32`` array of all ids and
        ``numpy.uint64`` offsets of length ``len(texts) + 1``; text i is ``ids[offsets[i]:offsets[i+1]]``.
        """
        if isinstance(texts, str):
            raise Qwen25TypeError("encode_batch expects an iterable of str, not a single str; use encode()")
        _check_threads(num_threads)
        if not isinstance(texts, Iterable):
            raise Qwen25TypeError(f"texts must be an iterable of str, not {type(texts).__name__}")
        items = texts if isinstance(texts, list) else list(texts)
        a, d = self._masks(allowed_special, disallowed_special)
        try:
            if not flat:
                return self._tok.encode_batch(items, a, d, num_threads)
            ids, offsets = self._tok.encode_batch_flat(items, a, d, num_threads)
        except UnicodeEncodeError:
            raise _batch_surrogate_error(items) from None
        except TypeError as e:  # the binding's "texts[i] is NoneType, not str"
            raise Qwen25TypeError(str(e)) from None
        import numpy as np

        return np.frombuffer(ids, dtype="<u4"), np.frombuffer(offsets, dtype="<u8")

    def encode_records(
        self,
        batch: Any,
        *,
        allowed_special: SpecialSet = "all",
        disallowed_special: SpecialSet = (),
        num_threads: int | None = None,
    ) -> Any:
        """``encode_batch(batch.items(), flat=True)`` for a batch of
        :func:`qwen25.data.records.read_batches`: ``(ids, offsets)`` as numpy arrays, the records'
        texts going to the tokenizer from Rust, with no Python string built."""
        _check_threads(num_threads)
        a, d = self._masks(allowed_special, disallowed_special)
        ids, offsets = self._tok.encode_records_flat(batch, a, d, num_threads)
        import numpy as np

        return np.frombuffer(ids, dtype="<u4"), np.frombuffer(offsets, dtype="<u8")

    # -- decoding -------------------------------------------------------------------------------
    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False, errors: str = "replace") -> str:
        """Text of ``ids``. Bytes that are not valid UTF-8 are handled per ``errors``
        (``"replace"``, ``"strict"``, ``"ignore"`` or any codec error handler). An unknown id
        raises :class:`~qwen25.errors.UnknownTokenError` (a KeyError and a ValueError)."""
        ids = _as_id_list(ids)
        if errors in ("replace", "strict"):
            return _decoding(lambda: self._tok.decode(ids, skip_special_tokens, errors == "strict"), [ids], self.vocab_size)
        return self.decode_bytes(ids, skip_special_tokens=skip_special_tokens).decode("utf-8", errors=errors)

    def decode_bytes(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> bytes:
        """The raw bytes of ``ids``."""
        ids = _as_id_list(ids)
        return _decoding(lambda: self._tok.decode_bytes(ids, skip_special_tokens), [ids], self.vocab_size)

    def decode_batch(
        self,
        batch: Iterable[Sequence[int]],
        *,
        skip_special_tokens: bool = False,
        errors: str = "replace",
        num_threads: int | None = None,
    ) -> list[str]:
        """Decode many id lists in parallel, in order."""
        _check_threads(num_threads)
        if isinstance(batch, (str, bytes)) or not isinstance(batch, Iterable):
            raise Qwen25TypeError(f"batch must be an iterable of id sequences, not {type(batch).__name__}")
        lists = [_as_id_list(ids) for ids in batch]
        if errors in ("replace", "strict"):
            return _decoding(lambda: self._tok.decode_batch(lists, skip_special_tokens, errors == "strict", num_threads),
                             lists, self.vocab_size)  # fmt: skip
        return [self.decode(ids, skip_special_tokens=skip_special_tokens, errors=errors) for ids in lists]

    def incremental_decoder(self, *, skip_special_tokens: bool = False) -> IncrementalDecoder:
        """A streaming decoder: ``step(ids)`` returns only complete characters."""
        return IncrementalDecoder(self, skip_special_tokens=skip_special_tokens)

    # -- vocabulary -----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """One past the largest id: 151,665 for Qwen2.5 (151,643 BPE + 22 control tokens)."""
        return self._tok.vocab_size

    @property
    def special_tokens(self) -> dict[str, int]:
        """Every added (control) token, content -> id. All are matched whole when encoding."""
        return {a.content: a.id for a in self._added}

    @property
    def added_tokens(self) -> list[AddedToken]:
        """The added tokens with their ``special`` flags, in id order."""
        return list(self._added)

    def token_to_id(self, token: str) -> int | None:
        """Id of a token string (byte-level form, e.g. ``"Ġworld"``, or a control token)."""
        _check_str(token, "token")
        try:
            return self._tok.token_to_id(token)
        except UnicodeEncodeError:  # a lone surrogate is no token
            return None

    def id_to_token(self, token_id: int) -> str | None:
        """Token string of an id, or None if the id is not in the vocabulary."""
        try:
            return self._tok.id_to_token(int(token_id))
        except OverflowError:  # beyond 64 bits: no token has it
            return None

    def get_vocab(self) -> dict[str, int]:
        """Token string -> id for every token, added ones included."""
        return self._tok.get_vocab()

    def pre_tokenize(self, text: str) -> list[str]:
        """The pieces the split pattern cuts ``text`` into (after NFC), before BPE."""
        _check_str(text)
        try:
            return self._tok.pre_tokenize(text)
        except UnicodeEncodeError:
            raise _surrogate_error(text) from None

    @property
    def config(self) -> dict[str, Any]:
        """The ``tokenizer_config.json`` this tokenizer came with (empty if none)."""
        return dict(self._config)

    def _config_token(self, key: str) -> str | None:
        v = self._config.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        return v if isinstance(v, str) else None

    @property
    def eos_token(self) -> str | None:
        return self._config_token("eos_token")

    @property
    def eos_token_id(self) -> int | None:
        t = self.eos_token
        return None if t is None else self.token_to_id(t)

    @property
    def pad_token(self) -> str | None:
        return self._config_token("pad_token")

    @property
    def pad_token_id(self) -> int | None:
        t = self.pad_token
        return None if t is None else self.token_to_id(t)

    @property
    def chat_template(self) -> str | None:
        t = self._config.get("chat_template")
        return t if isinstance(t, str) else None

    # -- chat -----------------------------------------------------------------------------------
    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> list[int] | str:
        """Render ``messages`` with the tokenizer's chat template (ChatML for Qwen2.5: default
        system prompt, Hermes-style tools, ``<tool_call>`` JSON, tool responses, multi-turn),
        exactly as transformers renders it. Returns ids, or the text with ``tokenize=False``.

        Messages no template can render faithfully raise :class:`~qwen25.errors.Qwen25ValueError`
        naming ``messages[i]`` and the key: an empty list, a missing or ``None`` ``content``
        (allowed on an assistant turn that has tool calls), ``tool_calls`` that are not a list of
        ``{"function": {"name", "arguments"}}`` dicts (``arguments`` a dict or a JSON string). A
        template that fails, or calls ``raise_exception``, raises it too."""
        from ._chat import render

        template = chat_template or self.chat_template
        if template is None:
            raise Qwen25ValueError("this tokenizer has no chat_template; pass chat_template=")
        if not isinstance(template, str):
            raise Qwen25TypeError(f"chat_template must be a str (a Jinja template), not {type(template).__name__}")
        specials = {k: self._config_token(k) for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
        try:
            text = render(template, messages, tools=tools, add_generation_prompt=add_generation_prompt, **specials, **kwargs)
        except TypeError as e:  # messages or tools of the wrong type ("messages[0] must be a dict, not str")
            if isinstance(e, Qwen25Error):
                raise
            raise Qwen25TypeError(str(e)) from None
        return self.encode(text) if tokenize else text

    # -- saving ---------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``tokenizer.json``, ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json``;
        HF tokenizers and transformers load them and give identical ids."""
        self._tok.save_pretrained(os.fspath(directory))


class IncrementalDecoder:
    """Decode a stream of ids (e.g. from generation) into text, never emitting half a UTF-8
    character: bytes of an incomplete character wait for the next ``step``."""

    def __init__(self, tokenizer: Tokenizer, *, skip_special_tokens: bool = False) -> None:
        self._dec = _native.IncrementalDecoder(tokenizer._tok, skip_special_tokens)
        self._vocab_size = tokenizer.vocab_size

    def step(self, ids: int | Sequence[int]) -> str:
        """Feed one id or several; returns the text they complete (possibly "")."""
        batch = [ids] if isinstance(ids, int) else _as_id_list(ids)
        return _decoding(lambda: self._dec.step(batch), [batch], self._vocab_size)

    def flush(self) -> str:
        """End of stream: pending bytes, with an incomplete character replaced by U+FFFD."""
        return self._dec.flush()

    @property
    def pending(self) -> int:
        """Bytes held back, waiting for the rest of a character."""
        return self._dec.pending
