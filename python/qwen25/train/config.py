"""The training configuration: frozen keyword-only dataclasses, checked ``--set`` overrides, and the
JSON form a checkpoint carries. Torch-free.

A run is a list of stages. Each stage reads its own packed folders at its own sequence length and
RoPE base (the long-context stages of the Qwen2.5 report), for a number of optimizer steps or
tokens. The batch is given in tokens: every stage takes ``global_batch_tokens // seq_len`` rows per
optimizer step, split over the ranks and into micro-batches of ``micro_batch_size`` rows, so
gradient accumulation is derived, never set.

Overrides name a field by its dotted path and are parsed by the field's type::

    lr=3e-4                       a float
    stages.0.steps=20             a field of stage 0
    stages.1.data=a,b             a tuple (comma-separated; an empty value is the empty tuple)
    model.hidden_size=64          a field of the model config (Qwen25Config), kept in model_overrides
    method.beta=0.2               a setting of the objective (qwen25.rl's DPO, reward model), parsed as JSON
    stages.1.rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}
    init_from=none                None, for the fields that may be None
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import Qwen25ValueError

__all__ = ["TrainConfig", "Stage", "ConfigOverrideError", "apply_overrides", "override", "config_diff",
           "SCHEDULES", "PRECISIONS", "NO_DECAY_KINDS", "BUILTIN_DEBUG_DATA"]

SCHEDULES = ("cosine", "wsd", "constant")
WSD_DECAY = ("linear", "cosine", "1-sqrt")
PRECISIONS = ("auto", "bf16", "fp32")
NO_DECAY_KINDS = ("norm", "bias", "embedding")
FSDP_MODES = ("auto", "on", "off")
BUILTIN_DEBUG_DATA = "builtin:debug"  # the synthetic corpus of qwen25.train.debug_data

# Qwen25Config fields a stage sets itself: overriding them through model.* would be silently undone.
_STAGE_OWNED = ("rope_theta", "rope_scaling", "dual_chunk_attention_config")


class ConfigOverrideError(Qwen25ValueError):
    """A ``--set`` override with an unknown key or a value of the wrong type; the message names it."""


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One stage of a run: its data, sequence length, RoPE settings and length.

    * ``data``: packed folders (``qwen25 data run`` phases), all packed at ``seq_len``; with several,
      ``weights`` gives each one's share of the rows (e.g. 0.4 full-length documents, 0.6 shorter
      ones, as Qwen2.5-Turbo's stages). ``"builtin:debug"`` is the synthetic debug corpus.
    * ``rope_theta``: the RoPE base from this stage on (None keeps the model's).
    * ``rope_scaling``: YaRN settings (a dict as in ``config.json``) used in training from this
      stage on; None for none.
    * ``dca``: a Dual Chunk Attention config (dict) recorded in this stage's checkpoint config for
      inference. Training itself runs without it: packed rows need per-document causal attention.
    * ``steps`` or ``tokens``: the stage's length (tokens are rounded up to whole steps).
    * ``micro_batch_size``: rows per micro-batch in this stage (None: the run's).
    """

    name: str
    data: tuple[str, ...]
    seq_len: int
    weights: tuple[float, ...] = ()
    rope_theta: float | None = None
    rope_scaling: dict[str, Any] | None = field(default=None, hash=False)
    dca: dict[str, Any] | None = field(default=None, hash=False)
    steps: int | None = None
    tokens: int | None = None
    micro_batch_size: int | None = None

    def __post_init__(self) -> None:
        where = f"stage {self.name!r}"
        if isinstance(self.data, str):
            object.__setattr__(self, "data", (self.data,))
        if isinstance(self.data, list):
            object.__setattr__(self, "data", tuple(self.data))
        if isinstance(self.weights, list):
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if not isinstance(self.name, str) or not self.name:
            raise Qwen25ValueError(f"a stage needs a non-empty name, got {self.name!r}")
        if not self.data or not all(isinstance(d, str) and d for d in self.data):
            raise Qwen25ValueError(f"{where}: data must name at least one packed folder, got {self.data!r}")
        if self.weights:
            if len(self.weights) != len(self.data):
                raise Qwen25ValueError(f"{where}: {len(self.data)} data folders but {len(self.weights)} weights")
            if any(not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0) for w in self.weights) or \
                    sum(self.weights) <= 0:
                raise Qwen25ValueError(f"{where}: weights must be finite, >= 0 and not all 0, got {self.weights}")
        if not _positive_int(self.seq_len):
            raise Qwen25ValueError(f"{where}: seq_len must be a positive int, got {self.seq_len!r}")
        if self.rope_theta is not None and not (self.rope_theta > 0 and math.isfinite(self.rope_theta)):
            raise Qwen25ValueError(f"{where}: rope_theta must be positive, got {self.rope_theta!r}")
        for name in ("rope_scaling", "dca"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, Mapping):
                raise Qwen25ValueError(f"{where}: {name} must be a dict or None, got {v!r}")
        if (self.steps is None) == (self.tokens is None):
            raise Qwen25ValueError(f"{where}: give exactly one of steps and tokens")
        for name in ("steps", "tokens", "micro_batch_size"):
            v = getattr(self, name)
            if v is not None and not _positive_int(v):
                raise Qwen25ValueError(f"{where}: {name} must be a positive int, got {v!r}")

    @property
    def shares(self) -> tuple[float, ...]:
        """Each data folder's share of the rows (sums to 1)."""
        w = self.weights or (1.0,) * len(self.data)
        total = float(sum(w))
        return tuple(float(x) / total for x in w)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything a pre-training run depends on (the output folder and the resume choice are the
    Trainer's). Recipes in ``qwen25.train.recipes`` return complete ones; change fields with
    ``dataclasses.replace``, :func:`override` or ``--set``."""

    name: str = "custom"
    # model: a preset name of qwen25.model.PRESETS, or an HF folder / config.json path
    model: str = "debug"
    model_overrides: dict[str, Any] = field(default_factory=dict, hash=False)  # Qwen25Config fields
    init_from: str | None = None  # an HF checkpoint folder whose weights start the run (else random)
    stages: tuple[Stage, ...]
    # batch
    global_batch_tokens: int
    micro_batch_size: int = 1
    # optimizer: AdamW with decoupled weight decay
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    no_decay: tuple[str, ...] = NO_DECAY_KINDS  # parameter kinds without weight decay
    clip_grad_norm: float = 1.0  # 0 turns clipping off (the norm is still logged)
    # schedule over all stages' steps: linear warm-up then cosine, warm-up-stable-decay, or constant
    schedule: str = "cosine"
    warmup_steps: int = 0
    wsd_decay_fraction: float = 0.2  # WSD: the share of steps spent decaying
    wsd_decay: str = "linear"
    # numerics and hardware
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    device: str = "auto"  # auto, cpu, cuda
    fused_loss: bool | None = None  # None: the model's default (the fused kernel on CUDA)
    fsdp: str = "auto"  # auto: FSDP2 when more than one rank
    activation_checkpointing: bool = False
    compile: bool = False
    peak_flops: float | None = None  # per device, for MFU (None: known GPUs, else no MFU)
    # data
    seed: int = 0
    shuffle: bool = True  # rows in a seeded random order per epoch (else in file order)
    mask_document_boundaries: bool = True  # no loss on a document's first token (it follows another)
    # checkpoints and logging
    checkpoint_every: int = 0  # steps between checkpoints (0: only at the end)
    keep_last: int = 3
    log_every: int = 1  # progress bar and TensorBoard cadence (metrics.jsonl gets every step)
    # settings of an objective beyond pre-training, read and checked by the trainer that runs it
    # (qwen25.rl: DPO's beta, the reference model, OMO's alpha, ...); set with --set method.KEY=VALUE
    method: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if isinstance(self.stages, list):
            object.__setattr__(self, "stages", tuple(self.stages))
        if isinstance(self.no_decay, list):
            object.__setattr__(self, "no_decay", tuple(self.no_decay))
        if isinstance(self.no_decay, str):
            object.__setattr__(self, "no_decay", tuple(s for s in self.no_decay.split(",") if s))
        if not self.stages or not all(isinstance(s, Stage) for s in self.stages):
            raise Qwen25ValueError("TrainConfig: stages must be a non-empty tuple of Stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise Qwen25ValueError(f"TrainConfig: stage names must differ, got {names}")
        if not isinstance(self.model, str) or not self.model:
            raise Qwen25ValueError(f"TrainConfig: model must be a preset name or a path, got {self.model!r}")
        if not isinstance(self.method, Mapping):
            raise Qwen25ValueError(f"TrainConfig: method must be a dict, got {self.method!r}")
        if not isinstance(self.model_overrides, Mapping):
            raise Qwen25ValueError(f"TrainConfig: model_overrides must be a dict, got {self.model_overrides!r}")
        owned = sorted(set(self.model_overrides) & set(_STAGE_OWNED))
        if owned:
            raise Qwen25ValueError(f"TrainConfig: model_overrides {owned} are set per stage (stages.N.rope_theta, "
                                   "stages.N.rope_scaling, stages.N.dca)")
        for name in ("global_batch_tokens", "micro_batch_size", "keep_last", "log_every"):
            if not _positive_int(getattr(self, name)):
                raise Qwen25ValueError(f"TrainConfig: {name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("warmup_steps", "checkpoint_every", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise Qwen25ValueError(f"TrainConfig: {name} must be an int >= 0, got {v!r}")
        for name in ("lr", "eps"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise Qwen25ValueError(f"TrainConfig: {name} must be a positive number, got {v!r}")
        for name in ("min_lr_ratio", "wsd_decay_fraction"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v <= 1):
                raise Qwen25ValueError(f"TrainConfig: {name} must be in [0, 1], got {v!r}")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise Qwen25ValueError(f"TrainConfig: {name} must be in [0, 1), got {v!r}")
        for name in ("weight_decay", "clip_grad_norm"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise Qwen25ValueError(f"TrainConfig: {name} must be a number >= 0, got {v!r}")
        unknown = sorted(set(self.no_decay) - set(NO_DECAY_KINDS))
        if unknown:
            raise Qwen25ValueError(f"TrainConfig: no_decay {unknown} unknown; use some of {list(NO_DECAY_KINDS)}")
        for name, allowed in (("schedule", SCHEDULES), ("precision", PRECISIONS), ("fsdp", FSDP_MODES),
                              ("wsd_decay", WSD_DECAY)):
            if getattr(self, name) not in allowed:
                raise Qwen25ValueError(f"TrainConfig: {name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise Qwen25ValueError(f"TrainConfig: device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.peak_flops is not None and not self.peak_flops > 0:
            raise Qwen25ValueError(f"TrainConfig: peak_flops must be positive, got {self.peak_flops!r}")
        for s in self.stages:
            self.grad_accum(s)  # the batch must split into whole rows and micro-batches

    # ------------------------------------------------------------------------- derived values
    def rows_per_step(self, stage: Stage) -> int:
        """Rows (sequences) in one optimizer step of ``stage``: global_batch_tokens / seq_len."""
        if self.global_batch_tokens % stage.seq_len:
            raise Qwen25ValueError(f"stage {stage.name!r}: global_batch_tokens {self.global_batch_tokens} is not a "
                                   f"multiple of its seq_len {stage.seq_len}")
        return self.global_batch_tokens // stage.seq_len

    def micro_batch(self, stage: Stage) -> int:
        return stage.micro_batch_size or self.micro_batch_size

    def grad_accum(self, stage: Stage, world_size: int = 1) -> int:
        """Micro-batches per rank per optimizer step."""
        rows, m = self.rows_per_step(stage), self.micro_batch(stage)
        if rows % (m * world_size):
            raise Qwen25ValueError(f"stage {stage.name!r}: {rows} rows per step (global_batch_tokens "
                                   f"{self.global_batch_tokens} / seq_len {stage.seq_len}) do not split into "
                                   f"micro-batches of {m} rows over {world_size} rank(s)")
        return rows // (m * world_size)

    def stage_steps(self, stage: Stage) -> int:
        if stage.steps is not None:
            return stage.steps
        assert stage.tokens is not None
        return -(-stage.tokens // self.global_batch_tokens)

    def total_steps(self) -> int:
        return sum(self.stage_steps(s) for s in self.stages)

    def stage_bounds(self) -> list[tuple[int, int]]:
        """(first step, last step) of each stage, steps counted from 1."""
        out, start = [], 1
        for s in self.stages:
            n = self.stage_steps(s)
            out.append((start, start + n - 1))
            start += n
        return out

    def stage_index(self, step: int) -> int:
        for i, (_, last) in enumerate(self.stage_bounds()):
            if step <= last:
                return i
        raise Qwen25ValueError(f"step {step} is past the run's {self.total_steps()} steps")

    # ----------------------------------------------------------------------------- JSON form
    def to_dict(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if isinstance(v, tuple):
                return [conv(x) for x in v]
            if isinstance(v, Mapping):
                return {k: conv(x) for k, x in v.items()}
            return v

        d = {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "stages"}
        d["stages"] = [{f.name: conv(getattr(s, f.name)) for f in dataclasses.fields(s)} for s in self.stages]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "train config") -> TrainConfig:
        if not isinstance(d, Mapping):
            raise Qwen25ValueError(f"{where}: expected a JSON object")
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise Qwen25ValueError(f"{where}: unknown keys {unknown}")
        stage_known = {f.name for f in dataclasses.fields(Stage)}
        stages = []
        for i, s in enumerate(d.pop("stages", [])):
            bad = sorted(set(s) - stage_known)
            if bad:
                raise Qwen25ValueError(f"{where}: stages[{i}] has unknown keys {bad}")
            stages.append(Stage(**s))
        try:
            return cls(stages=tuple(stages), **d)
        except TypeError as e:
            raise Qwen25ValueError(f"{where}: {e}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------------- overrides
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(d, list) and d and all(isinstance(x, Mapping) for x in d):
        out = {}
        for i, v in enumerate(d):
            out.update(_flatten(v, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: d}


def config_diff(old: TrainConfig | Mapping[str, Any], new: TrainConfig | Mapping[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two configs (``stages.1.seq_len``, ...)."""
    a = _flatten(old.to_dict() if isinstance(old, TrainConfig) else old)
    b = _flatten(new.to_dict() if isinstance(new, TrainConfig) else new)
    return sorted(k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse_as(key: str, text: str, tp: Any) -> Any:
    """Parse ``text`` as type ``tp`` (int, float, bool, str, X | None, tuple[X, ...], dict)."""

    def fail(expected: str) -> ConfigOverrideError:
        return ConfigOverrideError(f"--set {key}={text}: expected {expected}")

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        errors = []
        for a in inner:
            try:
                return _parse_as(key, text, a)
            except ConfigOverrideError as e:
                errors.append(str(e).rsplit("expected ", 1)[-1])
        raise fail(" or ".join(errors + (["none"] if type(None) in args else [])))
    if origin is tuple:
        item = args[0] if args else str
        parts = [p.strip() for p in text.split(",")] if text.strip() else []
        return tuple(_parse_as(key, p, item) for p in parts)
    if origin is dict or tp is dict:
        try:
            v = json.loads(text)
        except json.JSONDecodeError:
            raise fail("a JSON object") from None
        if not isinstance(v, dict):
            raise fail("a JSON object")
        return v
    if tp is bool:
        t = text.strip().lower()
        if t in ("true", "1", "yes", "on"):
            return True
        if t in ("false", "0", "no", "off"):
            return False
        raise fail("a bool (true or false)")
    if tp is int:
        try:
            f = float(text)
        except ValueError:
            raise fail("an int") from None
        try:
            return int(text)
        except ValueError:
            if f.is_integer() and abs(f) < 2**63:
                return int(f)  # 1e6, 4e3 ...
            raise fail("an int") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise fail("a float") from None
    if tp is str:
        return text
    if tp is Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    raise fail(str(tp))  # pragma: no cover - every field type is handled above


def _model_field_types() -> dict[str, Any]:
    from ..model.config import Qwen25Config  # imports torch (through qwen25.model): only for model.* keys

    return {k: v for k, v in typing.get_type_hints(Qwen25Config).items() if k != "extra"}


def _close(key: str, names: Iterable[str]) -> str:
    m = difflib.get_close_matches(key, list(names), n=3)
    return f" (did you mean {', '.join(m)}?)" if m else ""


def override(config: TrainConfig, changes: Mapping[str, Any]) -> TrainConfig:
    """A copy of ``config`` with dotted-key ``changes`` applied. Values may be typed (``{"lr": 1e-3}``)
    or strings parsed by the field's type (``{"lr": "1e-3"}``). Unknown keys, stage indices out of
    range and values of the wrong type raise :class:`ConfigOverrideError` naming the key."""
    top = _type_hints(TrainConfig)
    stage_t = _type_hints(Stage)
    fields: dict[str, Any] = {}
    stage_changes: dict[int, dict[str, Any]] = {}
    model_changes: dict[str, Any] = {}
    for key, value in changes.items():
        parts = key.split(".")
        if parts[0] == "stages":
            if len(parts) != 3:
                raise ConfigOverrideError(f"--set {key}: stage keys look like stages.N.FIELD")
            try:
                i = int(parts[1])
            except ValueError:
                raise ConfigOverrideError(f"--set {key}: {parts[1]!r} is not a stage index") from None
            if not 0 <= i < len(config.stages):
                raise ConfigOverrideError(f"--set {key}: stage {i} does not exist (the run has "
                                          f"{len(config.stages)} stage(s): {[s.name for s in config.stages]})")
            if parts[2] not in stage_t:
                raise ConfigOverrideError(f"--set {key}: unknown stage field {parts[2]!r}{_close(parts[2], stage_t)}")
            stage_changes.setdefault(i, {})[parts[2]] = _coerce(key, value, stage_t[parts[2]])
        elif parts[0] == "model" and len(parts) == 2:
            mt = _model_field_types()
            if parts[1] not in mt:
                raise ConfigOverrideError(f"--set {key}: unknown model config field {parts[1]!r}{_close(parts[1], mt)}")
            if parts[1] in _STAGE_OWNED:
                raise ConfigOverrideError(f"--set {key}: {parts[1]} is set per stage (stages.N.rope_theta, "
                                          "stages.N.rope_scaling, stages.N.dca)")
            model_changes[parts[1]] = _coerce(key, value, mt[parts[1]])
        elif parts[0] == "method" and len(parts) == 2:  # checked by the trainer that reads it
            fields.setdefault("method", dict(config.method))[parts[1]] = _coerce(key, value, Any)
        elif len(parts) == 1 and key in top and key != "stages":
            fields[key] = _coerce(key, value, top[key])
        else:
            names = [k for k in top if k != "stages"] + ["stages.N.FIELD", "model.FIELD", "method.KEY"]
            raise ConfigOverrideError(f"--set {key}: unknown key{_close(key, names)}")
    stages = list(config.stages)
    try:
        for i, ch in stage_changes.items():
            stages[i] = dataclasses.replace(stages[i], **ch)
        if model_changes:
            fields["model_overrides"] = {**dict(fields.get("model_overrides", config.model_overrides)), **model_changes}
        return dataclasses.replace(config, stages=tuple(stages), **fields)
    except Qwen25ValueError as e:
        raise ConfigOverrideError(f"--set: {e}") from None


def _coerce(key: str, value: Any, tp: Any) -> Any:
    if isinstance(value, str) and tp is not str:
        return _parse_as(key, value, tp)
    if not _matches(value, tp):
        raise ConfigOverrideError(f"{key}={value!r}: expected {tp}")
    if isinstance(value, list):
        return tuple(value)
    return value


def _matches(value: Any, tp: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_matches(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, (tuple, list)) and all(_matches(x, args[0]) for x in value)
    if origin is dict or tp is dict:
        return isinstance(value, Mapping)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def apply_overrides(config: TrainConfig, assignments: Iterable[str]) -> TrainConfig:
    """Apply ``KEY=VALUE`` strings (the ``--set`` options) in order."""
    changes: dict[str, Any] = {}
    for a in assignments:
        if "=" not in a:
            raise ConfigOverrideError(f"--set {a}: expected KEY=VALUE")
        k, v = a.split("=", 1)
        k = k.strip()
        if not k:
            raise ConfigOverrideError(f"--set {a}: empty key")
        changes[k] = v
    return override(config, changes)
