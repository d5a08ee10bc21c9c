"""``qwen25 eval``: score a checkpoint on benchmarks, with each score next to the items that the
training data hit (``--decontam-report``, the report.json of ``qwen25 decontaminate``).

    qwen25 eval --model runs/sft/final --task mmlu,gsm8k --data mmlu=MMLU_DIR --data gsm8k=test.jsonl --out ev
    qwen25 eval --model DIR --task humaneval --decontam-report decon/report.json --out ev
    qwen25 eval --model DIR --task perplexity --data packed/ --out ev
    qwen25 eval --model DIR --task passkey --lengths 1024,4096,16384 --out ev

Writes OUT/results.json and OUT/samples/<task>.jsonl; prints the score table.
"""

from __future__ import annotations

import argparse

HELP = "Evaluate a checkpoint (multiple choice, GSM8K, HumanEval pass@k, IFEval subset, perplexity, passkey)."


def _ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def _floats(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..eval.runner import TASKS

    p.add_argument("--model", required=True, help="checkpoint folder (config.json + safetensors, HF layout)")
    p.add_argument("--task", required=True, help=f"comma-separated tasks: {', '.join(TASKS)}")
    p.add_argument("--data", action="append", default=[], metavar="[TASK=]PATH",
                   help="a task's items: a JSONL file, a benchmark file or folder, or (perplexity) a packed "
                        "folder; TASK= may be left out with one task (repeatable)")
    p.add_argument("--decontam-report", metavar="FILE", help="report.json of qwen25 decontaminate: prints each "
                   "score next to the items hit and the clean-subset score")
    p.add_argument("--out", required=True, help="output folder (results.json, samples/)")
    p.add_argument("--limit", type=int, help="only the first N items of each task")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--dtype", help="float32, bfloat16, ... (default: the checkpoint's)")
    p.add_argument("--format", dest="mc_format", default="mmlu", choices=("mmlu", "cloze"),
                   help="prompt format of the generic 'mc' task")
    p.add_argument("--num-fewshot", type=int, default=5, help="GSM8K few-shot examples (default 5)")
    p.add_argument("--fewshot", help="GSM8K-format JSONL of few-shot examples (default: the built-in ones)")
    p.add_argument("--max-new-tokens", type=int,
                   help="generation length (defaults: gsm8k 256, humaneval 384, ifeval 512)")
    p.add_argument("--n-samples", type=int, default=1, help="HumanEval samples per problem (1: greedy)")
    p.add_argument("--k", type=_ints, default=(1,), help="HumanEval pass@k values, e.g. 1,10")
    p.add_argument("--timeout", type=float, default=10.0, help="sandbox time limit per HumanEval program (s)")
    p.add_argument("--lengths", type=_ints, default=(256, 512, 1024), help="passkey lengths in tokens")
    p.add_argument("--depths", type=_floats, default=(0.1, 0.5, 0.9), help="passkey depths in [0, 1]")
    p.add_argument("--trials", type=int, default=4, help="passkey prompts per length and depth")
    p.add_argument("--passkey-modes", default="base,yarn+dca", help="base, yarn+dca or both (comma-separated)")
    p.add_argument("--max-sequences", type=int, help="perplexity: only the first N packed sequences")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..errors import Qwen25ValueError
    from ..eval.runner import EvalOptions, evaluate, format_table

    tasks = [t.strip() for t in args.task.split(",") if t.strip()]
    data: dict[str, str] = {}
    for d in args.data:
        task, sep, path = d.partition("=")
        if not (sep and task in tasks):  # a bare path: the one task's
            if len(tasks) != 1:
                raise Qwen25ValueError(f"--data {d!r}: with several tasks give TASK=PATH (tasks: {', '.join(tasks)})")
            task, path = tasks[0], d
        if task in data:
            raise Qwen25ValueError(f"--data given twice for {task!r}")
        data[task] = path
    opts = EvalOptions(limit=args.limit, batch_size=args.batch_size, seed=args.seed, mc_format=args.mc_format,
                       num_fewshot=args.num_fewshot, fewshot=args.fewshot, max_new_tokens=args.max_new_tokens,
                       n_samples=args.n_samples, k=args.k, timeout=args.timeout, lengths=args.lengths,
                       depths=args.depths, trials=args.trials,
                       passkey_modes=tuple(m.strip() for m in args.passkey_modes.split(",") if m.strip()),
                       max_sequences=args.max_sequences, progress=not args.no_progress)
    results = evaluate(args.model, tasks, out=args.out, data=data, decontam_report=args.decontam_report, opts=opts,
                       device=args.device, dtype=args.dtype)
    print(format_table(results))
    print(f"results: {args.out}/results.json; per-item outputs: {args.out}/samples/")
    return 0
