"""Generation pieces: the memory-bound ops and the sampling filters against transformers'
implementations; seeds, stops, streaming and the CLI on the random "debug" preset."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stdout

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers.generation import logits_process as lp  # noqa: E402
from transformers.models.qwen2 import modeling_qwen2 as hq  # noqa: E402

from qwen25.errors import Qwen25ValueError  # noqa: E402
from qwen25.model import Qwen2ForCausalLM, apply_rope, rms_norm, stream_text, swiglu  # noqa: E402
from qwen25.model.generation import apply_repetition_penalty, filter_logits  # noqa: E402

G = torch.Generator().manual_seed(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_matches_transformers(dtype: torch.dtype) -> None:
    x = (torch.randn(3, 5, 64, generator=G) * 3).to(dtype)
    ref = hq.Qwen2RMSNorm(64, eps=1e-6).to(dtype)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(64, generator=G))
        torch.testing.assert_close(rms_norm(x, ref.weight, 1e-6), ref(x), atol=0, rtol=0)


def test_apply_rope_matches_transformers() -> None:
    q, k = torch.randn(2, 4, 7, 16, generator=G), torch.randn(2, 2, 7, 16, generator=G)
    cos, sin = torch.randn(2, 7, 16, generator=G), torch.randn(2, 7, 16, generator=G)
    rq, rk = hq.apply_rotary_pos_emb(q, k, cos, sin)
    oq, ok = apply_rope(q, k, cos, sin)
    torch.testing.assert_close(oq, rq, atol=0, rtol=0)
    torch.testing.assert_close(ok, rk, atol=0, rtol=0)


def test_swiglu() -> None:
    g, u = torch.randn(5, 8, generator=G), torch.randn(5, 8, generator=G)
    torch.testing.assert_close(swiglu(g, u), g / (1 + torch.exp(-g)) * u)


def _finite(x: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(x)


@pytest.mark.parametrize("seed", range(5))
def test_filters_match_transformers_warpers(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 60, generator=g) * 3
    ids = torch.zeros(4, 1, dtype=torch.long)
    for t in (0.5, 1.7):
        torch.testing.assert_close(filter_logits(logits, temperature=t), lp.TemperatureLogitsWarper(t)(ids, logits))
    for k in (1, 5, 59):
        assert torch.equal(_finite(filter_logits(logits, top_k=k)), _finite(lp.TopKLogitsWarper(k)(ids, logits)))
    for p in (0.1, 0.5, 0.9, 0.99):
        assert torch.equal(_finite(filter_logits(logits, top_p=p)), _finite(lp.TopPLogitsWarper(p)(ids, logits)))
    for m in (0.05, 0.3, 1.0):
        assert torch.equal(_finite(filter_logits(logits, min_p=m)), _finite(lp.MinPLogitsWarper(m)(ids, logits)))


def test_repetition_penalty_matches_transformers() -> None:
    logits = torch.randn(2, 30, generator=G) * 2
    ids = torch.tensor([[1, 5, 5, 7], [0, 29, 3, 3]])
    seen = torch.zeros(2, 30, dtype=torch.bool).scatter_(1, ids, True)
    ref = lp.RepetitionPenaltyLogitsProcessor(1.3)(ids, logits.clone())
    torch.testing.assert_close(apply_repetition_penalty(logits, seen, 1.3), ref, atol=0, rtol=0)


@pytest.fixture(scope="module")
def debug_model():  # type: ignore[no-untyped-def]
    return Qwen2ForCausalLM.from_config("debug", seed=0).eval()


def test_sampling_seed_and_top_k(debug_model) -> None:  # type: ignore[no-untyped-def]
    m = debug_model
    prompt = [[100, 200, 300]]
    a = m.generate(prompt, max_new_tokens=10, do_sample=True, seed=7, eos_token_id=None)
    b = m.generate(prompt, max_new_tokens=10, do_sample=True, seed=7, eos_token_id=None)
    assert torch.equal(a, b)
    greedy = m.generate(prompt, max_new_tokens=10, eos_token_id=None)
    top1 = m.generate(prompt, max_new_tokens=10, do_sample=True, top_k=1, seed=3, eos_token_id=None)
    assert torch.equal(greedy, top1)
    outs = {tuple(m.generate(prompt, max_new_tokens=4, do_sample=True, temperature=5.0, seed=s,
                             eos_token_id=None)[0, 3:].tolist()) for s in range(6)}
    assert len(outs) > 1  # a hot temperature does sample


def test_batched_rows_equal_single_rows(debug_model) -> None:  # type: ignore[no-untyped-def]
    """Left padding does not change a row's greedy continuation."""
    m = debug_model
    rows = [[1, 2, 3, 4, 5, 6], [7, 8], [9, 10, 11]]
    batch = m.generate(rows, max_new_tokens=6, eos_token_id=None)
    for i, r in enumerate(rows):
        alone = m.generate([r], max_new_tokens=6, eos_token_id=None)[0].tolist()
        assert batch[i, -6:].tolist() == alone[-6:]


def test_stops(debug_model) -> None:  # type: ignore[no-untyped-def]
    m = debug_model
    full = m.generate([[5, 6, 7]], max_new_tokens=8, eos_token_id=None)[0, 3:].tolist()
    out = m.generate([[5, 6, 7]], max_new_tokens=8, eos_token_id=None, stop=[full[2]])
    assert out[0, 3:].tolist() == full[:full.index(full[2]) + 1]
    out = m.generate([[5, 6, 7]], max_new_tokens=8, eos_token_id=None, stop=[full[3:5]])
    assert out[0, 3:].tolist()[-2:] == full[3:5] and out.shape[1] <= 3 + 5
    # two rows: the one that stops first is padded
    out = m.generate([[5, 6, 7], [1, 1, 1]], max_new_tokens=8, eos_token_id=full[0], pad_token_id=0)
    assert out[0, 3:].tolist() == [full[0]] + [0] * (out.shape[1] - 4)


def test_bad_generation_arguments(debug_model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Qwen25ValueError, match="temperature"):
        debug_model.generate([[1, 2]], do_sample=True, temperature=0.0)
    with pytest.raises(Qwen25ValueError, match="top_p"):
        debug_model.generate([[1, 2]], do_sample=True, top_p=1.5)
    with pytest.raises(Qwen25ValueError, match="at least one token"):
        debug_model.generate([[1, 2], []])
    with pytest.raises(Qwen25ValueError, match="token id 151936"):
        debug_model.generate([[1, 151936]])
    with pytest.raises(Qwen25ValueError, match="past the 4096 positions"):
        debug_model.generate([[1, 2, 3]], max_new_tokens=4094)


def test_stream_text_equals_decode(debug_model, tok) -> None:  # type: ignore[no-untyped-def]
    prompt = tok.encode("Once upon a time")
    ids = debug_model.generate([prompt], max_new_tokens=20, eos_token_id=None)[0, len(prompt):].tolist()
    text = "".join(stream_text(debug_model, tok, prompt, max_new_tokens=20, eos_token_id=None,
                               skip_special_tokens=False))
    assert text == tok.decode(ids)
    # a stop string cuts the text before it
    if len(text) > 4:
        stop = text[2:4]
        cut = "".join(stream_text(debug_model, tok, prompt, max_new_tokens=20, eos_token_id=None,
                                  skip_special_tokens=False, stop_strings=[stop]))
        assert cut == text[: text.find(stop)]


def test_cli_generate(tmp_path, debug_model, tok) -> None:  # type: ignore[no-untyped-def]
    from qwen25.cli import main

    debug_model.save_pretrained(tmp_path)
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["generate", "Hello", "--model", str(tmp_path), "--max-new-tokens", "6"])
    assert rc == 0
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hello"}], add_generation_prompt=True)
    stops = {151643, 151645}
    ids = debug_model.generate([prompt], max_new_tokens=6, eos_token_id=sorted(stops))[0, len(prompt):].tolist()
    ids = ids[: next((i for i, t in enumerate(ids) if t in stops), len(ids))]
    assert buf.getvalue() == tok.decode(ids, skip_special_tokens=True) + "\n"
    assert main(["generate", "Hello", "--model", str(tmp_path / "missing")]) == 1


def test_cli_chat_two_turns(tmp_path, debug_model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from qwen25.cli import main

    debug_model.save_pretrained(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n/reset\nagain\n/exit\nnever read\n"))
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["chat", "--model", str(tmp_path), "--max-new-tokens", "3"])
    assert rc == 0
    assert buf.getvalue().count("\n") >= 2  # two replies, each ending in a newline


def test_ops_are_swappable(debug_model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Kernels replace the module-level ops by assignment; the model picks them up."""
    from qwen25.model import qwen2

    calls = {"rms_norm": 0, "apply_rope": 0, "swiglu": 0}
    for name in calls:
        orig = getattr(qwen2, name)

        def wrapped(*a, _orig=orig, _name=name):  # type: ignore[no-untyped-def]
            calls[_name] += 1
            return _orig(*a)

        monkeypatch.setattr(qwen2, name, wrapped)
    with torch.no_grad():
        debug_model(torch.tensor([[1, 2, 3]]))
    assert calls == {"rms_norm": 2 * 2 + 1, "apply_rope": 2, "swiglu": 2}
