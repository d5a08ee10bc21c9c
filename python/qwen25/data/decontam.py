"""Benchmark decontamination with the Qwen2/Qwen2.5 rule (n-gram gate + LCS), exact.

A training sequence s_t is removed when some test sequence s_e meets
``|LCS(s_t, s_e)| >= lcs_min`` and ``|LCS(s_t, s_e)| >= lcs_ratio * min(|s_t|, |s_e|)``
(LCS: longest common subsequence of token ids after dropping punctuation and symbols and
collapsing whitespace). ``lcs_ratio`` is taken to 6 decimal places and compared exactly.

Modes: ``"qwen"`` (a shared contiguous ``ngram``-gram of token ids AND the LCS rule),
``"lcs"`` (the LCS rule alone, with a sound count prefilter) and ``"ngram"`` (the GPT-3 /
lm-evaluation-harness rule: a shared word 13-gram after lowercasing and stripping punctuation).
The rule was written for training *samples*. On a long document almost any test item is a
subsequence of the whole, so by default (``window="auto"``, qwen mode) s_t is the part of the
record aligned to the test item at each shared n-gram: a shared n-gram at record position p and
test position q places the item at p - q, and s_t is the record's tokens from
p - q - ceil(|s_e|/4) to p - q + |s_e| + ceil(|s_e|/4) (clipped; a record no longer than that is
judged whole). ``window=None`` is the report's literal rule on the whole record (for short
samples: SFT data), ``window=k`` the k tokens centred on each n-gram hit. Modes lcs and ngram
have no window ("auto" means the whole record there). The work runs in Rust with the GIL released, in parallel across items; decisions
never depend on the thread count, the batch size or the order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .. import _native
from ..errors import Qwen25TypeError, Qwen25ValueError
from .records import BadRecord, iter_objects, iter_records, record_item, surrogate_error

__all__ = ["Decontaminator", "Match", "ShortTestItemWarning", "decontaminate_demo", "items_of_test_set"]


@dataclass(frozen=True)
class Match:
    """A witness: test item ``test_index`` meets the rule against the training item.

    ``lcs`` is the LCS length (None in ngram mode); ``ngram_hits`` the positions in the
    training sequence (tokens; words in ngram mode) of the n-grams it shares with the test item;
    ``spans`` (ngram mode) their character spans in the training text; ``test_id`` the test
    item's id when the test set gave one. ``window`` (modes qwen and lcs, text input) is the
    part of the training text the LCS rule was met on, as character offsets ``[start, end)``
    (``text[start:end]``; the whole text unless a window judged it); ``token_window`` the same
    range in tokens of the normalised, tokenized sequence."""

    test_index: int
    lcs: int | None
    ngram_hits: tuple[int, ...] = ()
    spans: tuple[tuple[int, int], ...] = ()
    test_id: str | None = None
    window: tuple[int, int] | None = None
    token_window: tuple[int, int] | None = None


class ShortTestItemWarning(UserWarning):
    """Some test items are too short to ever match (fewer tokens or words than the n-gram)."""


def _item_of(r: Any, field: str, where: str) -> str | list[int]:
    """A record as the engine takes it: a str, or a list or tuple (token ids) as it is (the engine
    checks every element: ints in 0..2**32, no bools, and names the one at fault); a dict by the
    native reader's rule, :func:`~qwen25.data.records.record_item` with token ids allowed, so a
    record in memory is judged as the same record in a file (errors prefixed with ``where``)."""
    if isinstance(r, (str, list, tuple)):
        return r  # type: ignore[return-value]
    if not isinstance(r, dict):
        raise Qwen25TypeError(f"{where}record is {type(r).__name__}, not str, token ids or dict")
    try:
        return record_item(r, field)
    except BadRecord as e:
        raise BadRecord(f"{where}{e}") from None


def _check_threads(num_threads: Any) -> None:
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)):
        raise Qwen25TypeError(f"num_threads must be an int or None, not {num_threads!r}")


def _raise_surrogate(items: list[Any], what: str, start: int = 0) -> None:
    """Raise a Qwen25ValueError naming the first item (``what`` and its index from ``start``) whose
    text holds a lone surrogate, which no UTF-8 text can carry; return if none does."""
    for i, t in enumerate(items, start):
        if isinstance(t, str) and (err := surrogate_error(t, f"{what} {i}: the text")) is not None:
            raise err from None


def items_of_test_set(test_set: Any, field: str = "text") -> tuple[list[str | list[int]], list[str | None]]:
    """The items of ``test_set`` as the engine takes them (see :class:`Decontaminator`), and each
    one's id (``"id"``, ``"task_id"`` or ``"question_id"``; None when it has none)."""
    if isinstance(test_set, (str, os.PathLike)):
        p = os.fspath(test_set)
        if not os.path.exists(p):
            from . import benchmarks

            if p.lower() in benchmarks.names():
                test_set = benchmarks.load(p)
    items: list[str | list[int]] = []
    ids: list[str | None] = []
    for i, r in enumerate(iter_records(test_set)):
        items.append(_item_of(r, field, f"test item {i}: "))
        rid = None
        if isinstance(r, dict):
            for k in ("id", "task_id", "question_id"):
                if k in r:
                    rid = str(r[k])
                    break
        ids.append(rid)
    return items, ids


class Decontaminator:
    """An index over ``test_set`` that decides whether training items are contaminated.

    ``test_set``: an iterable of str (normalised and tokenized), lists of token ids (used as
    they are), or dict records (text in ``"text"`` or a chat ``messages`` list; an ``"id"`` or
    ``"task_id"`` names the item); a JSONL/Parquet path; or a benchmark name such as
    ``"humaneval"`` (see :mod:`qwen25.data.benchmarks`). ``tokenizer`` defaults to Qwen2.5's.

    ``prefilter`` (mode ``"qwen"``, text input) is only a speed switch: the matches are the same
    with it on or off. On, a record is tokenized only if its normalised text holds the bytes of
    some n-gram of a test item (in part: up to 64 bytes of it around a space); a record without
    any cannot share an n-gram of token ids with a test item, so it is clean untokenized. Very
    large test sets (patterns over 32 MiB) build no prefilter.
    """

    def __init__(
        self,
        test_set: Any,
        *,
        mode: str = "qwen",
        ngram: int = 13,
        lcs_min: int = 13,
        lcs_ratio: float = 0.6,
        window: int | str | None = "auto",
        tokenizer: Any = None,
        prefilter: bool = True,
    ) -> None:
        if not isinstance(mode, str):
            raise Qwen25TypeError(f"mode must be 'qwen', 'lcs' or 'ngram', not {mode!r}")
        if not isinstance(prefilter, bool):
            raise Qwen25TypeError(f"prefilter must be True or False, not {prefilter!r}")
        if isinstance(lcs_ratio, bool) or not isinstance(lcs_ratio, (int, float)):
            raise Qwen25TypeError(f"lcs_ratio must be a number, not {lcs_ratio!r}")
        for name, v in (("ngram", ngram), ("lcs_min", lcs_min)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise Qwen25TypeError(f"{name} must be an int >= 1, not {v!r}")
        items, ids = items_of_test_set(test_set, "text")
        if not items:
            raise Qwen25ValueError("the test set is empty: nothing to decontaminate against")
        if mode in ("qwen", "lcs"):
            if tokenizer is None:
                from ..tokenizer import Tokenizer

                tokenizer = Tokenizer.qwen25()
            native_tok = getattr(tokenizer, "_tok", tokenizer)
        else:
            native_tok = None
        for name, v in (("ngram", ngram), ("lcs_min", lcs_min)):
            if v < 1:
                raise Qwen25ValueError(f"{name} must be an int >= 1, not {v!r}")
        if window is not None and window != "auto" and (
            isinstance(window, bool) or not isinstance(window, int) or window < 1
        ):
            raise Qwen25ValueError(f"window must be 'auto', None or an int >= 1, not {window!r}")
        if window is not None and window != "auto" and mode != "qwen":
            raise Qwen25ValueError(f"window={window} applies to mode='qwen' only (mode={mode!r})")
        self.mode = mode
        self.ngram = ngram
        self.lcs_min = lcs_min
        self.lcs_ratio = float(lcs_ratio)
        self.window = window
        self.tokenizer = tokenizer if native_tok is not None else None
        self.test_ids: list[str | None] = ids
        self.prefilter = bool(prefilter)
        try:
            self._d = _native.Decontaminator(
                items, mode, ngram, lcs_min, self.lcs_ratio, window, native_tok, None, self.prefilter
            )
        except UnicodeEncodeError:
            _raise_surrogate(items, "test item")
            raise
        self._check_lengths()

    def _check_lengths(self) -> None:
        """An error when no test item can ever match; a warning naming those that cannot."""
        need, unit = (self.lcs_min, "tokens") if self.mode == "lcs" else (
            self.ngram, "words" if self.mode == "ngram" else "tokens")
        what = "lcs_min" if self.mode == "lcs" else "ngram"
        short = [i for i in range(len(self)) if len(self._d.item(i) or ()) < need]
        self.short_items: list[int] = short
        if not short:
            return

        def name(i: int) -> str:
            tid = self.test_ids[i]
            return tid if tid is not None else f"#{i}"

        if len(short) == len(self):
            raise Qwen25ValueError(
                f"every test item is shorter than {what}={need} {unit} after normalisation, so none "
                f"can ever match (e.g. {', '.join(name(i) for i in short[:5])}); lower {what} or "
                "check the test set's text field"
            )
        import warnings

        names = ", ".join(name(i) for i in short[:10]) + (f" and {len(short) - 10} more" if len(short) > 10 else "")
        warnings.warn(
            f"{len(short)} of {len(self)} test items are shorter than {what}={need} {unit} and can never "
            f"match: {names}", ShortTestItemWarning, stacklevel=3,
        )

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return (
            f"Decontaminator({len(self)} test items, mode={self.mode!r}, ngram={self.ngram}, "
            f"lcs_min={self.lcs_min}, lcs_ratio={self.lcs_ratio}, window={self.window!r})"
        )

    def test_tokens(self, i: int) -> list[int]:
        """Test item ``i`` as the engine sees it (token ids; word ids in ngram mode)."""
        got = self._d.item(i)
        if got is None:
            raise IndexError(f"test index {i} out of range (0..{len(self) - 1})")
        return got

    def index_bytes(self) -> int:
        """Approximate heap bytes of the index."""
        return self._d.heap_bytes()

    def _matches(self, raw: list[Any]) -> list[Match]:
        # Match is frozen: fill the instance dict directly (what its __init__ does field by field
        # through object.__setattr__), several times faster for the many matches of check_all
        new, ids, out = object.__new__, self.test_ids, []
        for t, lcs, h, sp, tw, cw in raw:
            m = new(Match)
            m.__dict__.update(test_index=t, lcs=lcs, ngram_hits=tuple(h),
                              spans=tuple(map(tuple, sp)) if sp else (), test_id=ids[t],
                              window=cw, token_window=tw)
            out.append(m)
        return out

    def _inputs(self, batch: Iterable[Any], field: str, what: str = "item", start: int = 0) -> list[str | list[int]]:
        if isinstance(batch, (str, bytes, bytearray, os.PathLike)):
            raise Qwen25TypeError(
                f"the batch is a {type(batch).__name__} ({batch!r:.60}): pass a list of texts, records or "
                "token-id lists (a one-text batch is [text]; a file goes through filter() or read_batches)"
            )
        try:
            it = iter(batch)
        except TypeError:
            raise Qwen25TypeError(
                f"the batch is {type(batch).__name__}, not an iterable: pass a list of texts, records or token-id lists"
            ) from None
        return [_item_of(r, field, f"{what} {i}: ") for i, r in enumerate(it, start)]

    def _run(self, items: list[str | list[int]], all_: bool, num_threads: int | None, what: str = "item",
             start: int = 0) -> list[Any]:
        _check_threads(num_threads)
        try:
            return self._d.check(items, all_, num_threads)
        except UnicodeEncodeError:
            _raise_surrogate(items, what, start)
            raise

    def check(self, batch: Iterable[Any], *, field: str = "text", num_threads: int | None = None) -> list[Match | None]:
        """One entry per training item: its witness with the lowest test index, or None."""
        res = self._run(self._inputs(batch, field), False, num_threads)
        return [self._matches(r)[0] if r else None for r in res]

    def check_all(self, batch: Iterable[Any], *, field: str = "text", num_threads: int | None = None) -> list[list[Match]]:
        """One list per training item: every test item that meets the rule (ascending index)."""
        return [self._matches(r) for r in self._run(self._inputs(batch, field), True, num_threads)]

    def check_records(self, batch: Any, *, num_threads: int | None = None) -> list[list[Match]]:
        """As :meth:`check_all`, for a batch of :func:`qwen25.data.records.read_batches`: the
        records' texts (or token ids) go to the engine from Rust, with no Python string built."""
        if not isinstance(batch, _native.RecordBatch):
            raise Qwen25TypeError(f"batch is {type(batch).__name__}: check_records takes a batch of read_batches")
        _check_threads(num_threads)
        return [self._matches(r) for r in self._d.check_records(batch, True, num_threads)]

    def filter(
        self, records: Any, *, field: str = "text", batch_size: int = 1024
    ) -> tuple[Iterator[Any], Iterator[tuple[Any, Match]]]:
        """Split ``records`` into ``(clean, removed)`` iterators, lazily, keeping order.

        ``clean`` yields the records as given; ``removed`` yields ``(record, match)``. Records are
        read ``batch_size`` at a time; consuming only one iterator buffers the other's records."""
        if batch_size < 1:
            raise Qwen25ValueError("batch_size must be >= 1")
        src = iter_records(records)
        clean: deque[Any] = deque()
        removed: deque[tuple[Any, Match]] = deque()
        state = {"done": False, "n": 0}

        def pull() -> bool:
            if state["done"]:
                return False
            batch = []
            for r in src:
                batch.append(r)
                if len(batch) >= batch_size:
                    break
            if not batch:
                state["done"] = True
                return False
            texts = self._inputs(batch, field, "record", state["n"])
            got = self._run(texts, False, None, "record", state["n"])
            state["n"] += len(batch)
            for r, m in zip(batch, got):
                if m:
                    removed.append((r, self._matches(m)[0]))
                else:
                    clean.append(r)
            return True

        def gen(q: deque[Any]) -> Iterator[Any]:
            while True:
                while q:
                    yield q.popleft()
                if not pull() and not q:
                    return

        return gen(clean), gen(removed)

    @staticmethod
    def cut(text: str, match: Match, *, margin: int = 200) -> list[str]:
        """GPT-3 style: the pieces of ``text`` left after cutting every matched span (ngram
        mode) widened by ``margin`` characters on each side."""
        if not match.spans:
            raise Qwen25ValueError("cut needs a match with character spans (mode='ngram')")
        pieces, at = [], 0
        for s, e in sorted(match.spans):
            s, e = max(0, s - margin), min(len(text), e + margin)
            if s > at:
                pieces.append(text[at:s])
            at = max(at, e)
        if at < len(text):
            pieces.append(text[at:])
        return pieces


def normalize(text: str) -> str:
    """The text normalisation of modes qwen and lcs (drop P*/S*, collapse whitespace)."""
    return _native.decontam_normalize(text)


def decontaminate_demo(out_dir: str | None = None, *, progress: bool = False) -> dict[str, Any]:
    """Decontaminate the bundled demo corpus against HumanEval (through the library job), print
    the report summary and the precision and recall on the planted records.

    The corpus marks each planted record (an edited HumanEval problem) with ``"planted":
    "<task id>: <edit kind>"``. Recall = planted removed / planted, precision = planted removed /
    all removed, overall and per edit kind; they are returned under ``report["demo"]``."""
    import tempfile

    from .decontam_job import run_job, summary

    corpus = os.path.join(os.path.dirname(__file__), "demo", "decontam_demo.jsonl.gz")
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="qwen25-decontam-demo-")
        out_dir = tmp.name
    try:
        report = run_job(train=[corpus], tests=["humaneval"], out=out_dir, progress=progress)
        if tmp is not None:
            report.pop("report_path", None)  # the temporary folder goes away
        print(summary(report))
        kinds: dict[int, str] = {}  # line -> edit kind of each planted record
        for n, rec, _ in iter_objects(corpus):
            if "planted" in rec:
                kinds[n] = str(rec["planted"]).rpartition(": ")[2] or "planted"
        removed = {r["line"] for r in report["removed"]}
        caught = removed & set(kinds)

        def frac(a: int, b: int) -> str:
            return f"{a}/{b} = {a / b:.2f}" if b else f"{a}/{b} = n/a"

        by_kind = {}
        for k in sorted(set(kinds.values())):
            lines = {n for n, v in kinds.items() if v == k}
            by_kind[k] = {"planted": len(lines), "removed": len(lines & removed)}
        report["demo"] = {
            "planted": len(kinds), "removed": len(removed), "planted_removed": len(caught),
            "recall": len(caught) / len(kinds) if kinds else None,
            "precision": len(caught) / len(removed) if removed else None,
            "by_kind": by_kind,
        }
        print(f"  demo: recall {frac(len(caught), len(kinds))} (planted records removed / planted), "
              f"precision {frac(len(caught), len(removed))} (planted removed / all removed)")
        print("  demo recall per planted edit: " + ", ".join(
            f"{k} {v['removed']}/{v['planted']}" for k, v in by_kind.items()))
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()
