"""IFEval-style verifiable instructions: a documented subset of the checkers, strict and loose.

Items are IFEval's: ``key``, ``prompt``, ``instruction_id_list`` and ``kwargs`` (one dict per
instruction; keys whose value is null are ignored, as the hub's parquet fills every checker's
keys). The checkers below follow the definitions of the IFEval paper (Zhou et al., 2023) and its
released instructions; where the original needs a language detector or NLTK's word/sentence
tokenizers, this subset says what it does instead.

=====================================================  ==================================================
instruction id (kwargs)                                followed when
=====================================================  ==================================================
``length_constraints:number_words``                    the count of ``\\w+`` words is ``< num_words``
(``relation``, ``num_words``)                          (``"less than"``) or ``>= num_words`` (``"at least"``)
``length_constraints:number_paragraphs``               the text split at ``***`` dividers has exactly
(``num_paragraphs``)                                   that many paragraphs (an empty one inside fails)
``keywords:existence`` (``keywords``)                  every keyword occurs (case-insensitive)
``keywords:forbidden_words`` (``forbidden_words``)     no word occurs as a whole word (case-insensitive)
``keywords:frequency``                                 the keyword occurs ``< frequency`` / ``>= frequency``
(``keyword``, ``relation``, ``frequency``)             times (case-insensitive)
``keywords:letter_frequency``                          the letter occurs ``< let_frequency`` /
(``letter``, ``let_relation``, ``let_frequency``)      ``>= let_frequency`` times (case-insensitive)
``detectable_format:number_bullet_lists``              exactly that many lines start with ``* `` or ``-``
(``num_bullets``)                                      (markdown bullets)
``detectable_format:number_highlighted_sections``      at least that many ``*highlighted*`` or
(``num_highlights``)                                   ``**highlighted**`` spans with text
``detectable_format:title``                            a ``<<title>>`` with text
``detectable_format:json_format``                      the whole text (a markdown code fence around it
                                                       removed) parses as JSON
``detectable_content:postscript``                      a line starts with the marker (``P.S.`` matches
(``postscript_marker``)                                ``p.s.`` / ``P. S.``, case-insensitive)
``change_case:english_lowercase``                      no upper-case letter (the original also checks
                                                       the language is English; this subset does not)
``change_case:english_capital``                        no lower-case letter (likewise)
``change_case:capital_word_frequency``                 the count of all-capital ``\\w+`` words is
(``capital_frequency``, ``capital_relation``)          ``< n`` / ``>= n``
``startend:end_checker`` (``end_phrase``)              the stripped text ends with the phrase (case-insensitive)
``startend:quotation``                                 the stripped text starts and ends with ``"``
``punctuation:no_comma``                               no comma
=====================================================  ==================================================

Strict: the response itself follows the instruction. Loose: any of eight variants does (the
response, without its first line, without its last line, without both, and those four with every
``*`` removed; blank variants do not count). Items with an instruction outside this subset are not
scored: they are listed under ``skipped`` with the unknown instruction ids, never dropped silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Qwen25ValueError

if TYPE_CHECKING:
    from ..model import Qwen2ForCausalLM
    from ..tokenizer import Tokenizer

__all__ = ["CHECKERS", "check_instruction", "score_response", "ifeval"]

_WORD = re.compile(r"\w+")


def _relation(n: int, relation: str, target: int) -> bool:
    if relation == "less than":
        return n < target
    if relation == "at least":
        return n >= target
    raise Qwen25ValueError(f"relation must be 'less than' or 'at least', got {relation!r}")


def _int(kw: dict[str, Any], key: str) -> int:
    v = kw.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise Qwen25ValueError(f"kwarg {key!r} must be an integer, got {v!r}")
    return int(v)


def _str(kw: dict[str, Any], key: str) -> str:
    v = kw.get(key)
    if not isinstance(v, str) or not v:
        raise Qwen25ValueError(f"kwarg {key!r} must be a non-empty string, got {v!r}")
    return v


def _words(kw: dict[str, Any], key: str) -> list[str]:
    v = kw.get(key)
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
        raise Qwen25ValueError(f"kwarg {key!r} must be a list of non-empty strings, got {v!r}")
    return list(v)


def _number_words(text: str, kw: dict[str, Any]) -> bool:
    return _relation(len(_WORD.findall(text)), _str(kw, "relation"), _int(kw, "num_words"))


def _number_paragraphs(text: str, kw: dict[str, Any]) -> bool:
    parts = re.split(r"\s?\*\*\*\s?", text)
    n = len(parts)
    for i, p in enumerate(parts):
        if not p.strip():
            if i in (0, len(parts) - 1):
                n -= 1
            else:
                return False
    return n == _int(kw, "num_paragraphs")


def _existence(text: str, kw: dict[str, Any]) -> bool:
    return all(re.search(re.escape(k), text, re.IGNORECASE) for k in _words(kw, "keywords"))


def _forbidden(text: str, kw: dict[str, Any]) -> bool:
    return not any(re.search(r"\b" + re.escape(w) + r"\b", text, re.IGNORECASE) for w in _words(kw, "forbidden_words"))


def _frequency(text: str, kw: dict[str, Any]) -> bool:
    n = len(re.findall(re.escape(_str(kw, "keyword")), text, re.IGNORECASE))
    return _relation(n, _str(kw, "relation"), _int(kw, "frequency"))


def _letter_frequency(text: str, kw: dict[str, Any]) -> bool:
    letter = _str(kw, "letter").lower()
    if len(letter) != 1:
        raise Qwen25ValueError(f"kwarg 'letter' must be one letter, got {letter!r}")
    return _relation(text.lower().count(letter), _str(kw, "let_relation"), _int(kw, "let_frequency"))


def _bullets(text: str, kw: dict[str, Any]) -> bool:
    star = re.findall(r"^\s*\*[^\*].*$", text, flags=re.MULTILINE)
    dash = re.findall(r"^\s*-.*$", text, flags=re.MULTILINE)
    return len(star) + len(dash) == _int(kw, "num_bullets")


def _highlights(text: str, kw: dict[str, Any]) -> bool:
    n = sum(1 for h in re.findall(r"\*[^\n\*]*\*", text) if h.strip("*").strip())
    n += sum(1 for h in re.findall(r"\*\*[^\n\*]*\*\*", text) if h.removeprefix("**").removesuffix("**").strip())
    return n >= _int(kw, "num_highlights")


def _title(text: str, kw: dict[str, Any]) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", text))


def _json(text: str, kw: dict[str, Any]) -> bool:
    s = text.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        if s.startswith(fence):
            s = s[len(fence):]
            break
    s = s.removesuffix("```").strip()
    try:
        json.loads(s)
    except ValueError:
        return False
    return True


def _postscript(text: str, kw: dict[str, Any]) -> bool:
    marker = _str(kw, "postscript_marker").strip()
    if marker.lower() == "p.s.":
        rx = r"\s*p\.\s?s\..*$"
    elif marker.lower() == "p.p.s":
        rx = r"\s*p\.\s?p\.\s?s.*$"
    else:
        rx = r"\s*" + re.escape(marker.lower()) + r".*$"
    return bool(re.findall(rx, text.lower(), flags=re.MULTILINE))


def _lowercase(text: str, kw: dict[str, Any]) -> bool:
    return text == text.lower()


def _capital(text: str, kw: dict[str, Any]) -> bool:
    return text == text.upper()


def _capital_words(text: str, kw: dict[str, Any]) -> bool:
    n = sum(1 for w in _WORD.findall(text) if w.isupper())
    return _relation(n, _str(kw, "capital_relation"), _int(kw, "capital_frequency"))


def _end(text: str, kw: dict[str, Any]) -> bool:
    return text.strip().lower().endswith(_str(kw, "end_phrase").strip().lower())


def _quotation(text: str, kw: dict[str, Any]) -> bool:
    s = text.strip()
    return len(s) > 1 and s[0] == '"' and s[-1] == '"'


def _no_comma(text: str, kw: dict[str, Any]) -> bool:
    return "," not in text


CHECKERS: dict[str, Callable[[str, dict[str, Any]], bool]] = {
    "length_constraints:number_words": _number_words,
    "length_constraints:number_paragraphs": _number_paragraphs,
    "keywords:existence": _existence,
    "keywords:forbidden_words": _forbidden,
    "keywords:frequency": _frequency,
    "keywords:letter_frequency": _letter_frequency,
    "detectable_format:number_bullet_lists": _bullets,
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_format:title": _title,
    "detectable_format:json_format": _json,
    "detectable_content:postscript": _postscript,
    "change_case:english_lowercase": _lowercase,
    "change_case:english_capital": _capital,
    "change_case:capital_word_frequency": _capital_words,
    "startend:end_checker": _end,
    "startend:quotation": _quotation,
    "punctuation:no_comma": _no_comma,
}


def check_instruction(instruction_id: str, response: str, kwargs: dict[str, Any] | None = None, *,
                      loose: bool = False) -> bool:
    """Whether ``response`` follows one instruction (strictly, or loosely: module docstring)."""
    fn = CHECKERS.get(instruction_id)
    if fn is None:
        raise Qwen25ValueError(f"instruction {instruction_id!r} is not in the supported subset: {', '.join(CHECKERS)}")
    kw = {k: v for k, v in (kwargs or {}).items() if v is not None}
    if not loose:
        return bool(response.strip()) and fn(response, kw)
    lines = response.split("\n")
    variants = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    variants += [v.replace("*", "") for v in variants]
    return any(v.strip() and fn(v, kw) for v in variants)


def _item_fields(item: Any, i: int) -> tuple[list[str], list[dict[str, Any]]]:
    where = f"item {i}" + (f" (key {item.get('key')!r})" if isinstance(item, dict) and "key" in item else "")
    if not isinstance(item, dict) or not isinstance(item.get("prompt"), str):
        raise Qwen25ValueError(f"{where}: needs a string 'prompt'")
    ids = item.get("instruction_id_list")
    if not isinstance(ids, (list, tuple)) or not ids or not all(isinstance(x, str) for x in ids):
        raise Qwen25ValueError(f"{where}: 'instruction_id_list' must be a non-empty list of strings, got {ids!r}")
    kws = item.get("kwargs")
    if kws is None:
        kws = [{} for _ in ids]
    if not isinstance(kws, (list, tuple)) or len(kws) != len(ids) or \
            not all(isinstance(k, dict) or k is None for k in kws):
        raise Qwen25ValueError(f"{where}: 'kwargs' must be a list of {len(ids)} objects, one per instruction")
    return list(ids), [dict(k or {}) for k in kws]


def score_response(item: dict[str, Any], response: str, i: int = 0) -> dict[str, Any]:
    """Per-instruction strict and loose results of one response (all instructions supported)."""
    ids, kws = _item_fields(item, i)
    strict, loose = [], []
    for iid, kw in zip(ids, kws):
        try:
            strict.append(check_instruction(iid, response, kw))
            loose.append(check_instruction(iid, response, kw, loose=True))
        except Qwen25ValueError as e:
            raise Qwen25ValueError(f"item {i} ({item.get('key', '')}), instruction {iid}: {e}") from None
    return {"strict": strict, "loose": loose, "prompt_strict": all(strict), "prompt_loose": all(loose)}


def ifeval(model: Qwen2ForCausalLM | None, tokenizer: Tokenizer, items: Sequence[dict[str, Any]], *,
           responses: Sequence[str] | None = None, chat: bool = True, max_new_tokens: int = 512,
           batch_size: int = 8, progress: Any = None) -> dict[str, Any]:
    """Prompt- and instruction-level accuracy, strict and loose, over the items whose every
    instruction is in :data:`CHECKERS`; the others are listed in ``skipped``. Responses are
    generated greedily (through the chat template when ``chat`` and the tokenizer has one), or
    given as ``responses``."""
    from .generative import generate_until

    if not items:
        raise Qwen25ValueError("ifeval: no items")
    keep, skipped = [], []
    for i, it in enumerate(items):
        ids, _ = _item_fields(it, i)
        unknown = [x for x in ids if x not in CHECKERS]
        if unknown:
            skipped.append({"index": i, "key": it.get("key", it.get("id")), "unsupported": unknown})
        else:
            keep.append(i)
    if responses is None:
        if model is None:
            raise Qwen25ValueError("ifeval: give a model or the responses")
        prompts = []
        for i in keep:
            p = items[i]["prompt"]
            if chat and tokenizer.chat_template:
                p = tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                  add_generation_prompt=True)
            prompts.append(p)
        gen = generate_until(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                             until=("<|im_end|>", "<|endoftext|>"), progress=progress) if prompts else []
        resp: dict[int, str] = dict(zip(keep, gen))
    else:
        if len(responses) != len(items):
            raise Qwen25ValueError(f"{len(responses)} responses for {len(items)} items")
        resp = {i: responses[i] for i in keep}
    per = []
    for i in keep:
        s = score_response(items[i], resp[i], i)
        per.append({"index": i, "key": items[i].get("key", items[i].get("id")), "response": resp[i], **s})
    n = len(per)
    insts = sum(len(p["strict"]) for p in per)
    out: dict[str, Any] = {"n": n, "skipped": skipped, "items": per}
    if n:
        out.update(prompt_level_strict_acc=sum(p["prompt_strict"] for p in per) / n,
                   prompt_level_loose_acc=sum(p["prompt_loose"] for p in per) / n,
                   inst_level_strict_acc=sum(sum(p["strict"]) for p in per) / insts,
                   inst_level_loose_acc=sum(sum(p["loose"]) for p in per) / insts)
    return out
