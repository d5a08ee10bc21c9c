"""The training loop against transformers (the independent reference), in fp32 on the CPU.

* Loss and gradients of one step (packed rows, position_ids restarting per document, several
  micro-batches) equal those of transformers' Qwen2ForCausalLM / Qwen2MoeForCausalLM given the
  same rows, with the loss a plain sum of token cross-entropies over the step's target count.
* 20 steps of ``Trainer.fit`` equal 20 steps of a plain loop over the transformers model with
  ``torch.optim.AdamW`` (the same decay groups), transformers' cosine scheduler, and
  ``clip_grad_norm_(1.0)``; within 1e-4 per step.

The reference rows come from ``reference_rows`` (pure Python over the test's own documents), not
from qwen25's data reader.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
F = torch.nn.functional

from qwen25.train import Stage, TrainConfig, Trainer  # noqa: E402
from tests.unit.test_train_data import V, make_docs, reference_rows, write_packed  # noqa: E402

warnings.filterwarnings("ignore", module="transformers")
transformers.logging.set_verbosity_error()

TINY = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=128, rope_theta=10000.0)
MOE = dict(TINY, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, shared_expert_intermediate_size=32,
           router_aux_loss_coef=0.05, output_router_logits=True, norm_topk_prob=False)


def hf_folder(path, kind: str = "dense", seed: int = 0, **over):  # type: ignore[no-untyped-def]
    """A randomly initialised transformers model saved to ``path`` (its own init, seeded)."""
    torch.manual_seed(seed)
    if kind == "dense":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**{**TINY, **over}))
    else:
        model = transformers.Qwen2MoeForCausalLM(transformers.Qwen2MoeConfig(**{**MOE, **over}))
    with torch.no_grad():  # norms and biases away from their init, so their handling matters
        for n, p in model.named_parameters():
            if n.endswith("norm.weight") or n.endswith(".bias"):
                p.add_(0.1 * torch.randn(p.shape))
    model.save_pretrained(path)
    return str(path)


def loop_config(data: str, init: str, *, steps: int, seq_len: int = 32, rows: int = 8, micro: int = 2,
                **over) -> TrainConfig:  # type: ignore[no-untyped-def]
    kw = dict(name="parity", model=init, init_from=init,
              stages=(Stage(name="main", data=(data,), seq_len=seq_len, steps=steps),),
              global_batch_tokens=rows * seq_len, micro_batch_size=micro, lr=3e-3, warmup_steps=3,
              min_lr_ratio=0.1, weight_decay=0.1, beta1=0.9, beta2=0.95, eps=1e-8, clip_grad_norm=1.0,
              shuffle=False, device="cpu", precision="fp32")
    kw.update(over)
    return TrainConfig(**kw)


def _tensors(rows):  # type: ignore[no-untyped-def]
    ids = torch.tensor([r[0] for r in rows])
    pos = torch.tensor([r[1] for r in rows])
    lab = torch.tensor([r[2] for r in rows])
    return ids, pos, lab


def _ce_sum(logits, labels):  # type: ignore[no-untyped-def]
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=-100, reduction="sum")


def _targets(rows) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for r in rows for x in r[2][1:] if x != -100)


@pytest.fixture(scope="module")
def docs():  # type: ignore[no-untyped-def]
    return make_docs(120, seed=11, lo=2, hi=45, learnable=True)  # uneven lengths: micro-batches differ in target counts


@torch.no_grad()
def test_reference_transformers_attends_within_documents(tmp_path, docs) -> None:
    """The oracle's own premise: transformers given position_ids (no attention_mask, no cache)
    keeps attention within each packed document, as on the document alone."""
    hf = transformers.Qwen2ForCausalLM.from_pretrained(hf_folder(tmp_path / "hf")).eval()
    rows = reference_rows(docs, 32)
    row = max(rows[:10], key=lambda r: r[1].count(0))  # a row holding several documents
    ids, pos, _ = _tensors([row])
    packed = hf(input_ids=ids, position_ids=pos, use_cache=False).logits[0]
    starts = [t for t in range(32) if pos[0, t] == 0] + [32]
    assert len(starts) > 2
    for a, b in zip(starts, starts[1:]):
        alone = hf(input_ids=ids[:, a:b], use_cache=False).logits[0]
        torch.testing.assert_close(packed[a:b], alone, atol=1e-5, rtol=0)


def _hf_grads(model, kind: str):  # type: ignore[no-untyped-def]
    return {n: p.grad for n, p in model.named_parameters()}


def _ours_vs_hf_grads(ours, ref, inter: int) -> None:  # type: ignore[no-untyped-def]
    for k, p in ours.named_parameters():
        if k.endswith("experts.gate_proj"):
            want = ref[k.replace("gate_proj", "gate_up_proj")][:, :inter]
        elif k.endswith("experts.up_proj"):
            want = ref[k.replace("up_proj", "gate_up_proj")][:, inter:]
        else:
            want = ref[k]
        assert want is not None, k
        torch.testing.assert_close(p.grad, want, atol=1e-6, rtol=1e-4, msg=k)


@pytest.mark.parametrize("kind", ["dense", "moe"])
def test_one_step_loss_and_grads_equal_transformers(tmp_path, docs, kind: str) -> None:
    init = hf_folder(tmp_path / "hf", kind, seed=1)
    data = write_packed(tmp_path / "data", docs, 32)
    cfg = loop_config(data, init, steps=1, rows=8, micro=2)  # 4 micro-batches of 2 rows
    trainer = Trainer(cfg, verbose=False)
    trainer.setup()
    res = trainer.forward_backward(1)

    cls = transformers.Qwen2ForCausalLM if kind == "dense" else transformers.Qwen2MoeForCausalLM
    hf = cls.from_pretrained(init, dtype=torch.float32).train()
    rows = reference_rows(docs, 32)[:8]
    n = _targets(rows)
    assert res["n_global"] == n
    total = 0.0
    aux_total = 0.0
    for a in range(0, 8, 2):
        ids, pos, lab = _tensors(rows[a:a + 2])
        out = hf(input_ids=ids, position_ids=pos, use_cache=False, output_router_logits=kind == "moe")
        ce = _ce_sum(out.logits, lab)
        loss = ce / n
        if kind == "moe":
            loss = loss + MOE["router_aux_loss_coef"] * out.aux_loss / 4
            aux_total += float(out.aux_loss.detach()) / 4
        loss.backward()
        total += float(ce.detach())
    assert res["ce_total"] / n == pytest.approx(total / n, abs=1e-6)
    if kind == "moe":
        assert res["aux_mean"] == pytest.approx(aux_total, abs=1e-6)
    _ours_vs_hf_grads(trainer.model, _hf_grads(hf, kind), MOE["moe_intermediate_size"])


def _reference_loop(init: str, docs, cfg: TrainConfig):  # type: ignore[no-untyped-def]
    """A plain training loop over the transformers model."""
    hf = transformers.Qwen2ForCausalLM.from_pretrained(init, dtype=torch.float32).train()
    decay, no_decay = [], []
    for name, p in hf.named_parameters():
        skip = name.endswith("norm.weight") or name.endswith(".bias") or "embed_tokens" in name
        (no_decay if skip else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    total_steps = cfg.total_steps()
    sched = transformers.get_cosine_with_min_lr_schedule_with_warmup(
        opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=total_steps, min_lr_rate=cfg.min_lr_ratio)
    opt.step()  # no gradients yet: a no-op, so that the scheduler may step first
    sched.step()  # step s uses the scheduler's factor at s (see qwen25.train.schedule)
    rows = reference_rows(docs, cfg.stages[0].seq_len)
    r_step = cfg.global_batch_tokens // cfg.stages[0].seq_len
    m = cfg.micro_batch_size
    out = []
    k = 0
    for _ in range(total_steps):
        batch = [rows[(k + j) % len(rows)] for j in range(r_step)]
        k += r_step
        n = _targets(batch)
        ce_total = 0.0
        per_micro_means = []
        lr = opt.param_groups[0]["lr"]
        for a in range(0, r_step, m):
            ids, pos, lab = _tensors(batch[a:a + m])
            ce = _ce_sum(hf(input_ids=ids, position_ids=pos, use_cache=False).logits, lab)
            (ce / n).backward()
            ce_total += float(ce)
            per_micro_means.append(float(ce) / _targets(batch[a:a + m]))
        norm = float(torch.nn.utils.clip_grad_norm_(hf.parameters(), cfg.clip_grad_norm))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        out.append({"loss": ce_total / n, "grad_norm": norm, "lr": lr,
                    "mean_of_micro_means": sum(per_micro_means) / len(per_micro_means)})
    return out, hf


def test_twenty_steps_equal_a_plain_transformers_loop(tmp_path, docs) -> None:
    init = hf_folder(tmp_path / "hf", seed=2, tie_word_embeddings=True)
    data = write_packed(tmp_path / "data", docs, 32)
    cfg = loop_config(data, init, steps=20, rows=8, micro=2)
    ours = Trainer(cfg, verbose=False).fit()
    ref, hf = _reference_loop(init, docs, cfg)
    assert len(ours) == len(ref) == 20
    # the data wraps around (a second epoch) within the 20 steps
    assert 20 * 8 > len(reference_rows(docs, 32))
    for s, (a, b) in enumerate(zip(ours, ref), start=1):
        assert a["step"] == s
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-12), s
        assert abs(a["loss"] - b["loss"]) < 1e-4, (s, a["loss"], b["loss"])
        assert abs(a["grad_norm"] - b["grad_norm"]) < 1e-4 * max(1.0, b["grad_norm"]), s
    assert ref[-1]["loss"] < ref[0]["loss"] - 0.3  # it learns: the comparison is not between two flat lines
    # per-micro-batch means would have been a different (wrong) loss: the test can tell them apart
    assert max(abs(b["mean_of_micro_means"] - b["loss"]) for b in ref) > 1e-3


def test_weight_decay_groups_and_untied_head(tmp_path, docs) -> None:
    """Untied lm_head (decayed, as a weight) and no_decay=() (every weight decayed) against the
    reference loop with the matching groups."""
    init = hf_folder(tmp_path / "hf", seed=3, tie_word_embeddings=False)
    data = write_packed(tmp_path / "data", docs, 32)
    cfg = loop_config(data, init, steps=4, rows=4, micro=4, weight_decay=0.5, lr=1e-2)
    ours = Trainer(cfg, verbose=False).fit()
    ref, _ = _reference_loop(init, docs, cfg)
    assert [round(r["loss"], 4) for r in ours] == pytest.approx([round(r["loss"], 4) for r in ref], abs=2e-4)
    # with decay everywhere the trajectory differs measurably from the reference groups
    all_decay = Trainer(loop_config(data, init, steps=4, rows=4, micro=4, weight_decay=0.5, lr=1e-2, no_decay=()),
                        verbose=False).fit()
    assert abs(all_decay[-1]["loss"] - ref[-1]["loss"]) > 1e-4
