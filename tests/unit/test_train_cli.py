"""``qwen25 pretrain`` and ``qwen25 export``: outputs, and clear one-line errors for user mistakes."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import pytest

torch = pytest.importorskip("torch")

from qwen25.cli import main  # noqa: E402
from qwen25.model import Qwen2ForCausalLM  # noqa: E402
from qwen25.train import TrainConfig, apply_overrides, recipes  # noqa: E402
from qwen25.train.debug_data import synthetic_documents  # noqa: E402
from tests.unit.test_train_data import make_docs, write_packed  # noqa: E402

TINY = ["model.vocab_size=320", "model.hidden_size=32", "model.intermediate_size=64", "stages.0.seq_len=32",
        "global_batch_tokens=128", "micro_batch_size=2", "warmup_steps=1"]


def _sets(items: list[str]) -> list[str]:
    out = []
    for s in items:
        out += ["--set", s]
    return out


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, checking its signature, chunk CRCs and that IDAT inflates to
    height rows of (1 + 3 * width) bytes (8-bit RGB) -- read with struct and zlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
            color = body[9]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert size is not None
    if color == 2:  # our fallback writer: plain RGB
        assert len(zlib.decompress(idat)) == size[1] * (1 + 3 * size[0])
    return size


def test_pretrain_writes_metrics_checkpoints_and_plot(tmp_path, capsys) -> None:
    data = write_packed(tmp_path / "data", make_docs(60, seed=51, learnable=True), 32)
    out = tmp_path / "run"
    rc = main(["pretrain", "--recipe", "debug", "--out", str(out), "--no-progress",
               *_sets(TINY + [f"stages.0.data={data}", "stages.0.steps=4", "checkpoint_every=2"])])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps_run"] == 4 and summary["checkpoint"].endswith("step-4")
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    for r in recs:
        assert {"step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu", "memory_gib"} <= set(r)
        assert r["tokens"] == 128 and r["tokens_per_s"] > 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2", "step-4"]
    w, h = _png_size((out / "loss.png").read_bytes())
    assert w >= 100 and h >= 100
    # export through the CLI; our loader and the checkpoint agree
    rc = main(["export", str(out / "checkpoints" / "step-4"), str(tmp_path / "hf")])
    assert rc == 0
    model = Qwen2ForCausalLM.from_pretrained(tmp_path / "hf")
    assert model.config.vocab_size == 320 and model.config.hidden_size == 32
    # a second run with another lr refuses to resume, naming the key
    rc = main(["pretrain", "--recipe", "debug", "--out", str(out), "--no-progress",
               *_sets(TINY + [f"stages.0.data={data}", "stages.0.steps=4", "checkpoint_every=2", "lr=1e-4"])])
    err = capsys.readouterr().err
    assert rc == 1 and "qwen25 pretrain: error: resuming from" in err and "lr (0.003 -> 0.0001)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("args,message", [
    (["--set", "lrr=1"], "--set lrr: unknown key (did you mean lr"),
    (["--set", "stages.0.steps=x"], "--set stages.0.steps=x: expected an int"),
    (["--set", "stages.0.data=MISSING"], "data folder MISSING does not exist"),
    ([], "--out is required"),
])
def test_user_mistakes_are_one_line_errors(tmp_path, capsys, args: list[str], message: str) -> None:
    argv = ["pretrain", "--recipe", "debug", "--no-progress", *args]
    if args:
        argv += ["--out", str(tmp_path / "o")]
    argv = [a.replace("MISSING", str(tmp_path / "missing")) for a in argv]
    message = message.replace("MISSING", str(tmp_path / "missing"))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_recipe_and_listing(capsys) -> None:
    assert main(["pretrain", "--recipe", "nope", "--out", "x"]) == 1
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    assert main(["pretrain", "--list-recipes"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == recipes.names()


def test_print_config_is_the_overridden_recipe(capsys) -> None:
    assert main(["pretrain", "--recipe", "turbo", "--print-config", "--set", "lr=2e-5"]) == 0
    cfg = TrainConfig.from_dict(json.loads(capsys.readouterr().out))
    assert cfg == apply_overrides(recipes.get("turbo"), ["lr=2e-5"])


def test_export_errors(tmp_path, capsys) -> None:
    assert main(["export", str(tmp_path / "none"), str(tmp_path / "out")]) == 1
    assert "checkpoint" in capsys.readouterr().err


def test_module_entry_point_takes_pretrain_options() -> None:
    out = subprocess.run([sys.executable, "-m", "qwen25.train", "--list-recipes"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split()[0] == "debug"


def test_debug_corpus_is_fixed_and_the_recipe_runs(tmp_path) -> None:
    """The debug recipe's synthetic corpus is the same list on every call (splitmix64, no
    library RNG) and the recipe trains on it, from Python, with no output folder."""
    a, b = synthetic_documents(50), synthetic_documents(50)
    assert a == b and len(set(a)) == 50
    from qwen25.train import Trainer, override

    cfg = override(recipes.get("debug"), {"stages.0.steps": 3, "checkpoint_every": 0})
    recs = Trainer(cfg, verbose=False).fit()
    assert [r["step"] for r in recs] == [1, 2, 3] and all(r["loss"] < 6.3 for r in recs)  # ln 512 = 6.24
