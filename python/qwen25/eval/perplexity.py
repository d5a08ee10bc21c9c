"""Perplexity on packed shards (a ``qwen25 data run`` / ``TokenPacker`` folder).

Each packed sequence runs with its per-document positions (``PackedDataset.position_ids``), so
attention stays inside documents. A token counts when it is predicted from inside its own
document: the first token of a document (predicted across the boundary) and the padding after the
last document are left out, as the pre-training loop leaves them out of its loss; every other
token, each document's separator included, counts. Perplexity is ``exp(total NLL / tokens)``.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from ..errors import Qwen25ValueError
from ..train.modes import evaluating

if TYPE_CHECKING:
    from ..data.pack import PackedDataset
    from ..model import Qwen2ForCausalLM

__all__ = ["perplexity"]


def perplexity(model: Qwen2ForCausalLM, data: str | os.PathLike[str] | PackedDataset, *, batch_size: int = 8,
               max_sequences: int | None = None, progress: Any = None) -> dict[str, Any]:
    """``ppl``, ``nll`` (mean per token), ``tokens`` counted, ``sequences`` read, and per sequence
    ``nll_sum`` and ``tokens``, over a packed folder (module docstring). ``max_sequences`` reads only
    the first that many sequences; ``batch_size`` sequences are read at a time and each runs alone
    with the chunked fused loss, so no [tokens, vocab] logits tensor is ever held."""
    import numpy as np
    import torch

    from ..data.pack import PackedDataset

    ds = data if isinstance(data, PackedDataset) else PackedDataset(data)
    n = len(ds) if max_sequences is None else min(len(ds), max_sequences)
    if n == 0:
        raise Qwen25ValueError(f"{ds.path}: no packed sequence to score")
    if batch_size < 1:
        raise Qwen25ValueError(f"batch_size must be >= 1, got {batch_size}")
    vocab = model.config.vocab_size
    t = ds.seq_len
    if model.config.dual_chunk_attention_config is None and t > model.config.max_positions:
        raise Qwen25ValueError(f"{ds.path}: sequences of {t} tokens are longer than the model's "
                               f"{model.config.max_positions} positions")
    real_end = int(ds.doc_index[-1, 0] + ds.doc_index[-1, 1] + 1) if ds.num_documents else 0
    per: list[dict[str, Any]] = []
    total = 0.0
    count = 0
    with evaluating(model):
        for a in range(0, n, batch_size):
            rows = range(a, min(n, a + batch_size))
            ids = np.stack([np.asarray(ds.sequence(i), dtype=np.int64) for i in rows])
            if int(ids.max()) >= vocab:
                r, off = np.argwhere(ids >= vocab)[0]
                raise Qwen25ValueError(f"{ds.path}: sequence {rows[r]} holds token id {int(ids[r, off])} at offset "
                                       f"{int(off)}, outside the model's vocabulary ({vocab})")
            pos = np.stack([ds.position_ids(i) for i in rows])
            labels = ids.copy()
            labels[:, 1:][pos[:, 1:] == 0] = -100  # a document's first token, across the boundary
            for r, i in enumerate(rows):
                pad_from = real_end - i * t
                if pad_from < t:
                    labels[r, max(pad_from, 0):] = -100
            for r, i in enumerate(rows):  # one row per forward: its own NLL sum
                k = int((labels[r, 1:] != -100).sum())
                nll = 0.0
                if k:
                    out = model(torch.from_numpy(ids[r:r + 1]).to(model.device),
                                position_ids=torch.from_numpy(pos[r:r + 1]).to(model.device),
                                labels=torch.from_numpy(labels[r:r + 1]).to(model.device),
                                fused_loss=True, return_logits=False)  # chunked: never all logits at once
                    nll = float(out.loss) * k
                per.append({"sequence": i, "nll_sum": nll, "tokens": k})
                total += nll
                count += k
            if progress is not None:
                progress(len(rows))
    if count == 0:
        raise Qwen25ValueError(f"{ds.path}: the first {n} sequences hold no token to score")
    return {"ppl": math.exp(total / count), "nll": total / count, "tokens": count, "sequences": n,
            "per_sequence": per}
