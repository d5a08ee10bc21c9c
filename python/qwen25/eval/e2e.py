"""The whole recipe once, small, on the CPU: ``qwen25 demo e2e --out DIR`` (``make demo-e2e``).

Stages, each a library call of this package printing a short summary:

1. **data**: bundled text (the Python documentation's topics; standard-library modules plus the
   demo corpus's edited HumanEval problems as code) through ``qwen25.data`` (filter, exact and
   MinHash dedup, decontamination against HumanEval, a token mix, packing) into two phases: rows
   of 256 tokens, and rows of 1,024 for the long-context stage. The raw code corpus also goes
   through the decontamination job (``qwen25 decontaminate``) so the evaluation can split
   HumanEval by what it touched. The pipeline packs with Qwen2.5's tokenizer; a model small enough
   for the CPU cannot afford its 151,936-row output layer (it is most of every step's work), so
   the kept documents are re-tokenized with a 2,048-token byte-level BPE (``qwen25.train_bpe``, the
   ChatML control tokens and the Qwen2.5 chat template added) trained on them and on the chat data,
   and re-packed phase by phase. Every later stage uses that tokenizer.
2. **pre-training** (``qwen25.train``): a small Qwen2 (hidden 64, 2 layers), RoPE base 10,000 at
   256 tokens, then the ABF stage: base 1,000,000 at 1,024 tokens (as the report's long-context
   stage raises the base).
3. **SFT** (``qwen25.train.sft``): synthetic chat tasks (repeat a word, add two numbers answering
   ``#### n``, write a Python function returning an even or an odd number), from the pre-trained
   model.
4. **pairs, reward model, DPO with OMO** (``qwen25.rl``): four samples per held-out coding prompt
   from the SFT model, each run against its test in the sandbox (execution feedback); best vs
   worst make the pairs; a reward model and DPO with the Online Merging Optimizer (OnDARE,
   tau = SFT - base) train on them.
5. **GRPO** (``qwen25.rl.grpo``) from the DPO model on a toy verifiable task (add two numbers; the
   math reward checks the ``#### n`` answer, a format rule the answer's shape), 8 samples per
   query.
6. **evaluation** (``qwen25.eval``): every model on the toy chat tasks (exact match; the coding
   answers run against their tests in the sandbox), perplexity on the packed data, HumanEval
   pass@1 next to the decontamination report's hits, and passkey retrieval with and without
   YaRN + DCA.

``OUT/report.md`` gathers the summaries with PNG plots (loss curves, reward curves, scores per
stage) under ``OUT/plots/``. Sizes are set so that the whole run takes a few minutes on 2 cores.
"""

from __future__ import annotations

import glob
import json
import os
import random
import sysconfig
import time
from collections.abc import Callable
from typing import Any

from ..data.records import write_jsonl

__all__ = ["run_e2e", "STAGES"]

STAGES = ("data", "pretrain", "sft", "rm+dpo", "grpo", "eval")

# the demo corpus's sources, filters and decontamination, shared with ``qwen25 demo``'s pipeline part
DEMO_SOURCES_TOML = """
[[sources]]
name = "web"
paths = ["web.jsonl"]
id_field = "id"

[[sources]]
name = "code"
paths = ["code.jsonl"]
id_field = "id"

[filter.domains.web]           # the docs' prose is full of code samples: no alpha-word rule
gopher_quality = { max_non_alpha_words_ratio = 0.6 }

[filter.domains.code]          # prose heuristics do not apply to code: the code preset's rules
preset = "code"

[decontaminate]
options = { test_set = "humaneval" }
"""

PIPELINE_TOML = """
[pipeline]
output = "pipeline"
batch_size = 64
""" + DEMO_SOURCES_TOML + """
[mix]
max_repeat = 3.0

[[mix.phases]]
name = "general"
weights = { web = 0.15, code = 0.85 }
seq_len = 256

[[mix.phases]]
name = "long"                  # the long-context stage: 40% of tokens from documents of >= 1,024
weights = { web = 0.15, code = 0.85 }
seq_len = 1024
long_share = 0.4
long_min = 1024
"""

WORDS = ("fox", "bird", "cat", "river", "tree", "child", "teacher", "boat", "house", "dog", "garden", "star",
         "apple", "stone", "cloud", "horse", "lamp", "door", "ship", "king", "moon", "book", "road", "bell")


def _say(log: Callable[[str], None], msg: str) -> None:
    log(msg)


# ------------------------------------------------------------------------------ 1. data
def write_demo_corpus(d: str, *, max_file_bytes: int = 30000, max_code: int | None = 400) -> dict[str, int]:
    """web.jsonl and code.jsonl in ``d``: prose from the Python docs' topics (an exact and a near
    copy planted), code from the demo corpus's edited HumanEval problems and standard-library
    modules of 1,000 to ``max_file_bytes`` bytes (the first ``max_code`` records). Shared with
    ``qwen25 demo``'s pipeline part."""
    demo = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "demo", "decontam_demo.jsonl.gz")
    from ..data.records import iter_objects

    recs = [r for _, r, _ in iter_objects(demo) if isinstance(r.get("text"), str)]
    try:
        from pydoc_data.topics import topics

        web = [{"id": k, "text": v} for k, v in sorted(topics.items())]
    except ImportError:  # pragma: no cover - stripped Python installs
        web = []
    if len(web) > 6:
        web.append({"id": "exact-copy", "text": web[3]["text"]})
        web.append({"id": "near-copy", "text": web[5]["text"].replace("\n", "\n\n", 1) + " Thanks for reading."})
    files = [p for p in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
             if 1000 < os.path.getsize(p) < max_file_bytes]
    code = [{"id": r["id"], "text": r["text"]} for r in recs if "planted" in r]
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            code.append({"id": os.path.basename(path), "text": f.read()})
    code = code[:max_code]
    for name, rows in (("web", web), ("code", code)):
        write_jsonl(os.path.join(d, f"{name}.jsonl"), rows)
    return {"web": len(web), "code": len(code)}


def stage_data(out: str, log: Callable[[str], None]) -> dict[str, Any]:
    from ..data.decontam_job import run_job
    from ..data.pipeline import run_pipeline

    d = os.path.join(out, "data")
    os.makedirs(d, exist_ok=True)
    counts = write_demo_corpus(d)
    cfg = os.path.join(d, "pipeline.toml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(PIPELINE_TOML)
    rep = run_pipeline(cfg, progress=False)
    removed = {k: v for k, v in rep.get("removed_by_stage", {}).items() if v} if isinstance(
        rep.get("removed_by_stage"), dict) else {}
    # the raw code corpus against HumanEval: which problems the training text touched
    job = run_job(train=[os.path.join(d, "code.jsonl")], tests=["humaneval"], out=os.path.join(d, "decontam"),
                  progress=False, log=lambda s: None)
    he = job["test_sets"]["humaneval"]
    tok_dir = os.path.join(out, "tokenizer")
    tok = demo_tokenizer(tok_dir, [os.path.join(d, "pipeline", "packed", n) for n in ("general", "long")])
    phases = {}
    for name in ("general", "long"):
        phases[name] = repack(os.path.join(d, "pipeline", "packed", name), os.path.join(d, "packed", name), tok)
    summary = {"tokenizer": tok_dir, "sources": counts, "documents_in": rep["documents_in"],
               "documents_removed": rep["documents_removed"],
               "documents_packed": rep["documents_packed"], "removed_by_stage": removed, "phases": phases,
               "decontam_report": job["report_path"], "humaneval_items_hit": he["items_hit"],
               "humaneval_hit_ids": list(he["hits"])}
    _say(log, f"  {rep['documents_in']} documents in ({counts['web']} prose, {counts['code']} code), "
              f"{rep['documents_removed']} removed, {rep['documents_packed']} packed")
    for name, ph in phases.items():
        _say(log, f"  phase {name}: {ph['documents']} documents, {ph['qwen_tokens']} Qwen2.5 tokens -> {ph['tokens']} "
                  f"tokens of the demo BPE in {ph['sequences']} rows of {ph['seq_len']}")
    _say(log, f"  decontamination job on the raw code: {he['items_hit']} of {he['items']} HumanEval problems hit "
              f"({', '.join(list(he['hits'])[:4])}{', ...' if he['items_hit'] > 4 else ''})")
    return summary


DEMO_VOCAB = 2048
_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def demo_tokenizer(out_dir: str, packed: list[str]) -> Any:
    """A DEMO_VOCAB-token byte-level BPE trained on the packed documents (decoded) and the chat
    data, with ChatML's control tokens and the Qwen2.5 chat template; saved to ``out_dir``."""
    from .. import train_bpe
    from ..data.pack import PackedDataset
    from ..tokenizer import Tokenizer
    from ..train.sft import save_chat_tokenizer

    qwen = Tokenizer.qwen25()
    texts = []
    for p in packed:
        ds = PackedDataset(p)
        texts += [qwen.decode(ds.document(i).tolist()) for i in range(ds.num_documents)]
    for c in toy_chat(2000, seed=1):
        texts.append(str(qwen.apply_chat_template(c["messages"], tokenize=False)))
    tok = train_bpe(texts, DEMO_VOCAB, special_tokens=_SPECIALS, num_threads=1)
    save_chat_tokenizer(tok, out_dir)
    return Tokenizer.from_pretrained(out_dir)


def repack(src: str, dst: str, tok: Any) -> dict[str, Any]:
    """The documents of packed folder ``src`` (Qwen2.5 ids), decoded and packed again with ``tok``
    at the same sequence length into ``dst``."""
    from ..data.pack import PackedDataset, TokenPacker
    from ..tokenizer import Tokenizer

    qwen = Tokenizer.qwen25()
    ds = PackedDataset(src)
    texts = [qwen.decode(ds.document(i).tolist()) for i in range(ds.num_documents)]
    with TokenPacker(dst, tokenizer=tok, seq_len=ds.seq_len) as packer:
        packer.add(texts)
    new = PackedDataset(dst)
    return {"path": dst, "sequences": len(new), "seq_len": new.seq_len, "documents": new.num_documents,
            "tokens": int(new.doc_index[:, 1].sum()), "qwen_tokens": int(ds.doc_index[:, 1].sum())}


# -------------------------------------------------------------------------- 2. pre-training
def _train_config(**kw: Any) -> Any:
    from ..train import TrainConfig

    base: dict[str, Any] = dict(model="debug", device="cpu", precision="fp32", fused_loss=True, checkpoint_every=0,
                                keep_last=1, weight_decay=0.1, clip_grad_norm=1.0, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def _metrics(path: str) -> list[dict[str, Any]]:
    if not os.path.isfile(path):
        return []
    from ..data.records import iter_objects

    return [rec for _, rec, _ in iter_objects(path)]


MODEL_SHAPE = {"hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4,
               "num_key_value_heads": 2, "max_position_embeddings": 1024}


def _export(ckpt: Any, final: str, tokenizer_dir: str) -> None:
    """The checkpoint as an HF folder, with the demo tokenizer's files beside the weights."""
    import shutil

    from ..train import export_checkpoint

    export_checkpoint(str(ckpt), final)
    for f in os.listdir(tokenizer_dir):
        shutil.copy(os.path.join(tokenizer_dir, f), os.path.join(final, f))


def stage_pretrain(out: str, data: dict[str, Any], steps: tuple[int, int], log: Callable[[str], None]
                   ) -> dict[str, Any]:
    from ..tokenizer import Tokenizer
    from ..train import Stage, Trainer

    tok = Tokenizer.from_pretrained(data["tokenizer"])
    # the demo tokenizer's ids for the model's end-of-turn, padding and (no) BOS
    ids = dict(vocab_size=tok.vocab_size, eos_token_id=tok.token_to_id("<|im_end|>"),
               pad_token_id=tok.token_to_id("<|endoftext|>"), bos_token_id=None)

    run = os.path.join(out, "pretrain")
    cfg = _train_config(
        name="e2e-pretrain", model_overrides=dict(MODEL_SHAPE, **ids),
        stages=(Stage(name="main", data=(data["phases"]["general"]["path"],), seq_len=256, steps=steps[0],
                      rope_theta=10_000.0),
                Stage(name="abf", data=(data["phases"]["long"]["path"],), seq_len=1024, steps=steps[1],
                      rope_theta=1_000_000.0, micro_batch_size=2)),
        global_batch_tokens=2048, micro_batch_size=8, lr=3e-3, min_lr_ratio=0.1, warmup_steps=20)
    trainer = Trainer(cfg, out_dir=run, resume=False, progress=False)
    try:
        recs = trainer.fit()
        ckpt = trainer.last_checkpoint
    finally:
        trainer.close()
    final = os.path.join(run, "final")
    _export(ckpt, final, data["tokenizer"])
    first, last = recs[0]["loss"], recs[-1]["loss"]
    main_last = [r["loss"] for r in recs if r.get("stage", "main") == "main" or r["step"] <= steps[0]][-1]
    _say(log, f"  {len(recs)} steps ({steps[0]} at 256 tokens, RoPE base 1e4; {steps[1]} ABF steps at 1,024, "
              f"base 1e6): loss {first:.3f} -> {main_last:.3f} -> {last:.3f}; exported to {final}")
    return {"steps": len(recs), "loss_first": first, "loss_last": last, "model": final,
            "metrics": os.path.join(run, "metrics.jsonl")}


# --------------------------------------------------------------------------------- 3. SFT
def toy_chat(n: int, seed: int) -> list[dict[str, Any]]:
    """Synthetic chat tasks with checkable answers: repeat a word, add two numbers (``#### n``),
    write a Python function returning an even or an odd number (checked by running it)."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        kind = r.randrange(3)
        if kind == 0:
            w = r.choice(WORDS)
            q, a, check = f"Repeat the word: {w}", w, {"answer": w}
        elif kind == 1:
            x, y = r.randrange(10), r.randrange(10)
            q, a, check = f"What is {x} plus {y}?", f"#### {x + y}", {"answer": str(x + y)}
        else:
            even = r.randrange(2) == 0
            x = 2 * r.randrange(50) + (0 if even else 1)
            q = f"Write a Python function f that returns an {'even' if even else 'odd'} number."
            a, check = f"def f():\n    return {x}", {"tests": f"assert f() % 2 == {0 if even else 1}"}
        out.append({"id": f"toy-{seed}-{i}", "kind": ("repeat", "add", "code")[kind],
                    "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], **check})
    return out


def stage_sft(out: str, base: str, tokenizer: str, n_chat: int, log: Callable[[str], None], *,
              epochs: float = 4.0) -> dict[str, Any]:
    from ..train import Stage
    from ..train.sft import run_sft

    run = os.path.join(out, "sft")
    os.makedirs(run, exist_ok=True)
    chat = os.path.join(run, "chat.jsonl")
    write_jsonl(chat, ({"messages": c["messages"]} for c in toy_chat(n_chat, seed=1)))
    cfg = _train_config(
        name="e2e-sft", model=base, init_from=base, stages=(Stage(name="sft", data=(chat,), seq_len=256, steps=1),),
        global_batch_tokens=256 * 8, micro_batch_size=8, lr=1.5e-3, min_lr_ratio=0.1, warmup_steps=5,
        method={"objective": "sft", "epochs": epochs, "tokenizer": tokenizer})
    trainer, recs, rep = run_sft(cfg, run, resume=False, progress=False)
    try:
        ckpt = trainer.last_checkpoint
    finally:
        trainer.close()
    final = os.path.join(run, "final")
    _export(ckpt, final, tokenizer)
    st = rep["stages"][0]
    _say(log, f"  {n_chat} conversations -> {st['packed_rows']} packed rows of 256; {len(recs)} steps, "
              f"loss {recs[0]['loss']:.3f} -> {recs[-1]['loss']:.3f}; exported to {final}")
    return {"steps": len(recs), "loss_first": recs[0]["loss"], "loss_last": recs[-1]["loss"], "model": final,
            "metrics": os.path.join(run, "metrics.jsonl")}


# ------------------------------------------------------------------ 4. pairs, RM and DPO
def stage_rl(out: str, base: str, sft: str, tokenizer: str, n_prompts: int, log: Callable[[str], None]
             ) -> dict[str, Any]:
    import dataclasses

    from ..model import Qwen2ForCausalLM
    from ..rl import dpo, reward
    from ..rl.pairs import make_pairs, sample_responses, score_responses
    from ..tokenizer import Tokenizer
    from ..train import override

    run = os.path.join(out, "rl")
    os.makedirs(run, exist_ok=True)
    tok = Tokenizer.from_pretrained(tokenizer)
    model = Qwen2ForCausalLM.from_pretrained(sft).eval()
    prompts = [{"id": c["id"], "prompt": c["messages"][0]["content"], "tests": c["tests"]}
               for c in toy_chat(4 * n_prompts, seed=2) if c["kind"] == "code"][:n_prompts]
    responses = sample_responses(model, tok, prompts, k=4, max_new_tokens=24, temperature=1.0, seed=0)
    scores = score_responses(prompts, responses, "code")  # each response run against its test in the sandbox
    pairs, prep = make_pairs(prompts, responses, scores, source="e2e-sft-samples", verifier="code")
    solved = sum(s for row in scores for s in row) / max(1, sum(len(row) for row in scores))
    path = os.path.join(run, "pairs.jsonl")
    write_jsonl(path, pairs)
    _say(log, f"  {len(prompts)} coding prompts x 4 samples from the SFT model, run in the sandbox: "
              f"{100 * solved:.0f}% pass; {prep['pairs']} pairs ({prep['no_contrast']} prompts without contrast)")
    summary: dict[str, Any] = {"prompts": len(prompts), "pass_rate": solved, "pairs": prep["pairs"],
                               "no_contrast": prep["no_contrast"], "pairs_path": path}
    if len(pairs) < 2:
        _say(log, "  too few pairs for the reward model and DPO: skipped (the SFT samples agree)")
        summary["skipped"] = "fewer than 2 pairs"
        return summary
    rm_cfg = override(reward.recipe("debug"), {"init_from": sft, "model": sft, "method.epochs": 4.0,
                                               "method.eval_data": path, "method.tokenizer": tokenizer})
    rm_trainer, rm_recs = reward.train_reward_model(rm_cfg, data=path, out_dir=os.path.join(run, "rm"),
                                                    resume=False, progress=False)
    rm_trainer.close()
    rm_last = rm_recs[-1]
    _say(log, f"  reward model: {len(rm_recs)} steps, loss {rm_recs[0]['loss']:.3f} -> {rm_last['loss']:.3f}, "
              f"pair accuracy on its pairs {rm_last.get('eval_accuracy', float('nan')):.2f}")
    dpo_cfg = override(dpo.recipe("debug"), {"init_from": sft, "model": sft, "method.base_model": base,
                                             "method.optimizer": "omo-dare", "method.epochs": 4.0, "lr": 3e-4,
                                             "method.eval_data": path, "method.tokenizer": tokenizer})
    dpo_cfg = dataclasses.replace(dpo_cfg, name="e2e-dpo")
    d_trainer, d_recs = dpo.train_dpo(dpo_cfg, data=path, out_dir=os.path.join(run, "dpo"), resume=False,
                                      progress=False)
    d_trainer.close()
    last = d_recs[-1]
    _say(log, f"  DPO with OMO (OnDARE, tau = SFT - base): {len(d_recs)} steps, loss {d_recs[0]['loss']:.3f} -> "
              f"{last['loss']:.3f}, reward accuracy {last.get('rewards_accuracy', float('nan')):.2f}, margin "
              f"{last.get('rewards_margin', float('nan')):.3f}")
    summary.update(rm_model=os.path.join(run, "rm", "final"), rm_metrics=os.path.join(run, "rm", "metrics.jsonl"),
                   rm_loss_last=rm_last["loss"], rm_accuracy=rm_last.get("eval_accuracy"),
                   dpo_model=os.path.join(run, "dpo", "final"), dpo_metrics=os.path.join(run, "dpo", "metrics.jsonl"),
                   dpo_loss_last=last["loss"], dpo_rewards_accuracy=last.get("rewards_accuracy"))
    return summary


# ------------------------------------------------------------------------------ 5. GRPO
def stage_grpo(out: str, policy: str, tokenizer: str, episodes: int, log: Callable[[str], None], *,
               queries: int = 8) -> dict[str, Any]:
    """GRPO from ``policy`` on "What is a plus b?" (the SFT data's addition prompts): 8 samples per
    query, rewards ``math`` (the ``#### n`` answer is a + b, weight 1) and ``format`` (the whole
    completion is ``#### <digits>``, weight 0.5), both logged per step."""
    import shutil

    from ..rl import grpo
    from ..train import override

    run = os.path.join(out, "grpo")
    os.makedirs(run, exist_ok=True)
    prompts = os.path.join(run, "prompts.jsonl")
    write_jsonl(prompts, ({"id": c["id"], "prompt": c["messages"][0]["content"], "answer": c["answer"]}
                          for c in toy_chat(400, seed=5) if c["kind"] == "add"))
    cfg = override(grpo.recipe("debug"), {
        "init_from": policy, "model": policy, "stages.0.seq_len": 64, "global_batch_tokens": queries * 4 * 64,
        "lr": 1e-4, "method.tokenizer": tokenizer, "method.episodes": episodes, "method.queries_per_episode": queries,
        "method.num_generations": 8, "method.max_prompt_length": 48, "method.max_completion_length": 8,
        "method.beta": 0.0, "method.rewards": {"math": 1.0, "format": {"weight": 0.5, "pattern": r"\A#### \d+\Z"}},
        "method.log_completions": False})
    trainer, recs = grpo.train_grpo(cfg, prompts=prompts, out_dir=run, resume=False, progress=False)
    trainer.close()
    final = os.path.join(run, "final")
    for name in os.listdir(tokenizer):
        shutil.copy(os.path.join(tokenizer, name), os.path.join(final, name))
    k = max(1, len(recs) // 4)  # first and last quarter of the steps

    def mean(key: str, rows: list[dict[str, Any]]) -> float:
        return sum(r[key] for r in rows) / len(rows)

    parts = ", ".join(f"{name} {mean(key, recs[:k]):.2f} -> {mean(key, recs[-k:]):.2f}"
                      for name, key in (("reward", "reward"), ("math", "rewards/math/mean"),
                                        ("format", "rewards/format/mean")))
    _say(log, f"  {len(recs)} steps over {episodes} episodes ({queries} queries x 8 samples each); mean over the "
              f"first -> last quarter of the steps: {parts}")
    return {"steps": len(recs), "model": final, "metrics": os.path.join(run, "metrics.jsonl"),
            "reward_first": mean("reward", recs[:k]), "reward_last": mean("reward", recs[-k:]),
            "math_first": mean("rewards/math/mean", recs[:k]), "math_last": mean("rewards/math/mean", recs[-k:]),
            "format_first": mean("rewards/format/mean", recs[:k]),
            "format_last": mean("rewards/format/mean", recs[-k:])}


# ------------------------------------------------------------------------------ 6. eval
def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _toy_code_pass(model: Any, tok: Any, items: list[dict[str, Any]]) -> float:
    """Greedy answers to the toy coding prompts, each run against its test in the sandbox."""
    from ..rl.pairs import code_score
    from .generative import generate_until

    prompts = [tok.apply_chat_template([c["messages"][0]], tokenize=False, add_generation_prompt=True) for c in items]
    outs = generate_until(model, tok, prompts, until=("<|im_end|>", "<|endoftext|>"), max_new_tokens=16,
                          batch_size=16)
    return sum(code_score(c, o, timeout=5.0) for c, o in zip(items, outs)) / len(items)


def _toy_exact_match(model: Any, tok: Any, items: list[dict[str, Any]]) -> float:
    from .generative import generate_until, gsm8k_extract

    prompts = [tok.apply_chat_template([c["messages"][0]], tokenize=False, add_generation_prompt=True) for c in items]
    outs = generate_until(model, tok, prompts, until=("<|im_end|>", "<|endoftext|>"), max_new_tokens=12,
                          batch_size=16)
    ok = 0
    for c, o in zip(items, outs):
        got = gsm8k_extract(o, "strict") if c["kind"] == "add" else o.strip()
        ok += got == c["answer"]
    return ok / len(items)


def stage_eval(out: str, models: dict[str, str], data: dict[str, Any], log: Callable[[str], None],
               *, n_toy: int, n_humaneval: int, passkey_lengths: tuple[int, ...] = (512, 2048)) -> dict[str, Any]:
    from ..model import Qwen2ForCausalLM
    from ..tokenizer import Tokenizer
    from .contamination import read_report, split_scores
    from .data import load_items
    from .passkey import passkey
    from .perplexity import perplexity
    from .code import humaneval

    tok = Tokenizer.from_pretrained(data["tokenizer"])
    toy = [c for c in toy_chat(3 * n_toy, seed=3) if c["kind"] in ("repeat", "add")][:n_toy]
    toy_code = [c for c in toy_chat(3 * n_toy, seed=4) if c["kind"] == "code"][:n_toy]
    report = read_report(data["decontam_report"])
    hits = set(report["test_sets"]["humaneval"]["hits"])
    problems = load_items("humaneval")
    chosen = [p for p in problems if p["id"] in hits][: n_humaneval // 2]
    chosen += [p for p in problems if p["id"] not in hits][: n_humaneval - len(chosen)]
    scores: dict[str, dict[str, Any]] = {}
    for name, path in models.items():
        model = Qwen2ForCausalLM.from_pretrained(path).eval()
        s: dict[str, Any] = {"toy_exact_match": _toy_exact_match(model, tok, toy),
                             "toy_code_pass": _toy_code_pass(model, tok, toy_code)}
        s["ppl_general"] = perplexity(model, data["phases"]["general"]["path"], max_sequences=16)["ppl"]
        he = humaneval(model, tok, chosen, n=1, max_new_tokens=48, batch_size=8, timeout=5.0)
        per = [p["pass@1"] for p in he["problems"]]
        split = split_scores([p["id"] for p in chosen], per, hits)
        s.update(humaneval_pass1=he["pass@1"], humaneval_hit=split["hit_score"], humaneval_clean=split["clean_score"],
                 humaneval_n_hit=split["n_hit"], humaneval_n_clean=split["n_clean"])
        scores[name] = s
        _say(log, f"  {name:>5}: toy tasks exact match {s['toy_exact_match']:.2f}, toy code pass rate "
                  f"{s['toy_code_pass']:.2f}; perplexity "
                  f"{s['ppl_general']:.1f}; HumanEval pass@1 {s['humaneval_pass1']:.2f} "
                  f"({split['n_hit']} hit by the corpus: {_f(split['hit_score'])}, {split['n_clean']} clean: "
                  f"{_f(split['clean_score'])})")
    base = Qwen2ForCausalLM.from_pretrained(models["base"]).eval()
    pk = passkey(base, tok, lengths=passkey_lengths, depths=(0.2, 0.8), trials=3, n_candidates=10)
    line = "; ".join(f"{mode} " + ", ".join(f"@{n} {r['acc']:.2f}" for n, r in by.items())
                     for mode, by in pk["results"].items())
    _say(log, f"  passkey (base model, trained at 1,024; chance {pk['chance']:.2f}): {line}")
    return {"scores": scores, "passkey": pk["results"], "passkey_chance": pk["chance"], "toy_items": len(toy),
            "humaneval_problems": [p["id"] for p in chosen]}


# ------------------------------------------------------------------------------ report
def _plots(out: str, summary: dict[str, Any]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    d = os.path.join(out, "plots")
    os.makedirs(d, exist_ok=True)
    made = []
    curves = [("pre-training (256 then ABF 1,024)", summary.get("pretrain", {}).get("metrics")),
              ("SFT", summary.get("sft", {}).get("metrics")),
              ("reward model", summary.get("rl", {}).get("rm_metrics")),
              ("DPO (OMO)", summary.get("rl", {}).get("dpo_metrics")),
              ("GRPO", summary.get("grpo", {}).get("metrics"))]
    curves = [(t, p) for t, p in curves if p and os.path.isfile(p)]
    if curves:
        fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.2))
        axes = axes if len(curves) > 1 else [axes]
        for ax, (title, p) in zip(axes, curves):
            recs = _metrics(p)
            ax.plot([r["step"] for r in recs], [r["loss"] for r in recs])
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.set_ylabel("loss")
        fig.tight_layout()
        fig.savefig(os.path.join(d, "loss.png"), dpi=100)
        plt.close(fig)
        made.append("plots/loss.png")
    dp, rp = summary.get("rl", {}).get("dpo_metrics"), summary.get("rl", {}).get("rm_metrics")
    gp = summary.get("grpo", {}).get("metrics")
    panels = [(p, keys, title) for p, keys, title in (
        (rp, ("accuracy", "margin", "mean_reward"), "reward model (per step)"),
        (dp, ("rewards_chosen", "rewards_rejected", "rewards_margin", "rewards_accuracy"), "DPO implicit rewards"),
        (gp, ("reward", "rewards/math/mean", "rewards/format/mean"), "GRPO rewards (per step)")) if p and os.path.isfile(p)]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2))
        axes = axes if len(panels) > 1 else [axes]
        for ax, (path, keys, title) in zip(axes, panels):
            recs = _metrics(path)
            for key in keys:
                if any(key in r for r in recs):
                    ax.plot([r["step"] for r in recs if key in r], [r[key] for r in recs if key in r], label=key)
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(d, "rewards.png"), dpi=100)
        plt.close(fig)
        made.append("plots/rewards.png")
    sc = summary.get("eval", {}).get("scores")
    if sc:
        names = list(sc)
        metrics = [("toy_exact_match", "toy tasks exact match"), ("toy_code_pass", "toy code pass rate"),
                   ("humaneval_pass1", "HumanEval pass@1")]
        fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
        for ax, (key, title) in zip(axes[:3], metrics):
            ax.bar(names, [sc[n][key] for n in names])
            ax.set_title(title)
            ax.set_ylim(0, 1)
        axes[3].bar(names, [sc[n]["ppl_general"] for n in names])
        axes[3].set_title("perplexity (packed data)")
        axes[3].set_yscale("log")
        fig.tight_layout()
        fig.savefig(os.path.join(d, "scores.png"), dpi=100)
        plt.close(fig)
        made.append("plots/scores.png")
    return made


def _report(out: str, summary: dict[str, Any], lines: list[str], plots: list[str]) -> str:
    md = ["# qwen25 end-to-end demo", "",
          f"Finished in {summary['seconds']:.0f} s on the CPU ({os.cpu_count()} cores).", ""]
    md += ["## Stage summaries", "", "```", *lines, "```", ""]
    for p in plots:
        md += [f"![{os.path.basename(p)}]({p})", ""]
    sc = summary.get("eval", {}).get("scores")
    if sc:
        md += ["## Scores per stage", "", "| model | toy tasks exact match | toy code pass rate | perplexity | "
               "HumanEval pass@1 | pass@1 on problems the corpus hit | pass@1 on clean problems |",
               "|---|---|---|---|---|---|---|"]
        for n, s in sc.items():
            hit = "-" if s["humaneval_hit"] is None else f"{s['humaneval_hit']:.2f} ({s['humaneval_n_hit']})"
            clean = "-" if s["humaneval_clean"] is None else f"{s['humaneval_clean']:.2f} ({s['humaneval_n_clean']})"
            md.append(f"| {n} | {s['toy_exact_match']:.2f} | {s['toy_code_pass']:.2f} | {s['ppl_general']:.1f} | "
                      f"{s['humaneval_pass1']:.2f} | "
                      f"{hit} | {clean} |")
        md.append("")
    path = os.path.join(out, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return path


def run_e2e(out: str, *, pretrain_steps: tuple[int, int] = (150, 10), n_chat: int = 2000, n_prompts: int = 32,
            n_toy: int = 24, n_humaneval: int = 6, sft_epochs: float = 4.0, grpo_episodes: int = 24,
            passkey_lengths: tuple[int, ...] = (512, 2048), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage (module docstring) into ``out``; returns the summary also written to
    ``out/summary.json``. The sizes are the demo's; tests pass smaller ones."""
    import torch

    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    lines: list[str] = []

    def say(msg: str) -> None:
        lines.append(msg)
        log(msg)

    summary: dict[str, Any] = {"stages": {}}

    def timed(name: str, title: str, fn: Callable[[], Any]) -> Any:
        say(f"== {STAGES.index(name) + 1}. {title} ==")
        t = time.perf_counter()
        res = fn()
        summary["stages"][name] = round(time.perf_counter() - t, 1)
        say(f"  ({summary['stages'][name]:.0f} s)")
        return res

    data = timed("data", "data: filter, dedup, decontaminate against HumanEval, mix, pack",
                 lambda: stage_data(out, say))
    summary["data"] = data
    pre = timed("pretrain", "pre-training: debug shape, then the ABF long-context stage",
                lambda: stage_pretrain(out, data, pretrain_steps, say))
    summary["pretrain"] = pre
    sft = timed("sft", "SFT: toy chat tasks",
                lambda: stage_sft(out, pre["model"], data["tokenizer"], n_chat, say, epochs=sft_epochs))
    summary["sft"] = sft
    rl = timed("rm+dpo", "pairs from execution feedback, reward model, DPO with OMO",
               lambda: stage_rl(out, pre["model"], sft["model"], data["tokenizer"], n_prompts, say))
    summary["rl"] = rl
    models = {"base": pre["model"], "sft": sft["model"]}
    if rl.get("dpo_model"):
        models["dpo"] = rl["dpo_model"]
    g = timed("grpo", "GRPO: toy verifiable task (math + format rewards)",
              lambda: stage_grpo(out, models.get("dpo", sft["model"]), data["tokenizer"], grpo_episodes, say))
    summary["grpo"] = g
    models["grpo"] = g["model"]
    ev = timed("eval", "evaluation: every stage's model",
               lambda: stage_eval(out, models, data, say, n_toy=n_toy, n_humaneval=n_humaneval,
                                  passkey_lengths=passkey_lengths))
    summary["eval"] = ev
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    plots = _plots(out, summary)
    summary["report"] = _report(out, summary, lines, plots)
    summary["plots"] = plots
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, default=str)
    log(f"report: {summary['report']} ({len(plots)} plots); {summary['seconds']:.0f} s in all")
    return summary
