"""`qwen25 data run`: nothing is lost (every record packed or removed with stage and reason,
counts add up), packed shards hold exactly the kept documents' tokens, reruns resume, bad lines
name file:line."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest

from qwen25.cli import main
from qwen25.data import PackedDataset
from qwen25.data.pipeline import run_pipeline
from qwen25.errors import FormatError, Qwen25ValueError

VOCAB = (
    "town founded farmers hills river market square fair music food autumn children swim mill bridge "
    "visitors bread bakery winter streets quiet snow library maps roads centuries church garden school "
    "teacher doctor harbour boats fishermen weather summer festival dancing painter museum station "
    "train travel family history kitchen recipe orchard apples pears honey candles lantern forest"
).split()
STOP = "the of and to with that have be".split()


def good_doc(rng: random.Random, tag: str) -> str:
    lines = []
    for _ in range(6):
        words = [rng.choice(VOCAB) if rng.random() < 0.7 else rng.choice(STOP) for _ in range(rng.randint(12, 16))]
        lines.append(" ".join(words).capitalize() + ".")
    return "\n".join(lines) + f"\nThis is document {tag} and it ends with a full stop."


def write_corpus(tmp_path, seed=0):
    rng = random.Random(seed)
    web, code = [], []
    for i in range(30):
        web.append({"id": f"w{i}", "text": good_doc(rng, f"w{i}")})
    web.append({"id": "dup", "text": web[3]["text"]})  # exact duplicate
    near = web[5]["text"].replace("full stop", "full  stop!")  # normalises to the same shingles
    web.append({"id": "near", "text": near + " "})
    web.append({"id": "short", "text": "too short"})  # Gopher: short document
    for i in range(12):
        code.append({"id": f"c{i}", "text": good_doc(rng, f"c{i}")})
    (tmp_path / "web").mkdir()
    (tmp_path / "code").mkdir()
    with open(tmp_path / "web" / "a.jsonl", "w") as f:
        for r in web[:20]:
            f.write(json.dumps(r) + "\n")
    with open(tmp_path / "web" / "b.jsonl", "w") as f:
        for r in web[20:]:
            f.write(json.dumps(r) + "\n")
        f.write("\n")  # blank line: not a record
    with open(tmp_path / "code" / "c.jsonl", "w") as f:
        for r in code:
            f.write(json.dumps(r) + "\n")
    return web, code


CONFIG = """
[pipeline]
output = "out"
batch_size = 7
num_threads = 2

[[sources]]
name = "web"
paths = ["web/*.jsonl"]
id_field = "id"

[[sources]]
name = "code"
paths = ["code/*.jsonl"]
id_field = "id"
domain = "code"

[filter.default]
c4 = false

[dedup]
exact = true
minhash = true
mem_budget = 2000

[mix]
weights = {{ web = 0.75, code = 0.25 }}
max_repeat = {max_repeat}
mode = "smooth"

[pack]
seq_len = 64
seqs_per_shard = 4
"""


def read_jsonl(p):
    return [json.loads(x) for x in open(p)]


@pytest.mark.parametrize("max_repeat", [1.0, 2.0])
def test_nothing_lost_and_tokens_exact(tmp_path, tok, max_repeat):
    web, code = write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=max_repeat))
    rep = run_pipeline(cfg, progress=False)
    out = tmp_path / "out"
    kept = read_jsonl(out / "kept.jsonl")
    removed = read_jsonl(out / "removed.jsonl")
    all_recs = {(r["source"], r["file"], r["line"]) for r in kept + removed}
    n_in = len(web) + len(code)
    assert rep["documents_in"] == n_in
    # each input record appears exactly once among first placements and removals
    firsts = [(r["source"], r["file"], r["line"]) for r in kept if r["repeat"] == 0]
    gone = [(r["source"], r["file"], r["line"]) for r in removed]
    assert len(firsts) + len(gone) == n_in == len(all_recs)
    assert not set(firsts) & set(gone)
    assert rep["documents_packed"] + rep["documents_removed"] == n_in
    assert sum(sum(v.values()) for v in rep["removed_by_stage"].values()) == len(removed)
    why = {r.get("id"): (r["stage"], r["reason"]) for r in removed}
    assert why["dup"][0] == "exact_dedup" and why["near"][0] == "minhash_dedup"
    assert why["short"] == ("filter", "gopher_repetition:top_2_gram")  # datatrove order: repetition first
    # packed tokens are exactly the kept documents', in kept order (repeats included)
    by_key = {("web", r["id"]): r["text"] for r in web} | {("code", r["id"]): r["text"] for r in code}
    ds = PackedDataset(out / "packed")
    assert ds.num_documents == len(kept)
    for k in kept:
        want = tok.encode_ordinary(by_key[(k["source"], k["id"])])
        assert ds.document(k["doc"]).tolist() == want
    eos = tok.token_to_id("<|endoftext|>")
    flat = np.concatenate([ds[i] for i in range(len(ds))])
    want_all = [t for k in kept for t in tok.encode_ordinary(by_key[(k["source"], k["id"])])]
    assert flat[flat != eos].tolist() == want_all
    doms = Counter(k["domain"] for k in kept)
    if max_repeat == 1.0:
        assert rep["repeats"] == 0 and doms["web"] > 0 and doms["code"] > 0
        assert any(r["stage"] == "mix" for r in removed)  # the larger domain was down-sampled
    else:
        assert rep["repeats"] > 0  # code is repeated up to the cap to reach 25%
    assert rep["decontaminate"].startswith(("skipped", "ran", "disabled"))
    # tokens per domain (repeats included) add up to the packed document tokens
    assert sum(rep["pack"]["tokens_by_domain"].values()) == rep["pack"]["document_tokens"] == len(want_all)


def test_resume_and_cli(tmp_path, capsys):
    write_corpus(tmp_path, seed=1)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0))
    assert main(["data", "run", str(cfg), "--no-progress"]) == 0
    first = (tmp_path / "out" / "kept.jsonl").read_text()
    shard0 = (tmp_path / "out" / "packed" / "shard_00000.bin").read_bytes()
    # a crash after the scan phase: the rerun resumes from the saved state
    st = json.loads((tmp_path / "out" / "state.json").read_text())
    st["done"] = ["scan"]
    (tmp_path / "out" / "state.json").write_text(json.dumps(st))
    (tmp_path / "out" / "kept.jsonl").unlink()
    capsys.readouterr()
    assert main(["data", "run", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "scan: already done" in err
    assert (tmp_path / "out" / "kept.jsonl").read_text() == first
    assert (tmp_path / "out" / "packed" / "shard_00000.bin").read_bytes() == shard0
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_bad_lines_and_config_errors(tmp_path, capsys):
    write_corpus(tmp_path)
    with open(tmp_path / "web" / "b.jsonl", "a") as f:
        f.write("{not json\n")
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0))
    with pytest.raises(FormatError, match=r"b\.jsonl:15"):
        run_pipeline(cfg, progress=False)
    assert main(["data", "run", str(cfg), "--no-progress"]) == 1
    assert "b.jsonl:15" in capsys.readouterr().err
    cfg.write_text(CONFIG.format(max_repeat=1.0).replace('batch_size = 7', 'batch_size = 7\non_bad_line = "skip"'))
    rep = run_pipeline(cfg, progress=False)
    assert rep["removed_by_stage"]["read"] == {"bad_line": 1}
    bad = tmp_path / "bad.toml"
    bad.write_text("[pipeline]\noutput = \n")
    with pytest.raises(FormatError, match=r"bad\.toml:2"):
        run_pipeline(bad)
    bad.write_text('[pipeline]\noutput = "o"\n[dedupe]\n')
    with pytest.raises(Qwen25ValueError, match="unknown section"):
        run_pipeline(bad)


def test_stage_commands(tmp_path):
    write_corpus(tmp_path)
    src = str(tmp_path / "web" / "a.jsonl"), str(tmp_path / "web" / "b.jsonl")
    assert main(["data", "filter", *src, "-o", str(tmp_path / "f.jsonl"), "--removed", str(tmp_path / "fr.jsonl")]) == 0
    n_f, n_fr = len(read_jsonl(tmp_path / "f.jsonl")), len(read_jsonl(tmp_path / "fr.jsonl"))
    assert n_f + n_fr == 33
    assert main(["data", "dedup", str(tmp_path / "f.jsonl"), "-o", str(tmp_path / "d.jsonl"), "--removed", str(tmp_path / "dr.jsonl")]) == 0
    stages = Counter(r["stage"] for r in read_jsonl(tmp_path / "dr.jsonl"))
    assert stages == {"exact_dedup": 1, "minhash_dedup": 1}
    assert main(["data", "pack", str(tmp_path / "d.jsonl"), "-o", str(tmp_path / "p"), "--seq-len", "32"]) == 0
    assert PackedDataset(tmp_path / "p").num_documents == n_f - 2


def test_decontaminate_hook(tmp_path, monkeypatch):
    import qwen25.data as qd

    class FakeDecontaminator:  # stands in for the decontamination issue's engine
        def __init__(self, test_set):
            self.needles = test_set  # a list of test texts

        def check(self, texts, *, num_threads=None):  # Decontaminator.check's keywords
            return [next((("match", n) for n in self.needles if n in t), None) for t in texts]

    monkeypatch.setattr(qd, "Decontaminator", FakeDecontaminator, raising=False)
    web, code = write_corpus(tmp_path)
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0) + '\n[decontaminate]\noptions = { test_set = ["document c3 "] }\n')
    rep = run_pipeline(cfg, progress=False)
    assert rep["decontaminate"] == "ran Decontaminator.check"
    assert rep["removed_by_stage"]["decontaminate"] == {"benchmark_overlap": 1}
    removed = read_jsonl(tmp_path / "out" / "removed.jsonl")
    assert [r["id"] for r in removed if r["stage"] == "decontaminate"] == ["c3"]
    assert rep["documents_packed"] + rep["documents_removed"] == len(web) + len(code)


def test_decontaminate_stage_with_the_real_engine(tmp_path):
    """The real Decontaminator against HumanEval: a record carrying a HumanEval problem is removed
    at the decontaminate stage; the others are not; nothing is lost."""
    from qwen25.data import benchmarks

    problem = benchmarks.load("humaneval")[3]["text"]
    web, code = write_corpus(tmp_path)
    leak = good_doc(random.Random(9), "leak") + "\n" + problem + "\n" + good_doc(random.Random(8), "leak2")
    with open(tmp_path / "code" / "c.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "leak", "text": leak}) + "\n")
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(CONFIG.format(max_repeat=1.0) + '\n[decontaminate]\noptions = { test_set = "humaneval" }\n')
    rep = run_pipeline(cfg, progress=False)
    assert rep["decontaminate"] == "ran Decontaminator.check"
    removed = read_jsonl(tmp_path / "out" / "removed.jsonl")
    assert [r["id"] for r in removed if r["stage"] == "decontaminate"] == ["leak"]
    assert rep["documents_packed"] + rep["documents_removed"] == len(web) + len(code) + 1
