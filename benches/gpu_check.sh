#!/usr/bin/env bash
# One prepared GPU check for the CUDA kernels (issue 6): NVRTC compile check, the GPU tests
# (tests/gpu/) and the GPU benchmarks (benches/bench_kernels.py --gpu, benches/bench_train_step.py:
# 0.5B/1.5B bf16 training steps with and without the kernels, tokens/s and MFU), all output to one
# file. Run it from anywhere on a machine with a CUDA GPU, torch and CuPy; it takes about 4-8
# minutes on an H200 (each step has its own timeout; the whole is under 11 minutes).
#
#   bash benches/gpu_check.sh [OUTPUT_FILE]      # default: benches/gpu_check_output.txt
#
# qwen25 must be importable there: installed, or its Rust extension built on an x86-64 Linux
# machine by `make build` (python/qwen25/_native.abi3.so, an abi3 build that any CPython >= 3.10
# loads) travelling with the checkout; the script then puts python/ on PYTHONPATH itself.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benches/gpu_check_output.txt}"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
if ! "$PY" -c "import qwen25" >/dev/null 2>&1; then
    export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
fi
mkdir -p "$(dirname "$OUT")"
{
    echo "== gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$PY" -c "import sys, torch, cupy, qwen25.kernels as K; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'cupy', cupy.__version__); print('kernels available:', K.available(), K.unavailable_reason() or '')"
    echo "== NVRTC compile check (sm_80, sm_90)"
    timeout 120 "$PY" -m qwen25.kernels._nvrtc
    echo "== GPU tests"
    timeout 300 "$PY" -m pytest -q -p no:cacheprovider -rs tests/gpu/
    echo "== GPU benchmarks"
    timeout 240 "$PY" benches/bench_kernels.py --gpu
    echo "== training step (bf16, with and without kernels)"
    timeout 180 "$PY" benches/bench_train_step.py
    echo "== done $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} 2>&1 | tee "$OUT"
