"""Input and output of the standalone ``qwen25 data`` stages (filter, dedup, classify, score, mix,
pack) and of :func:`qwen25.data.mix.mix_jsonl`, on the one record I/O of :mod:`qwen25.data.records`.

:class:`Inputs` reads JSONL files (plain, ``.gz``, ``.zst``) with the native record reader
(:func:`~qwen25.data.records.read_batches`: parsed in Rust on a background thread, one set of
UTF-8, surrogate and malformed-line rules). A document's text comes from Rust; the whole record is
parsed in Python only when a stage writes it back (:attr:`Doc.rec`). A bad line raises
:class:`FormatError` naming ``file:line`` (with ``skip_bad``, it is counted and handed to
``on_bad``); a truncated or corrupt compressed file stops the job, naming the file and the records
read from it, or with ``skip_bad`` keeps the records before the damage, hands the damage to
``on_damage`` (else to ``on_bad``, as a bad line) at the line where it starts and names it in
:attr:`Inputs.damaged`. :class:`Output` writes JSONL through the atomic writer (``.tmp-NAME``, renamed on
close, removed by :meth:`Output.discard`)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import FormatError, Qwen25FileNotFoundError

__all__ = ["Doc", "Inputs", "Output", "as_paths", "expand_globs"]


def as_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """``paths`` as a list: one path (a str or os.PathLike) is ``[path]``, not the characters of
    its name; any other iterable is listed once (a generator read twice would be empty)."""
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return list(paths)  # type: ignore[arg-type]  # items as given (str or os.PathLike)


def expand_globs(patterns: Iterable[str], what: str = "input", base: str | None = None) -> list[str]:
    """The files ``patterns`` name, in order, as ``data run`` ``paths`` and the ``data`` stages'
    inputs take them: an existing file is taken as named (``part[1].jsonl``, brackets and all);
    anything else is a glob (``**`` spans folders, as in ``qwen25 decontaminate --train``), its
    matching files sorted, folders left out; a file named twice is read once. A pattern that
    names a folder or matches no file is an error naming it (``what``: who asks, for the message).
    ``base``: the folder relative patterns start from (default: the working directory)."""
    import glob

    from ..errors import Qwen25ValueError

    files: list[str] = []
    seen: set[str] = set()
    for pat in patterns:
        pat = os.path.expanduser(pat)  # "~/data/*.jsonl", as a shell reads it
        full = os.path.join(base, pat) if base is not None else pat
        if os.path.isfile(full):
            hits = [full]
        elif os.path.isdir(full):
            raise Qwen25ValueError(f"{what}: {full} is a folder; give its files, e.g. {os.path.join(full, '*.jsonl')}")
        else:
            matches = sorted(glob.glob(full, recursive=True)) if glob.has_magic(full) else []
            hits = [h for h in matches if os.path.isfile(h)]
            if not hits:
                why = "matches only folders" if matches else "no file matches" if glob.has_magic(full) else "no such file"
                raise Qwen25FileNotFoundError(2, f"{what}: {why}", full)
        for h in hits:
            key = os.path.realpath(h)
            if key not in seen:
                seen.add(key)
                files.append(h)
    return files


class Doc:
    """One record: ``path``, 1-based ``line``, ``text`` and its raw line; ``rec`` parses the line."""

    __slots__ = ("path", "line", "text", "raw", "_rec")

    def __init__(self, path: str, line: int, text: str, raw: bytes, rec: dict[str, Any] | None = None) -> None:
        self.path, self.line, self.text, self.raw, self._rec = path, line, text, raw, rec

    @property
    def rec(self) -> dict[str, Any]:
        if self._rec is None:
            self._rec = json.loads(self.raw)
        return self._rec


def _reason(why: str) -> str:
    """The reader's reason for a bad line, less its advice about an option these jobs lack."""
    return why.split(" (")[0] if why.startswith("invalid UTF-8") else why


class Inputs:
    """The records of ``paths`` in order, as batches of :class:`Doc` (``batches()``) or one by
    one (iteration). ``label_field``: a record must also hold a string there (checked on the
    parsed record). ``hint`` is appended to a bad line's error (the CLI's ``--skip-bad`` advice).
    After reading, ``bad`` counts the bad lines (a damaged file's damage is one) and ``damaged``
    says, per damaged file read with ``skip_bad``, ``"FILE: truncated after N records (why)"``."""

    def __init__(
        self,
        paths: Iterable[str],
        field: str = "text",
        *,
        skip_bad: bool = False,
        on_bad: Callable[[str, int, str], None] | None = None,
        on_damage: Callable[[str, int, str], None] | None = None,
        label_field: str | None = None,
        progress: bool = False,
        desc: str = "read",
        batch_size: int = 1000,
        num_threads: int | None = None,
        hint: str = "",
    ) -> None:
        self.paths = [os.fspath(p) for p in paths]
        for p in self.paths:
            if not os.path.isfile(p):
                raise Qwen25FileNotFoundError(2, "is a folder, not a file" if os.path.isdir(p) else "no such input file", p)
        self.field, self.label_field, self.skip_bad, self.on_bad = field, label_field, skip_bad, on_bad
        self.progress, self.desc, self.batch_size, self.num_threads, self.hint = progress, desc, batch_size, num_threads, hint
        self.on_damage = on_damage
        self.bad = 0
        self.damaged: list[str] = []

    def batches(self) -> Iterator[list[Doc]]:
        """The records in lists of ``batch_size`` (across files); a bad line is reported when the
        batch that reaches it is being filled, as a one-by-one reader would."""
        buf: list[Doc] = []
        for d in self:
            buf.append(d)
            if len(buf) >= self.batch_size:
                yield buf
                buf = []
        if buf:
            yield buf

    def __iter__(self) -> Iterator[Doc]:
        from tqdm import tqdm

        from .records import read_batches

        plain = all(not p.lower().endswith((".gz", ".zst")) for p in self.paths)
        total = sum(os.path.getsize(p) for p in self.paths) if plain else None
        bar = tqdm(total=total, desc=self.desc, unit="B", unit_scale=True, disable=not self.progress, file=sys.stderr,
                   dynamic_ncols=True)  # fmt: skip
        try:
            for path in self.paths:
                reader = read_batches(path, self.field, skip_bad=True, batch_size=self.batch_size, num_threads=self.num_threads)
                try:
                    for b in reader:
                        bad = sorted((line, why) for line, _, why, _ in b.bad)
                        j = 0
                        texts = b.items()
                        for i, line in enumerate(b.lines):
                            while j < len(bad) and bad[j][0] < line:  # bad lines in line order
                                self._bad(path, *bad[j])
                                j += 1
                            raw = b.raw(i)
                            rec = None
                            if self.label_field is not None:
                                rec = json.loads(raw)
                                if not isinstance(rec.get(self.label_field), str):
                                    self._bad(path, line, f"no string label field {self.label_field!r}")
                                    continue
                            yield Doc(path, line, texts[i], raw, rec)
                        for line, why in bad[j:]:
                            self._bad(path, line, why)
                        bar.update(b.nbytes)
                        if b.damage is not None:
                            dline, n, why = b.damage
                            what = f"truncated after {n} records ({why.split('): ', 1)[-1]})"
                            if not self.skip_bad:
                                raise FormatError(f"{path}: {what}", path)
                            self.damaged.append(f"{path}: {what}")
                            if self.on_damage is None:
                                self._bad(path, dline, what)
                            else:
                                self.bad += 1
                                self.on_damage(path, dline, what)
                finally:
                    reader.close()
        finally:
            bar.close()

    def _bad(self, path: str, line: int, why: str) -> None:
        why = _reason(why)
        if not self.skip_bad:
            raise FormatError(f"{path}:{line}: {why}{self.hint}", path, line)
        self.bad += 1
        if self.on_bad is not None:
            self.on_bad(path, line, why)


class Output:
    """JSONL through the atomic writer; a no-op (that still counts) without a path. ``n``
    counts the records written; ``close()`` renames the file into place, ``discard()`` removes
    the partial one (an earlier file of the same name stays)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.n = 0
        self._w: Any = None
        if path:
            from .pipeline.files import JsonlWriter

            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._w = JsonlWriter(path)

    def write(self, obj: dict[str, Any]) -> None:
        self.n += 1
        if self._w is not None:
            self._w.write(obj)

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
            self._w = None

    def discard(self) -> None:
        if self._w is not None:
            self._w.abort()
            self._w = None
