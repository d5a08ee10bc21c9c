"""Domain classification and model-based quality scoring.

- :class:`DomainClassifier`: fastText-style hashed word / bigram / char n-gram features and a
  linear softmax model, trained in Rust (deterministic: single-threaded SGD in a seeded order),
  saved to and loaded from one file.
- :class:`Scorer`: the interface of model-based scorers (Qwen2.5 used Qwen2-Instruct to rate
  documents on several dimensions). Any callable ``batch of texts -> {dimension: scores}`` or
  ``-> array (n, d)`` plugs in through :class:`CallableScorer`; a classifier is a scorer too
  (one dimension per label).

>>> from qwen25.data import DomainClassifier
>>> clf = DomainClassifier.train(["def f(): pass", "the cat sat"], ["code", "web"], epochs=20, dim=4096)
>>> clf.predict(["def g(): return 1"])
['code']
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .. import _native
from ..errors import Qwen25ValueError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CallableScorer", "DomainClassifier", "LMScorer", "LM_DIMENSIONS", "Scorer", "classifier_features"]


def _texts(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of str, not a single str/bytes")
    return texts if isinstance(texts, list) else list(texts)


_DEFAULTS = {"dim": 1 << 18, "word_bigrams": True, "char_min": 3, "char_max": 5, "epochs": 5, "lr": 0.5, "l2": 0.0, "seed": 0}


def classifier_features(text: str, **config: Any) -> list[tuple[int, float]]:
    """The sparse (bucket, value) features of ``text`` under a classifier configuration."""
    bad = sorted(set(config) - set(_DEFAULTS))
    if bad:
        raise Qwen25ValueError(f"unknown classifier option(s) {bad} (known: {sorted(_DEFAULTS)})")
    return _native.classifier_features(text, json.dumps(config))


@runtime_checkable
class Scorer(Protocol):
    """Scores a batch of documents on named dimensions."""

    dimensions: Sequence[str]

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """(n, len(dimensions)) float array."""
        ...


class CallableScorer:
    """Wrap any callable ``texts -> {dim: list of n scores}`` or ``texts -> (n, d) array``."""

    def __init__(self, fn: Callable[[list[str]], Any], dimensions: Sequence[str] | None = None, *, batch_size: int = 64):
        if batch_size < 1:
            raise Qwen25ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.fn, self.batch_size = fn, batch_size
        self.dimensions: list[str] = list(dimensions) if dimensions is not None else []

    def score(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        texts = _texts(texts)
        parts = []
        for k in range(0, len(texts), self.batch_size):
            batch = texts[k : k + self.batch_size]
            out = self.fn(batch)
            if isinstance(out, Mapping):
                if not self.dimensions:
                    self.dimensions = list(out)
                missing = [d for d in self.dimensions if d not in out]
                if missing:
                    raise Qwen25ValueError(f"scorer output lacks dimension(s) {missing}")
                arr = np.stack([np.asarray(out[d], dtype=np.float64) for d in self.dimensions], axis=1)
            else:
                arr = np.asarray(out, dtype=np.float64)
                if arr.ndim == 1:
                    arr = arr[:, None]
                if not self.dimensions:
                    self.dimensions = [f"score_{i}" for i in range(arr.shape[1])]
            if arr.shape != (len(batch), len(self.dimensions)):
                raise Qwen25ValueError(
                    f"scorer returned shape {arr.shape} for a batch of {len(batch)} and {len(self.dimensions)} dimension(s)"
                )
            parts.append(arr)
        if not parts:
            return np.zeros((0, len(self.dimensions)))
        return np.concatenate(parts)


class DomainClassifier:
    """Hashed n-gram linear classifier (see the module docs)."""

    def __init__(self, native: _native.HashedLinearClassifier, num_threads: int | None = None) -> None:
        self._m = native
        self.num_threads = num_threads

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        labels: Iterable[str],
        *,
        num_threads: int | None = None,
        **config: Any,
    ) -> DomainClassifier:
        """Train from labelled examples. Options (defaults): dim=2**18, word_bigrams=True,
        char_min=3, char_max=5 (char n-grams of "<word>"; char_min=0 disables), epochs=5,
        lr=0.5, l2=0.0, seed=0."""
        bad = sorted(set(config) - set(_DEFAULTS))
        if bad:
            raise Qwen25ValueError(f"unknown classifier option(s) {bad} (known: {sorted(_DEFAULTS)})")
        m = _native.HashedLinearClassifier.train(_texts(texts), _texts(labels), json.dumps(config), num_threads)
        return cls(m, num_threads)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, num_threads: int | None = None) -> DomainClassifier:
        return cls(_native.HashedLinearClassifier.load(os.fspath(path)), num_threads)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model (temp file renamed on completion)."""
        self._m.save(os.fspath(path))

    @property
    def labels(self) -> list[str]:
        return list(self._m.labels)

    @property
    def dimensions(self) -> list[str]:
        return self.labels

    @property
    def config(self) -> dict[str, Any]:
        return dict(json.loads(self._m.config_json()))

    def predict_proba(self, texts: Iterable[str]) -> np.ndarray:
        import numpy as np

        buf = self._m.predict_proba(_texts(texts), self.num_threads)
        return np.frombuffer(buf, dtype="<f4").reshape(-1, len(self.labels))

    score = predict_proba  # the Scorer interface

    def predict(self, texts: Iterable[str]) -> list[str]:
        p = self.predict_proba(texts)
        labels = self.labels
        return [labels[i] for i in p.argmax(axis=1)] if len(p) else []


#: Dimensions of the default rating prompt (name -> what the model is asked to rate).
LM_DIMENSIONS: dict[str, str] = {
    "quality": "overall quality: well written, coherent, informative, free of spam and boilerplate",
    "educational_value": "educational value: how much a student would learn from it",
}

_LM_SYSTEM = "You are a careful annotator of pre-training data."
_LM_PROMPT = (
    "Rate the following text for {description}.\n\nText:\n{text}\n\n"
    "Answer with a single digit from {lo} (lowest) to {hi} (highest)."
)


class LMScorer:
    """Model-based quality scoring, as Qwen2.5 used Qwen2-Instruct: a chat model rates each
    document on each dimension, and the score is the expected rating under the model's
    next-token distribution over the rating digits ``lo..hi`` (renormalised over those digits),
    which is smoother and more stable than a sampled answer.

    ``model`` is a :class:`qwen25.model.Qwen2ForCausalLM` (an instruct checkpoint:
    ``Qwen2ForCausalLM.from_pretrained(dir)``); ``tokenizer`` defaults to the Qwen2.5 tokenizer.
    ``dimensions`` maps a name to what is rated (default :data:`LM_DIMENSIONS`). Documents are
    cut to ``max_doc_tokens``; prompts are run in left-padded batches of ``batch_size``.
    Implements :class:`Scorer`: ``score(texts)`` returns an ``(n, len(dimensions))`` array.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        dimensions: Mapping[str, str] | None = None,
        lo: int = 0,
        hi: int = 5,
        max_doc_tokens: int = 2048,
        batch_size: int = 8,
        system: str = _LM_SYSTEM,
        prompt: str = _LM_PROMPT,
    ) -> None:
        from ..tokenizer import Tokenizer

        if not (0 <= lo < hi <= 9):
            raise Qwen25ValueError(f"ratings must be digits with 0 <= lo < hi <= 9, got lo={lo}, hi={hi}")
        if batch_size < 1 or max_doc_tokens < 1:
            raise Qwen25ValueError(f"batch_size and max_doc_tokens must be >= 1, got {batch_size}, {max_doc_tokens}")
        for key in ("{text}", "{description}"):
            if key not in prompt:
                raise Qwen25ValueError(f"prompt must contain {key}")
        self.model, self.tokenizer = model, tokenizer or Tokenizer.qwen25()
        self.dims = dict(LM_DIMENSIONS if dimensions is None else dimensions)
        if not self.dims:
            raise Qwen25ValueError("dimensions is empty")
        self.dimensions: list[str] = list(self.dims)
        self.lo, self.hi, self.max_doc_tokens, self.batch_size = lo, hi, max_doc_tokens, batch_size
        self.system, self.prompt = system, prompt
        self.rating_ids = []
        for k in range(lo, hi + 1):
            ids = self.tokenizer.encode_ordinary(str(k))
            if len(ids) != 1:
                raise Qwen25ValueError(f"the rating {k} is not a single token in this tokenizer")
            self.rating_ids.append(ids[0])
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.tokenizer.eos_token_id or 0)

    def prompt_ids(self, text: str, dimension: str) -> list[int]:
        """The chat prompt (ids) that asks for ``dimension``'s rating of ``text``."""
        ids = self.tokenizer.encode_ordinary(text)
        if len(ids) > self.max_doc_tokens:
            text = self.tokenizer.decode(ids[: self.max_doc_tokens], errors="ignore")
        user = self.prompt.format(description=self.dims[dimension], text=text, lo=self.lo, hi=self.hi)
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
        out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return list(out)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np
        import torch

        texts = _texts(texts)
        jobs = [(i, j, self.prompt_ids(t, d)) for i, t in enumerate(texts) for j, d in enumerate(self.dimensions)]
        out = np.zeros((len(texts), len(self.dimensions)), dtype=np.float64)
        device = self.model.device
        values = torch.arange(self.lo, self.hi + 1, dtype=torch.float64)
        rating = torch.tensor(self.rating_ids, device=device)
        # longest first keeps padding small; results do not depend on the order
        order = sorted(range(len(jobs)), key=lambda k: -len(jobs[k][2]))
        with torch.no_grad():
            for s in range(0, len(order), self.batch_size):
                part = [jobs[k] for k in order[s : s + self.batch_size]]
                width = max(len(p) for _, _, p in part)
                ids = torch.full((len(part), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(part), width), dtype=torch.long)
                for r, (_, _, p) in enumerate(part):
                    ids[r, width - len(p) :] = torch.tensor(p)
                    mask[r, width - len(p) :] = 1
                logits = self.model(ids.to(device), attention_mask=mask.to(device), logits_to_keep=1).logits[:, -1]
                probs = torch.softmax(logits.float()[:, rating].double().cpu(), dim=-1)
                for r, (i, j, _) in enumerate(part):
                    out[i, j] = float((probs[r] * values).sum())
        return out
