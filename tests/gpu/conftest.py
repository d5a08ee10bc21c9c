"""Fixtures of the GPU tests.

``kernel_backend``: on a machine with a CUDA GPU, nothing (the kernels run through CuPy). With
``QWEN25_GPU_TESTS_ON_CPU=1``, tests/gpu/test_kernels.py instead runs on CPU tensors with the
``.cu`` sources built for the host (tests/unit/_kernel_contracts.py: HostRunner) behind the real
launchers, the grid capped at 4 blocks. That checks the GPU tests themselves (their references,
tolerances, launch expectations) where no GPU is lent; it proves nothing about the GPU:

    QWEN25_GPU_TESTS_ON_CPU=1 python -m pytest -q tests/gpu/test_kernels.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

ON_CPU = os.environ.get("QWEN25_GPU_TESTS_ON_CPU") == "1"


@pytest.fixture(scope="session")
def _host_kernel_libs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from _kernel_contracts import build_host_kernels

    return build_host_kernels(tmp_path_factory.mktemp("cuda_host"))


@pytest.fixture
def kernel_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    if not ON_CPU:
        return None
    libs = request.getfixturevalue("_host_kernel_libs")  # puts tests/unit on sys.path
    import qwen25.kernels as K
    from _kernel_contracts import HostRunner
    from qwen25.kernels import _cupy_ops

    runner = HostRunner(libs)
    monkeypatch.setattr(_cupy_ops, "_run", runner.run)
    monkeypatch.setattr(_cupy_ops, "_MAX_GRID", 4)
    monkeypatch.setattr(K, "unavailable_reason", lambda: None)
    monkeypatch.setattr(K, "_ops", lambda: _cupy_ops)
    monkeypatch.setattr(K, "_use_kernels", lambda *ts: K._enabled() and all(
        not t.is_floating_point() or t.dtype in K._DTYPES for t in ts))
    return runner
