"""Batches for the training loop, from the packed folders of ``qwen25 data run``.

A stage's rows come from its folders in a fixed, resumable order:

* Folder choice: row k of the stage goes to the folder whose share most exceeds what it has
  given so far (``share * (k + 1) - taken``; ties to the first), so every prefix of the stage
  holds each folder's share to within one row.
* Within a folder: the j-th row taken is row ``perm_e[j % n]`` of epoch ``e = j // n``, where
  ``perm_e`` is a permutation seeded by (seed, stage, folder, epoch) (or the identity without
  shuffling). The data position is therefore just the rows taken per folder.

Each optimizer step takes ``rows_per_step`` rows; rank r of W reads only the r-th contiguous block
of them, in micro-batches. Labels are the tokens themselves (the model shifts them) with -100 on
the padding after the last document and, by default, on each document's first token, which would
otherwise be predicted from the previous document's separator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25ValueError
from .config import BUILTIN_DEBUG_DATA, Stage

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..data.pack import PackedDataset

__all__ = ["MicroBatch", "RowStream", "StageData", "micro_batch", "open_packed"]


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [m, T] int64
    position_ids: torch.Tensor  # [m, T] int64, restarting at each document
    labels: torch.Tensor  # [m, T] int64, -100 where no loss
    rows: list[tuple[int, int]]  # (folder index, sequence index) of each row
    n_targets: int  # labels that are targets after the shift (positions 1..T-1 not -100)


def open_packed(path: str, stage: Stage, vocab_size: int) -> PackedDataset:
    """Open one packed folder of ``stage`` with the checks a run needs: it exists, is finished
    (has its manifest), holds whole rows of the stage's seq_len and is not empty, and its
    separator id fits the model's vocabulary. Errors name the folder and the stage."""
    from ..data.pack import PackedDataset

    where = f"stage {stage.name!r}: data folder {path}"
    if not os.path.isdir(path):
        raise Qwen25FileNotFoundError(f"{where} does not exist (write it with `qwen25 data run`)")
    try:
        ds = PackedDataset(path)
    except FileNotFoundError as e:
        what = getattr(e, "strerror", None) or str(e)
        missing = getattr(e, "filename", None) or ""
        raise Qwen25FileNotFoundError(f"{where}: {what}" + (f" ({missing})" if missing else "")
                                      + "; is `qwen25 data run` still writing it?") from None
    except FormatError as e:
        raise FormatError(f"{where}: {e}", e.path, e.line) from None
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"{where}: malformed manifest.json ({e!r})", os.path.join(path, "manifest.json")) from None
    if ds.seq_len != stage.seq_len:
        raise Qwen25ValueError(f"{where} is packed at seq_len {ds.seq_len}, but the stage trains at seq_len "
                               f"{stage.seq_len}: repack it, or set stages.N.seq_len={ds.seq_len}")
    if len(ds) == 0:
        raise Qwen25ValueError(f"{where} holds no sequences")
    if not 0 <= ds.separator_id < vocab_size:
        raise Qwen25ValueError(f"{where}: its separator id {ds.separator_id} is outside the model's vocabulary "
                               f"(vocab_size {vocab_size}); was it tokenized for another model?")
    return ds


def micro_batch(ids: np.ndarray, pos: np.ndarray, labels: np.ndarray, rows: list[tuple[int, int]]) -> MicroBatch:
    """A :class:`MicroBatch` of the ``[m, T]`` int64 arrays of ``rows`` (their targets counted)."""
    import torch

    n_targets = int((labels[:, 1:] != -100).sum())
    return MicroBatch(torch.from_numpy(ids), torch.from_numpy(pos), torch.from_numpy(labels), list(rows), n_targets)


class RowStream:
    """What the row streams of a stage share (:class:`StageData` here, ``SFTStageData`` for chat
    data): the order of a folder's rows, and cutting a step's rows into micro-batches."""

    seed: int
    stage_index: int
    shuffle: bool
    repeated: list[bool]  # per folder: has an epoch past the first begun
    _perm: dict[int, tuple[int, np.ndarray]]  # folder -> (epoch, permutation)

    def _ordered(self, folder: int, j: int, n: int) -> int:
        """The j-th row taken from ``folder`` of ``n`` rows: row ``perm_e[j % n]`` of epoch
        ``e = j // n``, ``perm_e`` seeded by (seed, stage, folder, epoch), or the identity
        without shuffling."""
        import numpy as np

        epoch, pos = divmod(j, n)
        if epoch > 0:
            self.repeated[folder] = True
        if not self.shuffle:
            return pos
        cached = self._perm.get(folder)
        if cached is None or cached[0] != epoch:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
                [self.seed, self.stage_index, folder, epoch])))
            cached = self._perm[folder] = (epoch, rng.permutation(n))
        return int(cached[1][pos])

    def micro_batches(self, rows: list[tuple[int, int]], micro_batch_size: int) -> list[MicroBatch]:
        """Tensors for ``rows`` (this rank's block of a step), ``micro_batch_size`` rows each."""
        return [self._batch(rows[a:a + micro_batch_size]) for a in range(0, len(rows), micro_batch_size)]

    def _batch(self, rows: list[tuple[int, int]]) -> MicroBatch:
        raise NotImplementedError


class StageData(RowStream):
    """The resumable row stream of one stage (see the module docstring)."""

    def __init__(self, stage: Stage, stage_index: int, *, seed: int, shuffle: bool, vocab_size: int,
                 mask_document_boundaries: bool = True, builtin_dir: str | None = None) -> None:
        self.stage, self.stage_index = stage, stage_index
        self.seed, self.shuffle = seed, shuffle
        self.vocab_size = vocab_size
        self.mask_boundaries = mask_document_boundaries
        self.paths: list[str] = []
        for p in stage.data:
            if p == BUILTIN_DEBUG_DATA:
                from .debug_data import prepare_debug_data

                if builtin_dir is None:
                    raise Qwen25ValueError(f"stage {stage.name!r}: {BUILTIN_DEBUG_DATA} needs a folder to write to")
                p = prepare_debug_data(builtin_dir, stage.seq_len)
            self.paths.append(p)
        self.sets = [open_packed(p, stage, vocab_size) for p in self.paths]
        self.shares = stage.shares
        # tokens before this offset are documents and their separators; after it, padding
        self._real_end = [int(ds.manifest["counts"]["document_tokens"]) + int(ds.manifest["counts"]["documents"])
                          for ds in self.sets]
        self.rows_taken = 0  # rows of the stage handed out (all ranks)
        self.taken = [0] * len(self.sets)  # rows taken per folder
        self._perm: dict[int, tuple[int, np.ndarray]] = {}  # folder -> (epoch, permutation)
        self.repeated = [False] * len(self.sets)

    # ------------------------------------------------------------------------------- position
    def state(self) -> dict[str, Any]:
        return {"stage": self.stage_index, "rows": self.rows_taken, "taken": list(self.taken),
                "folders": list(self.stage.data)}

    def load_state(self, st: dict[str, Any]) -> None:
        if st.get("stage") != self.stage_index or len(st.get("taken", [])) != len(self.sets):
            raise Qwen25ValueError(f"checkpoint data position {st} does not fit stage {self.stage.name!r} "
                                   f"({len(self.sets)} folder(s))")
        self.rows_taken = int(st["rows"])
        self.taken = [int(x) for x in st["taken"]]

    # ---------------------------------------------------------------------------------- order
    def _next_folder(self) -> int:
        k = self.rows_taken
        best, best_gap = 0, None
        for i, s in enumerate(self.shares):
            gap = s * (k + 1) - self.taken[i]
            if s > 0 and (best_gap is None or gap > best_gap + 1e-12):
                best, best_gap = i, gap
        return best

    def _row_of(self, folder: int, j: int) -> int:
        return self._ordered(folder, j, len(self.sets[folder]))

    def take_step(self, rows_per_step: int) -> list[tuple[int, int]]:
        """The (folder, sequence) of the next ``rows_per_step`` rows, advancing the position."""
        out = []
        for _ in range(rows_per_step):
            f = self._next_folder()
            out.append((f, self._row_of(f, self.taken[f])))
            self.taken[f] += 1
            self.rows_taken += 1
        return out

    # -------------------------------------------------------------------------------- tensors
    def _batch(self, rows: list[tuple[int, int]]) -> MicroBatch:
        import numpy as np

        t = self.stage.seq_len
        ids = np.empty((len(rows), t), dtype=np.int64)
        pos = np.empty((len(rows), t), dtype=np.int64)
        labels = np.empty((len(rows), t), dtype=np.int64)
        for r, (f, i) in enumerate(rows):
            ds = self.sets[f]
            seq = ds.sequence(i)
            hi = int(seq.max())
            if hi >= self.vocab_size:
                off = int(np.argmax(seq >= self.vocab_size))
                raise Qwen25ValueError(f"{self.paths[f]}: sequence {i} (token {i * t + off}, offset {off} in the row) "
                                       f"holds token id {int(seq[off])}, outside the model's vocabulary "
                                       f"(vocab_size {self.vocab_size})")
            ids[r] = seq
            p = ds.position_ids(i)
            pos[r] = p
            lab = ids[r].copy()
            if self.mask_boundaries:
                lab[1:][p[1:] == 0] = -100  # a document's first token, predicted across documents
            pad_from = self._real_end[f] - i * t  # offsets past the last document: padding
            if pad_from < t:
                lab[max(pad_from, 0):] = -100
            labels[r] = lab
        return micro_batch(ids, pos, labels, rows)

    def describe(self, rows: list[tuple[int, int]]) -> str:
        by: dict[int, list[int]] = {}
        for f, i in rows:
            by.setdefault(f, []).append(i)
        return "; ".join(f"{self.paths[f]} sequences {v}" for f, v in by.items())
