"""``qwen25 demo`` (``make demo``): the main job on embedded defaults. ``qwen25 demo e2e --out DIR``
(``make demo-e2e``) runs the whole recipe instead, small, on the CPU: data pipeline, pre-training
with the ABF stage, SFT, reward model and DPO with OMO, evaluation, and a Markdown report with
plots (``qwen25.eval.e2e``).

1. Decontaminates the bundled demo corpus (some records carry edited HumanEval problems) against
   HumanEval with the Qwen n-gram + LCS rule and prints the report summary.
2. Runs the pre-training data pipeline (``qwen25 data run``) over prose (the running Python's
   documentation topics, plus planted duplicates) and code (standard-library modules plus the
   edited HumanEval problems): filters, exact and MinHash dedup, HumanEval decontamination, a
   token mix and packing, and prints its report.
3. Tokenizes a sample corpus (English prose and source code taken from the running Python's own
standard library, plus the multilingual text shipped in ``qwen25/assets``) with the embedded
Qwen2.5 tokenizer and prints throughput next to the peers that are installed (tiktoken built
in-process from the same vocabulary, and HF tokenizers), after checking that all give the same ids.
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import sysconfig
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

HELP = "Run the main job on the embedded defaults."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", choices=("e2e",),
                   help="e2e: the end-to-end recipe (data, pre-training, SFT, RM + DPO, evaluation) into --out")
    p.add_argument("--mb", type=float, default=4.0, help="tokenizer sample size in MB (default 4)")
    p.add_argument("--out", default=None, help="keep the decontamination outputs in this folder (e2e: the "
                   "output folder, required)")
    p.add_argument("--skip-decontamination", action="store_true", help="only the tokenizer part")
    p.add_argument("--skip-tokenizer", action="store_true", help="no tokenizer part")
    p.add_argument("--skip-pipeline", action="store_true", help="no data pipeline part")


def sample_corpus(mb: float) -> list[str]:
    target = int(mb * 1e6)
    docs: list[str] = []
    multilingual = resources.files("qwen25").joinpath("assets/multilingual.txt").read_text(encoding="utf-8")
    try:
        from pydoc_data.topics import topics

        prose = list(topics.values())
    except ImportError:  # pragma: no cover - stripped Python installs
        prose = []
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    size = i = 0
    while size < target:
        parts = [multilingual]
        if prose:
            parts.append(prose[i % len(prose)])
        if files:
            with open(files[i % len(files)], encoding="utf-8", errors="replace") as f:
                parts.append(f.read())
        for p in parts:
            docs.append(p)
            size += len(p.encode())
        i += 1
    return docs


def pipeline_toml() -> str:
    """The demo's ``data run`` configuration: the e2e demo's sources, filters and decontamination,
    one token mix, packed at 2,048."""
    from ..eval.e2e import DEMO_SOURCES_TOML

    return """
[pipeline]
output = "out"
batch_size = 64
""" + DEMO_SOURCES_TOML + """
[mix]
weights = { web = 0.6, code = 0.4 }   # shares of tokens
max_repeat = 2.0

[pack]
seq_len = 2048
"""


def pipeline_demo() -> dict[str, Any]:
    """``qwen25 data run`` on prose (the Python docs' topics, with an exact and a near duplicate
    planted) and code (stdlib modules plus the demo corpus's edited HumanEval problems); prints
    the report."""
    from ..data.pipeline import format_report, run_pipeline
    from ..eval.e2e import write_demo_corpus

    with tempfile.TemporaryDirectory(prefix="qwen25-pipeline-demo-") as d:
        write_demo_corpus(d, max_file_bytes=6000, max_code=None)
        cfg = os.path.join(d, "pipeline.toml")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(pipeline_toml())
        rep = run_pipeline(cfg, progress=False)
        print(format_report(rep))
    return rep


def _time(fn: Callable[[], Any], repeats: int = 3) -> float:
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best.append(time.perf_counter() - t)
    return sorted(best)[len(best) // 2]


def _peers(tok: Any) -> dict[str, Callable[[list[str]], list[list[int]]]]:
    peers: dict[str, Callable[[list[str]], list[list[int]]]] = {}
    with tempfile.TemporaryDirectory() as d:
        tok.save_pretrained(d)
        try:
            from tokenizers import Tokenizer as HF

            hf = HF.from_file(os.path.join(d, "tokenizer.json"))
            peers["HF tokenizers"] = lambda docs: [hf.encode(x).ids for x in docs]
        except ImportError:
            pass
    from .. import _native

    try:
        import tiktoken

        ranks = {tok.decode_bytes([i]): i for i in range(tok._tok.n_bpe_tokens)}
        enc = tiktoken.Encoding("qwen25-demo", pat_str=_native.QWEN2_PATTERN, mergeable_ranks=ranks,
                                special_tokens=tok.special_tokens)
        peers["tiktoken"] = lambda docs: [enc.encode(x, allowed_special="all") for x in docs]
    except ImportError:
        pass
    return peers


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.what == "e2e":
        from ..errors import Qwen25ValueError
        from ..eval.e2e import run_e2e

        if not args.out:
            raise Qwen25ValueError("qwen25 demo e2e needs --out DIR (data, checkpoints, report.md and plots go there)")
        run_e2e(args.out)
        return 0
    if not args.skip_decontamination:
        from ..data.decontam import decontaminate_demo

        print("== 1. Benchmark decontamination: bundled corpus vs HumanEval (Qwen n-gram + LCS rule) ==")
        decontaminate_demo(args.out, progress=False)
        print()
    if not args.skip_pipeline:
        print("== 2. Pre-training data pipeline: filter, dedup, decontaminate, mix by tokens, pack ==")
        pipeline_demo()
        print()
    if args.skip_tokenizer:
        return 0
    print("== 3. Tokenizer throughput: qwen25 next to the peers on the same ids ==")
    from ..tokenizer import Tokenizer

    from .. import _native

    t = time.perf_counter()
    _native.Tokenizer.qwen25()  # a fresh load, not the cached instance
    load_ms = (time.perf_counter() - t) * 1e3
    tok = Tokenizer.qwen25()
    print(f"{tok!r} loaded in {load_ms:.0f} ms (embedded vocabulary, no files, no network)")
    docs = sample_corpus(args.mb)
    nbytes = sum(len(x.encode()) for x in docs)
    ids = tok.encode_batch(docs)
    print(f"sample: {len(docs)} documents, {nbytes / 1e6:.1f} MB, {sum(map(len, ids))} tokens\n")
    rows = [("qwen25 (1 thread)", _time(lambda: [tok.encode(x) for x in docs]))]
    rows.append(("qwen25 encode_batch (all cores)", _time(lambda: tok.encode_batch(docs))))
    for name, fn in _peers(tok).items():
        same = fn(docs) == ids
        label = f"{name} (1 thread){'' if same else '  [DIFFERENT IDS]'}"
        rows.append((label, _time(functools.partial(fn, docs), 1)))
    base = rows[0][1]
    print(f"{'tokenizer':<44}{'MB/s':>10}{'speed relative to qwen25 1-thread':>36}")
    for name, secs in rows:
        print(f"{name:<44}{nbytes / secs / 1e6:>10.2f}{base / secs:>35.2f}x")
    return 0
