"""The job: check the configuration, run the phases that are not already done, merge the
removed lists and write ``report.json``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .config import PipelineConfig, load_config, parse_config
from .files import JsonlWriter, read_jsonl
from .phases import RunContext, mix_pack, near_dedup, scan
from .report import final_report
from .state import PHASES, fingerprints, load_state, outputs_ok, record_outputs, save_state

__all__ = ["Pipeline", "run_pipeline"]

_RUN: dict[str, Callable[[RunContext], dict[str, Any]]] = {"scan": scan, "near_dedup": near_dedup, "mix_pack": mix_pack}


class Pipeline:
    """A checked pipeline configuration, ready to run. ``cfg``: a TOML as
    :func:`load_config` reads it, or a :class:`PipelineConfig`; ``engine`` ("local" or "ray")
    overrides ``[pipeline] engine``."""

    def __init__(self, cfg: Mapping[str, Any] | PipelineConfig, *, progress: bool = True, engine: str | None = None) -> None:
        self.config = cfg if isinstance(cfg, PipelineConfig) else parse_config(cfg, engine=engine)
        self.progress = progress
        self.ctx = RunContext(self.config, progress)

    @property
    def out(self) -> str:
        return self.config.output

    def run(self) -> dict[str, Any]:
        out = self.out
        os.makedirs(out, exist_ok=True)
        fps = fingerprints(self.config)
        st = load_state(out)
        done, old = list(st.get("done", [])), dict(st.get("fingerprints", {}))
        parts: dict[str, Any] = dict(st.get("report", {}))
        recorded: dict[str, Any] = dict(st.get("outputs", {}))
        st = {"done": [], "fingerprints": {}, "report": parts, "outputs": {}}
        redo = False  # once a phase runs, every later one runs too
        for phase in PHASES:
            if not redo and phase in done and old.get(phase) == fps[phase] and outputs_ok(self.config, phase, recorded.get(phase)):
                if self.progress:
                    print(f"qwen25 data: {phase}: already done, resuming after it", file=sys.stderr)
                st["outputs"][phase] = recorded[phase]
            else:
                redo = True
                parts[phase] = _RUN[phase](self.ctx)
                st["outputs"][phase] = record_outputs(self.config, phase)
            st["done"].append(phase)
            st["fingerprints"][phase] = fps[phase]
            save_state(out, st)
        # one removed list, in stage order
        w = JsonlWriter(os.path.join(out, "removed.jsonl"))
        for part in ("removed.scan.jsonl", "removed.near.jsonl", "removed.mix.jsonl"):
            for r in read_jsonl(os.path.join(out, part)):
                w.write(r)
        w.close()
        final = final_report(self.config.pipeline.engine, parts)
        tmp = os.path.join(out, "report.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(final, f, indent=2, sort_keys=True)
        os.replace(tmp, os.path.join(out, "report.json"))
        return final


def run_pipeline(path: str | os.PathLike[str], *, progress: bool = True, engine: str | None = None) -> dict[str, Any]:
    """Run the pipeline described by a TOML file; returns the final report. ``engine``
    ("local" or "ray") overrides ``[pipeline] engine``."""
    return Pipeline(load_config(path), progress=progress, engine=engine).run()
