"""SFT throughput against TRL, side by side, on one CPU core each.

    python benches/bench_sft.py packing [--n 20000] [--seq 4096] [--runs 5]
    python benches/bench_sft.py train [--steps 30] [--threads 1] [--runs 5]
    python benches/bench_sft.py gpu [--preset 0.5B] [--seq 32768] [--steps 6]     # one CUDA GPU

``packing``: conversations per minute from chat messages to packed rows, counting tokenization.
Ours: ``qwen25.train.sft.tokenize_chat`` (the Qwen2.5 template in pieces, one Rust
``encode_batch`` on 1 thread, the assistant masks) + ``pack_bfd``. Peer: transformers'
``apply_chat_template(..., return_assistant_tokens_mask=True)`` with TRL's Qwen2.5 training template
(HF tokenizers, ``TOKENIZERS_PARALLELISM=false``, ``RAYON_NUM_THREADS=1``) + ``trl.pack_dataset(...,
strategy="bfd")``. Same synthetic conversations (1-3 turns, optional system prompt, about 260 tokens
on average); the ids, the masks and every packed row are asserted equal.

``train``: SFT training tokens/s (real tokens, padding excluded; forward + backward + AdamW) on the
``debug`` model shape with the 512-token debug-chat BPE and 2,000 debug conversations, rows of 256,
8 rows (or conversations) per step, fp32, ``torch.set_num_threads(--threads)`` for both. Ours:
``qwen25 sft``'s Trainer on BFD-packed rows with per-conversation attention. Peer: TRL
``SFTTrainer`` (``assistant_only_loss=True``), both with ``packing=True`` (BFD, padding-free) and
without packing (padded batches of 8 conversations); the better of the two is the peer's figure.
Both start from the same transformers-initialised weights (checked: equal logits), and TRL's
labels are asserted equal to ours for every conversation. Wall-clock medians of ``--runs``
interleaved runs.

``gpu``: tokens/s and peak memory of SFT at 32k on 0.5B on one GPU (bf16, activation
checkpointing); without a CUDA GPU it says so and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

WORDS = ("the of and to in a is that for it as was with be by on not he I this are or his from at which but have an "
         "they you were her she there been one all we their has would when if so no what can data model train python "
         "function value result answer question number").split()


def conversations(n: int, seed: int = 0) -> list[dict[str, Any]]:
    r = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(r.choice(WORDS) for _ in range(r.randint(lo, hi)))

    out = []
    for _ in range(n):
        msgs = [{"role": "system", "content": text(3, 20)}] if r.random() < 0.5 else []
        for _ in range(r.randint(1, 3)):
            msgs.append({"role": "user", "content": text(5, 60) + "?"})
            msgs.append({"role": "assistant", "content": text(5, 150) + "."})
        out.append({"messages": msgs})
    return out


# ------------------------------------------------------------------------------------ packing
def ours_packing(tok: Any, convs: list[dict[str, Any]], seq: int) -> tuple[Any, list[list[int]]]:
    from qwen25.train.sft import pack_bfd, tokenize_chat

    data = tokenize_chat(tok, [convs], max_len=seq, num_threads=1)
    return data, pack_bfd(data.lengths().tolist(), seq)


def trl_packing(hf_tok: Any, template: str, convs: list[dict[str, Any]], seq: int) -> tuple[list[Any], list[Any], Any]:
    import datasets
    from trl import pack_dataset

    ids, masks = [], []
    for c in convs:
        out = hf_tok.apply_chat_template(c["messages"], chat_template=template, tokenize=True, return_dict=True,
                                         return_assistant_tokens_mask=True)
        ids.append(out["input_ids"])
        masks.append(out["assistant_masks"])
    ds = datasets.Dataset.from_dict({"input_ids": ids, "assistant_masks": masks})
    # one map batch: TRL otherwise packs each 1,000 rows on their own (fewer, fuller rows this way)
    return ids, masks, pack_dataset(ds, seq, strategy="bfd", map_kwargs={"batch_size": len(ids)})


def bench_packing(a: argparse.Namespace) -> None:
    import numpy as np
    import transformers
    from trl.chat_template_utils import get_training_chat_template

    import qwen25

    datasets_logging()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rust", "qwen25-core", "data", "qwen25")
    hf_tok = transformers.AutoTokenizer.from_pretrained(root)
    template = get_training_chat_template(hf_tok)
    tok = qwen25.Tokenizer.qwen25()
    convs = conversations(a.n)
    t_ours, t_trl = [], []
    checked = False
    for run in range(a.runs):
        # each side starts from a collected heap: the other side's outputs (millions of Python ints
        # on the peer's side) are dropped first, so the garbage collector never walks them
        ids = masks = packed = None
        gc.collect()
        t0 = time.perf_counter()
        data, rows = ours_packing(tok, convs, a.seq)
        t_ours.append(time.perf_counter() - t0)
        gc.collect()
        t0 = time.perf_counter()
        ids, masks, packed = trl_packing(hf_tok, template, convs, a.seq)
        t_trl.append(time.perf_counter() - t0)
        print(f"run {run + 1}: ours {t_ours[-1]:.2f} s, TRL {t_trl[-1]:.2f} s", file=sys.stderr, flush=True)
        if not checked:  # outputs equal: every conversation's ids and mask, and every packed row
            for k in range(len(convs)):
                our_ids, our_lab = data.example(k)
                assert our_ids == ids[k], k
                assert our_lab == [t if m else -100 for t, m in zip(ids[k], masks[k])], k
            assert len(rows) == len(packed)
            for r, row in zip(rows, packed["input_ids"]):
                assert np.concatenate([data.ids[data.offsets[i]:data.offsets[i + 1]] for i in r]).tolist() == row
            checked = True
    mo, mt = statistics.median(t_ours), statistics.median(t_trl)
    n = len(convs)
    print(f"\n{n} conversations ({int(data.lengths().sum())} tokens, mean {data.lengths().mean():.0f}), rows of "
          f"{a.seq}: {len(rows)} rows; 1 thread each; medians of {a.runs} interleaved runs")
    print("| side | seconds | conversations/min | vs TRL |\n|---|---:|---:|---:|")
    print(f"| qwen25 tokenize_chat + pack_bfd | {mo:.2f} | {n / mo * 60 / 1e6:.2f}M | {mt / mo:.1f}x |")
    print(f"| transformers apply_chat_template (TRL template) + trl.pack_dataset bfd | {mt:.2f} | "
          f"{n / mt * 60 / 1e6:.3f}M | 1.0x |")


def datasets_logging() -> None:
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass


# -------------------------------------------------------------------------------------- train
def bench_train(a: argparse.Namespace) -> None:
    import datasets
    import torch
    import transformers
    from trl import SFTConfig, SFTTrainer

    from qwen25.model import Qwen2ForCausalLM as Ours
    from qwen25.train import override
    from qwen25.train.sft import (SFTStageData, build_example, debug_chat, debug_chat_tokenizer, prepare, recipe,
                                  sft_trainer_class)

    datasets_logging()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(a.threads)
    work = tempfile.mkdtemp(prefix="bench-sft-")
    tok = debug_chat_tokenizer(work)
    tok_dir = os.path.join(work, "debug-chat-tokenizer-v1")
    hf_tok = transformers.AutoTokenizer.from_pretrained(tok_dir)
    convs = debug_chat(2000)
    torch.manual_seed(0)
    hf_cfg = transformers.Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                                      tie_word_embeddings=True, rope_theta=1e6, rms_norm_eps=1e-6)
    init = os.path.join(work, "init")
    transformers.Qwen2ForCausalLM(hf_cfg).save_pretrained(init)
    probe = torch.tensor([build_example(tok, convs[0]["messages"])[0]])
    with torch.no_grad():  # the same starting weights on both sides
        ref = transformers.Qwen2ForCausalLM.from_pretrained(init).eval()(probe).logits
        mine = Ours.from_pretrained(init, dtype=torch.float32).eval()(probe).logits
    assert torch.allclose(ref, mine, atol=1e-5), float((ref - mine).abs().max())

    cfg = override(recipe("debug"), {"model": init, "init_from": init, "model_overrides": {}, "lr": 1e-3,
                                     "warmup_steps": 0, "stages.0.data": os.path.join(work, "chat.jsonl")})
    import json

    with open(os.path.join(work, "chat.jsonl"), "w") as f:
        for c in convs:
            f.write(json.dumps(c) + "\n")
    prepared = prepare(cfg, work)
    prepared.config = override(prepared.config, {"stages.0.steps": a.steps})
    real = {"tokens": 0}
    Base = sft_trainer_class()

    class Counting(Base):  # type: ignore[misc, valid-type]
        def stage_data(self, stage: Any, index: int) -> SFTStageData:
            d = super().stage_data(stage, index)
            lens = d.data.lengths()
            inner = d.micro_batches

            def counted(rows: Any, m: int) -> Any:
                real["tokens"] += int(sum(int(lens[k]) for _, i in rows for k in d.rows[i]))
                return inner(rows, m)

            d.micro_batches = counted  # type: ignore[method-assign]
            return d

    ds = datasets.Dataset.from_list(convs)

    def run_ours() -> float:
        real["tokens"] = 0
        tr = Counting(prepared, out_dir=None, progress=False, verbose=False)
        tr.setup()
        t0 = time.perf_counter()
        tr.fit()
        return real["tokens"] / (time.perf_counter() - t0)

    def run_trl(packing: bool) -> float:
        model = transformers.Qwen2ForCausalLM.from_pretrained(init)
        args = SFTConfig(output_dir=os.path.join(work, "trl"), assistant_only_loss=True, per_device_train_batch_size=8,
                         max_length=256, packing=packing, use_cpu=True, max_steps=a.steps, learning_rate=1e-3,
                         lr_scheduler_type="cosine", weight_decay=0.1, max_grad_norm=1.0, report_to=[],
                         save_strategy="no", logging_steps=10**6, disable_tqdm=True, dataloader_num_workers=0,
                         seed=0)
        tr = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=hf_tok)
        if not packing:  # labels equal ours, conversation by conversation
            for row, c in zip(tr.train_dataset, convs):
                assert row["labels"] == build_example(tok, c["messages"])[1]
        torch.set_num_threads(a.threads)
        out = tr.train()
        return float(out.metrics.get("num_tokens", tr.state.num_input_tokens_seen)) / out.metrics["train_runtime"] \
            if "num_tokens" in out.metrics else tr.state.num_input_tokens_seen / out.metrics["train_runtime"]

    res: dict[str, list[float]] = {"ours": [], "trl_packed": [], "trl_padded": []}
    for run in range(a.runs):
        res["ours"].append(run_ours())
        res["trl_packed"].append(run_trl(True))
        res["trl_padded"].append(run_trl(False))
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.0f} tok/s" for k, v in res.items()), file=sys.stderr,
              flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    best = max(med["trl_packed"], med["trl_padded"])
    print(f"\ndebug shape (2 layers, hidden 64, vocab 512), rows of 256, 8 per step, {a.steps} steps, fp32, "
          f"{a.threads} thread(s) each; medians of {a.runs} interleaved runs")
    print("| side | tokens/s | vs TRL best |\n|---|---:|---:|")
    print(f"| qwen25 sft Trainer (BFD rows, per-conversation attention) | {med['ours']:.0f} | {med['ours'] / best:.2f}x |")
    print(f"| TRL SFTTrainer packing=True (bfd, padding-free) | {med['trl_packed']:.0f} | {med['trl_packed'] / best:.2f}x |")
    print(f"| TRL SFTTrainer packing=False (padded) | {med['trl_padded']:.0f} | {med['trl_padded'] / best:.2f}x |")


# ---------------------------------------------------------------------------------------- gpu
def bench_gpu(a: argparse.Namespace) -> None:
    """SFT on one GPU: the 0.5B preset at seq_len --seq (default 32,768), bf16, activation
    checkpointing, one packed row per step of synthetic conversations; tokens/s (median of the
    steps after the first) and peak memory (torch.cuda.max_memory_allocated)."""
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: the gpu mode needs one (nothing measured)")
        return
    import json

    from qwen25.train import override
    from qwen25.train.sft import run_sft

    work = tempfile.mkdtemp(prefix="bench-sft-gpu-")
    data = os.path.join(work, "chat.jsonl")
    with open(data, "w") as f:
        for c in conversations(max(200, a.seq // 64), seed=1):
            f.write(json.dumps(c) + "\n")
    cfg = override(sft_recipe("sft"), {"model": a.preset, "init_from": None, "stages.0.data": data,
                                       "stages.0.seq_len": a.seq, "global_batch_tokens": a.seq,
                                       "micro_batch_size": 1, "checkpoint_every": 0, "device": "cuda",
                                       "precision": "bf16", "activation_checkpointing": True,
                                       "method.epochs": 1.0, "log_every": 1})
    _, records, report = run_sft(override(cfg, {}), os.path.join(work, "out"), resume=False, progress=False,
                                 stop_at_step=a.steps)
    tps = statistics.median(r["tokens_per_s"] for r in records[1:]) if len(records) > 1 else records[0]["tokens_per_s"]
    mem = max(r["memory_gib"] for r in records)
    fill = report["stages"][0]["fill"]
    print(f"| {a.preset} | {torch.cuda.get_device_name()} | {a.seq} | {len(records)} steps | {tps:.0f} tokens/s "
          f"(rows {fill:.0%} full) | peak {mem:.2f} GiB |")


def sft_recipe(name: str) -> Any:
    from qwen25.train.sft import recipe

    return recipe(name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    pk = sub.add_parser("packing")
    pk.add_argument("--n", type=int, default=20000)
    pk.add_argument("--seq", type=int, default=4096)
    pk.add_argument("--runs", type=int, default=5)
    tr = sub.add_parser("train")
    tr.add_argument("--steps", type=int, default=30)
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--runs", type=int, default=5)
    gp = sub.add_parser("gpu")
    gp.add_argument("--preset", default="0.5B")
    gp.add_argument("--seq", type=int, default=32768)
    gp.add_argument("--steps", type=int, default=6)
    a = p.parse_args()
    {"packing": bench_packing, "train": bench_train, "gpu": bench_gpu}[a.what](a)


if __name__ == "__main__":
    main()
