"""The pipeline job behind ``qwen25 data run pipeline.toml``:
read + tokenize -> filter -> exact dedup -> MinHash dedup -> decontaminate -> score -> classify -> mix
-> pack.

Nothing is lost: every input record ends either in the packed output (listed, with its
provenance and packed document index, in ``kept.jsonl``) or in ``removed.jsonl`` with the stage
and reason that removed it; ``report.json`` holds the per-stage, per-domain counts and the test
suite checks that they add up. Every file is written through the one atomic writer of
:mod:`qwen25.data.records` (as ``.tmp-NAME``, renamed when complete);
``state.json`` records the finished phases with a fingerprint of what each depends on, so a
rerun resumes after the last finished phase whose inputs, configuration and outputs are
unchanged: editing ``[mix]`` reruns only the mix and packing, editing ``[decontaminate]`` the
near-dedup phase and what follows (the engine keys below count nowhere: they do not change the
results). Inputs are fingerprinted by content (size and digest; a touch changes nothing), and each
phase's outputs by size and digest (the atomic writer's, taken as it writes: nothing is read
back; see :mod:`.state`): a phase whose outputs went missing, were truncated or were edited is
redone, and so is every phase after it.

Engines. Every per-document step (quality filters, exact-dedup hashes, MinHash signatures,
decontamination, classification, tokenization) is a pure function of one batch of documents (:class:`ScanWorker`, :class:`NearWorker`, in :mod:`.workers`). ``engine = "local"`` runs
them in this process; ``engine = "ray"`` runs the same classes as Ray Data actors over Arrow
batches (:func:`qwen25.data.distributed.ray_map_ordered`). The global steps stay on the driver
and consume the batches in input order either way: exact-dedup decisions, MinHash-LSH
clustering (the spilling clusterer), the mix order and the packed shards. So both engines write
byte-identical ``kept.jsonl``, ``removed.jsonl``, ``report.json`` (apart from its ``engine``
field) and ``packed/`` (tested on a local Ray). The driver reads the inputs with the native record
reader (:func:`qwen25.data.records.read_batches`: JSONL parsed in Rust, ``.gz``/``.zst``
decompressed in memory, never to disk; Parquet by pyarrow record batches) and hands the workers
parsed batches (under Ray, a window of a few batches per actor at a time; locally, the worker
runs one batch ahead on a helper thread, its engines off the GIL, while the driver does the
bookkeeping of the batch before); the driver writes every output.

Every document is tokenized once, when it is read (in :class:`ScanWorker`, the Qwen2.5
tokenizer's ``encode_ordinary``, what the packer stores; re-encoded only when C4 removes lines).
So ``report.json`` ``stages`` gives, for every stage and per domain, the documents and tokens
that went in, came out and were removed (plus the tokens of lines C4 removed, and the mix's
repeats), and the stages chain: what leaves one enters the next (tested against HF tokenizers).
The ids are written once, in ``stage1.tok`` (uint32, with per-document lengths in
``stage1.len``, uint64), and so is the text, as UTF-8 in ``stage1.text`` (byte lengths in
``stage1.text.len``; never serialised to JSON or parsed between phases), beside its fields in
``stage1.jsonl``: the later phases refer to a document by its stage-1 row (``stage2/NNNN.jsonl``
holds the survivors' fields, ``NNNN.rows`` their rows), near-dedup decodes only the MinHash
survivors' texts, and the packer reads the ids from ``stage1.tok``.

Mixing is by tokens (as Qwen2.5 mixes). The token quota of each domain comes from
:func:`qwen25.data.mix.weights_from_proportions` over the domains' token counts (within
``max_repeat`` epochs); :func:`qwen25.data.mix.docs_for_token_quota` turns it into a number of
documents (in order, cycling for repeats; the document crossing the quota is taken when at
least half of it fits), and the packer writes the stored ids (no second tokenization).
``unit = "docs"`` keeps the old document proportions.

The package: :mod:`.config` (the schema below as frozen dataclasses; unknown keys are errors),
:mod:`.phases` (the three phases as functions), :mod:`.state` (resume), :mod:`.report`
(stages, statuses and counters as enums; ``report.json`` and the printed summary),
:mod:`.workers` and :mod:`.files`.

A configuration (paths are relative to the TOML file)::

    [pipeline]
    output = "out"            # folder for everything below
    batch_size = 1000         # input lines per batch (results never depend on it)
    num_threads = 2           # optional Rust threads per batch; default QWEN25_NUM_THREADS or
                              # all cores (local), 1 per actor (ray)
    on_bad_line = "error"     # or "skip": a bad line goes to removed.jsonl (stage "read"); so does
                              # the damage of a truncated .gz/.zst (the records before it go on)
    engine = "local"          # or "ray" (also: qwen25 data run pipeline.toml --engine ray)
    ray_address = "auto"      # optional: ray.init(address=...) when Ray is not started yet
    concurrency = 4           # optional: actors per stage under Ray (default: the cluster's CPUs)
    stop_after = "dedup"      # optional: "filter", "dedup", "decontaminate" or "mix" (also
                              # --stop-after): stop after that stage, its survivors (provenance,
                              # domain, text) in OUT/survivors.jsonl in input order (for "mix":
                              # in mix order, with repeats), nothing mixed or packed

    [[sources]]
    name = "web"
    paths = ["data/web/*.jsonl"]   # globs (** spans folders; a file matched twice is read once)
                                   # of JSONL; .jsonl.gz / .jsonl.zst (decompressed in memory) and
                                   # .parquet (pyarrow record batches; line = row + 1)
    text_field = "text"       # default "text"
    id_field = "id"           # optional
    domain = "web"            # default: the source name

    [filter]                  # thresholds: see qwen25.data.filters (false disables a filter)
    enabled = true            # a filtered document's removed.jsonl entry carries its statistics;
    stats = "removed"         # "all": every document's, kept.jsonl and every removed list too
    default = { fineweb = { new_line_ratio = 0.3 } }
    [filter.domains.code]     # overrides the default key by key: other filters and thresholds
    gopher_quality = false    # stay as in [filter.default]
    # preset = "code"         # or start from a named preset (qwen25.data.filters.PRESETS: "web",
                              # the default filters, or "code": no prose rules, BigCode's line
                              # length and alphanumeric rules); the table's keys override it.
                              # A stage that removes > 90% of a domain is flagged: report.json
                              # "warnings" and the printed summary

    [dedup]
    exact = true              # xxh3-128, first occurrence kept
    exact_lowercase = false   # (and exact_strip_punct, exact_collapse_ws)
    minhash = true            # FineWeb defaults (minhash_lowercase, minhash_strip_punct and
                              # minhash_collapse_ws, all true, set its normalisation)
    minhash_datatrove_words = true   # shingle as datatrove: simplify_text + its English words
                                     # (false: the switches above and a split on spaces)
    minhash_sign_short_docs = false  # true: a text under ngram words gets one shingle (datatrove
                                     # leaves it unsigned: never a near duplicate)
    num_perm = 112
    bands = 14
    rows = 8
    ngram = 5
    seed = 1
    mem_budget = 1073741824

    [decontaminate]           # qwen25.data.Decontaminator(**options).check(texts); skipped (and
    enabled = true            # reported) when no test_set is configured
    options = { test_set = "humaneval" }   # a benchmark name, a JSONL path, or a list of texts

    [score]                   # optional: model-based quality scoring (qwen25.data.LMScorer), as
    model = "Qwen2.5-7B-Instruct"   # Qwen2.5 rated data with Qwen2-Instruct: a chat checkpoint
    dimensions = { quality = "overall quality", educational_value = "educational value" }
    min = { quality = 2.5 }   # drop (stage "score") a document rated under this; scores go to
    max_doc_tokens = 2048     # kept.jsonl either way
    batch_size = 8
    device = "cuda"           # default: cuda when available, else cpu
    dtype = "bfloat16"        # default: the checkpoint's

    [classify]
    model = "domain.bin"      # optional DomainClassifier file: its label becomes the domain

    [mix]                     # optional: per-domain target proportions (domains: the sources'
    weights = { web = 0.7, code = 0.3 }   # or the classifier's labels; a domain without documents
                              # leaves its share to the others, with a note)
    # temperature = 2.0       # instead of weights: p ~ size^(1/T)
    unit = "tokens"           # proportions of tokens (default) or "docs" (of documents)
    max_repeat = 1.0          # > 1 repeats small domains (repeats are listed in kept.jsonl)
    total_tokens = 1000000    # unit "tokens"; default: the most tokens that meet the weights
                              # within the repeat cap
    # total_docs = 1000       # unit "docs"; default likewise, in documents
    seed = 0
    mode = "smooth"           # or "random"

    # Phases (optional; instead of weights/temperature/total in [mix]): each packs its own mix
    # to its own sequence length into packed/<name>/; kept.jsonl rows name their phase, and
    # `repeat` counts a document's placements before this one, over all phases. max_repeat caps
    # each phase on its own. A document no phase takes is removed ("mix", "downsampled"; or
    # "not_in_mix" when no phase draws on its domain).
    # [[mix.phases]]
    # name = "general"
    # weights = { web = 0.7, code = 0.3 }
    # seq_len = 4096
    # [[mix.phases]]
    # name = "long_32k"       # Qwen2.5-Turbo: 40% of tokens from documents of >= seq_len
    # seq_len = 32768         # tokens, 60% from shorter ones, each part split by weights
    # long_share = 0.4
    # long_min = 32768        # default: seq_len (no document that long: an error)
    # max_repeat = 2.0        # default: [mix] max_repeat
    # total_tokens = 1000000  # default: the most that meets the shares within max_repeat

    [pack]
    seq_len = 4096
    seqs_per_shard = 16384

Line numbers count ``\\n``-terminated lines (blank lines count as lines but are not records).
"""


from __future__ import annotations

from .config import PipelineConfig, load_config, parse_config
from .job import Pipeline, run_pipeline
from .report import STAGES, Stage, Status, format_report
from .state import PHASES
from .workers import NearWorker, ScanWorker

__all__ = [
    "NearWorker",
    "PHASES",
    "Pipeline",
    "PipelineConfig",
    "STAGES",
    "ScanWorker",
    "Stage",
    "Status",
    "format_report",
    "load_config",
    "parse_config",
    "run_pipeline",
]
