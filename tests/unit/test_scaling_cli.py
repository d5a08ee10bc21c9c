"""Sweep tables on disk (read back with the csv/json modules as the independent readers, bad lines
named by file and line) and the ``qwen25 scaling`` fit/reference/compare-moe commands."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from qwen25 import scaling
from qwen25.cli import main
from qwen25.errors import FormatError, Qwen25ValueError

HEADER = "n_params,n_tokens,lr,batch_tokens,loss"


def sweep_rows(seed=0, sizes=(1e7, 3e7, 1e8, 3e8), tokens=(1e9, 4e9, 1.6e10)):
    """A known law: lr* = 0.3 N^-0.25 D^0.05, B* = 0.5 D^0.45; Chinchilla's L(N, D) times a bowl."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for d in tokens:
            lr_opt, b_opt = 0.3 * n**-0.25 * d**0.05, 0.5 * d**0.45
            for s in (-1.0, -0.5, 0.0, 0.5, 1.0):
                for t in (-1.0, 0.0, 1.0):
                    lr, b = lr_opt * 2**s, b_opt * 2**t
                    base = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
                    loss = base * (1 + 0.01 * (s * math.log(2)) ** 2 + 0.004 * (t * math.log(2)) ** 2)
                    rows.append({"n_params": n, "n_tokens": d, "lr": lr, "batch_tokens": b,
                                 "loss": loss * (1 + rng.normal(0, 1e-4)), "tag": f"r{len(rows)}"})
    return rows


@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_table_round_trip(tmp_path, ext):
    rows = sweep_rows()[:6]
    rows[2]["loss"] = math.nan  # a diverged run survives the trip
    rows[3]["n_total_params"] = 5e8
    p = scaling.write_table(rows, tmp_path / f"t.{ext}")
    if ext == "csv":
        with open(p, newline="") as f:
            indep = list(csv.DictReader(f))
        assert list(indep[0])[:5] == HEADER.split(",")
        assert float(indep[1]["lr"]) == rows[1]["lr"]  # repr round-trips floats exactly
        assert indep[2]["loss"] == "nan" and indep[0]["n_total_params"] == "" and indep[3]["tag"] == "r3"
    else:
        with open(p) as f:
            indep = [json.loads(line) for line in f]
        assert indep[2]["loss"] is None and indep[1]["lr"] == rows[1]["lr"] and "n_total_params" not in indep[0]
    back = scaling.read_table(p)
    assert len(back) == 6
    for i, (a, b) in enumerate(zip(rows, back)):
        for k in ("n_params", "n_tokens", "lr", "batch_tokens"):
            assert b[k] == a[k]
        assert (math.isnan(b["loss"]) and math.isnan(a["loss"])) or b["loss"] == a["loss"]
        assert b["_where"] == f"{p}:{i + 2 if ext == 'csv' else i + 1}"
    assert back[3]["n_total_params"] == 5e8
    f = scaling.fit(back, n_boot=0, n_boot_loss=0)
    assert f.excluded == [(f"{p}:{4 if ext == 'csv' else 3}", "loss is nan (diverged run)")]


def test_csv_errors_name_file_and_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(f"{HEADER}\n1e8,1e10,1e-3,524288,3.1\n1e8,1e10,fast,524288,3.0\n")
    with pytest.raises(FormatError, match=rf"{p}:3: column lr is not a number: 'fast'") as e:
        scaling.read_table(p)
    assert e.value.line == 3
    p.write_text(f"{HEADER}\n1e8,1e10,1e-3,524288,3.1\n1e8,1e10,1e-3,-4,3.0\n")
    with pytest.raises(FormatError, match=rf"{p}:3: batch_tokens must be positive") as e:
        scaling.read_table(p)
    assert e.value.line == 3
    p.write_text("n_params,n_tokens,lr,loss\n1,2,3,4\n")
    with pytest.raises(FormatError, match=rf"{p}:1: the header lacks the column\(s\) batch_tokens"):
        scaling.read_table(p)
    p.write_text(f"{HEADER}\n1e8,1e10,1e-3\n")
    with pytest.raises(FormatError, match=rf"{p}:2: 3 fields, the header has 5"):
        scaling.read_table(p)
    p.write_text("")
    with pytest.raises(FormatError, match="empty file"):
        scaling.read_table(p)
    p.write_text(f"{HEADER}\n")
    with pytest.raises(FormatError, match="no rows"):
        scaling.read_table(p)


def test_jsonl_errors_name_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    good = json.dumps({"n_params": 1e8, "n_tokens": 1e10, "lr": 1e-3, "batch_tokens": 524288, "loss": 3.0})
    p.write_text(good + "\n\n{not json\n")
    with pytest.raises(FormatError, match=rf"{p}:3: malformed JSON"):
        scaling.read_table(p)
    p.write_text(good + "\n[1, 2]\n")
    with pytest.raises(FormatError, match=rf"{p}:2: a record must be a JSON object"):
        scaling.read_table(p)
    p.write_text(good + '\n{"n_params": 1e8, "n_tokens": 1e10, "lr": 1e-3, "loss": 3.0}\n')
    with pytest.raises(FormatError, match=rf"{p}:2: missing batch_tokens"):
        scaling.read_table(p)
    with pytest.raises(Qwen25ValueError, match=r"\.csv or \.jsonl"):
        scaling.read_table(tmp_path / "t.parquet")
    with pytest.raises(FileNotFoundError):
        scaling.read_table(tmp_path / "missing.csv")


def test_cli_fit_predict_json(tmp_path, capsys):
    rows = sweep_rows()
    scaling.write_table(rows[: len(rows) // 2], tmp_path / "a.csv")
    scaling.write_table(rows[len(rows) // 2 :], tmp_path / "b.jsonl")
    out = tmp_path / "fit.json"
    rc = main(["scaling", "fit", str(tmp_path / "a.csv"), str(tmp_path / "b.jsonl"), "--predict", "1B,20B",
               "--json", str(out), "--bootstrap", "200", "--bootstrap-loss", "30"])
    assert rc == 0
    text = capsys.readouterr().out
    assert f"{len(rows)} runs in 12 cells" in text and "N=1e+09 D=2e+10: lr" in text
    doc = json.loads(out.read_text())  # strict JSON: no NaN
    assert doc["lr"]["exponents"]["n_params"] == pytest.approx(-0.25, abs=0.02)
    assert doc["lr"]["exponents"]["n_tokens"] == pytest.approx(0.05, abs=0.02)
    assert doc["batch_tokens"]["exponents"]["n_tokens"] == pytest.approx(0.45, abs=0.05)
    pred = doc["predictions"][0]
    assert pred["n_params"] == 1e9 and pred["n_tokens"] == 2e10
    assert pred["lr"]["value"] == pytest.approx(0.3 * 1e9**-0.25 * 2e10**0.05, rel=0.1)
    assert pred["lr"]["low"] <= pred["lr"]["value"] <= pred["lr"]["high"]
    assert pred["loss"]["value"] == pytest.approx(1.69 + 406.4 / 1e9**0.34 + 410.7 / 2e10**0.28, rel=0.01)
    assert len(doc["cells"]) == 12 and doc["n_runs"] == len(rows)


def test_cli_fit_plot_without_matplotlib_is_a_clear_error(tmp_path, capsys):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        scaling.write_table(sweep_rows(), tmp_path / "a.csv")
        rc = main(["scaling", "fit", str(tmp_path / "a.csv"), "--plot", str(tmp_path / "png"), "--bootstrap", "0",
                   "--bootstrap-loss", "0"])
        assert rc == 1
        cap = capsys.readouterr()
        assert "qwen25 scaling: error: the scaling plots need matplotlib: pip install matplotlib" in cap.err
        assert cap.out == ""  # checked before the fit, not after
    else:
        pytest.skip("matplotlib is installed (the plots are tested in test_scaling_sweep.py)")


def test_cli_fit_bad_table_names_line(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    p.write_text(f"{HEADER}\n1e8,1e10,1e-3,524288,3.1\n1e8,1e10,1e-3,524288,oops\n")
    assert main(["scaling", "fit", str(p)]) == 1
    err = capsys.readouterr().err
    assert f"{p}:3: column loss is not a number" in err and "Traceback" not in err


def test_cli_reference_deepseek_7b(capsys):
    assert main(["scaling", "reference", "--n-tokens", "2T", "--layers", "30", "--d-model", "4096",
                 "--seq-len", "4096", "--n-params", "6.5B"]) == 0
    out = capsys.readouterr().out
    lr = float(out.split("DeepSeek LLM (")[1].split("lr ")[1].split()[0])
    assert lr == pytest.approx(4.2e-4, rel=0.05)
    step = scaling.steplaw(6.5e9, 2e12)
    assert f"lr {step['lr']:.4g}" in out
    assert main(["scaling", "reference", "--n-tokens", "2T", "--layers", "30"]) == 1
    assert "needs all of --layers, --d-model and --seq-len" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["scaling", "reference", "--n-tokens", "lots"])


def test_cli_compare_moe(tmp_path, capsys):
    scaling.write_table(sweep_rows(), tmp_path / "dense.csv")
    moe = []
    for act, total in [(2e7, 1.6e8), (6e7, 4.8e8)]:
        for d in (2e9, 8e9):
            for f_ in (0.5, 1.0, 2.0):
                loss = (1.69 + 406.4 / (3 * act) ** 0.34 + 410.7 / d**0.28) * (1 + 0.01 * math.log(f_) ** 2)
                moe.append({"n_params": act, "n_total_params": total, "n_tokens": d, "lr": 1e-3 * f_,
                            "batch_tokens": 65536, "loss": loss})
    scaling.write_table(moe, tmp_path / "moe.jsonl")
    out = tmp_path / "cmp.json"
    assert main(["scaling", "compare-moe", "--dense", str(tmp_path / "dense.csv"), "--moe", str(tmp_path / "moe.jsonl"),
                 "--json", str(out), "--bootstrap", "50", "--bootstrap-loss", "20"]) == 0
    doc = json.loads(out.read_text())
    assert len(doc) == 4
    for r in doc:
        assert r["ratio_to_active"]["value"] == pytest.approx(3.0, rel=0.05)
        assert r["ratio_to_total"]["value"] == pytest.approx(3.0 * r["n_params"] / r["n_total_params"], rel=0.05)
    assert "x active" in capsys.readouterr().out


def test_sweep_without_torch_names_the_extra(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from qwen25.cli import main\n"
        f"sys.exit(main(['scaling', 'sweep', '--out', {str(tmp_path / 'out')!r}]))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip() == ("qwen25 scaling: error: qwen25 scaling sweep needs torch, which is not installed: "
                                "pip install 'qwen25[torch]'")
