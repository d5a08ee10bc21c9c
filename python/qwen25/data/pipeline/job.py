"""The job: check the configuration, run the phases that are not already done, merge the
removed lists and write ``report.json``."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ...errors import Qwen25IOError, Qwen25ValueError
from .config import STOP_AFTER, ClassifySection, PipelineConfig, load_config, parse_config
from .files import (JsonlWriter, Texts, blame_output, concat, parse_line, read_lines, remove_temporaries,
                    text_line, write_error, write_json)
from .phases import RunContext, mix_pack, near_dedup, scan
from .report import final_report
from .state import PHASES, fingerprints, load_state, outputs_ok, record_outputs, save_state

__all__ = ["Pipeline", "run_pipeline"]

_RUN: dict[str, Callable[[RunContext], dict[str, Any]]] = {"scan": scan, "near_dedup": near_dedup, "mix_pack": mix_pack}


class Pipeline:
    """A checked pipeline configuration, ready to run. ``cfg``: a TOML as
    :func:`load_config` reads it, or a :class:`PipelineConfig`; ``engine`` ("local" or "ray")
    overrides ``[pipeline] engine``."""

    def __init__(self, cfg: Mapping[str, Any] | PipelineConfig, *, progress: bool = True, engine: str | None = None,
                 stop_after: str | None = None) -> None:  # fmt: skip
        config = cfg if isinstance(cfg, PipelineConfig) else parse_config(cfg, engine=engine)
        if stop_after is not None:
            if stop_after not in STOP_AFTER:
                raise Qwen25ValueError(f"stop_after must be one of {', '.join(STOP_AFTER)}, got {stop_after!r}")
            config = dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, stop_after=stop_after))
        self.config = _stopped(config)
        self.progress = progress
        self.ctx = RunContext(self.config, progress)

    @property
    def out(self) -> str:
        return self.config.output

    def run(self) -> dict[str, Any]:
        """Run (or resume) the phases; one run at a time per output folder (``OUT/.lock``, as
        :mod:`qwen25.data.folder_lock` describes)."""
        import secrets

        from ..folder_lock import FolderLock

        out = self.out
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as e:  # a read-only or full disk: blamed on the output folder
            raise write_error(e, out) from None
        lock = FolderLock(out, secrets.token_hex(8), lambda msg: print(f"qwen25 data: {msg}", file=sys.stderr), [],
                          job="data run")  # fmt: skip
        try:
            return self._run(out)
        finally:
            lock.release()

    def _run(self, out: str) -> dict[str, Any]:
        fps = fingerprints(self.config)
        st = load_state(out)
        if st.get("note"):  # why nothing is resumed (another version, an unreadable file): said even without progress
            print(f"qwen25 data: note: {st['note']}", file=sys.stderr)
        done, old = list(st.get("done", [])), dict(st.get("fingerprints", {}))
        parts: dict[str, Any] = dict(st.get("report", {}))
        recorded: dict[str, Any] = dict(st.get("outputs", {}))
        st = {"done": [], "fingerprints": {}, "report": parts, "outputs": {}}
        stop = self.config.pipeline.stop_after
        phases = PHASES if stop in (None, "mix") else PHASES[:2]
        _clear_stale(out, stop)
        redo = False  # once a phase runs, every later one runs too
        for phase in phases:
            if not redo and phase in done and old.get(phase) == fps[phase] and outputs_ok(self.config, phase, recorded.get(phase)):
                if self.progress:
                    print(f"qwen25 data: {phase}: already done, resuming after it", file=sys.stderr)
                st["outputs"][phase] = recorded[phase]
            else:
                redo = True
                try:
                    parts[phase] = _RUN[phase](self.ctx)
                except OSError as e:  # a full disk, say: named by the output, not its temporary
                    remove_temporaries(out)
                    err = blame_output(e)
                    if err is e:
                        raise
                    raise err from None
                except BaseException:
                    remove_temporaries(out)  # no half-written temporary stays behind
                    raise
                st["outputs"][phase] = record_outputs(self.config, phase)
            st["done"].append(phase)
            st["fingerprints"][phase] = fps[phase]
            save_state(out, st)
        # one removed list, in stage order (the phases' lists, byte for byte)
        concat([os.path.join(out, p) for p in ("removed.scan.jsonl", "removed.near.jsonl", "removed.mix.jsonl")[: len(phases)]],
               os.path.join(out, "removed.jsonl"))  # fmt: skip
        final = final_report(self.config.pipeline.engine, {k: v for k, v in parts.items() if k in phases}, stop_after=stop)
        if stop is not None:
            if stop != "mix":
                n = _write_survivors(self.ctx)
            else:  # mix_pack counted them (a state of an earlier release did not: then they are counted here)
                n = parts["mix_pack"].get("survivors")
                if n is None:
                    with open(os.path.join(out, "survivors.jsonl"), "rb") as f:
                        n = sum(1 for _ in f)
            final["survivors"] = {"file": "survivors.jsonl", "docs": n}
        write_json(os.path.join(out, "report.json"), final, indent=2, sort_keys=True)
        return final


def run_pipeline(path: str | os.PathLike[str], *, progress: bool = True, engine: str | None = None,
                 stop_after: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the pipeline described by a TOML file; returns the final report. ``engine``
    ("local" or "ray") overrides ``[pipeline] engine``; ``stop_after`` (``"filter"``,
    ``"dedup"``, ``"decontaminate"`` or ``"mix"``) overrides ``[pipeline] stop_after``."""
    return Pipeline(load_config(path), progress=progress, engine=engine, stop_after=stop_after).run()


def _stopped(cfg: PipelineConfig) -> PipelineConfig:
    """The configuration that runs up to ``[pipeline] stop_after``: the stages after it off (the
    mix stop keeps them all and skips the packing)."""
    stop = cfg.pipeline.stop_after
    if stop in (None, "mix"):
        return cfg
    later: dict[str, Any] = {"score": None, "classify": ClassifySection()}
    if stop in ("filter", "dedup"):
        later["decontaminate"] = dataclasses.replace(cfg.decontaminate, enabled=False)
    if stop == "filter":
        later["dedup"] = dataclasses.replace(cfg.dedup, exact=False, minhash=False)
    return dataclasses.replace(cfg, **later)


def _clear_stale(out: str, stop: str | None) -> None:
    """Remove what an earlier run with another stop left that this one will not write."""
    import shutil

    if stop is None:
        names = ["survivors.jsonl"]
    elif stop == "mix":
        names = ["kept.jsonl", "packed"]
    else:
        names = ["kept.jsonl", "packed", "removed.mix.jsonl", "survivors.jsonl"]
    for n in names:
        p = os.path.join(out, n)
        try:
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.remove(p)
        except OSError as e:  # a read-only output folder: a Qwen25IOError naming what cannot go
            raise Qwen25IOError(e.errno, f"cannot be removed ({e.strerror or e})", p) from None


def _write_survivors(ctx: RunContext) -> int:
    """``survivors.jsonl``: the documents that left the near-dedup phase (every domain), in
    input order, each with its provenance, domain and text (and statistics or scores)."""
    import heapq

    cfg = ctx.cfg
    order = {os.path.relpath(path, cfg.base): k for k, (path, _) in enumerate(ctx.files())}
    with open(ctx.p("stage2/index.json"), encoding="utf-8") as f:
        index = json.load(f)

    def rows(name: str) -> Iterator[tuple[tuple[int, int], dict[str, Any]]]:
        for raw in read_lines(ctx.p(os.path.join("stage2", name))):
            r = parse_line(raw)  # the document's fields; its text is stage1.text's row r["row"]
            yield (order[r["prov"]["file"]], r["prov"]["line"]), r

    w = JsonlWriter(ctx.p("survivors.jsonl"))
    with Texts(ctx.p("stage1.text")) as stage1:
        for _, r in heapq.merge(*(rows(v["file"]) for v in index.values()), key=lambda kr: kr[0]):
            w.write_line(text_line({**r["prov"], "domain": r["domain"]}, stage1.json(r["row"]),
                                   {key: r[key] for key in ("scores", "stats") if key in r}))
    w.close()
    return w.n
