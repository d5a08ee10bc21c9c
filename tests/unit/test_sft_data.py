"""SFT data: reading chat files (bad records named by file and line, or counted under skip_bad;
nothing dropped silently), truncation policies, packing invariants, packed rows against a
pure-Python reference, and packed = unpacked loss on our model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import qwen25
from qwen25.errors import FormatError, Qwen25ValueError
from qwen25.train.sft import (ChatData, build_example, build_examples, pack_bfd, packed_row, render_pieces,
                              tokenize_chat)

GOOD = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                  {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"},
                  {"role": "assistant", "content": "a2"}]},
    {"messages": [{"role": "user", "content": "w?"},
                  {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
                  {"role": "tool", "content": "r"}, {"role": "assistant", "content": "done"}],
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
]
BAD = [  # (record, what the error says)
    ({"messages": [{"role": "user", "content": "only a question"}]}, "no assistant turn"),
    ({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}, "unknown role 'robot'"),
    ({"messages": [{"role": "user", "content": ["a", "list"]}, {"role": "assistant", "content": "y"}]},
     "content must be a string"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": 3}]}, "content must be a string"),
    ({"text": "not a chat"}, "no 'messages'"),
    ({"messages": []}, "messages is empty"),
]


@pytest.fixture(scope="module")
def tok() -> qwen25.Tokenizer:
    return qwen25.Tokenizer.qwen25()


def write_jsonl(path: Path, records: list[Any], raw_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    for at, raw in (raw_lines or {}).items():
        lines.insert(at, raw)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- rendering
def test_pieces_render_the_package_chat_template(tok: qwen25.Tokenizer) -> None:
    for rec in GOOD:
        text = tok.apply_chat_template(rec["messages"], tools=rec.get("tools"), tokenize=False)
        pieces = render_pieces(rec["messages"], rec.get("tools"))
        assert "".join(t for t, _ in pieces) == text
        ids, labels = build_example(tok, rec["messages"], rec.get("tools"))
        assert ids == tok.encode(text)
        # the trained spans decode to exactly the assistant pieces' text
        trained = "".join(t for t, f in pieces if f)
        assert tok.decode([i for i, lab in zip(ids, labels) if lab != -100]) == trained
        assert labels[0] == -100 and all(lab in (-100, i) for i, lab in zip(ids, labels))


def test_build_example_rejects_bad_conversations(tok: qwen25.Tokenizer) -> None:
    for rec, msg in BAD:
        if "messages" not in rec:
            continue
        with pytest.raises(Qwen25ValueError, match=msg.replace("(", r"\(")):
            build_example(tok, rec["messages"])
    assert build_examples(tok, [(r["messages"], r.get("tools")) for r in GOOD]) == \
        [build_example(tok, r["messages"], r.get("tools")) for r in GOOD]


def test_other_chat_templates_are_refused(tok: qwen25.Tokenizer, tmp_path: Path) -> None:
    tok.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{% for m in messages %}{{ m.content }}{% endfor %}"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(Qwen25ValueError, match="chat_template"):
        build_example(qwen25.Tokenizer.from_pretrained(tmp_path), GOOD[0]["messages"])


# ----------------------------------------------------------------------------- reading
@pytest.mark.parametrize("k", range(len(BAD)))
def test_bad_record_names_file_and_line(tok: qwen25.Tokenizer, tmp_path: Path, k: int) -> None:
    rec, msg = BAD[k]
    path = write_jsonl(tmp_path / "chat.jsonl", GOOD + [rec] + GOOD)
    with pytest.raises(FormatError, match=f"chat.jsonl:{len(GOOD) + 1}: .*" + msg.replace("(", r"\(")) as ei:
        tokenize_chat(tok, [str(path)], max_len=512)
    assert ei.value.line == len(GOOD) + 1 and ei.value.path == str(path)


def test_malformed_json_line(tok: qwen25.Tokenizer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", GOOD, raw_lines={1: '{"messages": [oops'})
    with pytest.raises(FormatError, match="chat.jsonl:2: malformed JSON"):
        tokenize_chat(tok, [str(path)], max_len=512)


def test_skip_bad_counts_and_lists_every_record(tok: qwen25.Tokenizer, tmp_path: Path) -> None:
    records = GOOD + [r for r, _ in BAD] + GOOD
    path = write_jsonl(tmp_path / "chat.jsonl", records, raw_lines={2: "not json"})
    data = tokenize_chat(tok, [str(path)], max_len=512, skip_bad=True)
    rep = data.report
    assert rep["records"] == len(records) + 1
    assert rep["kept"] == 2 * len(GOOD) == len(data)
    assert rep["skipped"] == rep["skipped_bad"] == len(BAD) + 1
    assert rep["kept"] + rep["skipped"] == rep["records"]  # nothing dropped silently
    where = [s["where"] for s in rep["skipped_records"]]
    assert where == [f"{path}:3"] + [f"{path}:{len(GOOD) + 2 + i}" for i in range(len(BAD))]
    for s, (_, msg) in zip(rep["skipped_records"][1:], BAD):
        assert msg in s["reason"]
    # the kept conversations are the good ones, in order, each equal to build_example's
    assert [data.example(i) for i in range(len(data))] == \
        [build_example(tok, r["messages"], r.get("tools")) for r in GOOD + GOOD]
    assert data.sources[0] == f"{path}:1"


def test_truncation_policies(tok: qwen25.Tokenizer, tmp_path: Path) -> None:
    long = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "word " * 200}]}
    ctx_long = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "a"}]}
    path = write_jsonl(tmp_path / "chat.jsonl", [GOOD[0], long, GOOD[1], ctx_long])
    n_long = len(build_example(tok, long["messages"])[0])
    with pytest.raises(FormatError, match=f"chat.jsonl:2: {n_long} tokens, longer than the maximum 64"):
        tokenize_chat(tok, [str(path)], max_len=64)
    skip = tokenize_chat(tok, [str(path)], max_len=64, truncation="skip")
    assert (skip.report["kept"], skip.report["skipped_too_long"]) == (2, 2)
    assert [s["where"] for s in skip.report["skipped_records"]] == [f"{path}:2", f"{path}:4"]
    # truncate keeps the first 64 tokens; the conversation whose answer is cut away entirely is bad
    with pytest.raises(FormatError, match="chat.jsonl:4: no assistant token left"):
        tokenize_chat(tok, [str(path)], max_len=64, truncation="truncate")
    tr = tokenize_chat(tok, [str(path)], max_len=64, truncation="truncate", skip_bad=True)
    assert (tr.report["kept"], tr.report["truncated"], tr.report["skipped_bad"]) == (3, 1, 1)
    ids, labels = build_example(tok, long["messages"])
    assert tr.example(1) == (ids[:64], labels[:64])


def test_parquet_and_hf_dataset_inputs_equal_jsonl(tok: qwen25.Tokenizer, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ds_mod = pytest.importorskip("datasets")
    plain = GOOD[:2]
    jsonl = tokenize_chat(tok, [str(write_jsonl(tmp_path / "c.jsonl", plain))], max_len=512)
    pq.write_table(pa.Table.from_pylist(plain), tmp_path / "c.parquet")
    parquet = tokenize_chat(tok, [str(tmp_path / "c.parquet")], max_len=512)
    ds_mod.Dataset.from_list(plain).save_to_disk(str(tmp_path / "ds"))
    hf = tokenize_chat(tok, [str(tmp_path / "ds")], max_len=512)
    for other in (parquet, hf):
        assert [other.example(i) for i in range(len(plain))] == [jsonl.example(i) for i in range(len(plain))]
    assert parquet.sources == [f"{tmp_path / 'c.parquet'}:row 1", f"{tmp_path / 'c.parquet'}:row 2"]


def test_missing_file_and_bad_options(tok: qwen25.Tokenizer, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        tokenize_chat(tok, [str(tmp_path / "absent.jsonl")], max_len=64)
    with pytest.raises(Qwen25ValueError, match="truncation"):
        tokenize_chat(tok, [], max_len=64, truncation="cut")
    with pytest.raises(Qwen25ValueError, match="unknown file type"):
        (tmp_path / "x.txt").write_text("x")
        tokenize_chat(tok, [str(tmp_path / "x.txt")], max_len=64)


# ----------------------------------------------------------------------------- packing
@given(st.integers(1, 64).flatmap(lambda L: st.tuples(st.just(L), st.lists(st.integers(1, L), max_size=80))))
def test_pack_bfd_invariants(case: tuple[int, list[int]]) -> None:
    seq_len, lengths = case
    rows = pack_bfd(lengths, seq_len)
    flat = sorted(i for r in rows for i in r)
    assert flat == list(range(len(lengths)))  # every item exactly once
    assert all(sum(lengths[i] for i in r) <= seq_len for r in rows)
    # best fit decreasing never opens a row while an open one has room for the item
    lower = -(-sum(lengths) // seq_len)
    assert len(rows) >= lower


def test_pack_bfd_bad_lengths() -> None:
    with pytest.raises(Qwen25ValueError, match=r"lengths\[1\] = 0"):
        pack_bfd([3, 0], 8)
    with pytest.raises(Qwen25ValueError, match=r"lengths\[0\] = 9"):
        pack_bfd([9], 8)
    with pytest.raises(Qwen25ValueError, match="seq_len"):
        pack_bfd([1], 0)
    assert pack_bfd([], 8) == []


def reference_row(examples: list[tuple[list[int], list[int]]], seq_len: int, pad: int
                  ) -> tuple[list[int], list[int], list[int]]:
    """Pure Python: concatenate, restart positions, no target on each conversation's first token."""
    ids: list[int] = []
    pos: list[int] = []
    lab: list[int] = []
    for e_ids, e_lab in examples:
        ids += e_ids
        pos += list(range(len(e_ids)))
        lab += [-100] + e_lab[1:]
    n = seq_len - len(ids)
    return ids + [pad] * n, pos + list(range(n)), lab + [-100] * n


def test_packed_rows_against_reference(tok: qwen25.Tokenizer) -> None:
    import numpy as np

    exs = [build_example(tok, r["messages"], r.get("tools")) for r in GOOD * 3]
    flat_ids = [i for e in exs for i in e[0]]
    flat_lab = [x for e in exs for x in e[1]]
    offsets = np.cumsum([0] + [len(e[0]) for e in exs])
    data = ChatData(np.asarray(flat_ids), np.asarray(flat_lab), offsets, [f"c{i}" for i in range(len(exs))])
    seq_len = 400
    rows = pack_bfd([len(e[0]) for e in exs], seq_len)
    for members in rows:
        ids, pos, lab = packed_row(data, members, seq_len, pad_id=7)
        ref = reference_row([exs[k] for k in members], seq_len, 7)
        assert (ids.tolist(), pos.tolist(), lab.tolist()) == ref


def test_packed_and_unpacked_loss_are_equal(tok: qwen25.Tokenizer) -> None:
    """Per-conversation attention from restarting positions: the loss of packed rows equals the
    loss of each conversation alone (sums of cross-entropies over the same target tokens)."""
    torch = pytest.importorskip("torch")
    import numpy as np

    from qwen25.model import Qwen2ForCausalLM, Qwen25Config

    mc = Qwen25Config.from_preset("debug").replace(vocab_size=151936, torch_dtype="float32")
    model = Qwen2ForCausalLM.from_config(mc, dtype=torch.float32, seed=3).eval()
    exs = [build_example(tok, r["messages"], r.get("tools")) for r in GOOD * 2]
    data = ChatData(np.asarray([i for e in exs for i in e[0]]), np.asarray([x for e in exs for x in e[1]]),
                    np.cumsum([0] + [len(e[0]) for e in exs]), [str(i) for i in range(len(exs))])
    F = torch.nn.functional

    def ce_sum(ids: Any, pos: Any, lab: Any) -> Any:
        logits = model(torch.as_tensor(ids)[None], position_ids=torch.as_tensor(pos)[None]).logits[0, :-1]
        return F.cross_entropy(logits.double(), torch.as_tensor(lab)[1:], ignore_index=-100, reduction="sum")

    with torch.no_grad():
        alone = sum(float(ce_sum(e[0], list(range(len(e[0]))), e[1])) for e in exs)
        rows = pack_bfd([len(e[0]) for e in exs], 256)
        assert len(rows) < len(exs)
        packed = sum(float(ce_sum(*packed_row(data, r, 256, pad_id=0))) for r in rows)
    assert packed == pytest.approx(alone, rel=1e-5)
