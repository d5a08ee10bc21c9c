"""Resume: ``state.json`` records the finished phases, each with a fingerprint of what it depends
on and the size and digest of every file it wrote, so a rerun resumes after the last finished
phase whose inputs, configuration and outputs are unchanged. Inputs are fingerprinted by content
(size and a digest: an edit that keeps the size and restores the mtime is still seen, and a file
touched or copied anew with the same bytes is not an edit); an
output that went missing, was truncated or was edited makes its phase run again, and every phase
after it. Digests are :func:`qwen25.data.records.file_digest` (XXH3-128, a fingerprint against
accidental change, not a security feature; ``state.json`` names the algorithm in
``digest_algorithm``); an output that this process wrote through ``records.open_writer`` and
that is unchanged since takes the writer's digest (:func:`qwen25.data.records.output_digest`)
instead of being read back. A ``state.json`` of another ``STATE_VERSION`` or digest algorithm is
never resumed from: :func:`load_state` says why in its ``note``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

from ..records import DIGEST_ALGORITHM, file_digest, output_digest
from .config import EXEC_KEYS, PipelineConfig, mix_phases

__all__ = ["PHASES", "fingerprints", "load_state", "outputs_ok", "phase_outputs", "record_outputs", "save_state"]

PHASES = ("scan", "near_dedup", "mix_pack")
# Bumped when what a phase writes (or state.json holds) changes shape: an older run's state
# is then never resumed from. 5: digests are XXH3-128 (records.DIGEST_ALGORITHM), were BLAKE2b.
STATE_VERSION = 6  # 6: the stage-1 texts are in stage1.text (UTF-8, byte lengths in stage1.text.len)


def _h(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _stamp(path: str) -> Any:
    """A file's content: size and digest (not its mtime: a file touched or copied anew with the
    same bytes gives the same results, so nothing is redone for it)."""
    return (os.path.getsize(path), file_digest(path))


def _model_stamp(path: str | None) -> Any:
    """(name, stamp) of a checkpoint folder's files, so a changed model reruns."""
    if not path or not os.path.isdir(path):
        return None
    return sorted((f, _stamp(os.path.join(path, f))) for f in os.listdir(path))


def fingerprints(cfg: PipelineConfig) -> dict[str, str]:
    """One fingerprint per phase, of what its results depend on (and of the phase before):
    scan on the sources, their files, on_bad_line, [filter] and [dedup]; near_dedup also on
    [decontaminate] (with the test set file), [score] and [classify] (with the model files);
    mix_pack also on [mix] and
    [pack]. So a change to [mix] reruns only the mix; engine, threads and batch size count
    nowhere (they do not change results)."""
    asdict = dataclasses.asdict
    files = [(f, _stamp(f)) for s in cfg.sources for f in s.files]
    pl = {k: v for k, v in asdict(cfg.pipeline).items() if k not in EXEC_KEYS and k not in ("output", "stop_after")}
    scan = _h(STATE_VERSION, [asdict(s) for s in cfg.sources], files, pl, asdict(cfg.filter), asdict(cfg.dedup))
    model = cfg.classify.model
    mfile = _stamp(model) if model and os.path.exists(model) else None
    score = asdict(cfg.score) if cfg.score else None
    ts = cfg.decontaminate.options.get("test_set")  # a test set file: its content, so an edit reruns
    tfile = _stamp(ts) if isinstance(ts, str) and os.path.isfile(ts) else None
    near = _h(scan, asdict(cfg.decontaminate), asdict(cfg.classify), mfile, score,
              _model_stamp(cfg.score.model if cfg.score else None), tfile)  # fmt: skip
    mix = _h(near, asdict(cfg.mix), asdict(cfg.pack), cfg.pipeline.stop_after == "mix")
    return {"scan": scan, "near_dedup": near, "mix_pack": mix}


def phase_outputs(cfg: PipelineConfig, phase: str) -> list[str] | None:
    """The files a finished phase leaves (relative to the output folder), or None when they
    cannot be listed (an unreadable ``stage2/index.json``)."""
    out = cfg.output
    if phase == "scan":
        return ["stage1.jsonl", "stage1.text", "stage1.text.len", "stage1.tok", "stage1.len",
                "minhash_clusters.npy", "removed.scan.jsonl"]
    if phase == "near_dedup":
        try:
            with open(os.path.join(out, "stage2", "index.json"), encoding="utf-8") as f:
                index = json.load(f)
        except (OSError, ValueError):
            return None
        return ["stage2/index.json", "removed.near.jsonl"] + [
            os.path.join("stage2", v[k]) for v in index.values() for k in ("file", "rows")
        ]
    if cfg.pipeline.stop_after == "mix":
        return ["survivors.jsonl", "removed.mix.jsonl"]
    phases = mix_phases(cfg)
    dirs = [os.path.join("packed", p.name) for p in phases] if phases[0].name else ["packed"]
    files = ["kept.jsonl", "removed.mix.jsonl"]
    for d in dirs:
        files.append(os.path.join(d, "manifest.json"))
        try:  # the shards and their index, whatever the packer names them
            listed = [os.path.join(d, n) for n in os.listdir(os.path.join(out, d)) if not (n.endswith(".tmp") or n.startswith(".tmp-"))]
        except OSError:
            return None
        files += sorted(set(listed) - set(files))
    return files


def record_outputs(cfg: PipelineConfig, phase: str) -> dict[str, list[Any]]:
    """``{file: [size, digest]}`` of what a finished phase wrote (for :func:`outputs_ok`); a file
    written through ``records.open_writer`` and unchanged since is not read again."""
    names = phase_outputs(cfg, phase) or []
    out = {}
    for n in names:
        p = os.path.join(cfg.output, n)
        out[n] = [os.path.getsize(p), output_digest(p)]
    return out


def outputs_ok(cfg: PipelineConfig, phase: str, recorded: Any) -> bool:
    """Whether a finished phase's outputs are still there and as it wrote them (size and
    digest of each file, read again; a rerun redoes the phase otherwise)."""
    if not isinstance(recorded, dict) or not recorded:
        return False
    for n, (size, digest) in recorded.items():
        p = os.path.join(cfg.output, n)
        try:
            if os.path.getsize(p) != size or file_digest(p) != digest:
                return False
        except OSError:
            return False
    names = phase_outputs(cfg, phase)
    return names is not None and set(names) <= set(recorded)


def load_state(out: str) -> dict[str, Any]:
    """The state of the last run in ``out``; nothing done when there is none, or when it cannot be
    trusted, with a ``note`` saying why (the caller shows it)."""
    try:
        with open(os.path.join(out, "state.json"), encoding="utf-8") as f:
            st: dict[str, Any] = json.load(f)
    except FileNotFoundError:
        return {"done": [], "fingerprints": {}}
    except (OSError, ValueError):
        return {"done": [], "fingerprints": {}, "note": "state.json cannot be read: every phase is redone"}
    if not isinstance(st, dict):
        return {"done": [], "fingerprints": {}, "note": "state.json is not a state: every phase is redone"}
    if st.get("version") != STATE_VERSION or st.get("digest_algorithm", DIGEST_ALGORITHM) != DIGEST_ALGORITHM:
        why = (f"state.json is from another version ({st.get('version')!r}; this one writes {STATE_VERSION}, "
               f"with {DIGEST_ALGORITHM} digests): every phase is redone")  # fmt: skip
        return {"done": [], "fingerprints": {}, "note": why}
    if not _well_formed(st):
        return {"done": [], "fingerprints": {}, "note": "state.json is not as this version writes it: every phase is redone"}
    return st


def _well_formed(st: dict[str, Any]) -> bool:
    """Whether ``st`` has the shape :func:`save_state` writes (a hand-edited or foreign file
    would otherwise end the run in a traceback when it is resumed from)."""
    from .report import Tally

    def table(v: Any) -> bool:
        return isinstance(v, dict) and all(isinstance(k, str) for k in v)

    done, fps, outs, rep = st.get("done", []), st.get("fingerprints", {}), st.get("outputs", {}), st.get("report", {})
    if not (isinstance(done, list) and all(p in PHASES for p in done) and table(fps) and table(outs) and table(rep)):
        return False
    if not all(isinstance(v, str) for v in fps.values()):
        return False
    for files in outs.values():
        if not table(files) or not all(isinstance(sd, list) and len(sd) == 2 and isinstance(sd[0], int)
                                       and isinstance(sd[1], str) for sd in files.values()):  # fmt: skip
            return False
    try:
        for part in rep.values():
            Tally.from_json(part["tally"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return True


def save_state(out: str, st: dict[str, Any]) -> None:
    from .files import write_json

    body = {k: v for k, v in st.items() if k != "note"}
    write_json(os.path.join(out, "state.json"), {**body, "version": STATE_VERSION, "digest_algorithm": DIGEST_ALGORITHM})
