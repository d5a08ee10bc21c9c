"""The extras of ``pip install qwen25[...]``: pyproject.toml, the table in qwen25._extras, the
versions CI installs (requirements-dev.txt) and the README agree; a feature imported without its
extra raises an error naming it (checked in subprocesses where the dependency is made absent)."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from qwen25 import _extras

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
FEATURE_EXTRAS = {"torch", "cuda12", "cuda13", "ray", "eval", "data"}
GPU_ONLY = {"cuda12", "cuda13"}  # CuPy needs a GPU: tests/gpu/ only, where one is lent


def _reqs(extra: str) -> list[Requirement]:
    return [Requirement(r) for r in EXTRAS[extra]]


def _dev_requirements() -> dict[str, Requirement]:
    out = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            r = Requirement(line)
            out[canonicalize_name(r.name)] = r
    return out


def test_the_issue_s_extras_exist() -> None:
    assert FEATURE_EXTRAS | {"all"} <= set(EXTRAS)


def test_all_is_every_feature_extra_but_cuda() -> None:
    (req,) = _reqs("all")
    assert canonicalize_name(req.name) == "qwen25"
    assert req.extras == FEATURE_EXTRAS - GPU_ONLY
    # two CuPy builds for two CUDA majors cannot both be installed
    assert {canonicalize_name(r.name) for r in _reqs("cuda12")} != {canonicalize_name(r.name) for r in _reqs("cuda13")}


def test_extras_table_matches_pyproject() -> None:
    for module, (dist, extras) in _extras.EXTRAS.items():
        name = canonicalize_name(Requirement(dist).name)
        for extra in extras:
            got = {canonicalize_name(r.name) for r in _reqs(extra)}
            if module == "cupy":  # cupy-cuda12x / cupy-cuda13x both install the module cupy
                assert any(n.startswith("cupy-cuda") for n in got), extra
            else:
                assert name in got, (module, extra)
    named = {x for _, extras in _extras.EXTRAS.values() for x in extras}
    assert named == FEATURE_EXTRAS  # every feature extra is reached by some module's error


@pytest.mark.parametrize("extra", sorted(FEATURE_EXTRAS - GPU_ONLY))
def test_extra_versions_are_the_ones_ci_tests(extra: str) -> None:
    """Each extra's requirement is installed by requirements-dev.txt with the same bound (so CI
    runs the tests with it) and the version installed here satisfies the extra."""
    dev = _dev_requirements()
    for r in _reqs(extra):
        name = canonicalize_name(r.name)
        assert name in dev, f"{r} ([{extra}]) is not in requirements-dev.txt, so CI never tests it"
        assert dev[name].specifier == r.specifier and r.extras <= dev[name].extras, (str(r), str(dev[name]))
        installed = importlib.metadata.version(r.name)
        assert r.specifier.contains(installed, prereleases=True), (str(r), installed)


def test_readme_names_every_extra() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^pip install qwen25\s", readme, re.MULTILINE)
    for extra in FEATURE_EXTRAS | {"all"}:
        assert f"qwen25[{extra}]" in readme, extra


def _run_without(blocked: list[str], code: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``import <blocked>`` fails as for an absent package."""
    prelude = f"import sys\nfor m in {blocked!r}:\n    sys.modules[m] = None\n"
    env = None
    if path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env)


@pytest.mark.parametrize(
    ("module", "blocked", "hint"),
    [
        ("qwen25.model", "torch", "pip install 'qwen25[torch]'"),
        ("qwen25.kernels", "torch", "pip install 'qwen25[torch]'"),
        ("qwen25.data.ray", "ray", "pip install 'qwen25[ray]'"),
    ],
)
def test_import_without_extra_names_it(module: str, blocked: str, hint: str) -> None:
    out = _run_without([blocked], f"""
        try:
            import {module}
        except ImportError as e:
            from qwen25._extras import MissingExtraError
            assert isinstance(e, MissingExtraError) and isinstance(e, ModuleNotFoundError), type(e)
            assert e.name == {blocked!r}, e.name
            print(e)
        else:
            print("imported")
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{module} needs {_extras.EXTRAS[blocked][0]}, which is not installed: {hint}"


def test_missing_cupy_names_both_cuda_extras() -> None:
    out = _run_without(["cupy"], """
        import qwen25.kernels as K
        print(K._cupy_status()[1])
    """)
    assert out.returncode == 0, out.stderr
    assert "CuPy is not importable (MissingExtraError: qwen25.kernels needs cupy" in out.stdout
    assert "pip install 'qwen25[cuda12]' (CUDA 12) or pip install 'qwen25[cuda13]' (CUDA 13)" in out.stdout


def test_a_broken_install_is_not_blamed_on_the_extra(tmp_path: Path) -> None:
    """ray installed but failing on a dependency of its own: that error comes through unchanged."""
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("import qwen25_no_such_dependency\n")
    out = _run_without([], """
        import sys
        sys.modules.pop("ray", None)
        from qwen25._extras import MissingExtraError, require
        try:
            require("ray", "qwen25.data.ray")
        except MissingExtraError as e:
            print("blamed:", e)
        except ModuleNotFoundError as e:
            print("passed through:", e.name)
    """, path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "passed through: qwen25_no_such_dependency"


def test_require_rejects_an_unknown_module() -> None:
    with pytest.raises(ValueError, match="'nosuch'"):
        _extras.require("nosuch", "x")


def test_require_passes_when_installed() -> None:
    _extras.require("torch", "qwen25.model")  # installed in the test environment: no error
