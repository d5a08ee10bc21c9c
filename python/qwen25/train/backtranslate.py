"""Long-response SFT data by back-translation (the Qwen2.5 report's recipe): take long documents,
have a chat model write the query each one answers, apply length constraints, score each
(query, document) pair with a model, and keep the good pairs as SFT records with provenance.

    >>> from qwen25.data.classify import LMScorer
    >>> from qwen25.train.backtranslate import backtranslate
    >>> pairs, report = backtranslate(docs, model=m, tokenizer=tok, scorer=LMScorer(judge, tok,
    ...     dimensions=PAIR_DIMENSIONS), min_response_tokens=2048, min_score=3.5)   # doctest: +SKIP

Steps per document (each drop is counted under its reason, with the document's source):

1. the response (the document) must have ``min_response_tokens`` to ``max_response_tokens``
   tokens ("response too short" / "response too long");
2. the model writes the query: a chat prompt (``QUERY_PROMPT``) with the document, answered by
   KV-cache generation (greedy unless ``temperature > 0``); the query is the reply's text up to
   the first blank line, stripped; it must be non-empty and at most ``max_query_tokens``
   ("empty query" / "query too long"), and not a copy of the document's opening ("query copies
   the document");
3. the scorer (any :class:`qwen25.data.classify.Scorer`, e.g. ``LMScorer`` with
   :data:`PAIR_DIMENSIONS`) rates ``PAIR_TEXT`` of each pair; the mean over its dimensions must
   reach ``min_score`` ("low score").

Kept pairs are ``{"messages": [{"role": "user", "content": query}, {"role": "assistant",
"content": document}], "provenance": {...}}``; ``report`` has the counts kept and dropped, the
drops by reason and the dropped documents' sources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Qwen25ValueError
from .modes import evaluating

if TYPE_CHECKING:
    from ..model import Qwen2ForCausalLM
    from ..tokenizer import Tokenizer

__all__ = ["backtranslate", "write_queries", "QUERY_SYSTEM", "QUERY_PROMPT", "PAIR_TEXT", "PAIR_DIMENSIONS"]

QUERY_SYSTEM = "You write the request a user made, given the answer they received."
QUERY_PROMPT = ("Here is a text that was written as the answer to a user's request.\n\n<text>\n{document}\n</text>\n\n"
                "Write the user's request that this text answers best: one instruction or question, specific "
                "enough that this text is a complete answer, including any length or format the text follows. "
                "Reply with the request only.")
PAIR_TEXT = "Request:\n{query}\n\nResponse:\n{document}"
PAIR_DIMENSIONS = {
    "pair_quality": "how well the response fully and directly answers the request, and how clear and natural the "
                    "request is (0 = unrelated or unclear, 5 = a clear request that the response answers completely)",
}


def write_queries(model: Qwen2ForCausalLM, tokenizer: Tokenizer, documents: Sequence[str], *,
                  max_query_tokens: int = 256, max_document_tokens: int = 8192, temperature: float = 0.0,
                  seed: int = 0, batch_size: int = 4) -> list[str]:
    """The model's query for each document (the reply up to its first blank line, stripped)."""
    from ..model.generation import generate

    eos = [t for t in (tokenizer.token_to_id("<|im_end|>"), tokenizer.eos_token_id) if t is not None]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos[0] if eos else 0)
    prompts = []
    for d in documents:
        doc_ids = tokenizer.encode_ordinary(d)
        if len(doc_ids) > max_document_tokens:  # the prompt sees the document's first tokens only
            d = tokenizer.decode(doc_ids[:max_document_tokens], errors="ignore")
        msgs = [{"role": "system", "content": QUERY_SYSTEM}, {"role": "user", "content": QUERY_PROMPT.format(document=d)}]
        prompts.append(list(tokenizer.apply_chat_template(msgs, add_generation_prompt=True)))
    out = []
    with evaluating(model):
        for b, s in enumerate(range(0, len(prompts), batch_size)):
            part = prompts[s:s + batch_size]
            ids = generate(model, part, max_new_tokens=max_query_tokens + 1, do_sample=temperature > 0,
                           temperature=temperature if temperature > 0 else 1.0, seed=seed * 1_000_003 + b,
                           eos_token_id=eos or None, pad_token_id=pad)
            start = max(len(p) for p in part)
            for r in range(len(part)):
                new = ids[r, start:].tolist()
                cut = next((n for n, t in enumerate(new) if t in eos), len(new))
                out.append(tokenizer.decode(new[:cut], skip_special_tokens=True))
    return out


def _clean(query: str) -> str:
    q = query.strip()
    cut = q.find("\n\n")
    return (q[:cut] if cut >= 0 else q).strip()


def backtranslate(documents: Iterable[str | Mapping[str, Any]], *, tokenizer: Tokenizer,
                  model: Qwen2ForCausalLM | None = None, scorer: Any = None, min_score: float = 3.0,
                  min_response_tokens: int = 1024, max_response_tokens: int = 32768, max_query_tokens: int = 256,
                  text_field: str = "text", temperature: float = 0.0, seed: int = 0, batch_size: int = 4,
                  model_name: str = "", queries: Callable[[list[str]], list[str]] | None = None
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(query, document) SFT pairs from ``documents`` (strings, or dicts with ``text_field`` and
    optionally ``id``); see the module docstring. ``queries`` replaces the model's query writing
    with any ``documents -> queries`` callable; ``scorer=None`` keeps every pair that meets the
    length constraints (its provenance then has no score)."""
    if not 0 <= min_response_tokens <= max_response_tokens:
        raise Qwen25ValueError(f"need 0 <= min_response_tokens <= max_response_tokens, got {min_response_tokens}, "
                               f"{max_response_tokens}")
    if max_query_tokens < 1:
        raise Qwen25ValueError(f"max_query_tokens must be >= 1, got {max_query_tokens}")
    if queries is None and model is None:
        raise Qwen25ValueError("backtranslate needs a model to write the queries (or queries=)")
    docs: list[tuple[str, str]] = []
    for n, d in enumerate(documents):
        if isinstance(d, str):
            docs.append((f"document {n + 1}", d))
        elif isinstance(d, Mapping) and isinstance(d.get(text_field), str):
            docs.append((str(d.get("id", f"document {n + 1}")), d[text_field]))
        else:
            raise Qwen25ValueError(f"document {n + 1}: expected a str or a dict with a string {text_field!r}, got "
                                   f"{type(d).__name__}")
    dropped: list[dict[str, Any]] = []

    def drop(src: str, reason: str) -> None:
        dropped.append({"source": src, "reason": reason})

    lengths = [len(x) for x in tokenizer.encode_batch([t for _, t in docs], allowed_special=set())] if docs else []
    fit = []
    for (src, text), n in zip(docs, lengths):
        if n < min_response_tokens:
            drop(src, "response too short")
        elif n > max_response_tokens:
            drop(src, "response too long")
        else:
            fit.append((src, text, n))
    texts = [t for _, t, _ in fit]
    if queries is not None:
        raw = list(queries(texts))
        if len(raw) != len(texts):
            raise Qwen25ValueError(f"queries returned {len(raw)} queries for {len(texts)} documents")
    else:
        assert model is not None
        raw = write_queries(model, tokenizer, texts, max_query_tokens=max_query_tokens, temperature=temperature,
                            seed=seed, batch_size=batch_size) if texts else []
    candidates = []
    for (src, text, n), q in zip(fit, raw):
        q = _clean(q)
        nq = len(tokenizer.encode(q, allowed_special=set())) if q else 0
        if not q:
            drop(src, "empty query")
        elif nq > max_query_tokens:
            drop(src, "query too long")
        elif len(q) >= 40 and text.lstrip().startswith(q):
            drop(src, "query copies the document")
        else:
            candidates.append((src, text, n, q, nq))
    scores: list[float | None] = [None] * len(candidates)
    if scorer is not None and candidates:
        import numpy as np

        table = np.asarray(scorer.score([PAIR_TEXT.format(query=q, document=t) for _, t, _, q, _ in candidates]),
                           dtype=np.float64)
        if table.shape != (len(candidates), len(scorer.dimensions)):
            raise Qwen25ValueError(f"the scorer returned shape {table.shape}, expected "
                                   f"{(len(candidates), len(scorer.dimensions))}")
        scores = [float(x) for x in table.mean(axis=1)]
    pairs = []
    for (src, text, n, q, nq), s in zip(candidates, scores):
        if s is not None and not s >= min_score:
            drop(src, "low score")
            continue
        prov: dict[str, Any] = {"source": src, "method": "backtranslation", "model": model_name,
                                "query_tokens": nq, "response_tokens": n, "temperature": temperature, "seed": seed}
        if s is not None:
            prov.update(score=round(s, 6), min_score=min_score,
                        scorer=type(scorer).__name__, dimensions=list(scorer.dimensions))
        pairs.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": text}],
                      "provenance": prov})
    reasons: dict[str, int] = {}
    for d in dropped:
        reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    report = {"documents": len(docs), "kept": len(pairs), "dropped": len(dropped), "dropped_by_reason": reasons,
              "dropped_documents": dropped,
              "constraints": {"min_response_tokens": min_response_tokens, "max_response_tokens": max_response_tokens,
                              "max_query_tokens": max_query_tokens, "min_score": min_score if scorer is not None else None}}
    return pairs, report
