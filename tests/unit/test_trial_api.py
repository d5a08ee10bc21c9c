"""Hostile inputs to the Python API (a trial of the current tree): every error is a Qwen25Error
naming the value, index or file at fault, where the builtin behaviour is the reference."""

from __future__ import annotations

import warnings

import pytest

from qwen25.errors import Qwen25Error, Qwen25TypeError, Qwen25ValueError

_TEST_ITEM = "def add(a, b):\n    # add two numbers and return the sum of both of them to the caller\n    return a + b\n"


@pytest.fixture(scope="module")
def decon():
    from qwen25.data.decontam import Decontaminator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Decontaminator([_TEST_ITEM])


# --- 1. Decontaminator ----------------------------------------------------------------------------
def test_decontaminator_refuses_a_str_batch_that_would_be_split_into_characters(decon) -> None:
    batch = "nope.jsonl"
    assert len(list(batch)) == 10  # the reference: iterating a str yields its characters
    for bad in (batch, b"nope", 5, None):
        with pytest.raises(Qwen25TypeError, match="list of texts"):
            decon.check(bad)
        with pytest.raises(Qwen25TypeError, match="list of texts"):
            decon.check_all(bad)
    assert decon.check([batch]) == [None]  # the same text as a one-item batch is fine


def test_decontaminator_names_the_item_with_a_lone_surrogate(decon) -> None:
    bad = "a\ud800"
    with pytest.raises(UnicodeEncodeError) as ref:  # the reference: Python cannot encode it either
        bad.encode("utf-8")
    assert ref.value.start == 1
    with pytest.raises(Qwen25ValueError, match=r"item 2: .*lone surrogate U\+D800 at index 1"):
        decon.check(["ok", "fine", bad])
    with pytest.raises(Qwen25ValueError, match=r"item 1: .*surrogate"):
        decon.check_all(["ok", {"text": bad}])
    clean, _removed = decon.filter(["x", "y", bad], batch_size=2)
    with pytest.raises(Qwen25ValueError, match=r"record 2: .*surrogate"):
        list(clean)
    from qwen25.data.decontam import Decontaminator

    with pytest.raises(Qwen25ValueError, match=r"test item 1: .*surrogate"):
        Decontaminator([_TEST_ITEM, _TEST_ITEM + bad])


@pytest.mark.parametrize(
    "key,value,err",
    [("lcs_ratio", "x", Qwen25TypeError), ("lcs_ratio", True, Qwen25TypeError), ("lcs_ratio", None, Qwen25TypeError),
     ("prefilter", "no", Qwen25TypeError), ("prefilter", 0, Qwen25TypeError), ("prefilter", None, Qwen25TypeError),
     ("ngram", "13", Qwen25TypeError), ("ngram", 13.0, Qwen25TypeError), ("lcs_min", True, Qwen25TypeError),
     ("ngram", 0, Qwen25ValueError), ("lcs_ratio", 1.5, Qwen25ValueError)],
)  # fmt: skip
def test_decontaminator_option_types_are_checked_naming_the_option(key: str, value: object, err: type) -> None:
    from qwen25.data.decontam import Decontaminator

    with pytest.raises(err, match=key):
        Decontaminator([_TEST_ITEM], **{key: value})


def test_decontaminator_names_a_test_item_of_the_wrong_type() -> None:
    from qwen25.data.decontam import Decontaminator

    for bad in (None, 3.5, object()):
        with pytest.raises(Qwen25TypeError, match=rf"test item 1: record is {type(bad).__name__}"):
            Decontaminator([_TEST_ITEM, bad])
    assert issubclass(Qwen25TypeError, Qwen25Error)


def test_decontaminator_mode_threads_and_record_batch_types(decon) -> None:
    from qwen25.data.decontam import Decontaminator

    with pytest.raises(Qwen25TypeError, match="mode must be"):
        Decontaminator([_TEST_ITEM], mode=5)
    for bad in ("2", 2.0, True):
        with pytest.raises(Qwen25TypeError, match="num_threads must be an int"):
            decon.check(["x"], num_threads=bad)
    with pytest.raises(Qwen25TypeError, match="check_records takes a batch of read_batches"):
        decon.check_records(["x"])


# --- 2. dedup -------------------------------------------------------------------------------------
def _dedup_jobs():
    from qwen25.data.dedup import ExactDeduplicator, MinHashDeduplicator, exact_hashes

    m = MinHashDeduplicator()
    return {
        "minhash.deduplicate": m.deduplicate,
        "minhash.signatures": m.signatures,
        "minhash.stream.add": lambda t: m.stream().add(t),
        "exact.add": ExactDeduplicator().add,
        "exact.deduplicate": ExactDeduplicator().deduplicate,
        "exact_hashes": exact_hashes,
    }


@pytest.mark.parametrize("job", list(_dedup_jobs()))
def test_dedup_names_the_text_with_a_lone_surrogate_or_wrong_type(job: str) -> None:
    fn = _dedup_jobs()[job]
    texts = ["one two three four five six", "a\ud800 b", "x"]
    bad = [i for i, t in enumerate(texts) if t != t.encode("utf-8", "replace").decode("utf-8")]
    assert bad == [1]  # the reference: the text Python itself cannot encode
    with pytest.raises(Qwen25ValueError, match=r"texts\[1\] has a lone surrogate U\+D800 at index 1"):
        fn(texts)
    with pytest.raises(Qwen25TypeError, match=r"texts\[2\] is NoneType, not str"):
        fn(["a", "b", None])
    with pytest.raises(Qwen25TypeError, match="texts"):
        fn("one text")
    with pytest.raises(Qwen25TypeError, match="texts"):
        fn(7)


def test_dedup_single_text_functions_check_their_text() -> None:
    from qwen25.data.dedup import MinHashDeduplicator, exact_hash

    for fn in (exact_hash, MinHashDeduplicator().shingles):
        with pytest.raises(Qwen25ValueError, match="lone surrogate"):
            fn("a \udfff b c d e f")
        with pytest.raises(Qwen25TypeError, match="text is NoneType"):
            fn(None)


# --- 3. PackedDataset -----------------------------------------------------------------------------
def _packed(path):
    import json

    from qwen25.data.pack import PackedDataset, TokenPacker

    with TokenPacker(path, seq_len=4, seqs_per_shard=1) as p:
        for doc in ([1, 2, 3], [4, 5, 6, 7, 8], [9]):
            p.add_tokens(doc)
    manifest = json.loads((path / "manifest.json").read_text())
    assert len(manifest["shards"]) >= 2  # the reference: the manifest as json reads it
    return PackedDataset(path), manifest


def test_packed_dataset_names_a_deleted_shard(tmp_path) -> None:
    from qwen25.data.pack import PackedDataset

    _, manifest = _packed(tmp_path)
    shard = manifest["shards"][1]["file"]
    (tmp_path / shard).unlink()
    with pytest.raises(FileNotFoundError) as e:
        PackedDataset(tmp_path)
    assert isinstance(e.value, Qwen25Error) and e.value.filename.endswith(shard)
    assert shard in str(e.value) and "shard 1" in str(e.value)


@pytest.mark.parametrize(
    "edit,match",
    [(lambda m: m.pop("seq_len"), "no key 'seq_len'"), (lambda m: m.pop("shards"), "no key 'shards'"),
     (lambda m: m.update(seq_len="4"), "'seq_len' is '4'"), (lambda m: m["shards"][0].pop("file"), r"shards\[0\]: no key 'file'"),
     (lambda m: m.update(shards=[1]), r"shards\[0\] is 1"), (lambda m: m.update(seq_len=0), "'seq_len' is 0")],
)  # fmt: skip
def test_packed_dataset_manifest_without_a_key_is_a_format_error_naming_it(tmp_path, edit, match) -> None:
    import json

    from qwen25.errors import FormatError
    from qwen25.data.pack import PackedDataset

    _, manifest = _packed(tmp_path)
    edit(manifest)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match=rf"manifest\.json: {match}"):
        PackedDataset(tmp_path)


def test_packed_dataset_manifest_that_is_not_an_object(tmp_path) -> None:
    from qwen25.errors import FormatError
    from qwen25.data.pack import PackedDataset

    _packed(tmp_path)
    (tmp_path / "manifest.json").write_text("[1]")
    with pytest.raises(FormatError, match=r"manifest\.json: holds list, not a JSON object"):
        PackedDataset(tmp_path)


def test_packed_dataset_index_must_be_an_int_as_for_a_list(tmp_path) -> None:
    import numpy as np

    ds, _ = _packed(tmp_path)
    seqs = [ds[i].tolist() for i in range(len(ds))]
    for good in (np.int64(1), True, -1):
        assert ds[good].tolist() == seqs[good]  # the reference: a list indexed the same way
        assert ds.document(good).tolist() == ds.document(int(good)).tolist()
    for bad in ("a", 1.0, None):
        with pytest.raises(TypeError):
            seqs[bad]  # type: ignore[index]
        with pytest.raises(Qwen25TypeError, match="sequence index must be an int"):
            ds[bad]
        with pytest.raises(Qwen25TypeError, match="sequence index must be an int"):
            ds.position_ids(bad)
        with pytest.raises(Qwen25TypeError, match="sequence index must be an int"):
            ds.document_starts(bad)
        with pytest.raises(Qwen25TypeError, match="document index must be an int"):
            ds.document(bad)
        with pytest.raises(Qwen25TypeError, match="document index must be an int"):
            ds.document_source(bad)


# --- 4. the binding's error map -------------------------------------------------------------------
def test_native_io_errors_without_an_os_errno_carry_the_errno_of_their_kind(tmp_path) -> None:
    import errno
    import os

    from qwen25 import _native

    with pytest.raises(OSError) as ref:  # the reference: what Python says opening a folder to read
        open(tmp_path, "rb")
    assert ref.value.errno == errno.EISDIR
    with pytest.raises(Qwen25Error) as e:
        _native.RecordReader(os.fspath(tmp_path), "text")
    assert isinstance(e.value, OSError) and e.value.errno == errno.EISDIR
    assert e.value.filename == os.fspath(tmp_path) and "[Errno 0]" not in str(e.value)
    assert str(e.value).startswith(f"[Errno {errno.EISDIR}] ")
    missing = os.fspath(tmp_path / "nope")
    with pytest.raises(FileNotFoundError) as e:
        _native.Tokenizer.from_dir(missing)  # the core says NotFound with no OS errno
    assert isinstance(e.value, Qwen25Error) and e.value.errno == errno.ENOENT and e.value.filename == missing
    assert "[Errno 0]" not in str(e.value)


def test_native_type_errors_are_qwen25_type_errors() -> None:
    from qwen25 import _native
    from qwen25.data.dedup import MinHashDeduplicator

    with pytest.raises(Qwen25TypeError, match=r"texts\[1\] is int, not str"):
        MinHashDeduplicator()._hasher.signatures(["a", 3], None)  # convert.rs, below the Python layer
    d = _native.Decontaminator([list(range(20))], "lcs", 13, 13, 0.6, "auto", None, None, False)
    with pytest.raises(Qwen25TypeError, match=r"batch\[0\]\[1\] = 2.5 is not a token id"):
        d.check([[1, 2.5]], False, None)
    with pytest.raises(Qwen25TypeError, match=r"batch\[0\] is NoneType"):
        d.check([None], False, None)
    with pytest.raises(Qwen25TypeError, match="window"):
        _native.Decontaminator([list(range(20))], "qwen", 13, 13, 0.6, 2.5, None, None, False)
    with pytest.raises(Qwen25ValueError, match="window"):
        _native.Decontaminator([list(range(20))], "qwen", 13, 13, 0.6, "nope", None, None, False)


# --- 5. a UTF-8 byte order mark at the start of a JSONL file --------------------------------------
_BOM = b"\xef\xbb\xbf"


def _bom_docs(n: int = 6) -> bytes:
    import json

    return b"".join(
        (json.dumps({"id": i, "text": f"document {i} about " + " ".join(f"river{i}x{j}" for j in range(15))}) + "\n").encode()
        for i in range(n)
    )


def _read_all(path) -> tuple[list, list]:
    from qwen25.data.records import read_batches

    items, raws = [], []
    for b in read_batches(path):
        items += b.items()
        raws += [bytes(b.raw(i)) for i in range(len(b.items()))]
    return items, raws


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_reader_skips_a_bom_at_the_start_of_a_file_as_utf8_sig_does(tmp_path, suffix: str) -> None:
    import gzip
    import json

    data = _bom_docs()
    pack = gzip.compress if suffix.endswith(".gz") else (lambda b: b)
    (tmp_path / f"plain{suffix}").write_bytes(pack(data))
    (tmp_path / f"bom{suffix}").write_bytes(pack(_BOM + data))
    with open(tmp_path / "ref.jsonl", "wb") as f:
        f.write(_BOM + data)
    with open(tmp_path / "ref.jsonl", encoding="utf-8-sig") as f:  # the reference: Python's utf-8-sig
        want = [json.loads(line)["text"] for line in f]
    plain, bom = _read_all(tmp_path / f"plain{suffix}"), _read_all(tmp_path / f"bom{suffix}")
    assert bom[0] == want == plain[0]
    assert bom[1] == plain[1] and not bom[1][0].startswith(_BOM)  # pass-through bytes without the mark


def test_reader_a_bom_elsewhere_is_a_bad_line_as_json_finds_it(tmp_path) -> None:
    import json

    from qwen25.errors import FormatError

    lines = _bom_docs(3).splitlines(keepends=True)
    with pytest.raises(json.JSONDecodeError):  # the reference: json refuses a str starting with U+FEFF
        json.loads((_BOM + lines[1]).decode("utf-8"))
    (tmp_path / "mid.jsonl").write_bytes(lines[0] + _BOM + lines[1] + lines[2])
    with pytest.raises(FormatError, match=r"mid\.jsonl:2:"):
        _read_all(tmp_path / "mid.jsonl")
    for only in (_BOM, _BOM + b"\n"):  # the mark alone is no record
        (tmp_path / "only.jsonl").write_bytes(only)
        assert _read_all(tmp_path / "only.jsonl") == ([], [])


def test_cli_stages_read_a_file_with_a_bom_as_without(tmp_path, capsys) -> None:
    import json

    from qwen25.cli import main

    data = _bom_docs()
    (tmp_path / "plain").mkdir()
    (tmp_path / "bom").mkdir()
    (tmp_path / "plain" / "a.jsonl").write_bytes(data)
    (tmp_path / "bom" / "a.jsonl").write_bytes(_BOM + data)
    test_item = {"text": json.loads(data.splitlines()[1])["text"]}
    (tmp_path / "test.jsonl").write_text(json.dumps(test_item) + "\n")
    none = tmp_path / "none.toml"
    none.write_text("gopher_repetition = false\ngopher_quality = false\nc4 = false\nfineweb = false\n")
    want_ids = [json.loads(x)["id"] for x in data.decode().splitlines()]
    for kind in ("plain", "bom"):
        src = str(tmp_path / kind / "a.jsonl")
        assert main(["data", "filter", src, "-o", str(tmp_path / f"f-{kind}.jsonl"), "--no-progress",
                     "--config", str(none)]) == 0, capsys.readouterr().err  # fmt: skip
        assert main(["decontaminate", "--train", src, "--test", str(tmp_path / "test.jsonl"), "--mode", "ngram",
                     "--ngram", "5", "--out", str(tmp_path / f"d-{kind}"), "--compress-level", "0",
                     "--no-progress"]) == 0, capsys.readouterr().err  # fmt: skip
    filtered = (tmp_path / "f-bom.jsonl").read_bytes()
    assert filtered == (tmp_path / "f-plain.jsonl").read_bytes()
    assert [json.loads(x)["id"] for x in filtered.decode().splitlines()] == want_ids
    rep = {k: json.loads((tmp_path / f"d-{k}" / "report.json").read_text()) for k in ("plain", "bom")}
    assert rep["bom"]["counts"] == rep["plain"]["counts"]
    assert [r["line"] for r in rep["bom"]["removed"]] == [r["line"] for r in rep["plain"]["removed"]] == [2]
    for k in ("plain", "bom"):  # the kept records pass through byte for byte, the first without the mark
        kept = b"".join(p.read_bytes() for p in sorted((tmp_path / f"d-{k}" / "clean").rglob("*.jsonl")))
        assert kept == b"".join(x for i, x in enumerate(data.splitlines(keepends=True)) if i != 1)


# --- 6. a bound on the planned mix ----------------------------------------------------------------
def test_plan_past_the_epoch_bound_is_refused_naming_total_and_the_planned_size() -> None:
    import numpy as np

    from qwen25.data.mix import MAX_EPOCHS, Phase, plan_phase

    lens = {"w": np.array([7, 11, 5], dtype=np.int64)}
    size = 7 + 11 + 5  # the recount
    # at the bound: planned = min(asked, max_repeat * size), as weights_from_proportions caps it
    _, plan, _ = plan_phase(Phase("", {"w": 1.0}, 1e30, max_repeat=float(MAX_EPOCHS)), lens)
    assert plan.total_tokens == MAX_EPOCHS * size
    planned = 1e9 * size
    for asked, shown in ((1e30, "1e+30"), (None, "not given")):
        with pytest.raises(Qwen25ValueError) as e:
            plan_phase(Phase("", {"w": 1.0}, asked, max_repeat=1e9), lens)
        msg = str(e.value)
        assert msg.startswith("[mix]: ") and f"total_tokens = {shown}" in msg and "max_repeat = 1e+09" in msg
        assert f"{planned:.4g} tokens" in msg and "1e+09 epochs of 'w'" in msg
    with pytest.raises(Qwen25ValueError, match=r"phase 'a': the planned mix is 3e\+09 docs.*total_docs = 1e\+30"):
        plan_phase(Phase("a", {"w": 1.0}, 1e30, max_repeat=1e9), lens, unit="docs")


def test_plan_past_the_total_bound_is_refused() -> None:
    import numpy as np

    from qwen25.data.mix import MAX_PLANNED, Phase, plan_phase

    lens = {"w": np.full(1000, 10**12, dtype=np.int64)}  # 1e15 tokens of data: one epoch is the bound
    _, plan, _ = plan_phase(Phase("", {"w": 1.0}, None), lens)
    assert plan.total_tokens == 1000 * 10**12 == MAX_PLANNED
    with pytest.raises(Qwen25ValueError, match=r"\[mix\]: the planned mix is 2e\+15 tokens, past the bound of 1e\+15"):
        plan_phase(Phase("", {"w": 1.0}, None, max_repeat=2.0), lens)


def test_pipeline_refuses_a_runaway_mix_before_writing_it(tmp_path) -> None:
    from qwen25.data.pipeline import run_pipeline

    # max_repeat = 2000 (past the bound, yet small enough that a tree without it ends quickly: the
    # trial's 1e9 wrote until the disk was full)
    (tmp_path / "in.jsonl").write_text("".join(
        '{"text": "Document %d tells of rivers. The bridges cross them."}\n' % i for i in range(5)))  # fmt: skip
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text('[pipeline]\noutput = "out"\n[[sources]]\nname = "web"\npaths = "in.jsonl"\n[filter]\nenabled = false\n'
                   '[dedup]\nminhash = false\n[mix]\nweights = { web = 1 }\ntotal_tokens = 1e30\nmax_repeat = 2000\n')  # fmt: skip
    with pytest.raises(Qwen25Error, match=r"\[mix\]: the planned mix is .* tokens.*total_tokens = 1e\+30"):
        run_pipeline(cfg, progress=False)
    out = tmp_path / "out"
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) < 10**6


def test_native_text_batches_name_a_lone_surrogate() -> None:
    from qwen25 import _native
    from qwen25.data.dedup import MinHashDeduplicator

    texts = ["ok", "b\ud800c"]
    with pytest.raises(UnicodeEncodeError) as ref:  # the reference: where Python's encoder stops
        texts[1].encode("utf-8")
    at = ref.value.start
    for job in (lambda: MinHashDeduplicator()._hasher.signatures(texts, None),
                lambda: _native.exact_hashes(texts, False, False, False, None)):  # fmt: skip
        with pytest.raises(Qwen25ValueError, match=rf"texts\[1\] has a lone surrogate U\+D800 at index {at}"):
            job()
