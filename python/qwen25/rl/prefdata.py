"""Preference pairs on disk and in batches, shared by the reward model and DPO.

A pairs file is JSONL, one pair a line, in one of two forms:

* text: ``{"prompt": ..., "chosen": ..., "rejected": ...}``. ``prompt`` is a string (one user
  turn) or a list of chat messages; ``chosen``/``rejected`` are strings or a one-message list
  ``[{"role": "assistant", "content": ...}]`` (TRL's conversational form). The prompt is rendered
  with the tokenizer's chat template and the generation prompt (``<|im_start|>assistant\\n``);
  a completion is its text's tokens followed by one ``<|im_end|>`` (a text that already ends with
  ``<|im_end|>`` does not get a second). Qwen has no BOS token: nothing is prepended.
* tokens: ``{"prompt_ids": [...], "chosen_ids": [...], "rejected_ids": [...]}``, used as given.

Optional keys: ``margin`` (the reward model's margin) and anything else (provenance), kept
untouched. A sequence longer than ``max_length`` loses the end of its completion (counted in
``PairSet.truncated`` and reported); a prompt that leaves no room for a completion token is an
error naming the line, as is every malformed line: no pair is ever dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError

if TYPE_CHECKING:
    import torch

    from ..tokenizer import Tokenizer
    from ..train.config import TrainConfig

__all__ = ["Pair", "PairSet", "PairBatch", "PairData", "read_pairs", "tokenize_pair", "collate", "count_records",
           "holds_text", "sized_to_epochs"]

IM_END = "<|im_end|>"


@dataclass(frozen=True)
class Pair:
    prompt: tuple[int, ...]
    chosen: tuple[int, ...]  # completion tokens only
    rejected: tuple[int, ...]
    line: int  # 1-based line of the file
    margin: float | None = None


@dataclass
class PairSet:
    path: str
    pairs: list[Pair]
    digest: str  # sha256 of the tokenized pairs (the reference cache key uses it)
    truncated: int = 0  # sequences whose completion was cut at max_length


def _completion(value: Any, where: str, key: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping) \
            and value[0].get("role") == "assistant" and isinstance(value[0].get("content"), str):
        return str(value[0]["content"])
    raise FormatError(f"{where}: {key!r} must be a string or [{{'role': 'assistant', 'content': str}}], "
                      f"got {type(value).__name__}")


def _ids(value: Any, where: str, key: str, vocab_size: int | None) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        raise FormatError(f"{where}: {key!r} must be a list of token ids")
    for x in value:
        if x < 0 or (vocab_size is not None and x >= vocab_size):
            raise FormatError(f"{where}: {key!r} holds token id {x}, outside the model's vocabulary of {vocab_size}")
    return tuple(value)


def tokenize_pair(rec: Mapping[str, Any], tokenizer: Tokenizer | None, *, where: str = "pair",
                  vocab_size: int | None = None) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(prompt ids, chosen completion ids, rejected completion ids) of one record (see the module
    docstring for the forms)."""
    if not isinstance(rec, Mapping):
        raise FormatError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    if "prompt_ids" in rec:
        missing = [k for k in ("prompt_ids", "chosen_ids", "rejected_ids") if k not in rec]
        if missing:
            raise FormatError(f"{where}: missing {missing}")
        out = tuple(_ids(rec[k], where, k, vocab_size) for k in ("prompt_ids", "chosen_ids", "rejected_ids"))
    else:
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in rec]
        if missing:
            raise FormatError(f"{where}: missing {missing} (or give prompt_ids, chosen_ids, rejected_ids)")
        if tokenizer is None:
            from ..tokenizer import Tokenizer

            tokenizer = Tokenizer.qwen25()
        end = tokenizer.token_to_id(IM_END)
        if end is None:
            raise Qwen25ValueError(f"the tokenizer has no {IM_END} token: text pairs need a chat tokenizer")
        prompt = rec["prompt"]
        if isinstance(prompt, str):
            messages: Any = [{"role": "user", "content": prompt}]
        elif isinstance(prompt, list) and prompt and all(isinstance(m, Mapping) for m in prompt):
            messages = prompt
        else:
            raise FormatError(f"{where}: 'prompt' must be a string or a non-empty list of messages")
        try:
            p_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        except (TypeError, ValueError) as e:
            raise FormatError(f"{where}: 'prompt': {e}") from None
        comps = []
        for key in ("chosen", "rejected"):
            text = _completion(rec[key], where, key)
            if text.endswith(IM_END):  # no doubled <|im_end|>
                text = text[: -len(IM_END)]
            comps.append(tuple(tokenizer.encode(text)) + (end,))
        out = (tuple(p_ids), comps[0], comps[1])  # type: ignore[arg-type]
        if vocab_size is not None:
            for key, ids in zip(("prompt", "chosen", "rejected"), out):
                bad = [x for x in ids if x >= vocab_size]
                if bad:
                    raise FormatError(f"{where}: {key!r} tokenizes to id {bad[0]}, outside the model's vocabulary "
                                      f"of {vocab_size}")
    if not out[1] or not out[2]:
        raise FormatError(f"{where}: an empty completion (chosen {len(out[1])}, rejected {len(out[2])} tokens)")
    return out  # type: ignore[return-value]


def count_records(path: str | os.PathLike[str]) -> int:
    """The records of a JSONL file (``.gz``/``.zst`` too; blank lines are not records, a malformed
    line counts: the reader names it later), read by the one record reader."""
    from ..data.records import iter_objects

    p = os.fspath(path)
    if not os.path.isfile(p):
        raise Qwen25FileNotFoundError(f"pairs file {p} does not exist")
    return sum(1 for _ in iter_objects(p, skip_bad=True))


def sized_to_epochs(config: TrainConfig, data: str | os.PathLike[str] | None, epochs: float) -> TrainConfig:
    """``config`` with its first stage pointed at ``data`` (when given) and sized to ``epochs``
    passes over the pairs of its file (at least one step): DPO's and the reward model's sizing."""
    import math

    from ..train.config import override

    cfg = override(config, {"stages.0.data": (os.fspath(data),)}) if data is not None else config
    n = count_records(cfg.stages[0].data[0])
    return override(cfg, {"stages.0.steps": max(1, math.ceil(epochs * n / cfg.rows_per_step(cfg.stages[0])))})


def holds_text(path: str | os.PathLike[str]) -> bool:
    """Whether the records of a pairs or prompts file are text, so that reading them needs a
    tokenizer: its first record has no ``prompt_ids``. True for a file that is missing, empty or
    unreadable (the reader then says what is wrong)."""
    from ..data.records import iter_objects

    p = os.fspath(path)
    if not os.path.isfile(p):
        return True
    try:
        first = next(iter_objects(p, skip_bad=True), None)
    except (FormatError, OSError):
        return True
    return first is None or not (isinstance(first[1], dict) and "prompt_ids" in first[1])


def read_pairs(path: str | os.PathLike[str], *, max_length: int, tokenizer: Tokenizer | None = None,
               vocab_size: int | None = None) -> PairSet:
    """Read and tokenize every pair of a JSONL file (blank lines are skipped; everything else is a
    pair or an error naming the line)."""
    from ..data.records import iter_objects

    p = os.fspath(path)
    if not os.path.isfile(p):
        raise Qwen25FileNotFoundError(f"pairs file {p} does not exist")
    pairs: list[Pair] = []
    truncated = 0
    h = hashlib.sha256()
    for n, rec, _ in iter_objects(p):
        where = f"{p}:{n}"
        try:
            prompt, chosen, rejected = tokenize_pair(rec, tokenizer, where=where, vocab_size=vocab_size)
        except FormatError as e:
            raise FormatError(str(e), p, n) from None
        margin = rec.get("margin")
        if margin is not None and not (isinstance(margin, (int, float)) and not isinstance(margin, bool)):
            raise FormatError(f"{where}: 'margin' must be a number, got {margin!r}", p, n)
        room = max_length - len(prompt)
        if room < 1:
            raise FormatError(f"{where}: the prompt is {len(prompt)} tokens, leaving no room for a completion "
                              f"within max_length {max_length}", p, n)
        for c in (chosen, rejected):
            truncated += len(c) > room
        pair = Pair(prompt, chosen[:room], rejected[:room], n, None if margin is None else float(margin))
        h.update(json.dumps([pair.prompt, pair.chosen, pair.rejected, pair.margin]).encode())
        pairs.append(pair)
    if not pairs:
        raise Qwen25ValueError(f"pairs file {p} holds no pairs")
    return PairSet(p, pairs, h.hexdigest(), truncated)


@dataclass
class PairBatch:
    """m pairs as 2m rows: the chosen sequences first, then the rejected (right-padded)."""

    input_ids: torch.Tensor  # [2m, T]
    attention_mask: torch.Tensor  # [2m, T]
    completion_mask: torch.Tensor  # [2m, T], 1 on completion tokens
    rows: list[int]  # pair indices
    margin: torch.Tensor | None = None  # [m]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


def collate(pairs: list[Pair], rows: list[int], pad_id: int = 0, *, left: bool = False) -> PairBatch:
    """Rows padded on the right, or with ``left`` on the left (then every completion ends at the
    last column, so the logits of only the last few positions are needed)."""
    import torch

    seqs = [p.prompt + p.chosen for p in pairs] + [p.prompt + p.rejected for p in pairs]
    comp = [len(p.chosen) for p in pairs] + [len(p.rejected) for p in pairs]
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
    am = torch.zeros((len(seqs), t), dtype=torch.long)
    cm = torch.zeros((len(seqs), t), dtype=torch.long)
    for i, (s, c) in enumerate(zip(seqs, comp)):
        a = t - len(s) if left else 0
        ids[i, a: a + len(s)] = torch.tensor(s, dtype=torch.long)
        am[i, a: a + len(s)] = 1
        cm[i, a + len(s) - c: a + len(s)] = 1
    margin = None
    if any(p.margin is not None for p in pairs):
        margin = torch.tensor([p.margin or 0.0 for p in pairs], dtype=torch.float32)
    return PairBatch(ids, am, cm, list(rows), margin)


class PairData:
    """The Trainer's batch source over a :class:`PairSet`: each optimizer step takes the next
    pairs of a seeded permutation per epoch (or file order); the position is one number."""

    def __init__(self, pairset: PairSet, *, seed: int, stage_index: int, shuffle: bool, pad_id: int = 0,
                 left: bool = False) -> None:
        self.set = pairset
        self.seed, self.stage_index, self.shuffle, self.pad_id, self.left = seed, stage_index, shuffle, pad_id, left
        self.taken = 0
        self.repeated = [False]
        self._perms: dict[int, list[int]] = {}

    def state(self) -> dict[str, Any]:
        return {"taken": self.taken, "pairs": len(self.set.pairs), "digest": self.set.digest}

    def load_state(self, st: dict[str, Any]) -> None:
        if st.get("digest") not in (None, self.set.digest):
            raise Qwen25ValueError(f"resuming: the pairs in {self.set.path} differ from the checkpoint's")
        self.taken = int(st["taken"])

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            order = list(range(len(self.set.pairs)))
            if self.shuffle:
                random.Random(f"qwen25-pairs-{self.seed}-{self.stage_index}-{epoch}").shuffle(order)
            self._perms = {epoch: order}
        return self._perms[epoch]

    def take_step(self, n: int) -> list[int]:
        out = []
        size = len(self.set.pairs)
        for j in range(self.taken, self.taken + n):
            epoch = j // size
            if epoch > 0:
                self.repeated[0] = True
            out.append(self._perm(epoch)[j % size])
        self.taken += n
        return out

    def micro_batches(self, rows: list[int], micro_batch_size: int) -> list[PairBatch]:
        return [collate([self.set.pairs[r] for r in rows[a:a + micro_batch_size]], rows[a:a + micro_batch_size],
                        self.pad_id, left=self.left) for a in range(0, len(rows), micro_batch_size)]

    def describe(self, rows: list[int]) -> str:
        lines = sorted(self.set.pairs[r].line for r in rows)
        shown = ", ".join(map(str, lines[:20])) + (" ..." if len(lines) > 20 else "")
        return f"pairs at {self.set.path} lines {shown}"
