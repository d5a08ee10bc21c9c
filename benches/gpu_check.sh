#!/usr/bin/env bash
# The prepared GPU check of the CUDA kernels (issue 17, item 5), one command, about 4-8 minutes on
# one H100/H200; every step has its own timeout and the whole stays under 9 minutes. It writes
# everything to one file (and to stdout):
#   1. environment: GPU, driver, torch, CuPy, liger-kernel, whether the kernels are available;
#   2. SASS for sm_80/sm_90 with the register / shared-memory table (python -m qwen25.kernels._nvrtc);
#   3. the GPU tests (tests/gpu/: every kernel vs its eager fallback and independent references,
#      forward and backward; a missing CuPy fails there, it does not skip);
#   4. benches/bench_kernels.py --gpu: each kernel's time vs eager and vs liger-kernel, HBM
#      bandwidth as a share of peak, the fused cross-entropy's peak memory at 32k x 152k;
#   5. benches/bench_train_step.py: 0.5B and 1.5B bf16 training steps with and without the
#      kernels, tokens/s and MFU.
#
#   bash benches/gpu_check.sh [OUTPUT_FILE]      # default: benches/gpu_check_output.txt
#
# On a lent device machine (tools' `run`; nothing can be downloaded there), from the repo root:
#   here, once:  echo /.whl/ >> .git/info/exclude
#                python3 -m pip download --no-deps -d .whl liger-kernel==0.8.5   # pure Python
#                make build        # python/qwen25/_native.abi3.so, an abi3 x86-64 build
#   run:         bash benches/gpu_check.sh "$OUT/gpu_check.txt"
#                with carry: [".whl", "python/qwen25/_native.abi3.so"], timeout_s 600
# The image there has torch, Triton, CuPy, transformers, pytest and hypothesis; liger-kernel is
# installed from .whl/ into a temporary folder when it is not importable. qwen25 itself is used
# from python/ (PYTHONPATH) when it is not installed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTFILE="${1:-benches/gpu_check_output.txt}"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
if ! "$PY" -c "import qwen25" >/dev/null 2>&1; then
    export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -c "import liger_kernel" >/dev/null 2>&1 && ls .whl/liger_kernel-*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpu_check_site \
        .whl/liger_kernel-*.whl && export PYTHONPATH="/tmp/gpu_check_site:$PYTHONPATH"
fi
mkdir -p "$(dirname "$OUTFILE")"
STATUS=()
step() {  # step NAME TIMEOUT_S COMMAND...
    local name="$1" limit="$2"
    shift 2
    echo
    echo "== $name (timeout ${limit}s) $(date -u +%H:%M:%S)"
    local t0=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0))s"
    STATUS+=("$name: exit $rc")
}
{
    echo "== gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader || true
    "$PY" - <<'EOF'
import sys
import torch
import qwen25.kernels as K
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
for name in ("cupy", "triton", "liger_kernel", "transformers"):
    try:
        mod = __import__(name)
        print(f"{name} {getattr(mod, '__version__', '?')}")
    except Exception as e:  # noqa: BLE001
        print(f"{name}: NOT IMPORTABLE ({type(e).__name__}: {e})")
print("kernels available:", K.available(), K.unavailable_reason() or "")
EOF
    step "SASS sm_80/sm_90 resource table" 60 "$PY" -m qwen25.kernels._nvrtc
    step "GPU tests" 150 "$PY" -m pytest -q -p no:cacheprovider -rs --durations=10 tests/gpu/
    step "kernel benchmarks (vs eager, vs liger-kernel)" 180 "$PY" benches/bench_kernels.py --gpu
    step "training step, 0.5B and 1.5B, bf16, kernels on/off" 110 "$PY" benches/bench_train_step.py
    echo
    echo "== summary"
    printf '%s\n' "${STATUS[@]}"
    echo "== done $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} 2>&1 | tee "$OUTFILE"
grep -q "^== .*: exit [1-9]" "$OUTFILE" && exit 1
exit 0
