"""`qwen25 data run` imports what it uses: a run without scoring, Parquet, Ray or a progress bar
imports neither torch, pyarrow, ray nor tqdm (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.unit.test_pipeline import CONFIG, write_corpus

HEAVY = ("torch", "pyarrow", "ray", "tqdm", "transformers", "pandas")


def test_data_run_imports_no_heavy_module(tmp_path):
    write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    decon = '\n[decontaminate]\noptions = { test_set = "humaneval" }\n'
    cfg.write_text(CONFIG.format(max_repeat=1.0) + decon)
    code = (
        "import json, sys\n"
        "from qwen25.cli import main\n"
        f"rc = main(['data', 'run', {str(cfg)!r}, '--no-progress'])\n"
        "print(json.dumps([rc, sorted({m.split('.')[0] for m in sys.modules})]), file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rc, mods = json.loads(p.stderr.strip().splitlines()[-1])
    assert rc in (0, None) and (tmp_path / "out" / "report.json").exists()
    assert "numpy" in mods and "qwen25" in mods  # the check sees the modules the run loaded
    assert not [m for m in HEAVY if m in mods], [m for m in HEAVY if m in mods]
