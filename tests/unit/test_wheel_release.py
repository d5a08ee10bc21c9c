""".github/workflows/release.yml cannot run here; these tests read it. It parses as YAML, is a
valid GitHub workflow by SchemaStore's schema (check-jsonschema's vendored copy), builds every
target the wheels are promised for with the standard maturin action, import-tests each build in
its own job, and publishes on a tag through trusted publishing. The checker is also run on
broken copies of the workflow, so a dropped target or test is seen."""

from __future__ import annotations

import copy
import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML: installed with transformers (requirements-dev.txt)

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"

MATURIN = "PyO3/maturin-action@"
PUBLISH = "pypa/gh-action-pypi-publish@"


def load() -> dict[str, Any]:
    wf: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    if True in wf:  # YAML 1.1 reads the key `on` as the boolean true
        wf["on"] = wf.pop(True)
    return wf


def _expand(job: dict[str, Any]) -> list[dict[str, Any]]:
    """One matrix context per combination: the product of the list axes, then ``include``."""
    matrix = dict((job.get("strategy") or {}).get("matrix") or {})
    include = matrix.pop("include", [])
    matrix.pop("exclude", None)
    axes = [[(k, v) for v in vs] for k, vs in matrix.items()]
    combos = [dict(c) for c in itertools.product(*axes)] if axes else []
    return combos + list(include) if combos or include else [{}]


def _subst(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: str(ctx[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: _subst(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_subst(v, ctx) for v in value]
    return value


def builds(wf: dict[str, Any]) -> list[dict[str, Any]]:
    """Every maturin-action step, matrix expanded: job name, runner, command, target, manylinux,
    and whether a later step of the same job runs the import test."""
    out = []
    test_code = wf.get("env", {}).get("IMPORT_TEST", "")
    for name, job in wf["jobs"].items():
        for ctx in _expand(job):
            j = _subst(job, ctx)
            steps = j.get("steps", [])
            for i, step in enumerate(steps):
                if not str(step.get("uses", "")).startswith(MATURIN):
                    continue
                w = step.get("with", {})
                later = " ".join(str(s.get("run", "")) for s in steps[i + 1:])
                out.append({
                    "job": name,
                    "runner": str(j.get("runs-on", "")),
                    "command": w.get("command", "build"),
                    "target": str(w.get("target", "")),
                    "manylinux": str(w.get("manylinux", "")),
                    "tested": "$IMPORT_TEST" in later and bool(test_code),
                    "uploaded": any(str(s.get("uses", "")).startswith("actions/upload-artifact@")
                                    for s in steps[i + 1:]),
                })
    return out


# the promised targets: name -> predicate over one build
TARGETS = {
    "manylinux x86_64": lambda b: b["command"] == "build" and b["runner"].startswith("ubuntu")
    and b["target"] in ("x86_64", "x86_64-unknown-linux-gnu") and b["manylinux"] in ("2014", "manylinux2014", "2_17"),
    "manylinux aarch64": lambda b: b["command"] == "build" and b["runner"].startswith("ubuntu")
    and b["target"] in ("aarch64", "aarch64-unknown-linux-gnu") and b["manylinux"] in ("2014", "manylinux2014", "2_17"),
    "musllinux x86_64": lambda b: b["command"] == "build" and b["manylinux"].startswith("musllinux")
    and b["target"] in ("x86_64", "x86_64-unknown-linux-musl"),
    "macOS x86_64": lambda b: b["command"] == "build" and b["runner"].startswith("macos")
    and b["target"] in ("x86_64", "x86_64-apple-darwin"),
    "macOS arm64": lambda b: b["command"] == "build" and b["runner"].startswith("macos")
    and b["target"] in ("aarch64", "aarch64-apple-darwin"),
    "Windows x86_64": lambda b: b["command"] == "build" and b["runner"].startswith("windows")
    and b["target"] in ("x64", "x86_64", "x86_64-pc-windows-msvc"),
    "sdist": lambda b: b["command"] == "sdist",
}


def problems(wf: dict[str, Any]) -> list[str]:
    """What the workflow lacks; empty when it does everything promised."""
    out = []
    bs = builds(wf)
    code = wf.get("env", {}).get("IMPORT_TEST", "")
    if "encode('Hello world')" not in code or "[9707, 1879]" not in code:
        out.append("IMPORT_TEST does not check the Hello world ids")
    for target, pred in TARGETS.items():
        hits = [b for b in bs if pred(b)]
        if not hits:
            out.append(f"no build for {target}")
        elif not all(b["tested"] for b in hits):
            out.append(f"{target} is built but not import-tested in its job")
        elif not all(b["uploaded"] for b in hits):
            out.append(f"{target} is built but not uploaded")
    tags = (wf.get("on") or {}).get("push", {}).get("tags", [])
    if not any(str(t).startswith("v") for t in tags):
        out.append("no push trigger on v* tags")
    pubs = [(n, j) for n, j in wf["jobs"].items()
            if any(str(s.get("uses", "")).startswith(PUBLISH) for s in j.get("steps", []))]
    if len(pubs) != 1:
        out.append(f"expected one job publishing with {PUBLISH}, found {len(pubs)}")
        return out
    name, job = pubs[0]
    if "refs/tags/" not in str(job.get("if", "")):
        out.append(f"{name} does not run only on tags")
    if (job.get("permissions") or {}).get("id-token") != "write":
        out.append(f"{name} lacks permissions id-token: write (trusted publishing)")
    for s in job["steps"]:
        if str(s.get("uses", "")).startswith(PUBLISH) and {"password", "user"} & set(s.get("with") or {}):
            out.append(f"{name} passes a password: trusted publishing needs none")
    needs = job.get("needs", [])
    needs = [needs] if isinstance(needs, str) else needs
    missing = sorted({b["job"] for b in bs} - set(needs))
    if missing:
        out.append(f"{name} does not wait for {missing}")
    if (wf.get("permissions") or {}) != {"contents": "read"}:
        out.append("the workflow's default permissions are not read-only")
    return out


def test_workflow_parses_and_keeps_every_promise() -> None:
    assert problems(load()) == []


def test_every_target_is_built_exactly_as_named() -> None:
    got = {(b["runner"], b["command"], b["target"], b["manylinux"]) for b in builds(load())}
    assert got == {
        ("ubuntu-24.04", "build", "x86_64", "2014"),
        ("ubuntu-24.04-arm", "build", "aarch64", "2014"),
        ("ubuntu-24.04", "build", "x86_64-unknown-linux-musl", "musllinux_1_2"),
        ("macos-15-intel", "build", "x86_64", ""),
        ("macos-15", "build", "aarch64", ""),
        ("windows-latest", "build", "x64", ""),
        ("ubuntu-24.04", "sdist", "", ""),
    }


def _drop(wf: dict[str, Any], job: str, index: int) -> dict[str, Any]:
    wf = copy.deepcopy(wf)
    del wf["jobs"][job]["strategy"]["matrix"]["include"][index]
    return wf


def test_the_checker_sees_what_is_missing() -> None:
    wf = load()
    assert problems(_drop(wf, "manylinux", 1)) == ["no build for manylinux aarch64"]
    assert problems(_drop(wf, "macos", 0)) == ["no build for macOS x86_64"]
    untested = copy.deepcopy(wf)
    untested["jobs"]["windows"]["steps"] = [s for s in untested["jobs"]["windows"]["steps"]
                                            if "IMPORT_TEST" not in str(s.get("run", ""))]
    assert problems(untested) == ["Windows x86_64 is built but not import-tested in its job"]
    no_sdist = copy.deepcopy(wf)
    del no_sdist["jobs"]["sdist"]
    assert problems(no_sdist) == ["no build for sdist"]
    unwaited = copy.deepcopy(wf)
    unwaited["jobs"]["publish"]["needs"].remove("musllinux")
    assert problems(unwaited) == ["publish does not wait for ['musllinux']"]
    token = copy.deepcopy(wf)
    token["jobs"]["publish"]["steps"][-1]["with"]["password"] = "${{ secrets.PYPI_TOKEN }}"
    del token["jobs"]["publish"]["permissions"]
    assert problems(token) == ["publish lacks permissions id-token: write (trusted publishing)",
                               "publish passes a password: trusted publishing needs none"]
    untagged = copy.deepcopy(wf)
    untagged["jobs"]["publish"]["if"] = "always()"
    assert problems(untagged) == ["publish does not run only on tags"]


def test_workflow_is_valid_by_the_github_workflow_schema(tmp_path: Path) -> None:
    exe = shutil.which("check-jsonschema", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                                  os.environ.get("PATH", "")]))
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("check-jsonschema is not installed: `make wheel-deps` installs it")
        pytest.skip("check-jsonschema is not installed (make wheel-deps)")
    out = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # and the validator does reject a broken workflow
    bad = WORKFLOW.read_text().replace("runs-on: windows-latest", "runs_on: windows-latest")
    (tmp_path / "release.yml").write_text(bad)
    out = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(tmp_path / "release.yml")],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "runs_on" in out.stdout + out.stderr
