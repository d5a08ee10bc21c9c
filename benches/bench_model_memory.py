"""Peak memory while loading a checkpoint: qwen25.model vs transformers, each in a fresh process.

A sampling thread reads /proc/self/status every 2 ms during the load; reported are the peak
increases of anonymous memory (RssAnon: the process's own copies) and of the whole resident set
(VmRSS, which also counts file pages of the memory-mapped safetensors while they are mapped),
relative to the checkpoint size. "No 2x peak" means the RssAnon increase stays near 1.0x.

  python benches/bench_model_memory.py [--preset 0.5B] [--layers 4] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import sys, threading, time, json
import torch
which, path, dtype = sys.argv[1], sys.argv[2], getattr(torch, sys.argv[3])
def status():
    out = {}
    for line in open("/proc/self/status"):
        k, v = line.split(":", 1)
        if k in ("RssAnon", "VmRSS"):
            out[k] = int(v.split()[0]) * 1024
    return out
if which == "ours":
    from qwen25.model import Qwen2ForCausalLM
    load = lambda: Qwen2ForCausalLM.from_pretrained(path, dtype=dtype)
else:
    import transformers
    transformers.logging.set_verbosity_error()
    load = lambda: transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
base = status()
peak = dict(base)
stop = False
def sample():
    while not stop:
        s = status()
        for k in s:
            peak[k] = max(peak[k], s[k])
        time.sleep(0.002)
t = threading.Thread(target=sample); t.start()
m = load()
stop = True; t.join()
end = status()
print(json.dumps({k: peak[k] - base[k] for k in base} | {"end_" + k: end[k] - base[k] for k in base}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="0.5B")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    from qwen25.model import Qwen25Config, Qwen2ForCausalLM

    cfg = Qwen25Config.from_preset(args.preset, num_hidden_layers=args.layers, torch_dtype=args.dtype)
    tmp = tempfile.mkdtemp()
    Qwen2ForCausalLM.from_config(cfg, seed=0).save_pretrained(tmp, max_shard_size="200MB")
    size = sum(f.stat().st_size for f in Path(tmp).glob("*.safetensors"))
    print(f"checkpoint: {args.preset} shape, {args.layers} layers, {args.dtype}, {size / 1e6:.0f} MB on disk")
    print("| loader | peak RssAnon increase | peak VmRSS increase | RssAnon after load |")
    print("|---|---|---|---|")
    for which in ("ours", "transformers"):
        out = subprocess.run([sys.executable, "-c", CHILD, which, tmp, args.dtype], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {which} | {r['RssAnon'] / size:.2f}x | {r['VmRSS'] / size:.2f}x | {r['end_RssAnon'] / size:.2f}x |")


if __name__ == "__main__":
    main()
