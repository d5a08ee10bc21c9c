"""Arguments and helpers shared by the training commands: ``qwen25 pretrain``, ``sft``, ``rm``,
``dpo`` and ``grpo``; :func:`run_on_file` is the whole ``run`` of the last three."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from typing import Any

from ..errors import Qwen25ValueError


def add_run_arguments(p: argparse.ArgumentParser, *, set_help: str, out_help: str = "output folder",
                      resumable: bool = False, resume_help: str = "resume from this checkpoint folder",
                      allow_changes_help: str = "resume even though the config changed",
                      stop_help: str = "stop after step N", list_recipes: bool = False) -> None:
    """``--set``, ``--out``, ``--print-config`` and ``--no-progress``; with ``resumable``, also
    ``--resume``, ``--no-resume``, ``--allow-changes`` and ``--stop-at-step``; with ``list_recipes``,
    ``--list-recipes``."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--out", help=out_help)
    if resumable:
        p.add_argument("--resume", metavar="CHECKPOINT", default=None, help=resume_help)
        p.add_argument("--no-resume", action="store_true",
                       help="start afresh (refused if OUT holds checkpoints)")
        p.add_argument("--allow-changes", action="store_true", help=allow_changes_help)
        p.add_argument("--stop-at-step", type=int, default=None, metavar="N", help=stop_help)
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    if list_recipes:
        p.add_argument("--list-recipes", action="store_true", help="list the recipes and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def print_recipes(table: Mapping[str, Callable[[], Any]], width: int) -> int:
    """``--list-recipes``: each recipe's name (padded to ``width``) and the first line of its
    docstring. Returns the exit status 0."""
    for name, fn in table.items():
        doc = (fn.__doc__ or "").strip().split("\n")[0]
        print(f"{name:{width}s} {doc}")
    return 0


def require_out(args: argparse.Namespace, what: str = "") -> str:
    """``args.out``, or the error that says it is required (``what``: what goes in it)."""
    if not args.out:
        raise Qwen25ValueError("--out is required" + (f": the folder for {what}" if what else ""))
    return str(args.out)


def resume_of(args: argparse.Namespace) -> bool | str:
    """What ``--resume CHECKPOINT`` / ``--no-resume`` ask for: a checkpoint folder, True (the
    latest in OUT/checkpoints, if any) or False (start afresh)."""
    if args.resume and args.no_resume:
        raise Qwen25ValueError("--resume and --no-resume contradict each other")
    return args.resume if args.resume else not args.no_resume


def progress_of(args: argparse.Namespace) -> bool | None:
    """``False`` with ``--no-progress``, else None (the trainer decides)."""
    return False if args.no_progress else None


def last_values(records: Sequence[Mapping[str, Any]], keys: Iterable[str]) -> dict[str, Any]:
    """The numeric ``keys`` of the last record, rounded to 6 digits (none when no step ran)."""
    last = records[-1] if records else {}
    return {k: round(last[k], 6) for k in keys if isinstance(last.get(k), (int, float))}


def run_summary(trainer: Any, records: Sequence[Mapping[str, Any]], out: str,
                **extra: Any) -> dict[str, Any]:
    """What ``pretrain`` and ``sft`` print: the steps run, the step reached of the total, OUT, then
    ``extra``, the last loss and tokens seen, and the checkpoint written last."""
    summary = {"steps_run": len(records), "step": trainer.step, "of": trainer.config.total_steps(),
               "out": out, **extra, **last_values(records, ("loss", "tokens_seen"))}
    if trainer.last_checkpoint is not None:
        summary["checkpoint"] = str(trainer.last_checkpoint)
    return summary


def print_summary(trainer: Any, summary: Callable[[], Mapping[str, Any]]) -> int:
    """Print ``summary()`` as one JSON line on rank 0 (one summary for the run, not one per rank
    under torchrun). Returns the exit status 0."""
    if trainer.dist.rank == 0:
        print(json.dumps(summary()))
    return 0


def run_on_file(args: argparse.Namespace, module: Any, train: Callable[..., tuple[Any, list[dict[str, Any]]]],
                *, source: str, what: str, keys: Iterable[str],
                extra: Callable[[Any, list[dict[str, Any]]], Mapping[str, Any]] | None = None) -> int:
    """``qwen25 rm``, ``dpo`` and ``grpo``: ``module.recipe(--recipe)`` with the ``--set``
    overrides, on the file ``--SOURCE`` (``what`` it holds, for the error when it is missing);
    ``--print-config`` prints ``module.prepare_config``; else ``train(config, SOURCE=path,
    out_dir=OUT, progress=...)`` runs and prints the steps run, the step reached, OUT,
    ``extra(trainer, records)`` and the last values of ``keys``."""
    from ..train import apply_overrides

    config = apply_overrides(module.recipe(args.recipe), args.overrides)
    path = getattr(args, source)
    if not path:
        raise Qwen25ValueError(f"--{source} is required: {what}")
    if args.print_config:
        print(module.prepare_config(config, path).to_json(), end="")
        return 0
    out = require_out(args)
    trainer, records = train(config, **{source: path}, out_dir=out, progress=progress_of(args))
    with closing(trainer):
        return print_summary(trainer, lambda: {"steps_run": len(records), "step": trainer.step,
                                               "out": out, **(extra(trainer, records) if extra else {}),
                                               **last_values(records, keys)})
