"""``qwen25 data``: the pre-training data pipeline, and each of its stages on its own.

    qwen25 data run pipeline.toml [--stop-after filter|dedup|decontaminate|mix]
                                             the whole job, or up to a stage (see qwen25.data.pipeline)
    qwen25 data filter IN.jsonl... -o OUT.jsonl [--removed R.jsonl] [--config F.toml] [--stats-field S]
    qwen25 data dedup IN.jsonl... -o OUT.jsonl [--removed R.jsonl] [--no-exact] [--no-minhash]
                      [--exact-lowercase ...] [--num-perm 112 --bands 14 --rows 8 --ngram 5 --seed 1]
    qwen25 data classify train IN.jsonl... -o MODEL.bin [--label-field domain] [--valid V.jsonl]
    qwen25 data classify predict IN.jsonl... --model MODEL.bin -o OUT.jsonl [--scores] [--removed R.jsonl]
    qwen25 data score IN.jsonl... --model INSTRUCT_DIR -o OUT.jsonl [--dimension NAME=DESCRIPTION] [--removed R.jsonl]
    qwen25 data mix --source web=web/*.jsonl --source code=code/*.jsonl --weights web=0.7,code=0.3
                    -o MIXED.jsonl [--removed R.jsonl] [--unit tokens|docs] [--total N]
    qwen25 data pack IN.jsonl... -o DIR [--seq-len N] [--removed R.jsonl]

Input paths are globbed as a pipeline.toml's ``paths`` are (sorted matches; a pattern that matches
nothing is an error; an existing file is taken as named, brackets and all). Every stage streams its
input (bounded memory), shows a progress bar (by bytes read), names the ``file:line`` of a bad
record (``--skip-bad`` moves it to the removed list instead) and the file of a truncated or corrupt
``.gz``/``.zst`` (``--skip-bad`` keeps the records before the damage, lists the damage as a bad
line and warns), reads through the native record reader and writes through the atomic writer
(``.tmp-NAME``, renamed when complete, removed when the stage fails; :mod:`qwen25.data.stage_io`),
and accounts for every input record: it is
either in the output or in ``--removed`` with its stage and reason (the counts printed at the end
add up). A bad record is a line that is not UTF-8 JSON, not an object, lacks the text field, or
holds a string that cannot be written back as UTF-8 (a lone surrogate escape such as ``\\ud800``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

HELP = "Pre-training data pipeline: filter, dedup, decontaminate, classify, mix and pack JSONL corpora."

def _common(s: argparse.ArgumentParser, *, removed: bool = True) -> None:
    s.add_argument("--text-field", default="text", help="field holding the document text (default: text)")
    s.add_argument("--num-threads", type=int, default=None, help="threads (1-4096; default: QWEN25_NUM_THREADS or all cores)")
    s.add_argument("--batch-size", type=int, default=1000, help="documents per batch (default: 1000)")
    s.add_argument("--skip-bad", action="store_true", help="send bad lines (and the damage of a truncated .gz/.zst, after keeping the records before it) to the removed list instead of stopping")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    if removed:
        s.add_argument("--removed", help="JSONL of removed records: file, line, stage and reason")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="STAGE", required=True)
    r = sub.add_parser("run", help="run a pipeline.toml")
    r.add_argument("config", help="pipeline TOML file")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--engine", choices=("local", "ray"), default=None, help="override [pipeline] engine (local or ray)")
    r.add_argument("--stop-after", choices=("filter", "dedup", "decontaminate", "mix"), default=None,
                   help="stop after this stage, leaving its surviving documents (with their text) in "
                        "OUT/survivors.jsonl instead of mixing and packing (overrides [pipeline] stop_after)")  # fmt: skip

    s = sub.add_parser("filter", help="quality filters (Gopher repetition + quality, C4, FineWeb)")
    s.add_argument("inputs", nargs="+", help="JSONL files or globs")
    s.add_argument("-o", "--output", required=True, help="output JSONL")
    s.add_argument("--config", metavar="FILE",
                   help="thresholds: a .toml or .json file holding a pipeline's [filter.default] table (as it is "
                        "written in pipeline.toml, or just its contents), e.g. c4 = { min_num_sentences = 3 } or "
                        "gopher_quality = false (default: the published ones)")  # fmt: skip
    s.add_argument("--stats-field", metavar="NAME",
                   help="write each document's per-filter statistics to this field of kept records and of "
                        "--removed entries")  # fmt: skip
    _common(s)

    s = sub.add_parser("dedup", help="exact + MinHash dedup, first occurrence kept")
    s.add_argument("inputs", nargs="+", help="JSONL files or globs")
    s.add_argument("-o", "--output", required=True, help="output JSONL")
    s.add_argument("--no-exact", action="store_true", help="skip exact (xxh3-128) dedup")
    s.add_argument("--no-minhash", action="store_true", help="skip MinHash-LSH near-dedup (not with --no-exact)")
    s.add_argument("--mem-budget", type=int, default=1 << 30, help="bytes of LSH band records before spilling to disk")
    bo = argparse.BooleanOptionalAction
    for kind, on in (("exact", False), ("minhash", True)):
        for flag, what in (("lowercase", "lowercase"), ("strip-punct", "strip punctuation (Unicode P*)"),
                           ("collapse-ws", "collapse whitespace")):  # fmt: skip
            s.add_argument(f"--{kind}-{flag}", action=bo, default=on,
                           help=f"{kind} dedup: {what} before hashing (default: {'on' if on else 'off'})")  # fmt: skip
    s.add_argument("--minhash-datatrove-words", action=bo, default=True,
                   help="MinHash: shingle as datatrove (simplify_text, its English words); off: the switches above and "
                   "a split on spaces (default: on)")
    s.add_argument("--minhash-sign-short-docs", action=bo, default=False,
                   help="MinHash: give a text under --ngram words one shingle (default: off, as datatrove: unsigned)")
    s.add_argument("--num-perm", type=int, default=112, help="MinHash permutations, at most 8192 (default: 112)")
    s.add_argument("--bands", type=int, default=14, help="LSH bands (default: 14)")
    s.add_argument("--rows", type=int, default=8, help="rows per band; bands * rows <= num-perm (default: 8)")
    s.add_argument("--ngram", type=int, default=5, help="words per shingle (default: 5)")
    s.add_argument("--seed", type=int, default=1, help="MinHash permutation seed (default: 1)")
    s.add_argument("--report", help="JSON report: counts, and every exact and near-duplicate cluster (first record, size)")
    _common(s)

    c = sub.add_parser("classify", help="train or apply the hashed n-gram domain classifier")
    csub = c.add_subparsers(dest="classify_command", metavar="ACTION", required=True)
    t = csub.add_parser("train", help="train a DomainClassifier from labelled JSONL")
    t.add_argument("inputs", nargs="+", help="JSONL files (or globs) with a text and a label field")
    t.add_argument("-o", "--output", required=True, help="model file to write")
    t.add_argument("--label-field", default="domain", help="field holding the label (default: domain)")
    t.add_argument("--valid", nargs="*", default=[], help="held-out labelled JSONL: print accuracy on it")
    for opt, typ, hlp in (
        ("--dim", int, "hashed feature buckets (default 2**18)"),
        ("--epochs", int, "SGD epochs (default 5)"),
        ("--lr", float, "learning rate (default 0.5)"),
        ("--l2", float, "L2 penalty (default 0)"),
        ("--char-min", int, "shortest char n-gram, 0 disables (default 3)"),
        ("--char-max", int, "longest char n-gram (default 5)"),
        ("--seed", int, "shuffling seed (default 0)"),
    ):
        t.add_argument(opt, type=typ, default=None, help=hlp)
    t.add_argument("--no-word-bigrams", action="store_true", help="words only, no word bigrams")
    _common(t, removed=False)
    pr = csub.add_parser("predict", help="label JSONL records with a trained DomainClassifier")
    pr.add_argument("inputs", nargs="+", help="JSONL files or globs")
    pr.add_argument("--model", required=True, help="model file from `qwen25 data classify train`")
    pr.add_argument("-o", "--output", required=True, help="output JSONL: the records plus the label field")
    pr.add_argument("--label-field", default="domain", help="field to write the label to (default: domain)")
    pr.add_argument("--scores", action="store_true", help="also write {label: probability} to <label-field>_scores")
    _common(pr)

    sc = sub.add_parser("score", help="rate documents with a Qwen2.5 chat model (LMScorer), per dimension")
    sc.add_argument("inputs", nargs="+", help="JSONL files or globs")
    sc.add_argument("--model", required=True, help="HF checkpoint folder of an instruct model")
    sc.add_argument("-o", "--output", required=True, help="output JSONL: the records plus a scores field")
    sc.add_argument("--scores-field", default="scores", help="field to write {dimension: score} to (default: scores)")
    sc.add_argument("--dimension", action="append", metavar="NAME=DESCRIPTION",
                    help="a dimension to rate (repeatable; default: quality and educational_value)")  # fmt: skip
    sc.add_argument("--max-doc-tokens", type=int, default=2048)
    sc.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    sc.add_argument("--dtype", default=None, help="torch dtype, e.g. bfloat16 (default: the checkpoint's)")
    _common(sc)

    m = sub.add_parser("mix", help="up/down-sample sources to target proportions and interleave them")
    m.add_argument("--source", action="append", required=True, metavar="NAME=GLOB",
                   help="a source and its JSONL files (repeat the option for each source)")  # fmt: skip
    g = m.add_mutually_exclusive_group()
    g.add_argument("--weights", help="target proportions, e.g. web=0.7,code=0.3 (default: natural sizes)")
    g.add_argument("--temperature", type=float, help="temperature sampling: p ~ size^(1/T)")
    m.add_argument("-o", "--output", required=True, help="mixed JSONL")
    m.add_argument("--unit", choices=("tokens", "docs"), default="tokens",
                   help="proportions of tokens (Qwen2.5 tokenizer, as packed) or of documents (default: tokens)")  # fmt: skip
    m.add_argument("--total", type=float, default=None,
                   help="output size in --unit (default: the most that meets the weights within --max-repeat)")  # fmt: skip
    m.add_argument("--max-repeat", type=float, default=1.0, help="epochs a source may be repeated (default: 1)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--mode", choices=("smooth", "random"), default="smooth", help="interleaving (default: smooth)")
    m.add_argument("--report", help="JSON report: sizes, plan, quotas and what was taken per source")
    _common(m)

    s = sub.add_parser("pack", help="tokenize and pack into uint32 shards")
    s.add_argument("inputs", nargs="+", help="JSONL files or globs")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.add_argument("--seq-len", type=int, default=4096)
    s.add_argument("--seqs-per-shard", type=int, default=16384)
    _common(s)


# ---- reading and writing ------------------------------------------------------------------


def _expand(patterns: list[str], what: str = "input") -> list[str]:
    """Command-line inputs globbed as a pipeline.toml's ``paths`` are
    (:func:`qwen25.data.stage_io.expand_globs`)."""
    from ..data.stage_io import expand_globs

    return expand_globs(patterns, what)


def _write_json(path: str, obj: Any, **kw: Any) -> None:
    from ..data.pipeline.files import write_json

    write_json(path, obj, **kw)


def _warn_damaged(c: dict[str, Any]) -> None:
    """One warning per damaged compressed input read with --skip-bad."""
    for msg in c.get("damaged", ()):
        print(f"warning: {msg}; the records before the damage were kept", file=sys.stderr)


def _summary(stage: str, n_in: int, n_out: int, removed: Counter[str], bad: int) -> None:
    parts = [f"{stage}: {n_in} records in, {n_out} out"]
    if bad:
        parts.append(f"{bad} bad lines")
    parts += [f"{n} {why}" for why, n in sorted(removed.items(), key=lambda kv: -kv[1])]
    print(", ".join(parts), file=sys.stderr)


# ---- stages -------------------------------------------------------------------------------


def _read(a: argparse.Namespace) -> Any:
    """The reading options of a stage's job (:class:`qwen25.data.stage_jobs.ReadOptions`)."""
    from ..data.stage_jobs import ReadOptions, check_threads

    if a.batch_size < 1:
        from ..errors import Qwen25ValueError

        raise Qwen25ValueError(f"--batch-size must be >= 1, got {a.batch_size}")
    check_threads(a.num_threads, "--num-threads")
    return ReadOptions(
        text_field=a.text_field, skip_bad=a.skip_bad, progress=not a.no_progress, batch_size=a.batch_size,
        num_threads=a.num_threads, hint="" if a.skip_bad else " (--skip-bad sets bad lines aside and goes on)",
    )  # fmt: skip


def _run_filter(a: argparse.Namespace) -> int:
    from ..data.stage_jobs import filter_job, load_filter_config
    from ..errors import Qwen25ValueError

    cfg = load_filter_config(a.config) if a.config else None
    if a.stats_field is not None and a.stats_field in ("", a.text_field, "file", "line", "stage", "reason"):
        raise Qwen25ValueError(f"--stats-field must not be empty, the text field or a removed-list key, got {a.stats_field!r}")
    c = filter_job(a.inputs, a.output, removed=a.removed, config=cfg, config_name=a.config, stats_field=a.stats_field, read=_read(a))
    _warn_damaged(c)
    _summary("filter", c["records"], c["kept"], c["removed"], c["bad_lines"])
    return 0


def _run_dedup(a: argparse.Namespace) -> int:
    from ..data.stage_jobs import dedup_job
    from ..errors import Qwen25ValueError

    if a.no_exact and a.no_minhash:
        raise Qwen25ValueError("--no-exact and --no-minhash together leave nothing to do (drop one of them)")
    ex_norm = {"lowercase": a.exact_lowercase, "strip_punct": a.exact_strip_punct, "collapse_ws": a.exact_collapse_ws}
    mh_cfg = {
        "num_perm": a.num_perm, "bands": a.bands, "rows": a.rows, "ngram": a.ngram, "seed": a.seed,
        "lowercase": a.minhash_lowercase, "strip_punct": a.minhash_strip_punct, "collapse_ws": a.minhash_collapse_ws,
        "datatrove_words": a.minhash_datatrove_words, "sign_short_docs": a.minhash_sign_short_docs,
    }  # fmt: skip
    c = dedup_job(
        a.inputs, a.output, removed=a.removed, exact=None if a.no_exact else ex_norm,
        minhash=None if a.no_minhash else mh_cfg, mem_budget=a.mem_budget, report=a.report, read=_read(a),
    )  # fmt: skip
    _warn_damaged(c)
    _summary("dedup", c["records"], c["kept"], c["removed"], c["bad_lines"])
    return 0


def _run_pack(a: argparse.Namespace) -> int:
    from ..data.stage_jobs import pack_job

    c = pack_job(a.inputs, a.output, removed=a.removed, seq_len=a.seq_len, seqs_per_shard=a.seqs_per_shard, read=_read(a))
    _warn_damaged(c)
    print(json.dumps(c), file=sys.stderr)
    return 0


def _classifier_options(a: argparse.Namespace) -> dict[str, Any]:
    opts = {k: getattr(a, k) for k in ("dim", "epochs", "lr", "l2", "char_min", "char_max", "seed") if getattr(a, k) is not None}
    if a.no_word_bigrams:
        opts["word_bigrams"] = False
    return opts


def _run_classify(a: argparse.Namespace) -> int:
    from ..data.stage_jobs import classify_job, evaluate_classifier_job, train_classifier_job

    read = _read(a)
    if a.classify_command == "train":
        clf, c = train_classifier_job(a.inputs, a.output, label_field=a.label_field, options=_classifier_options(a), read=read)
        print(f"trained on {c['records']} records, labels {dict(sorted(c['labels'].items()))}; wrote {a.output}", file=sys.stderr)
        if a.valid:
            v = evaluate_classifier_job(clf, a.valid, label_field=a.label_field, read=read)
            print(f"held-out accuracy: {v['accuracy']:.4f} on {v['records']} records", file=sys.stderr)
        if c["bad_lines"]:
            print(f"{c['bad_lines']} bad lines skipped", file=sys.stderr)
        return 0
    c = classify_job(a.inputs, a.output, model=a.model, removed=a.removed, label_field=a.label_field, scores=a.scores, read=read)
    _warn_damaged(c)
    print(f"classify: {c['records']} records labelled {dict(sorted(c['labels'].items()))}" + (f", {c['bad_lines']} bad lines skipped" if c["bad_lines"] else ""), file=sys.stderr)
    return 0


def _run_score(a: argparse.Namespace) -> int:
    from ..data.stage_jobs import score_job
    from ..errors import Qwen25ValueError

    dims = None
    if a.dimension:
        dims = {}
        for spec in a.dimension:
            name, eq, desc = spec.partition("=")
            if not eq or not name.strip() or not desc.strip():
                raise Qwen25ValueError(f"--dimension: expected NAME=DESCRIPTION, got {spec!r}")
            dims[name.strip()] = desc.strip()
    c = score_job(
        a.inputs, a.output, model=a.model, removed=a.removed, dimensions=dims, scores_field=a.scores_field,
        max_doc_tokens=a.max_doc_tokens, device=a.device, dtype=a.dtype, read=_read(a),
    )  # fmt: skip
    _warn_damaged(c)
    print(f"score: {c['records']} records rated on {c['dimensions']}" + (f", {c['bad_lines']} bad lines skipped" if c["bad_lines"] else ""), file=sys.stderr)
    return 0


def _parse_weights(s: str) -> dict[str, float]:
    from ..errors import Qwen25ValueError

    out: dict[str, float] = {}
    for part in s.split(","):
        name, eq, val = part.partition("=")
        try:
            if not eq or not name.strip():
                raise ValueError
            out[name.strip()] = float(val)
        except ValueError:
            raise Qwen25ValueError(f"--weights: expected NAME=NUMBER[,NAME=NUMBER...], got {part!r}") from None
    return out


def _run_mix(a: argparse.Namespace) -> int:
    from ..data.mix import mix_jsonl
    from ..data.stage_jobs import check_threads, distinct_outputs
    from ..errors import Qwen25ValueError

    sources: dict[str, list[str]] = {}
    for spec in a.source:
        name, eq, pattern = spec.partition("=")
        if not eq or not name or not pattern:
            raise Qwen25ValueError(f"--source: expected NAME=GLOB, got {spec!r}")
        if name in sources:
            raise Qwen25ValueError(f"--source: {name!r} given twice")
        sources[name] = _expand([pattern], f"source {name!r}")  # globbed as every stage's inputs are
    distinct_outputs([f for fs in sources.values() for f in fs], output=a.output, removed=a.removed, report=a.report)
    check_threads(a.num_threads, "--num-threads")
    weights = _parse_weights(a.weights) if a.weights else None
    if a.batch_size < 1:
        raise Qwen25ValueError(f"--batch-size must be >= 1, got {a.batch_size}")
    rep = mix_jsonl(
        sources, a.output, weights=weights, temperature=a.temperature, unit=a.unit, total=a.total,
        max_repeat=a.max_repeat, seed=a.seed, mode=a.mode, removed=a.removed, text_field=a.text_field,
        skip_bad=a.skip_bad, num_threads=a.num_threads, batch_size=a.batch_size, progress=not a.no_progress,
    )  # fmt: skip
    if a.report:
        _write_json(a.report, rep, indent=2, sort_keys=True)
    for name, s in rep["sources"].items():
        print(
            f"mix: {name:<16} {s['docs_in']:>8} docs in -> {s['docs_out']:>8} out ({s['repeats']} repeats, "
            f"{s['downsampled']} downsampled); {s['size_out']} {a.unit} "
            f"= {s['share_out']:.4f} of output (target {s['target']:.4f})",
            file=sys.stderr,
        )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "run":
        from ..data.pipeline import format_report, run_pipeline

        rep = run_pipeline(args.config, progress=not args.no_progress, engine=args.engine, stop_after=args.stop_after)
        print(format_report(rep))
        return 0
    stages = {
        "filter": _run_filter, "dedup": _run_dedup, "pack": _run_pack, "classify": _run_classify, "mix": _run_mix,
        "score": _run_score,
    }  # fmt: skip
    if getattr(args, "inputs", None):
        args.inputs = _expand(args.inputs)
    if getattr(args, "valid", None):
        args.valid = _expand(args.valid, "--valid")
    return stages[args.data_command](args)  # each stage's job removes its outputs if it fails
