"""The standalone stage commands of `qwen25 data`: mix (token shares checked with HF tokenizers as
the independent token counter), classify train/predict, and the bad-line and nothing-lost
contracts of filter, dedup, mix and pack."""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest

from qwen25.cli import main
from qwen25.data import PackedDataset

WORDS = "river market bread winter garden music story harbour lantern orchard".split()


def write_source(path, name, n, lo, hi, seed):
    rng = random.Random(seed)
    recs = [{"id": f"{name}{i}", "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))} for i in range(n)]
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return recs


def read_jsonl(p):
    return [json.loads(x) for x in open(p)]


@pytest.fixture
def sources(tmp_path):
    (tmp_path / "web").mkdir()
    web = write_source(tmp_path / "web" / "a.jsonl", "w", 40, 20, 60, 1)
    web += write_source(tmp_path / "web" / "b.jsonl", "v", 20, 20, 60, 2)
    code = write_source(tmp_path / "code.jsonl", "c", 12, 150, 250, 3)
    return tmp_path, web, code


def hf_len(hf_tok, text):
    return len(hf_tok.encode(text, add_special_tokens=False).ids)


@pytest.mark.parametrize("max_repeat,weights", [(1.0, {"web": 0.6, "code": 0.4}), (2.0, {"web": 0.3, "code": 0.7})])
def test_mix_token_shares_and_nothing_lost(sources, hf_tok, max_repeat, weights):
    d, web, code = sources
    out, rem, rep = d / "mixed.jsonl", d / "removed.jsonl", d / "report.json"
    wspec = ",".join(f"{k}={v}" for k, v in weights.items())
    args = ["data", "mix", "--source", f"web={d}/web/*.jsonl", "--source", f"code={d}/code.jsonl", "--weights", wspec,
            "--max-repeat", str(max_repeat), "-o", str(out), "--removed", str(rem), "--report", str(rep), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    mixed, removed, report = read_jsonl(out), read_jsonl(rem), json.load(open(rep))
    # token shares, counted independently with HF tokenizers on the output texts
    toks = Counter()
    longest = Counter()
    for r in mixed:
        n = hf_len(hf_tok, r["text"])
        toks[r["_mix"]["source"]] += n
        longest[r["_mix"]["source"]] = max(longest[r["_mix"]["source"]], n)
    total = sum(toks.values())
    for name, w in weights.items():
        # within half a document of the quota, i.e. one longest document of slack on the share
        assert abs(toks[name] / total - w) <= (longest["web"] + longest["code"]) / total, (name, toks)
        assert report["sources"][name]["size_out"] == toks[name]
    # the budget is the largest that meets the weights within the cap: some source is at its cap
    size_in = {"web": sum(hf_len(hf_tok, r["text"]) for r in web), "code": sum(hf_len(hf_tok, r["text"]) for r in code)}
    assert any(abs(toks[n] - max_repeat * size_in[n]) <= longest[n] for n in weights)
    # nothing lost: every input record is in the output or removed; repeats within the cap
    seen = Counter((r["_mix"]["file"], r["_mix"]["line"]) for r in mixed)
    assert max(seen.values()) <= math.ceil(max_repeat)
    gone = {(r["file"], r["line"]) for r in removed}
    assert all(r["stage"] == "mix" and r["reason"] == "downsampled" for r in removed)
    assert not (set(seen) & gone)
    assert len(set(seen)) + len(gone) == len(web) + len(code)
    # records keep their fields; a source's documents come in input order, cycling for repeats
    by_src = {"web": [r["id"] for r in web], "code": [r["id"] for r in code]}
    for name, ids in by_src.items():
        got = [r["id"] for r in mixed if r["_mix"]["source"] == name]
        assert got == [ids[k % len(ids)] for k in range(len(got))]
    # deterministic: the same command gives the same bytes
    first = out.read_bytes()
    assert main(args) == 0
    assert out.read_bytes() == first


def test_mix_docs_unit_temperature_and_smooth_order(sources):
    d, web, code = sources
    out = d / "m.jsonl"
    base = ["data", "mix", "--source", f"web={d}/web/*.jsonl", "--source", f"code={d}/code.jsonl", "-o", str(out), "--no-progress"]
    assert main([*base, "--unit", "docs", "--weights", "web=0.5,code=0.5"]) == 0
    got = Counter(r["_mix"]["source"] for r in read_jsonl(out))
    assert got == {"web": 12, "code": 12}  # code (12 docs) is the binding source at max_repeat 1
    # smooth interleaving: every prefix is within two documents of its target count
    names = [r["_mix"]["source"] for r in read_jsonl(out)]
    for k in range(1, len(names) + 1):
        assert abs(names[:k].count("web") - k / 2) <= 2
    # temperature: p ~ n^(1/T); T=1 keeps the natural proportions, so everything is taken once
    assert main([*base, "--unit", "docs", "--temperature", "1"]) == 0
    assert Counter(r["_mix"]["source"] for r in read_jsonl(out)) == {"web": 60, "code": 12}


def test_mix_bad_input(sources, capsys):
    d, web, code = sources
    with open(d / "code.jsonl", "a") as f:
        f.write("{not json\n")
    base = ["data", "mix", "--source", f"web={d}/web/*.jsonl", "--source", f"code={d}/code.jsonl", "-o", str(d / "m.jsonl"), "--no-progress"]
    assert main([*base, "--unit", "docs"]) == 1
    assert f"code.jsonl:{len(code) + 1}:" in capsys.readouterr().err
    assert not (d / "m.jsonl").exists()
    assert main([*base, "--unit", "docs", "--skip-bad", "--removed", str(d / "r.jsonl")]) == 0
    bad = [r for r in read_jsonl(d / "r.jsonl") if r["stage"] == "read"]
    assert [(r["line"], r["source"]) for r in bad] == [(len(code) + 1, "code")]
    assert main([*base, "--weights", "web=1,nope=1"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main([*base, "--weights", "web=x"]) == 1
    assert "web=x" in capsys.readouterr().err
    assert main(["data", "mix", "--source", f"web={d}/missing*.jsonl", "-o", str(d / "m.jsonl")]) == 1
    assert "missing" in capsys.readouterr().err


def classify_corpus(path, n, seed):
    rng = random.Random(seed)
    code = "def return import class self lambda yield print while none".split()
    prose = "the town river market people story garden bread winter music".split()
    recs = []
    for i in range(n):
        lab, vocab = rng.choice([("code", code), ("web", prose)])
        words = [rng.choice(vocab) if rng.random() < 0.7 else rng.choice(code + prose) for _ in range(25)]
        recs.append({"id": i, "text": " ".join(words), "domain": lab})
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return recs


def test_classify_train_and_predict(tmp_path, capsys):
    train = classify_corpus(tmp_path / "train.jsonl", 300, 0)
    test = classify_corpus(tmp_path / "test.jsonl", 100, 1)
    model = tmp_path / "domain.bin"
    assert main(["data", "classify", "train", str(tmp_path / "train.jsonl"), "-o", str(model), "--valid", str(tmp_path / "test.jsonl"),
                 "--epochs", "5", "--dim", "4096", "--no-progress"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "trained on 300 records" in err and "held-out accuracy" in err
    assert len(train) == 300
    # predict on records without labels: the label field is added, other fields are kept
    unlabelled = tmp_path / "u.jsonl"
    with open(unlabelled, "w") as f:
        for r in test:
            f.write(json.dumps({"id": r["id"], "text": r["text"]}) + "\n")
    out = tmp_path / "labelled.jsonl"
    assert main(["data", "classify", "predict", str(unlabelled), "--model", str(model), "-o", str(out), "--scores", "--no-progress"]) == 0
    got = read_jsonl(out)
    assert [r["id"] for r in got] == [r["id"] for r in test]
    acc = sum(g["domain"] == r["domain"] for g, r in zip(got, test)) / len(test)
    assert acc >= 0.9  # the generator's labels are the reference
    for g in got:
        s = g["domain_scores"]
        assert set(s) == {"code", "web"} and abs(sum(s.values()) - 1) < 1e-3 and max(s, key=s.get) == g["domain"]
    # a record without a label cannot train: file:line
    with open(tmp_path / "bad.jsonl", "w") as f:
        f.write(json.dumps({"text": "x", "domain": "web"}) + "\n" + json.dumps({"text": "y"}) + "\n")
    assert main(["data", "classify", "train", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "m2.bin"), "--no-progress"]) == 1
    assert "bad.jsonl:2:" in capsys.readouterr().err
    assert main(["data", "classify", "predict", str(unlabelled), "--model", str(tmp_path / "nope.bin"), "-o", str(out)]) == 1


def test_stage_commands_account_for_bad_lines(tmp_path, capsys):
    rng = random.Random(5)
    docs = [" ".join(rng.choice(WORDS + ["the", "and", "of"]) for _ in range(80)) + "." for _ in range(6)]
    lines = [json.dumps({"text": t}) for t in docs]
    lines.insert(2, json.dumps({"txt": "wrong field"}))
    lines.insert(4, "\xff not json")
    lines.append(json.dumps({"text": docs[1]}))  # exact duplicate of line 2
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    src = str(tmp_path / "in.jsonl")
    for stage in ("filter", "dedup"):
        assert main(["data", stage, src, "-o", str(tmp_path / f"{stage}.jsonl"), "--no-progress"]) == 1
        assert "in.jsonl:3:" in capsys.readouterr().err
        rem = tmp_path / f"{stage}.removed.jsonl"
        assert main(["data", stage, src, "-o", str(tmp_path / f"{stage}.jsonl"), "--removed", str(rem), "--skip-bad", "--no-progress"]) == 0
        removed = read_jsonl(rem)
        assert [(r["line"], r["stage"]) for r in removed if r["stage"] == "read"] == [(3, "read"), (5, "read")]
        assert len(read_jsonl(tmp_path / f"{stage}.jsonl")) + len(removed) == len(lines)
    dedup_removed = [r for r in read_jsonl(tmp_path / "dedup.removed.jsonl") if r["stage"] != "read"]
    assert [(r["line"], r["stage"], r["reason"]) for r in dedup_removed] == [(9, "exact_dedup", f"duplicate_of {src}:2")]
    rep = tmp_path / "dedup.json"
    assert main(["data", "dedup", src, "-o", str(tmp_path / "d2.jsonl"), "--skip-bad", "--report", str(rep), "--no-progress"]) == 0
    rep = json.loads(rep.read_text())
    assert rep["exact_clusters"] == [{"first": f"{src}:2", "size": 2}] and rep["near_clusters"] == []
    assert rep["records"] == 7 and rep["kept"] == 6 and rep["bad_lines"] == 2
    assert main(["data", "pack", src, "-o", str(tmp_path / "p"), "--seq-len", "64", "--skip-bad", "--no-progress"]) == 0
    assert PackedDataset(tmp_path / "p").num_documents == len(lines) - 2
    assert '"bad_lines_skipped": 2' in capsys.readouterr().err


def test_dedup_report_names_both_clusters(tmp_path):
    from tests.unit.test_pipeline import write_corpus

    write_corpus(tmp_path)  # web[3] is copied exactly (b.jsonl:11), web[5] nearly (b.jsonl:12)
    a, b = str(tmp_path / "web" / "a.jsonl"), str(tmp_path / "web" / "b.jsonl")
    rep = tmp_path / "rep.json"
    assert main(["data", "dedup", a, b, "-o", str(tmp_path / "o.jsonl"), "--removed", str(tmp_path / "r.jsonl"),
                 "--report", str(rep), "--no-progress"]) == 0  # fmt: skip
    r = json.loads(rep.read_text())
    assert r["exact_clusters"] == [{"first": f"{a}:4", "size": 2}]
    assert r["near_clusters"] == [{"first": f"{a}:6", "size": 2}]
    assert [(x["line"], x["stage"]) for x in read_jsonl(tmp_path / "r.jsonl")] == [(11, "exact_dedup"), (12, "minhash_dedup")]


def utf8_ok(obj):
    """The reference for a writable record: it re-serializes as UTF-8 (a lone surrogate cannot)."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def test_lone_surrogates_and_bad_lines_are_accounted_for_by_every_stage(tmp_path, capsys, monkeypatch):
    rng = random.Random(7)
    docs = [" ".join(rng.choice(WORDS + ["the", "and", "of"]) for _ in range(60)) + "." for _ in range(5)]
    lines = [json.dumps({"id": i, "text": t}) for i, t in enumerate(docs)]
    lines.insert(1, json.dumps({"id": "s1", "text": "a \ud800 b"}))  # lone high surrogate in the text
    lines.insert(3, json.dumps({"id": "s2", "text": "fine text", "meta": {"tags": ["x", "\udc00"]}}))  # nested
    lines.insert(4, json.dumps({"id": "pair", "text": "an emoji \U0001f600 is a valid pair"}))  # \ud83d\ude00: fine
    lines.insert(6, "{not json")
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    assert "\\ud800" in lines[1] and "\\ud83d\\ude00" in lines[4]  # written as JSON escapes
    want_bad = [n for n, ln in enumerate(lines, 1) if ln.startswith("{not") or not utf8_ok(json.loads(ln))]
    assert want_bad == [2, 4, 7]
    n_records = len(lines)

    # a classifier for `classify predict`, and a stand-in model and scorer for `data score`
    classify_corpus(tmp_path / "train.jsonl", 80, 0)
    model = tmp_path / "domain.bin"
    assert main(["data", "classify", "train", str(tmp_path / "train.jsonl"), "-o", str(model), "--dim", "1024", "--no-progress"]) == 0

    class Model:
        def eval(self):
            return self

    class Scorer:  # deterministic: the text's length
        dimensions = ["length"]

        def __init__(self, *a, **k):
            pass

        def score(self, texts):
            return [[float(len(t))] for t in texts]

    import qwen25.data.classify
    import qwen25.model

    monkeypatch.setattr(qwen25.model.Qwen2ForCausalLM, "from_pretrained", classmethod(lambda cls, *a, **k: Model()))
    monkeypatch.setattr(qwen25.data.classify, "LMScorer", Scorer)

    stages = {
        "filter": (["data", "filter"], "o.jsonl"),
        "dedup": (["data", "dedup"], "o.jsonl"),
        "pack": (["data", "pack"], "packed"),
        "classify": (["data", "classify", "predict", "--model", str(model)], "o.jsonl"),
        "score": (["data", "score", "--model", str(tmp_path / "no-such-model"), "--device", "cpu"], "o.jsonl"),
        "mix": (["data", "mix", "--source", f"all={src}", "--unit", "docs"], "o.jsonl"),
    }
    for stage, (cmd, out_name) in stages.items():
        out, rem = tmp_path / stage / out_name, tmp_path / stage / "removed.jsonl"
        (tmp_path / stage).mkdir()
        args = [*cmd, *([] if stage == "mix" else [str(src)]), "-o", str(out), "--no-progress"]
        assert main(args) == 1, stage
        err = capsys.readouterr().err
        assert f"{src}:2: lone surrogate U+D800" in err and "Traceback" not in err, (stage, err)
        assert main([*args, "--skip-bad", "--removed", str(rem)]) == 0, stage
        removed = read_jsonl(rem)
        read = [r for r in removed if r["stage"] == "read"]
        assert [r["line"] for r in read] == want_bad, stage
        assert "lone surrogate U+D800" in read[0]["reason"] and "lone surrogate U+DC00" in read[1]["reason"], stage
        assert all(r["file"] == str(src) for r in read)
        if stage == "pack":
            got = PackedDataset(out).num_documents
        else:
            kept = read_jsonl(out)
            got = len(kept)
            if stage != "filter":  # (the filters drop it: too short)
                assert "an emoji \U0001f600 is a valid pair" in [r["text"] for r in kept], stage
        assert got + len(removed) == n_records, (stage, got, len(removed))
    capsys.readouterr()


def gopher_stop_words(text):
    """Gopher's stop-word count as datatrove 0.10.1 takes it (``len(stop_words & set(words))``): the
    distinct stop words among the words, punctuation split off (so "and." counts)."""
    return len({w.strip(".,;:!?") for w in text.split()} & {"the", "be", "to", "of", "and", "that", "have", "with"})


def test_filter_config_and_stats(tmp_path, capsys):
    rng = random.Random(5)
    # one sentence per document: C4 drops them by default (fewer than 5 sentences)
    docs = [" ".join(rng.choice(WORDS + ["the", "and", "of"]) for _ in range(80)) + "." for _ in range(4)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(docs)))
    out, rem = tmp_path / "o.jsonl", tmp_path / "r.jsonl"
    base = ["data", "filter", str(src), "-o", str(out), "--removed", str(rem), "--no-progress"]
    assert main([*base, "--stats-field", "qstats"]) == 0
    removed = read_jsonl(rem)
    assert read_jsonl(out) == [] and [r["reason"] for r in removed] == ["c4:too_few_sentences"] * 4
    for r, t in zip(removed, docs):  # statistics of the dropped documents, up to the filter that dropped them
        assert r["qstats"]["c4.sentences"] == 1
        assert r["qstats"]["gopher_quality.stop_words"] == gopher_stop_words(t)
    # the same thresholds from a TOML file and from a JSON file: C4 asks for one sentence
    (tmp_path / "f.toml").write_text("[c4]\nmin_num_sentences = 1\n[gopher_repetition]\ndup_line_frac = 0.5\n")
    (tmp_path / "f.json").write_text(json.dumps({"c4": {"min_num_sentences": 1}, "gopher_repetition": {"dup_line_frac": 0.5}}))
    for cfg in ("f.toml", "f.json"):
        assert main([*base, "--config", str(tmp_path / cfg), "--stats-field", "qstats"]) == 0
        kept = read_jsonl(out)
        assert [r["id"] for r in kept] == [0, 1, 2, 3] and read_jsonl(rem) == []
        for r, t in zip(kept, docs):
            s = r["qstats"]
            assert r["text"] == t
            assert s["gopher_quality.stop_words"] == gopher_stop_words(t)
            assert s["gopher_quality.n_non_symbol_words"] == len(t.split())
            assert s["c4.lines"] == 1 and s["c4.sentences"] == 1
    # a filter can be switched off
    (tmp_path / "off.toml").write_text("c4 = false\n")
    assert main([*base, "--config", str(tmp_path / "off.toml")]) == 0
    assert len(read_jsonl(out)) == 4 and "qstats" not in read_jsonl(out)[0]
    capsys.readouterr()
    # errors name the file (and the line where there is one)
    (tmp_path / "unknown.toml").write_text("[c4]\nmin_sentences = 1\n")
    (tmp_path / "broken.json").write_text('{"c4":\n {"min_num_sentences": }}')
    (tmp_path / "broken.toml").write_text("[c4\n")
    (tmp_path / "nofilter.json").write_text(json.dumps({"c5": {}}))
    for name, what in (("unknown.toml", "min_sentences"), ("broken.json", "broken.json:2:"), ("broken.toml", "TOML"),
                       ("nofilter.json", "c5"), ("missing.toml", "missing.toml")):  # fmt: skip
        assert main([*base, "--config", str(tmp_path / name)]) == 1, name
        err = capsys.readouterr().err
        assert name in err and what in err, (name, err)
    assert main([*base, "--stats-field", "text"]) == 1


def words_of(seed, n):
    rng = random.Random(seed)
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(n)]


def shingles(text, n, lower=True):
    w = (text.lower() if lower else text).split()
    return {tuple(w[i : i + n]) for i in range(max(1, len(w) - n + 1))}


def jaccard(a, b):
    return len(a & b) / len(a | b)


def test_dedup_options(tmp_path, capsys):
    def run(docs, *opts):
        src = tmp_path / "in.jsonl"
        src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(docs)))
        rep = tmp_path / "rep.json"
        args = ["data", "dedup", str(src), "-o", str(tmp_path / "o.jsonl"), "--report", str(rep), "--no-progress", *opts]
        assert main(args) == 0, opts
        return [r["id"] for r in read_jsonl(tmp_path / "o.jsonl")], json.loads(rep.read_text())

    # exact normalisation: the reference groups by the normalised text, first occurrence kept
    docs = ["Hello  World", "hello world", "HELLO\tWORLD\n", "hello, world!", "Hello World"]
    for opts, norm in (
        ((), lambda t: t),
        (("--exact-lowercase",), str.lower),
        (("--exact-lowercase", "--exact-collapse-ws"), lambda t: " ".join(t.lower().split())),
    ):
        first = {}
        for i, t in enumerate(docs):
            first.setdefault(norm(t), i)
        kept, rep = run(docs, "--no-minhash", *opts)
        assert kept == sorted(first.values()), opts
        assert rep["config"]["minhash"] is None and rep["config"]["exact"]["lowercase"] == ("--exact-lowercase" in opts)
    # MinHash normalisation: an upper-cased copy has Jaccard 1 after lowercasing, 0 without
    a = " ".join(words_of(1, 40))
    assert jaccard(shingles(a, 5), shingles(a.upper(), 5)) == 1.0
    assert jaccard(shingles(a, 5, False), shingles(a.upper(), 5, False)) == 0.0
    assert run([a, a.upper()], "--no-exact")[0] == [0]
    assert run([a, a.upper()], "--no-exact", "--no-minhash-lowercase")[0] == [0, 1]
    # ngram: the words reversed share every 1-gram and no 5-gram
    rev = " ".join(reversed(a.split()))
    assert jaccard(shingles(a, 1), shingles(rev, 1)) == 1.0 and jaccard(shingles(a, 5), shingles(rev, 5)) == 0.0
    assert run([a, rev])[0] == [0, 1]
    kept, rep = run([a, rev], "--ngram", "1")
    assert kept == [0] and rep["config"]["minhash"]["ngram"] == 1
    # bands x rows: pairs at Jaccard ~0.5 share a band with probability 1-(1-0.5^8)^14 ~ 0.05 under
    # 14x8, but 1-(1-0.5)^112 under 112x1
    docs, pairs = [], []
    for k in range(6):
        w = words_of(100 + k, 60)
        x, y = " ".join(w[:45]), " ".join(w[15:])
        pairs.append(jaccard(shingles(x, 1), shingles(y, 1)))
        docs += [x, y]
    assert all(0.45 <= s <= 0.55 for s in pairs), pairs
    kept_default = run(docs, "--ngram", "1")[0]
    assert len(kept_default) > 6  # not every pair is caught at 14x8 (each is, with probability ~0.05)
    kept, rep = run(docs, "--ngram", "1", "--bands", "112", "--rows", "1", "--seed", "7")
    assert kept == list(range(0, 12, 2))
    assert rep["config"]["minhash"] == {"num_perm": 112, "bands": 112, "rows": 1, "ngram": 1, "seed": 7,
                                        "lowercase": True, "strip_punct": True, "collapse_ws": True,
                                        "datatrove_words": True, "sign_short_docs": False}  # fmt: skip
    # bad options are errors that name them
    src = str(tmp_path / "in.jsonl")
    for opts, what in ((["--num-perm", "64"], "num_perm"), (["--ngram", "0"], "ngram"), (["--seed", "-1"], "seed")):
        capsys.readouterr()
        assert main(["data", "dedup", src, "-o", str(tmp_path / "x.jsonl"), "--no-progress", *opts]) == 1
        assert what in capsys.readouterr().err


def test_mix_weighted_source_without_records(sources, capsys):
    d, web, code = sources
    (d / "empty.jsonl").write_text("")
    out, rep = d / "m.jsonl", d / "rep.json"
    base = ["data", "mix", "--source", f"web={d}/web/*.jsonl", "--source", f"none={d}/empty.jsonl", "-o", str(out),
            "--unit", "docs", "--report", str(rep), "--no-progress"]  # fmt: skip
    code_ = main([*base, "--weights", "web=0.7,none=0.3"])
    err = capsys.readouterr().err
    # never an empty output with exit 0: either the other sources carry the mix, with a note
    # naming the empty source, or it is an error naming it
    if code_ == 0:
        got = read_jsonl(out)
        assert got and {r["_mix"]["source"] for r in got} == {"web"}
        notes = json.loads(rep.read_text())["notes"]
        assert any("'none'" in n for n in notes) and "'none'" in err
    else:
        assert code_ == 1 and "'none'" in err and "empty.jsonl" in err and not out.exists()
    # every weighted source empty: an error naming them, no output left behind
    out2 = d / "m2.jsonl"
    assert main(["data", "mix", "--source", f"none={d}/empty.jsonl", "--weights", "none=1", "-o", str(out2),
                 "--no-progress"]) == 1  # fmt: skip
    assert "'none'" in capsys.readouterr().err
    assert not out2.exists() and not (d / "m2.jsonl.tmp").exists()
