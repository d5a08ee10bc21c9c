"""``qwen25 eval``: load a checkpoint, run tasks, write per-item outputs and scores, and put each
score next to the decontamination report's hits.

Output folder::

    OUT/results.json           scores per task, the options, and (with a report) the contamination table
    OUT/samples/<task>.jsonl   one line per item: its id, what the model produced, how it scored

Everything runs under ``torch.manual_seed(seed)`` (reset per task) with seeded sampling, so a
rerun gives the same files.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import Qwen25ValueError
from ..data.records import write_json, write_jsonl

__all__ = ["TASKS", "EvalOptions", "evaluate", "load_model", "format_table"]

# task -> (kind, registry benchmark, multiple-choice format)
TASKS: dict[str, tuple[str, str | None, str | None]] = {
    "mmlu": ("mc", "mmlu", "mmlu"),
    "arc-c": ("mc", "arc-c", "cloze"),
    "hellaswag": ("mc", "hellaswag", "cloze"),
    "truthfulqa": ("mc", "truthfulqa", "mmlu"),
    "mc": ("mc", None, None),
    "gsm8k": ("gsm8k", "gsm8k", None),
    "humaneval": ("humaneval", "humaneval", None),
    "ifeval": ("ifeval", "ifeval", None),
    "perplexity": ("perplexity", None, None),
    "passkey": ("passkey", None, None),
}

# metrics with a per-item value, for the contamination table: metric -> per-item key in the result
_ITEM_METRICS: dict[str, dict[str, str]] = {
    "mc": {"acc": "correct", "acc_norm": "correct_norm"},
    "gsm8k": {"exact_match_strict": "correct_strict", "exact_match_flexible": "correct_flexible"},
    "humaneval": {"pass@1": "pass@1"},
    "ifeval": {"prompt_level_strict_acc": "prompt_strict", "prompt_level_loose_acc": "prompt_loose"},
}


@dataclass
class EvalOptions:
    """Options of a run (the CLI's flags)."""

    limit: int | None = None
    batch_size: int = 8
    seed: int = 0
    mc_format: str = "mmlu"  # the `mc` task's format
    num_fewshot: int = 5
    fewshot: str | None = None  # JSONL of GSM8K-format examples
    max_new_tokens: int | None = None  # default per task
    n_samples: int = 1
    k: tuple[int, ...] = (1,)
    timeout: float = 10.0
    lengths: tuple[int, ...] = (256, 512, 1024)
    depths: tuple[float, ...] = (0.1, 0.5, 0.9)
    trials: int = 4
    passkey_modes: tuple[str, ...] = ("base", "yarn+dca")
    max_sequences: int | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def load_model(model_dir: str, *, device: str = "cpu", dtype: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from a checkpoint folder: ``from_pretrained`` weights, the folder's own
    tokenizer files when it has them, else the embedded Qwen2.5 tokenizer."""
    from ..model import Qwen2ForCausalLM
    from ..tokenizer import Tokenizer

    if not os.path.isdir(model_dir):
        from ..errors import Qwen25FileNotFoundError

        raise Qwen25FileNotFoundError(2, "no such model folder", model_dir)
    model = Qwen2ForCausalLM.from_pretrained(model_dir, dtype=dtype, device=device).eval()
    has_tok = any(os.path.isfile(os.path.join(model_dir, f)) for f in ("tokenizer.json", "vocab.json"))
    tok = Tokenizer.from_pretrained(model_dir) if has_tok else Tokenizer.qwen25()
    return model, tok


def _bar(total: int, desc: str, on: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not on, file=sys.stderr, leave=False)


def _read_fewshot(path: str) -> list[dict[str, str]]:
    from .data import load_items

    return [{"question": it["question"], "answer": it["answer"]} for it in load_items("gsm8k", path)]


def run_task(task: str, model: Any, tokenizer: Any, *, data: str | None, opts: EvalOptions
             ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(scores, items, per-item records) of one task."""
    import torch

    from .code import humaneval
    from .data import load_items
    from .generative import gsm8k
    from .ifeval import ifeval
    from .mc import multiple_choice
    from .passkey import passkey
    from .perplexity import perplexity

    if task not in TASKS:
        raise Qwen25ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    kind, _, fmt = TASKS[task]
    torch.manual_seed(opts.seed)
    if kind == "perplexity":
        if data is None:
            raise Qwen25ValueError("task 'perplexity' needs --data PATH (a packed folder from qwen25 data run)")
        from ..data.pack import PackedDataset

        ds = PackedDataset(data)
        n = len(ds) if opts.max_sequences is None else min(len(ds), opts.max_sequences)
        with _bar(n, task, opts.progress) as bar:
            r = perplexity(model, ds, max_sequences=opts.max_sequences, progress=bar.update)
        per = r.pop("per_sequence")
        return r, [], per
    if kind == "passkey":
        total = len(opts.lengths) * len(opts.depths) * opts.trials * len(opts.passkey_modes)
        with _bar(total, task, opts.progress) as bar:
            r = passkey(model, tokenizer, lengths=opts.lengths, depths=opts.depths, trials=opts.trials,
                        modes=opts.passkey_modes, seed=opts.seed, batch_size=min(opts.batch_size, 4),
                        progress=bar.update)
        per = r.pop("items")
        return r, [], per
    items = load_items(task, data, limit=opts.limit)
    with _bar(len(items) * (opts.n_samples if kind == "humaneval" else 1), task, opts.progress) as bar:
        if kind == "mc":
            f = fmt or opts.mc_format
            r = multiple_choice(model, tokenizer, items, format=f, batch_size=opts.batch_size, progress=bar.update)
            r["format"] = f
            per = [{"id": it["id"], "loglikelihoods": ll, "pred": p, "pred_norm": pn, "answer": it["answer"],
                    "correct": c, "correct_norm": cn}
                   for it, ll, p, pn, c, cn in zip(items, r["loglikelihoods"], r["pred"], r["pred_norm"],
                                                   r["correct"], r["correct_norm"])]
            for key in ("loglikelihoods", "pred", "pred_norm", "correct", "correct_norm", "greedy"):
                r.pop(key)
        elif kind == "gsm8k":
            shots = _read_fewshot(opts.fewshot) if opts.fewshot else None
            r = gsm8k(model, tokenizer, items, fewshot=shots, num_fewshot=opts.num_fewshot,
                      max_new_tokens=opts.max_new_tokens or 256, batch_size=opts.batch_size, progress=bar.update)
            per = [{"id": it["id"], "completion": c, "strict": s, "flexible": fl, "target": t,
                    "correct_strict": cs, "correct_flexible": cf}
                   for it, c, s, fl, t, cs, cf in zip(items, r.pop("completion"), r.pop("strict"), r.pop("flexible"),
                                                      r.pop("target"), r.pop("correct_strict"),
                                                      r.pop("correct_flexible"))]
        elif kind == "humaneval":
            r = humaneval(model, tokenizer, items, n=opts.n_samples, k=opts.k, batch_size=opts.batch_size,
                          max_new_tokens=opts.max_new_tokens or 384, seed=opts.seed, timeout=opts.timeout,
                          progress=bar.update)
            per = [{"id": it["id"], **p} for it, p in zip(items, r.pop("problems"))]
        else:  # ifeval
            r = ifeval(model, tokenizer, items, max_new_tokens=opts.max_new_tokens or 512,
                       batch_size=opts.batch_size, progress=bar.update)
            by_index = {p["index"]: p for p in r.pop("items")}
            per = []
            for i, it in enumerate(items):
                p = by_index.get(i)
                if p is None:
                    sk = next(s for s in r["skipped"] if s["index"] == i)
                    per.append({"id": it["id"], "skipped": True, "unsupported": sk["unsupported"]})
                else:
                    per.append({"id": it["id"], "response": p["response"], "strict": p["strict"], "loose": p["loose"],
                                "prompt_strict": int(p["prompt_strict"]), "prompt_loose": int(p["prompt_loose"])})
            r["skipped"] = len(r["skipped"])
    return r, items, per


def _contamination(task: str, items: list[dict[str, Any]], per: list[dict[str, Any]], report: dict[str, Any],
                   data: str | None) -> dict[str, Any]:
    from .contamination import match_set, split_scores

    kind, bench, _ = TASKS[task]
    metrics = _ITEM_METRICS.get(kind)
    if not metrics:
        return {"note": f"{kind} scores are not per benchmark item: no contamination split"}
    m = match_set(report, task, bench, data)
    if m is None:
        return {"note": f"the report has no test set for this task (sets: {', '.join(report['test_sets'])})"}
    name, key = m
    hits = set(report["test_sets"][name]["hits"])
    scored = [(it.get(key, it["id"]), p) for it, p in zip(items, per) if not p.get("skipped")]
    ids = [i for i, _ in scored]
    out: dict[str, Any] = {"test_set": name, "report": report["_path"], "metrics": {}}
    for metric, col in metrics.items():
        out["metrics"][metric] = split_scores(ids, [float(p[col]) for _, p in scored], hits)
    first = next(iter(out["metrics"].values()))
    out["hit_ids"] = first.pop("hit_ids")
    out["hits_not_evaluated"] = first.pop("hits_not_evaluated")
    for v in out["metrics"].values():
        v.pop("hit_ids", None)
        v.pop("hits_not_evaluated", None)
    return out


def evaluate(model_dir: str, tasks: Sequence[str], *, out: str, data: dict[str, str] | None = None,
             decontam_report: str | None = None, opts: EvalOptions | None = None, device: str = "cpu",
             dtype: str | None = None, model: Any = None, tokenizer: Any = None,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``tasks`` on the checkpoint in ``model_dir`` (or on ``model``/``tokenizer`` when given)
    and write ``out`` (module docstring). ``data`` maps a task to its file or folder. Returns the
    results written to ``results.json``."""
    from .contamination import read_report

    opts = opts or EvalOptions()
    data = dict(data or {})
    tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise Qwen25ValueError("no task given")
    for t in tasks:
        if t not in TASKS:
            raise Qwen25ValueError(f"unknown task {t!r}; known: {', '.join(TASKS)}")
    for t in data:
        if t not in tasks:
            raise Qwen25ValueError(f"--data for {t!r}, which is not among the tasks ({', '.join(tasks)})")
    report = read_report(decontam_report) if decontam_report else None
    if model is None:
        model, tokenizer = load_model(model_dir, device=device, dtype=dtype)
    elif tokenizer is None:
        from ..tokenizer import Tokenizer

        tokenizer = Tokenizer.qwen25()
    os.makedirs(os.path.join(out, "samples"), exist_ok=True)
    results: dict[str, Any] = {"model": model_dir, "tasks": {}, "options": {
        k: v for k, v in vars(opts).items() if k not in ("extra", "progress")}, "data": data}
    if report is not None:
        results["decontam_report"] = decontam_report
    for t in tasks:
        t0 = time.perf_counter()
        scores, items, per = run_task(t, model, tokenizer, data=data.get(t), opts=opts)
        scores["seconds"] = round(time.perf_counter() - t0, 3)
        if report is not None:
            scores["contamination"] = _contamination(t, items, per, report, data.get(t))
        results["tasks"][t] = scores
        write_jsonl(os.path.join(out, "samples", f"{t}.jsonl"), per)
        if log is not None:
            log(f"{t}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in scores.items() if isinstance(v, (int, float)) and k != "seconds")
                + f" ({scores['seconds']:.1f} s)")
    write_json(os.path.join(out, "results.json"), results, indent=2, ensure_ascii=False)
    return results


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def format_table(results: dict[str, Any]) -> str:
    """The scores as a text table; with a report, each per-item metric next to the items hit and
    the clean-subset score."""
    rows = []
    contam = "decontam_report" in results
    head = ["task", "metric", "n", "score"] + (["hit", "score(hit)", "clean", "score(clean)"] if contam else [])
    notes = []
    blank = ["", "", "", ""] if contam else []
    for t, sc in results["tasks"].items():
        kind = TASKS[t][0]
        c = sc.get("contamination") or {}
        if kind == "passkey":
            for mode, by_len in sc["results"].items():
                for length, r in by_len.items():
                    rows.append([t, f"{mode} @{length}", str(r["n"]), _fmt(r["acc"])] + blank)
            notes.append(f"passkey: chance is {sc['chance']:.2f}")
            continue
        if kind == "perplexity":
            rows.append([t, "ppl", str(sc["tokens"]), _fmt(sc["ppl"])] + blank)
            continue
        for metric, v in sc.items():
            if not (metric.startswith(("acc", "exact_match", "pass@", "prompt_level", "inst_level"))):
                continue
            row = [t, metric, str(sc.get("n", "")), _fmt(v)]
            if contam:
                cm = (c.get("metrics") or {}).get(metric)
                row += ([str(cm["n_hit"]), _fmt(cm["hit_score"]), str(cm["n_clean"]), _fmt(cm["clean_score"])]
                        if cm else ["", "", "", ""])
            rows.append(row)
        if contam and c.get("note"):
            notes.append(f"{t}: {c['note']}")
        if contam and c.get("hit_ids"):
            shown = ", ".join(c["hit_ids"][:8]) + (" ..." if len(c["hit_ids"]) > 8 else "")
            notes.append(f"{t}: items hit by the training data ({c['test_set']}): {shown}")
        if contam and c.get("hits_not_evaluated"):
            notes.append(f"{t}: {len(c['hits_not_evaluated'])} hit item(s) of {c['test_set']} were not evaluated")
        if kind == "ifeval" and sc.get("skipped"):
            notes.append(f"{t}: {sc['skipped']} item(s) with instructions outside the supported subset were not scored "
                         "(listed in samples/ifeval.jsonl)")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(r, widths)))
             for r in [head, *rows]]
    return "\n".join(lines + notes)
