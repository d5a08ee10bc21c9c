"""Log-likelihood multiple choice, scored as lm-evaluation-harness scores ``multiple_choice`` tasks.

Per item, every choice's continuation is scored after the shared context (``loglik``); the
prediction is the choice of highest log-likelihood (``acc``), and, for ``acc_norm``, of highest
log-likelihood divided by the choice's length in characters. As in lm-eval that length is the
choice's text (``doc_to_choice``), without the space that joins it to the context: a letter counts
1, so under the MMLU format ``acc_norm`` equals ``acc``.

Formats:

* ``"mmlu"``: the context is ``question\\nA. c0\\nB. c1\\n...\\nAnswer:`` (the question stripped,
  as lm-eval's ``mmlu`` task does) and the continuations are ``" A"``, ``" B"``, ...
* ``"cloze"``: the context is the question and the continuations are ``" " + choice``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Qwen25ValueError
from .loglik import Request, Scorer, encode_pair, score_requests

if TYPE_CHECKING:
    from ..model import Qwen2ForCausalLM
    from ..tokenizer import Tokenizer

__all__ = ["multiple_choice", "mc_prompt", "check_mc_item", "FORMATS"]

FORMATS = ("mmlu", "cloze")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _where(item: Any, i: int) -> str:
    iid = item.get("id") if isinstance(item, dict) else None
    return f"item {i}" + (f" (id {iid!r})" if iid is not None else "")


def check_mc_item(item: Any, i: int) -> tuple[str, list[str], int]:
    """``(question, choices, answer)`` of a multiple-choice item, or an error naming the item."""
    if not isinstance(item, dict):
        raise Qwen25ValueError(f"item {i}: expected a dict with question, choices and answer, "
                               f"got {type(item).__name__}")
    for key in ("question", "choices", "answer"):
        if key not in item:
            raise Qwen25ValueError(f"{_where(item, i)}: missing {key!r}")
    q, ch, ans = item["question"], item["choices"], item["answer"]
    if not isinstance(q, str):
        raise Qwen25ValueError(f"{_where(item, i)}: question must be a string, got {type(q).__name__}")
    if not isinstance(ch, (list, tuple)) or len(ch) < 2 or not all(isinstance(c, str) and c for c in ch):
        raise Qwen25ValueError(f"{_where(item, i)}: choices must be a list of at least 2 non-empty strings, got {ch!r}")
    if len(ch) > len(LETTERS):
        raise Qwen25ValueError(f"{_where(item, i)}: {len(ch)} choices, more than the {len(LETTERS)} letters")
    if isinstance(ans, bool) or not isinstance(ans, int) or not 0 <= ans < len(ch):
        raise Qwen25ValueError(f"{_where(item, i)}: answer must be an index in 0..{len(ch) - 1}, got {ans!r}")
    return q, list(ch), ans


def mc_prompt(question: str, choices: Sequence[str], format: str = "mmlu") -> tuple[str, list[str], list[str]]:
    """(context, continuations, choice texts for acc_norm) of one item in ``format``."""
    if format == "mmlu":
        letters = list(LETTERS[:len(choices)])
        lines = [question.strip(), *(f"{a}. {c}" for a, c in zip(letters, choices)), "Answer:"]
        return "\n".join(lines), [" " + a for a in letters], letters
    if format == "cloze":
        return question, [" " + c for c in choices], list(choices)
    raise Qwen25ValueError(f"unknown multiple-choice format {format!r}; known: {', '.join(FORMATS)}")


def _argmax(xs: Sequence[float]) -> int:
    best = 0
    for j, x in enumerate(xs):  # first maximum, as numpy.argmax
        if x > xs[best]:
            best = j
    return best


def multiple_choice(model: Qwen2ForCausalLM | None, tokenizer: Tokenizer, items: Sequence[dict[str, Any]], *,
                    format: str = "mmlu", batch_size: int = 8, scorer: Scorer | None = None,
                    progress: Any = None) -> dict[str, Any]:
    """Score multiple-choice ``items`` (dicts with ``question``, ``choices``, ``answer`` as an
    index, and optionally ``id``) by log-likelihood.

    Returns ``acc``, ``acc_norm``, ``loglikelihoods`` (per item, one float per choice) and, per
    item, ``pred``, ``pred_norm``, ``correct``, ``correct_norm``; ``n`` is the number of items.
    ``scorer`` replaces the model (any callable with :func:`qwen25.eval.loglik.score_requests`'s
    contract); ``progress`` receives the number of items done after each batch."""
    if format not in FORMATS:
        raise Qwen25ValueError(f"unknown multiple-choice format {format!r}; known: {', '.join(FORMATS)}")
    if not items:
        raise Qwen25ValueError("multiple_choice: no items")
    reqs: list[Request] = []
    norms: list[list[str]] = []
    answers: list[int] = []
    for i, it in enumerate(items):
        q, ch, ans = check_mc_item(it, i)
        ctx, conts, texts = mc_prompt(q, ch, format)
        pairs = [encode_pair(tokenizer, ctx, c) for c in conts]
        reqs.append(Request(pairs[0][0], [p[1] for p in pairs]))
        norms.append(texts)
        answers.append(ans)
    if scorer is None:
        if model is None:
            raise Qwen25ValueError("multiple_choice: give a model or a scorer")
        scored = score_requests(model, reqs, batch_size=batch_size, progress=progress)
    else:
        scored = scorer(reqs)
    lls = [[s[0] for s in row] for row in scored]
    preds = [_argmax(row) for row in lls]
    preds_norm = [_argmax([ll / len(t) for ll, t in zip(row, texts)]) for row, texts in zip(lls, norms)]
    correct = [int(p == a) for p, a in zip(preds, answers)]
    correct_norm = [int(p == a) for p, a in zip(preds_norm, answers)]
    n = len(items)
    return {"acc": sum(correct) / n, "acc_norm": sum(correct_norm) / n, "loglikelihoods": lls, "n": n,
            "pred": preds, "pred_norm": preds_norm, "correct": correct, "correct_norm": correct_norm,
            "greedy": [[s[1] for s in row] for row in scored]}
