"""Supervised fine-tuning data: ChatML conversations to (input_ids, labels) with assistant-only
loss, best-fit-decreasing packing, and the row source the :class:`~qwen25.train.Trainer` reads.

    >>> from qwen25 import Tokenizer
    >>> from qwen25.train.sft import build_example, pack_bfd
    >>> ids, labels = build_example(Tokenizer.qwen25(), [{"role": "user", "content": "hi"},
    ...                                                  {"role": "assistant", "content": "hello"}])
    >>> pack_bfd([5, 3, 8, 2], 10)
    [[2, 3], [0, 1]]

Masks. The loss covers exactly what TRL's Qwen2.5 training template marks with ``{% generation %}``
(``trl.chat_template_utils.get_training_chat_template``, read through transformers'
``apply_chat_template(..., return_assistant_tokens_mask=True)``): in every assistant turn, the
newline after ``<|im_start|>assistant``, the content, its tool calls (``<tool_call>`` JSON), the
``<|im_end|>`` and the newline after it. System, user and tool-result turns are context only.
Labels are aligned with ``input_ids`` (the model shifts them), -100 where no loss applies.

Rendering. A conversation is cut into pieces at the generation boundaries; each piece is the
Qwen2.5 chat template's own text (``Tokenizer.apply_chat_template`` renders the same string: the
tests check it) and every boundary falls between two pre-tokens (after ``assistant``, before a
special token or at the end), so encoding the pieces separately gives the ids of the whole text.
All pieces of a batch go through one ``encode_batch`` call (Rust, GIL released).

Packing. ``pack_bfd`` is best-fit decreasing, as ``trl.pack_dataset(..., strategy="bfd")``: the
longest conversation first (ties in input order), each into the open row with the least room that
still fits it (rows with equal room: the oldest first), else a new row, over all the items at
once (TRL packs each ``datasets.map`` batch of 1,000 rows on its own; given one batch, its rows
equal these). In a packed row
``position_ids`` restart at 0 on every conversation, which the model turns into per-conversation
causal attention, and the first token of each conversation is never a target.
"""

from __future__ import annotations

import bisect
import json
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError
from .data import MicroBatch, RowStream, micro_batch

if TYPE_CHECKING:

    from ..tokenizer import Tokenizer
    from .config import Stage, TrainConfig

__all__ = ["build_example", "build_examples", "pack_bfd", "render_pieces", "check_messages", "read_chat",
           "tokenize_chat", "ChatData", "SFTStageData", "TRUNCATION", "DEFAULT_SYSTEM"]

DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
ROLES = ("system", "user", "assistant", "tool")
TRUNCATION = ("error", "skip", "truncate")

_TOOLS_HEAD = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
               "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
_TOOLS_TAIL = ("\n</tools>\n\nFor each function call, return a json object with function name and arguments "
               "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
               "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n")


_END = "<|im_end|>\n"
_DEFAULT_HEAD = "<|im_start|>system\n" + DEFAULT_SYSTEM + _END


def _tojson(x: Any) -> str:
    return json.dumps(x, ensure_ascii=False)


# ------------------------------------------------------------------------------ checking
def _plain_ok(messages: list[Any]) -> bool:
    """The fast check for the common case (dicts with str roles and contents, no tool calls, an
    assistant turn); anything else goes through the full check, which names the fault."""
    has_assistant = False
    for m in messages:
        if type(m) is not dict or type(m.get("content")) is not str or m.get("tool_calls"):
            return False
        role = m.get("role")
        if role == "assistant":
            has_assistant = True
        elif role not in ("user", "system", "tool"):
            return False
    return has_assistant and bool(messages)


def check_messages(messages: Any, tools: Any = None, where: str = "conversation") -> None:
    """Raise :class:`Qwen25ValueError` (naming ``where`` and the message) for a conversation SFT
    cannot use: not a list of dicts, an unknown role, content that is not a string, a malformed
    tool call, or no assistant turn."""
    if type(messages) is list and (tools is None or type(tools) is list) and _plain_ok(messages):
        return
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise Qwen25ValueError(f"{where}: messages must be a list of {{role, content}} dicts, got "
                               f"{type(messages).__name__}")
    if not messages:
        raise Qwen25ValueError(f"{where}: messages is empty")
    has_assistant = False
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise Qwen25ValueError(f"{where}: messages[{i}] must be a dict, got {type(m).__name__}")
        role = m.get("role")
        if role not in ROLES:
            raise Qwen25ValueError(f"{where}: messages[{i}] has unknown role {role!r} (expected one of {list(ROLES)})")
        content = m.get("content")
        calls = m.get("tool_calls") if role == "assistant" else None
        if calls:
            if not isinstance(calls, Sequence) or isinstance(calls, (str, bytes)):
                raise Qwen25ValueError(f"{where}: messages[{i}].tool_calls must be a list")
            for j, c in enumerate(calls):
                fn = c.get("function", c) if isinstance(c, Mapping) else None
                if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or "arguments" not in fn:
                    raise Qwen25ValueError(f"{where}: messages[{i}].tool_calls[{j}] needs a name (str) and arguments")
            if content is not None and not isinstance(content, str):
                raise Qwen25ValueError(f"{where}: messages[{i}] ({role}) content must be a string, got "
                                       f"{type(content).__name__}")
        elif not isinstance(content, str):
            raise Qwen25ValueError(f"{where}: messages[{i}] ({role}) content must be a string, got "
                                   f"{type(content).__name__}")
        has_assistant = has_assistant or role == "assistant"
    if not has_assistant:
        raise Qwen25ValueError(f"{where}: no assistant turn (nothing to train on)")
    if tools is not None:
        if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence) or \
                not all(isinstance(t, Mapping) for t in tools):
            raise Qwen25ValueError(f"{where}: tools must be a list of JSON-schema dicts")


# ----------------------------------------------------------------------------- rendering
def render_pieces(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
                  ) -> list[tuple[str, bool]]:
    """The Qwen2.5 chat template's text for ``messages`` as (text, trained) pieces, adjacent
    pieces of one kind merged. ``"".join`` of the texts is ``apply_chat_template(tokenize=False)``."""
    out: list[tuple[str, bool]] = []
    ctx: list[str] = []
    first = messages[0] if messages else {}
    first_system = first.get("role") == "system"
    if tools:
        ctx.append("<|im_start|>system\n")
        ctx.append(first["content"] if first_system else DEFAULT_SYSTEM)
        ctx.append(_TOOLS_HEAD)
        for t in tools:
            ctx.append("\n")
            ctx.append(_tojson(t))
        ctx.append(_TOOLS_TAIL)
    elif first_system:
        ctx += ("<|im_start|>system\n", first["content"], _END)
    else:
        ctx.append(_DEFAULT_HEAD)
    n = len(messages)
    for i, m in enumerate(messages):
        role = m["role"]
        if role == "user":
            ctx += ("<|im_start|>user\n", m["content"], _END)
        elif role == "assistant":
            ctx.append("<|im_start|>assistant")
            out.append(("".join(ctx), False))
            ctx = []
            calls = m.get("tool_calls")
            if not calls:
                out.append(("\n" + m["content"] + _END, True))
                continue
            parts = []
            if m.get("content"):
                parts.append("\n" + m["content"])
            for c in calls:
                fn = c["function"] if "function" in c else c
                parts.append('\n<tool_call>\n{"name": "' + fn["name"] + '", "arguments": '
                             + _tojson(fn["arguments"]) + "}\n</tool_call>")
            parts.append(_END)
            out.append(("".join(parts), True))
        elif role == "system":
            if i > 0:
                ctx += ("<|im_start|>system\n", m["content"], _END)
        elif role == "tool":
            if i == 0 or messages[i - 1]["role"] != "tool":
                ctx.append("<|im_start|>user")
            ctx += ("\n<tool_response>\n", m["content"], "\n</tool_response>")
            if i == n - 1 or messages[i + 1]["role"] != "tool":
                ctx.append(_END)
    if ctx:
        out.append(("".join(ctx), False))
    return out


def _plain_pieces(messages: Any) -> list[tuple[str, bool]] | None:
    """``render_pieces`` of a plain conversation (a list of dicts with string contents, roles
    system/user/assistant, no tools, an assistant turn), checked and rendered in one pass; None for
    anything else, which then takes the full check (naming the fault) and ``render_pieces``."""
    if type(messages) is not list or not messages or type(messages[0]) is not dict:
        return None
    out: list[tuple[str, bool]] = []
    ctx: list[str] = []
    first = messages[0]
    if first.get("role") == "system":
        c = first.get("content")
        if type(c) is not str:
            return None
        ctx += ("<|im_start|>system\n", c, _END)
    else:
        ctx.append(_DEFAULT_HEAD)
    trained = False
    for i, m in enumerate(messages):
        if type(m) is not dict:
            return None
        c = m.get("content")
        if type(c) is not str:
            return None
        role = m.get("role")
        if role == "user":
            ctx += ("<|im_start|>user\n", c, _END)
        elif role == "assistant":
            if m.get("tool_calls"):
                return None
            ctx.append("<|im_start|>assistant")
            out.append(("".join(ctx), False))
            ctx = []
            out.append(("\n" + c + _END, True))
            trained = True
        elif role == "system":
            if i:
                ctx += ("<|im_start|>system\n", c, _END)
        else:
            return None
    if not trained:
        return None
    if ctx:
        out.append(("".join(ctx), False))
    return out


_QWEN25_TEMPLATE: list[str | None] = []


def _check_template(tokenizer: Tokenizer) -> None:
    """The piece renderer reproduces the Qwen2.5 template only: refuse any other."""
    if not _QWEN25_TEMPLATE:
        from ..tokenizer import Tokenizer as _Tok

        _QWEN25_TEMPLATE.append(_Tok.qwen25().chat_template)
    t = tokenizer.chat_template
    if t is not None and t != _QWEN25_TEMPLATE[0]:
        raise Qwen25ValueError("SFT masks follow the Qwen2.5 chat template, and this tokenizer has another "
                               "chat_template; use a tokenizer with the Qwen2.5 (ChatML) template")
    for tok in ("<|im_start|>", "<|im_end|>"):
        if tokenizer.token_to_id(tok) is None:
            raise Qwen25ValueError(f"the tokenizer has no {tok} token: SFT needs the ChatML control tokens")


# --------------------------------------------------------------------------- tokenizing
def build_example(tokenizer: Tokenizer, messages: Sequence[Mapping[str, Any]],
                  tools: Sequence[Mapping[str, Any]] | None = None) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one conversation: labels equal the ids on the assistant tokens
    (see the module docstring) and are -100 elsewhere. Bad conversations raise, naming the fault."""
    ids, labels = build_examples(tokenizer, [(messages, tools)])[0]
    return ids, labels


def build_examples(tokenizer: Tokenizer, conversations: Iterable[tuple[Sequence[Mapping[str, Any]], Any]],
                   *, num_threads: int | None = 1) -> list[tuple[list[int], list[int]]]:
    """``build_example`` for many ``(messages, tools)`` pairs, tokenized in one batch."""
    convs = list(conversations)
    for k, (m, t) in enumerate(convs):
        check_messages(m, t, f"conversation {k}")
    ids, labels, offsets = _tokenize_batch(tokenizer, [render_pieces(m, t) for m, t in convs], num_threads)
    return [(ids[offsets[k]:offsets[k + 1]].tolist(), labels[offsets[k]:offsets[k + 1]].tolist())
            for k in range(len(convs))]


def _tokenize_batch(tokenizer: Tokenizer, pieces: list[list[tuple[str, bool]]], num_threads: int | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat int64 ids and labels of every conversation, and their offsets (n + 1)."""
    _check_template(tokenizer)
    texts = [t for ps in pieces for t, _ in ps]
    trained = [f for ps in pieces for _, f in ps]
    counts = np.fromiter((len(ps) for ps in pieces), dtype=np.int64, count=len(pieces))
    flat, offs = tokenizer.encode_batch(texts, num_threads=num_threads, flat=True)
    ids = flat.astype(np.int64)
    piece_len = np.diff(offs.astype(np.int64)).astype(np.int64)
    mask = np.repeat(np.asarray(trained, dtype=bool), piece_len.tolist())
    labels = np.where(mask, ids, -100)
    piece_end = np.concatenate([[0], np.cumsum(counts)])
    tok_off = np.concatenate([[0], np.cumsum(piece_len)])
    return ids, labels, tok_off[piece_end]


# ----------------------------------------------------------------------------- packing
def pack_bfd(lengths: Sequence[int], seq_len: int) -> list[list[int]]:
    """Best-fit-decreasing packing of items of ``lengths`` into rows of at most ``seq_len``:
    the indices in each row (see the module docstring; equal to TRL's ``pack_dataset`` "bfd").
    Every length must be in 1..seq_len: nothing is truncated or dropped here."""
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
        raise Qwen25ValueError(f"seq_len must be a positive int, got {seq_len!r}")
    lens = [int(x) for x in lengths]
    for i, n in enumerate(lens):
        if not 1 <= n <= seq_len:
            raise Qwen25ValueError(f"lengths[{i}] = {n} is outside 1..seq_len ({seq_len}); truncate or drop "
                                   "it (and count it) before packing")
    order = sorted(range(len(lens)), key=lambda i: -lens[i])  # stable: ties keep input order
    rows: list[list[int]] = []
    room: list[int] = []  # distinct free spaces of open rows, ascending
    by_room: dict[int, deque[int]] = {}  # space -> rows with that space, oldest first
    for i in order:
        n = lens[i]
        j = bisect.bisect_left(room, n)
        if j < len(room):
            space = room[j]
            q = by_room[space]
            r = q.popleft()
            if not q:
                del by_room[space]
                room.pop(j)
        else:
            space = seq_len
            r = len(rows)
            rows.append([])
        rows[r].append(i)
        left = space - n
        if left > 0:
            if left not in by_room:
                by_room[left] = deque()
                bisect.insort(room, left)
            by_room[left].append(r)
    return rows


# ----------------------------------------------------------------------------- reading
def _iter_source(src: Any) -> Iterator[tuple[str, Any, str | None, bool]]:
    """(where, record or None, error, from a table) for each record of a file or dataset; records
    from Parquet and HF datasets are "from a table" (absent struct fields come back as None)."""
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        if os.path.isdir(path):
            try:
                import datasets
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise Qwen25ValueError(f"{path}: a folder is read as an HF dataset (save_to_disk), which needs "
                                       "the 'datasets' package") from e
            ds = datasets.load_from_disk(path)
            if isinstance(ds, datasets.DatasetDict):
                raise Qwen25ValueError(f"{path}: an HF DatasetDict; point at one split's folder")
            for i, rec in enumerate(ds):
                yield f"{path}:row {i + 1}", rec, None, True
            return
        if not os.path.exists(path):
            raise Qwen25FileNotFoundError(2, "no such file", path)
        from ..data.records import file_kind, iter_objects, iter_parquet

        if file_kind(path) == "parquet":
            for i, rec in enumerate(iter_parquet(path)):
                yield f"{path}:row {i + 1}", rec, None, True
            return
        for line, obj, why in iter_objects(path, skip_bad=True):
            yield f"{path}:{line}", obj, why, False
        return
    name = type(src).__name__
    table = type(src).__module__.split(".")[0] == "datasets"
    for i, rec in enumerate(src):
        yield f"<{name}>:row {i + 1}", rec, None, table


def _conversation_of(rec: Any, table: bool = False) -> tuple[Any, Any]:
    if not isinstance(rec, Mapping):
        raise Qwen25ValueError(f"a record must be a JSON object with 'messages', got {type(rec).__name__}")
    if "messages" not in rec:
        raise Qwen25ValueError(f"no 'messages' field (fields: {sorted(rec)[:10]})")
    tools = rec.get("tools")
    if isinstance(tools, str):  # some datasets keep the tools as a JSON string
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError:
            raise Qwen25ValueError("'tools' is a string that is not JSON") from None
    msgs = rec["messages"]
    if table and isinstance(msgs, Sequence) and not isinstance(msgs, (str, bytes)):
        # Parquet/datasets fill absent struct fields with None: drop them so the template sees absence
        msgs = [{k: v for k, v in m.items() if v is not None or k == "content"} if isinstance(m, Mapping) else m
                for m in msgs]
    return msgs, (tools or None)


@dataclass
class ChatData:
    """Tokenized conversations: flat int64 ``ids`` and ``labels``, ``offsets`` (n + 1), where each
    came from (``sources``: "file:line"), and the ``report`` of what was kept, truncated and
    skipped (with reasons)."""

    ids: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray
    sources: list[str]
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sources)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def example(self, k: int) -> tuple[list[int], list[int]]:
        a, b = int(self.offsets[k]), int(self.offsets[k + 1])
        return self.ids[a:b].tolist(), self.labels[a:b].tolist()


def read_chat(sources: Any) -> Iterator[tuple[str, Any, Any, str | None]]:
    """(where, messages, tools, error) per record of ``sources`` (paths of JSONL/Parquet files or
    HF dataset folders, or iterables of dicts); ``error`` is None for a usable record."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    for src in sources:
        for where, rec, err, table in _iter_source(src):
            if err is not None:
                yield where, None, None, err
                continue
            try:
                msgs, tools = _conversation_of(rec, table)
                check_messages(msgs, tools, where)
            except Qwen25ValueError as e:
                msg = str(e)
                yield where, None, None, msg[len(where) + 2:] if msg.startswith(where + ": ") else msg
                continue
            yield where, msgs, tools, None


def _read_pieces(sources: Any) -> Iterator[tuple[str, list[tuple[str, bool]] | None, str | None]]:
    """(where, rendered pieces, error) per record: ``read_chat`` and ``render_pieces`` in one pass."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    for src in sources:
        for where, rec, err, table in _iter_source(src):
            if err is not None:
                yield where, None, err
                continue
            try:
                msgs, tools = _conversation_of(rec, table)
                pieces = _plain_pieces(msgs) if tools is None else None
                if pieces is None:
                    check_messages(msgs, tools, where)
                    pieces = render_pieces(msgs, tools)
            except Qwen25ValueError as e:
                msg = str(e)
                yield where, None, msg[len(where) + 2:] if msg.startswith(where + ": ") else msg
                continue
            yield where, pieces, None


def tokenize_chat(tokenizer: Tokenizer, sources: Any, *, max_len: int, truncation: str = "error",
                  skip_bad: bool = False, num_threads: int | None = 1, batch_size: int = 4096) -> ChatData:
    """Read and tokenize chat data for SFT at most ``max_len`` tokens per conversation.

    Bad records (unreadable, no messages, unknown role, non-string content, no assistant turn)
    raise :class:`FormatError` naming the file and line, or with ``skip_bad`` are counted and
    listed in the report. Longer conversations follow ``truncation``: ``"error"`` raises (naming
    the record and its length), ``"skip"`` counts and lists them, ``"truncate"`` keeps the first
    ``max_len`` tokens (a conversation left without a target token is then skipped, or an error
    without ``skip_bad``). Nothing is dropped silently."""
    if truncation not in TRUNCATION:
        raise Qwen25ValueError(f"truncation must be one of {list(TRUNCATION)}, got {truncation!r}")
    if not isinstance(max_len, int) or max_len < 2:
        raise Qwen25ValueError(f"max_len must be an int >= 2, got {max_len!r}")
    id_parts: list[np.ndarray] = []
    lab_parts: list[np.ndarray] = []
    lens: list[int] = []
    kept_sources: list[str] = []
    skipped: list[dict[str, str]] = []
    n_truncated = 0
    n_too_long = 0
    total = 0

    def bad(where: str, reason: str) -> None:
        if not skip_bad:
            path, _, line = where.rpartition(":")
            ln = int(line) if line.isdigit() else 0
            raise FormatError(f"{where}: {reason}", path if ln else where, ln)
        skipped.append({"where": where, "reason": reason})

    def run(batch: list[tuple[str, list[tuple[str, bool]]]]) -> None:
        nonlocal n_truncated, n_too_long
        ids, labels, offs = _tokenize_batch(tokenizer, [p for _, p in batch], num_threads)
        n_all = np.diff(offs)
        if not (n_all > max_len).any():  # the common case: the whole batch is kept as it is
            id_parts.append(ids)
            lab_parts.append(labels)
            lens.extend(n_all.tolist())
            kept_sources.extend(w for w, _ in batch)
            return
        for k, (where, _) in enumerate(batch):
            a, b = int(offs[k]), int(offs[k + 1])
            n = b - a
            if n > max_len:
                if truncation == "error":
                    raise FormatError(f"{where}: {n} tokens, longer than the maximum {max_len} (truncation="
                                      f"'error'; use 'truncate' or 'skip')", where.rpartition(":")[0],
                                      int(where.rpartition(":")[2]) if where.rpartition(":")[2].isdigit() else 0)
                if truncation == "skip":
                    n_too_long += 1
                    skipped.append({"where": where, "reason": f"{n} tokens > max_len {max_len}"})
                    continue
                b = a + max_len
                if not (labels[a + 1:b] != -100).any():
                    bad(where, f"no assistant token left after truncating {n} tokens to {max_len}")
                    continue
                n_truncated += 1
            id_parts.append(ids[a:b])
            lab_parts.append(labels[a:b])
            lens.append(b - a)
            kept_sources.append(where)

    batch: list[tuple[str, list[tuple[str, bool]]]] = []
    for where, pieces, err in _read_pieces(sources):
        total += 1
        if pieces is None:
            bad(where, err or "unusable record")
            continue
        batch.append((where, pieces))
        if len(batch) >= batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int64)
    labels = np.concatenate(lab_parts) if lab_parts else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(np.asarray(lens, dtype=np.int64))]).astype(np.int64)
    targets = int((labels != -100).sum())
    report = {"records": total, "kept": len(kept_sources), "truncated": n_truncated,
              "skipped": len(skipped), "skipped_too_long": n_too_long,
              "skipped_bad": len(skipped) - n_too_long, "skipped_records": skipped,
              "tokens": int(len(ids)), "target_tokens": targets, "max_len": max_len, "truncation": truncation}
    return ChatData(ids, labels, offsets, kept_sources, report)


# ------------------------------------------------------------------------ rows for training
def packed_row(data: ChatData, members: Sequence[int], seq_len: int, pad_id: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, position_ids, labels) of one packed row holding conversations ``members``:
    positions restart at each conversation, its first token is not a target, padding is -100."""
    ids = np.full(seq_len, pad_id, dtype=np.int64)
    pos = np.zeros(seq_len, dtype=np.int64)
    lab = np.full(seq_len, -100, dtype=np.int64)
    at = 0
    for k in members:
        a, b = int(data.offsets[k]), int(data.offsets[k + 1])
        n = b - a
        ids[at:at + n] = data.ids[a:b]
        lab[at:at + n] = data.labels[a:b]
        lab[at] = -100  # never predicted from the previous conversation
        pos[at:at + n] = np.arange(n)
        at += n
    if at < seq_len:
        pos[at:] = np.arange(seq_len - at)  # padding: its own pseudo-document, no targets
    return ids, pos, lab


class SFTStageData(RowStream):
    """The resumable row stream of one SFT stage: the stage's conversations packed by
    :func:`pack_bfd` into rows of ``seq_len``, read in a seeded random order per epoch (as
    :class:`~qwen25.train.data.StageData` does for pre-training folders; same interface)."""

    def __init__(self, data: ChatData, stage: Stage, stage_index: int, *, seed: int, shuffle: bool,
                 pad_id: int, vocab_size: int | None = None) -> None:
        self.data, self.stage, self.stage_index = data, stage, stage_index
        self.seed, self.shuffle, self.pad_id = seed, shuffle, pad_id
        if len(data) == 0:
            raise Qwen25ValueError(f"stage {stage.name!r}: no conversations to train on "
                                   f"(report: { {k: v for k, v in data.report.items() if k != 'skipped_records'} })")
        lens = data.lengths()
        if int(lens.max()) > stage.seq_len:
            raise Qwen25ValueError(f"stage {stage.name!r}: a conversation of {int(lens.max())} tokens is longer "
                                   f"than seq_len {stage.seq_len}")
        if vocab_size is not None and len(data.ids) and int(data.ids.max()) >= vocab_size:
            k = int(np.searchsorted(data.offsets, int(np.argmax(data.ids >= vocab_size)), side="right")) - 1
            raise Qwen25ValueError(f"{data.sources[k]}: token id {int(data.ids.max())} is outside the model's "
                                   f"vocabulary ({vocab_size}); was the data tokenized for another model?")
        self.rows = pack_bfd(lens.tolist(), stage.seq_len)
        self.rows_taken = 0
        self.repeated = [False]
        self._perm: dict[int, tuple[int, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def state(self) -> dict[str, Any]:
        return {"stage": self.stage_index, "rows": self.rows_taken, "taken": [self.rows_taken],
                "folders": list(self.stage.data), "packed_rows": len(self.rows)}

    def load_state(self, st: dict[str, Any]) -> None:
        if st.get("stage") != self.stage_index:
            raise Qwen25ValueError(f"checkpoint data position {st} does not fit stage {self.stage.name!r}")
        if "packed_rows" in st and int(st["packed_rows"]) != len(self.rows):
            raise Qwen25ValueError(f"stage {self.stage.name!r}: the checkpoint's data packed into {st['packed_rows']} "
                                   f"rows, this data into {len(self.rows)}: the data changed")
        self.rows_taken = int(st["rows"])

    def _row_of(self, j: int) -> int:
        return self._ordered(0, j, len(self.rows))

    def take_step(self, rows_per_step: int) -> list[tuple[int, int]]:
        out = [(0, self._row_of(self.rows_taken + a)) for a in range(rows_per_step)]
        self.rows_taken += rows_per_step
        return out

    def _batch(self, rows: list[tuple[int, int]]) -> MicroBatch:
        t = self.stage.seq_len
        ids = np.empty((len(rows), t), dtype=np.int64)
        pos = np.empty_like(ids)
        lab = np.empty_like(ids)
        for r, (_, i) in enumerate(rows):
            ids[r], pos[r], lab[r] = packed_row(self.data, self.rows[i], t, self.pad_id)
        return micro_batch(ids, pos, lab, rows)

    def describe(self, rows: list[tuple[int, int]]) -> str:
        parts = []
        for _, i in rows[:4]:
            parts.append(f"row {i} (" + ", ".join(self.data.sources[k] for k in self.rows[i][:3])
                         + (", ..." if len(self.rows[i]) > 3 else "") + ")")
        return "; ".join(parts) + (f"; and {len(rows) - 4} more rows" if len(rows) > 4 else "")


def rows_needed(n_rows: int, epochs: float) -> int:
    return max(1, math.ceil(n_rows * epochs))



# ------------------------------------------------------------------------ the debug task
DEBUG_CHAT = "builtin:debug-chat"
DEBUG_CHAT_TOKENIZER = "builtin:debug-chat"
DEBUG_CHAT_VERSION = 1
DEBUG_CHAT_VOCAB = 512
DEBUG_WORDS = ("fox", "bird", "cat", "river", "tree", "child", "teacher", "boat", "house", "dog", "garden", "star",
               "apple", "stone", "cloud", "horse", "lamp", "door", "ship", "king", "moon", "book", "road", "bell")
_CHAT_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>")


def debug_chat(n: int = 2000, seed: int = 0, words: Sequence[str] = DEBUG_WORDS) -> list[dict[str, Any]]:
    """``n`` synthetic conversations ({"messages": [...]}) of three kinds: repeat a word, name the
    second of three words, add two numbers below 10. The same list everywhere (splitmix64)."""
    from .debug_data import _SplitMix64

    r = _SplitMix64(seed * 0x9E3779B97F4A7C15 + 777)
    out = []
    for _ in range(n):
        kind = r.below(3)
        if kind == 0:
            w = words[r.below(len(words))]
            q, a = f"Repeat the word: {w}", w
        elif kind == 1:
            ws = [words[r.below(len(words))] for _ in range(3)]
            q, a = f"Which word is second: {ws[0]}, {ws[1]}, {ws[2]}?", ws[1]
        else:
            x, y = r.below(10), r.below(10)
            q, a = f"What is {x} plus {y}?", str(x + y)
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if r.below(4) == 0:
            msgs.insert(0, {"role": "system", "content": "Answer with one word."})
        out.append({"messages": msgs})
    return out


def save_chat_tokenizer(tok: Tokenizer, directory: str) -> None:
    """``tok.save_pretrained(directory)``, its ``tokenizer_config.json`` set up for ChatML: the
    Qwen2.5 chat template, eos ``<|im_end|>``, pad ``<|endoftext|>``."""
    from ..tokenizer import Tokenizer as _Tok

    chat_template = _Tok.qwen25().chat_template
    tok.save_pretrained(directory)
    cfg_path = os.path.join(directory, "tokenizer_config.json")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.update(chat_template=chat_template, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    with open(cfg_path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)


def debug_chat_tokenizer(out_dir: str | os.PathLike[str]) -> Tokenizer:
    """A 512-token BPE with the ChatML control tokens and the Qwen2.5 chat template, trained on the
    rendered debug conversations; saved to ``out_dir/debug-chat-tokenizer-v{N}`` (once) and loaded."""
    from .._train import train_bpe
    from ..tokenizer import Tokenizer as _Tok
    from .debug_data import build_folder_once

    final = os.path.join(os.fspath(out_dir), f"debug-chat-tokenizer-v{DEBUG_CHAT_VERSION}")

    def build(tmp: str) -> None:
        texts = ["".join(t for t, _ in render_pieces(c["messages"])) for c in debug_chat(4000, seed=1)]
        tok = train_bpe(texts, DEBUG_CHAT_VOCAB, special_tokens=_CHAT_SPECIALS, num_threads=1)
        save_chat_tokenizer(tok, tmp)

    return _Tok.from_pretrained(build_folder_once(final, "tokenizer_config.json", build))


def write_debug_chat(folder: str | os.PathLike[str], n: int = 2000, seed: int = 0) -> str:
    """Write :func:`debug_chat` as ``folder/chat.jsonl`` (once; every rank of a run may ask at
    once) and return that path."""
    from .debug_data import build_folder_once
    from ..data.records import write_jsonl

    def build(tmp: str) -> None:
        write_jsonl(os.path.join(tmp, "chat.jsonl"), debug_chat(n, seed))

    return os.path.join(build_folder_once(os.fspath(folder), "chat.jsonl", build), "chat.jsonl")


# ------------------------------------------------------------------------------- recipes
def _sft_method(**kw: Any) -> dict[str, Any]:
    m = {"objective": "sft", "epochs": 2.0, "truncation": "error", "skip_bad": False, "tokenizer": "qwen25"}
    m.update(kw)
    return m


def recipe_sft() -> TrainConfig:
    """The Qwen2.5 report's SFT: 2 epochs at 32,768 tokens, lr 7e-6 decaying to 7e-7 (cosine, no
    warm-up), weight decay 0.1, clipping 1.0, from a pre-trained checkpoint (``init_from``). The
    report gives no batch size: 128 rows of 32,768 (2^22 tokens) here."""
    from .config import Stage, TrainConfig

    return TrainConfig(
        name="sft", model="0.5B", init_from="checkpoints/base",
        stages=(Stage(name="sft", data=("data/sft/chat.jsonl",), seq_len=32768, steps=1),),
        global_batch_tokens=1 << 22, micro_batch_size=1, lr=7e-6, min_lr_ratio=0.1, schedule="cosine",
        warmup_steps=0, weight_decay=0.1, clip_grad_norm=1.0, activation_checkpointing=True,
        mask_document_boundaries=True, checkpoint_every=500, log_every=10, method=_sft_method())


def recipe_sft_long() -> TrainConfig:
    """The report's two-stage long SFT: stage 1 on short conversations only (up to 32,768 tokens;
    longer ones are counted and left to stage 2), stage 2 on short and long together (up to
    262,144) with YaRN (factor 8 over the 32,768-token window) and Dual Chunk Attention recorded
    for inference; one epoch each, the report's optimizer values."""
    from .config import Stage, TrainConfig

    yarn = {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 32768}
    dca = {"chunk_size": 32768, "local_size": 1024, "original_max_position_embeddings": 32768}
    return TrainConfig(
        name="sft-long", model="0.5B", init_from="checkpoints/base",
        stages=(Stage(name="short", data=("data/sft/chat.jsonl",), seq_len=32768, steps=1),
                Stage(name="long", data=("data/sft/chat.jsonl",), seq_len=262144, steps=1, rope_scaling=yarn,
                      dca=dca, micro_batch_size=1)),
        global_batch_tokens=1 << 22, micro_batch_size=1, lr=7e-6, min_lr_ratio=0.1, schedule="cosine",
        warmup_steps=0, weight_decay=0.1, clip_grad_norm=1.0, activation_checkpointing=True,
        checkpoint_every=500, log_every=10,
        method=_sft_method(epochs=[1.0, 1.0], truncation=["skip", "error"]))


def recipe_debug() -> TrainConfig:
    """CPU, about a minute: the ``debug`` model shape with a 512-token ChatML BPE, on 2,000
    synthetic conversations (``builtin:debug-chat``) packed into rows of 256; 2 epochs."""
    from .config import Stage, TrainConfig

    return TrainConfig(
        name="sft-debug", model="debug", model_overrides={"vocab_size": DEBUG_CHAT_VOCAB},
        stages=(Stage(name="sft", data=(DEBUG_CHAT,), seq_len=256, steps=1),),
        global_batch_tokens=256 * 8, micro_batch_size=8, lr=3e-3, min_lr_ratio=0.1, warmup_steps=10,
        weight_decay=0.1, clip_grad_norm=1.0, device="cpu", precision="fp32", checkpoint_every=0, keep_last=2,
        method=_sft_method(tokenizer=DEBUG_CHAT_TOKENIZER))


RECIPES = {"sft": recipe_sft, "sft-long": recipe_sft_long, "debug": recipe_debug}


def recipe(name: str) -> TrainConfig:
    """The SFT recipe ``name`` (``sft``, ``sft-long``, ``debug``); steps are set from the data by
    :func:`prepare`."""
    from .recipes import pick

    return pick(RECIPES, name, "SFT")


# --------------------------------------------------------------------------------- a run
def _per_stage(value: Any, n: int, key: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise Qwen25ValueError(f"method.{key}: {len(value)} values for {n} stage(s)")
        return list(value)
    return [value] * n


def sft_tokenizer(config: TrainConfig, work_dir: str | os.PathLike[str]) -> Tokenizer:
    """The run's tokenizer: ``method.tokenizer`` is ``qwen25``, ``builtin:debug-chat`` or a folder."""
    from ..tokenizer import Tokenizer as _Tok

    name = config.method.get("tokenizer", "qwen25")
    if name == "qwen25":
        return _Tok.qwen25()
    if name == DEBUG_CHAT_TOKENIZER:
        return debug_chat_tokenizer(work_dir)
    if isinstance(name, str) and os.path.exists(name):
        return _Tok.from_pretrained(name)
    raise Qwen25ValueError(f"method.tokenizer {name!r}: expected qwen25, {DEBUG_CHAT_TOKENIZER} or a tokenizer folder")


@dataclass
class Prepared:
    """A run ready to train: the config with each stage's steps set from its data, the tokenizer,
    each stage's tokenized conversations and the data report."""

    config: TrainConfig
    tokenizer: Tokenizer
    data: list[ChatData]
    report: dict[str, Any]


def prepare(config: TrainConfig, work_dir: str | os.PathLike[str], *, num_threads: int | None = 1) -> Prepared:
    """Tokenize every stage's chat data (``builtin:debug-chat`` is written to ``work_dir``), pack it,
    and set each stage's steps to ``ceil(epochs x packed rows / rows per step)``."""
    import dataclasses

    m = config.method
    if m.get("objective", "sft") != "sft":
        raise Qwen25ValueError(f"method.objective is {m.get('objective')!r}, not 'sft'")
    known = {"objective", "epochs", "truncation", "skip_bad", "tokenizer"}
    unknown = sorted(set(m) - known)
    if unknown:
        raise Qwen25ValueError(f"method keys {unknown} are not SFT settings (known: {sorted(known)})")
    n = len(config.stages)
    epochs = _per_stage(m.get("epochs", 2.0), n, "epochs")
    truncs = _per_stage(m.get("truncation", "error"), n, "truncation")
    skip_bad = bool(m.get("skip_bad", False))
    for e in epochs:
        if not (isinstance(e, (int, float)) and e > 0):
            raise Qwen25ValueError(f"method.epochs must be > 0, got {e!r}")
    tok = sft_tokenizer(config, work_dir)
    stages, datas, reports = [], [], []
    for i, s in enumerate(config.stages):
        sources = [write_debug_chat(os.path.join(os.fspath(work_dir), f"debug-chat-v{DEBUG_CHAT_VERSION}"))
                   if d == DEBUG_CHAT else d for d in s.data]
        cd = tokenize_chat(tok, sources, max_len=s.seq_len, truncation=truncs[i], skip_bad=skip_bad,
                           num_threads=num_threads)
        if len(cd) == 0:
            raise Qwen25ValueError(f"stage {s.name!r}: no conversation left to train on ({cd.report['records']} "
                                   f"records, {cd.report['skipped']} skipped)")
        rows = len(pack_bfd(cd.lengths().tolist(), s.seq_len))
        steps = max(1, math.ceil(epochs[i] * rows / config.rows_per_step(s)))
        stages.append(dataclasses.replace(s, steps=steps, tokens=None))
        datas.append(cd)
        rep = {k: v for k, v in cd.report.items()}
        rep.update(stage=s.name, packed_rows=rows, epochs=epochs[i], steps=steps,
                   fill=round(float(cd.lengths().sum()) / (rows * s.seq_len), 4))
        reports.append(rep)
    cfg = dataclasses.replace(config, stages=tuple(stages))
    return Prepared(cfg, tok, datas, {"stages": reports})


def sft_trainer_class() -> type:
    """The :class:`~qwen25.train.Trainer` subclass whose stages read packed conversations."""
    from .trainer import Trainer

    class SFTTrainer(Trainer):
        """Trains on :class:`Prepared` data: each stage's rows come from :class:`SFTStageData`; the
        loss is the mean over every assistant token of the step (all micro-batches and ranks)."""

        def __init__(self, prepared: Prepared, **kwargs: Any) -> None:
            super().__init__(prepared.config, **kwargs)
            self.prepared = prepared

        def check_data(self) -> None:  # the conversations were read and checked by prepare()
            return None

        def stage_data(self, stage: Stage, index: int) -> SFTStageData:
            tok = self.prepared.tokenizer
            pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
            return SFTStageData(self.prepared.data[index], stage, index, seed=self.config.seed,
                                shuffle=self.config.shuffle, pad_id=int(pad),
                                vocab_size=self.stage_configs[index][0].vocab_size)

    return SFTTrainer


def run_sft(config: TrainConfig, out_dir: str | os.PathLike[str], *, resume: bool | str = True,
            allow_changes: bool = False, progress: bool | None = None, stop_at_step: int | None = None,
            num_threads: int | None = 1) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """Prepare the data, write ``OUT/sft_report.json`` (kept, truncated and skipped counts per stage,
    with the skipped records and why), then train as ``qwen25 pretrain`` does (``metrics.jsonl``,
    ``checkpoints/step-N``, ``loss.png``; resumable). Returns (trainer, metrics, report)."""
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    prepared = prepare(config, os.path.join(out, "data"), num_threads=num_threads)
    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank prepares the same data; one writes
        from ..data.records import write_json

        write_json(os.path.join(out, "sft_report.json"), prepared.report, newline=False, indent=2, ensure_ascii=False)
    trainer = sft_trainer_class()(prepared, out_dir=out, resume=resume, allow_changes=allow_changes, progress=progress)
    records = trainer.fit(stop_at_step=stop_at_step)
    return trainer, records, prepared.report
