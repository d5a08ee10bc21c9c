"""`qwen25.train_bpe` against independent references:

- HF tokenizers' ``BpeTrainer`` (same pre-tokenization: NFC + the Qwen2 split + ByteLevel, the
  256-symbol initial alphabet) learns the same merges on the same corpus;
- a brute-force pure-Python trainer (recounts every pair at every step) learns the same merges on
  tiny corpora, ``min_frequency`` and ties included;
- the saved folder loads in HF ``tokenizers`` and ``transformers`` and gives our ids.
"""

from __future__ import annotations

import json
import sysconfig
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qwen25

tokenizers = pytest.importorskip("tokenizers")

from tests.conftest import QWEN2_REGEX, hf_train_qwen2_bpe  # noqa: E402
from tests.conftest import bytes_to_unicode as _bytes_to_unicode  # noqa: E402

EOT = "<|endoftext|>"

MULTILINGUAL = [
    "All human beings are born free and equal in dignity and rights.",
    "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。",
    "Все люди рождаются свободными и равными в своем достоинстве и правах.",
    "Tous les êtres humains naissent libres et égaux en dignité et en droits.",
    "Alle Menschen sind frei und gleich an Würde und Rechten geboren.",
    "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。",
    "모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다.",
    "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق.",
    "सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता और समानता प्राप्त है।",
    "Todos los seres humanos nacen libres e iguales en dignidad y derechos.",
    "Όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι στην αξιοπρέπεια και τα δικαιώματα.",
    "Tất cả mọi người sinh ra đều được tự do và bình đẳng về nhân phẩm và quyền lợi.",
    "มนุษย์ทั้งหลายเกิดมามีอิสระและเสมอภาคกันในเกียรติศักด์และสิทธิ",
    "Café\u0301 naïve coöperate e\u0301 \u00a0nbsp\u3000ideographic space 👩‍👩‍👧 😀 ١٢٣ ٤٥٦",
]


def _corpus() -> list[str]:
    """Real source code (the standard library's own files), English prose and multilingual text."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for p in sorted(lib.glob("*.py"))[:25]:
        texts.append(p.read_text(encoding="utf-8", errors="replace")[:12000])
    try:
        from pydoc_data.topics import topics

        texts.extend(v[:3000] for _, v in sorted(topics.items())[:40])
    except ImportError:  # pragma: no cover - stripped Python builds
        pass
    texts.extend(MULTILINGUAL * 3)
    return texts


CORPUS = _corpus()


def _hf_trainer_tokenizer(texts: list[str], vocab_size: int, specials: list[str], min_frequency: int = 2) -> Any:
    return hf_train_qwen2_bpe(texts, vocab_size, specials, min_frequency)


def _merges(tokenizer_json: str) -> list[tuple[str, str]]:
    ms = json.loads(tokenizer_json)["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in ms]  # type: ignore[misc]


@pytest.fixture(scope="module")
def trained() -> qwen25.Tokenizer:
    return qwen25.train_bpe(CORPUS, 1200, special_tokens=[EOT, "<|pad|>"])


@pytest.fixture(scope="module")
def saved(trained: qwen25.Tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("trained")
    trained.save_pretrained(d)
    return d


# -- the learned vocabulary ------------------------------------------------------------------------
def test_merges_and_vocab_equal_hf_bpe_trainer(saved: Path) -> None:
    hf = _hf_trainer_tokenizer(CORPUS, 1200, [EOT, "<|pad|>"])
    ours_json = (saved / "tokenizer.json").read_text(encoding="utf-8")
    hf_merges = _merges(hf.to_str())
    assert len(hf_merges) > 800
    assert _merges(ours_json) == hf_merges
    # Same tokens; HF puts the special tokens first, we put them after the BPE tokens.
    ours_vocab = json.loads(ours_json)["model"]["vocab"]
    hf_vocab = hf.get_vocab(with_added_tokens=False)
    assert {t: i + 2 for t, i in ours_vocab.items()} == {t: i for t, i in hf_vocab.items() if i >= 2}


def test_layout_bytes_merges_specials(trained: qwen25.Tokenizer, saved: Path) -> None:
    assert trained.vocab_size == 1200
    # ids 0..255: the byte-level alphabet in code point order (HF's ByteLevel.alphabet())
    alphabet = sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    assert [trained.id_to_token(i) for i in range(256)] == alphabet
    assert trained.special_tokens == {EOT: 1198, "<|pad|>": 1199}
    assert [(a.content, a.id, a.special) for a in trained.added_tokens] == [(EOT, 1198, True), ("<|pad|>", 1199, True)]
    vocab = json.loads((saved / "vocab.json").read_text(encoding="utf-8"))
    assert sorted(vocab.values()) == list(range(1198))
    lines = (saved / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#version: 0.2"
    new_ids = []
    for line in lines[1:]:
        a, b = line.split(" ")
        assert a in vocab and b in vocab and a + b in vocab, line
        assert vocab[a] < vocab[a + b] and vocab[b] < vocab[a + b]
        if vocab[a + b] not in new_ids:
            new_ids.append(vocab[a + b])
    # every token >= 256 is the result of a merge, numbered in merge order
    assert new_ids == list(range(256, 1198))
    cfg = json.loads((saved / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert cfg["eos_token"] == EOT


# -- round trip through HF -------------------------------------------------------------------------
HELD_OUT = [
    "",
    "def main(argv=None):\n    return 0\n",
    f"Hello world{EOT}second document<|pad|><|pad|>",
    "   \r\n\t x  y\n\n\n",
    "这是一个测试。これはテストです。",
    "e\u0301 vs \u00e9, Å vs A\u030a",
    "I'm you're HE'LL we'VE 1234567 ٣٤٥",
    "<|endoftext|",
    "a" * 3000,
]


def test_saved_folder_gives_our_ids_in_hf_tokenizers(trained: qwen25.Tokenizer, saved: Path) -> None:
    hf = tokenizers.Tokenizer.from_file(str(saved / "tokenizer.json"))
    for t in CORPUS + HELD_OUT:
        assert trained.encode(t) == hf.encode(t, add_special_tokens=False).ids, t[:80]
    ids = trained.encode(HELD_OUT[2])
    assert ids[-2:] == [1199, 1199] and 1198 in ids


def test_saved_folder_gives_our_ids_in_transformers(trained: qwen25.Tokenizer, saved: Path) -> None:
    transformers = pytest.importorskip("transformers")
    auto = transformers.AutoTokenizer.from_pretrained(str(saved), local_files_only=True)
    for t in CORPUS[::3] + HELD_OUT:
        assert trained.encode(t) == auto.encode(t, add_special_tokens=False), t[:80]
    assert auto.eos_token == EOT
    assert auto.convert_tokens_to_ids(EOT) == 1198


def test_our_loader_reads_the_saved_folder(trained: qwen25.Tokenizer, saved: Path) -> None:
    again = qwen25.Tokenizer.from_pretrained(saved)
    for t in HELD_OUT + MULTILINGUAL:
        assert again.encode(t) == trained.encode(t)


_hf_cache: dict[str, object] = {}


@settings(max_examples=150)
@given(
    st.lists(
        st.one_of(
            st.text(st.characters(codec="utf-8"), max_size=40),
            st.sampled_from([EOT, "<|pad|>", " ", "\r\n", "\u00a0", "\u3000", "'LL", "e\u0301", "٣", "👩‍👧"]),
        ),
        max_size=8,
    ).map("".join)
)
def test_hypothesis_text_same_ids_as_hf(trained: qwen25.Tokenizer, saved: Path, text: str) -> None:
    hf = _hf_cache.get("hf")
    if hf is None:
        hf = _hf_cache["hf"] = tokenizers.Tokenizer.from_file(str(saved / "tokenizer.json"))
    assert trained.encode(text) == hf.encode(text, add_special_tokens=False).ids  # type: ignore[attr-defined]
    assert trained.decode(trained.encode(text)) == unicodedata.normalize("NFC", text)


# -- special tokens in the training text -----------------------------------------------------------
def test_special_tokens_in_the_corpus_are_cut_out() -> None:
    texts = [f"{t}{EOT}" * 2 for t in MULTILINGUAL] + [EOT * 50]
    ours = qwen25.train_bpe(texts, 400, special_tokens=[EOT], num_threads=1)
    # HF feeds special-token text to the trainer; give it the text with them removed instead.
    hf = _hf_trainer_tokenizer([p for t in texts for p in t.split(EOT)], 400, [EOT])
    assert [tuple(m) for m in _merges_of(ours)] == _merges(hf.to_str())
    assert not any("endoftext" in t for t in ours.get_vocab() if t != EOT)


def _merges_of(tok: qwen25.Tokenizer) -> list[tuple[str, str]]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        tok.save_pretrained(d)
        return _merges((Path(d) / "tokenizer.json").read_text(encoding="utf-8"))


# -- determinism -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("num_threads", "chunk_chars"), [(2, 1), (2, 50_000), (3, 7_777)])
def test_result_does_not_depend_on_threads_or_chunking(num_threads: int, chunk_chars: int) -> None:
    texts = CORPUS[:20] + MULTILINGUAL
    base = _merges_of(qwen25.train_bpe(texts, 700, num_threads=1, chunk_chars=1 << 30))
    other = _merges_of(
        qwen25.train_bpe(iter(texts), 700, num_threads=num_threads, chunk_chars=chunk_chars)
    )
    assert other == base


# -- a brute-force reference trainer ---------------------------------------------------------------
def _reference_train(texts: list[str], vocab_size: int, specials: list[str], min_frequency: int) -> list[tuple[str, str]]:
    """Recount every pair at every step; the most frequent pair wins, ties to the smaller
    (left id, right id); byte ids in byte-level char order, new tokens numbered in order."""
    from tokenizers import Regex, pre_tokenizers

    b2u = _bytes_to_unicode()
    split = pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated")
    tokens = sorted(b2u.values())  # id -> token string
    ids = {t: i for i, t in enumerate(tokens)}
    words: Counter[tuple[int, ...]] = Counter()
    for text in texts:
        stretches = [text]
        for s in specials:
            stretches = [p for st_ in stretches for p in st_.split(s)]
        for stretch in stretches:
            for piece, _ in split.pre_tokenize_str(unicodedata.normalize("NFC", stretch)):
                words[tuple(ids[b2u[b]] for b in piece.encode("utf-8"))] += 1
    merges: list[tuple[str, str]] = []
    while len(tokens) + len(specials) < vocab_size:
        pairs: Counter[tuple[int, int]] = Counter()
        for w, c in words.items():
            for p in zip(w, w[1:]):
                pairs[p] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < max(min_frequency, 1):
            break
        a, b = best
        new_tok = tokens[a] + tokens[b]
        if new_tok not in ids:
            ids[new_tok] = len(tokens)
            tokens.append(new_tok)
        if (tokens[a], tokens[b]) not in merges:
            merges.append((tokens[a], tokens[b]))
        new = ids[new_tok]
        merged: Counter[tuple[int, ...]] = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += c
        words = merged
    return merges


def test_matches_reference_trainer_and_respects_min_frequency() -> None:
    texts = ["low lower lowest newer wider new", "low low newest newest", "the the the cat. the hat!"]
    for min_frequency in (0, 1, 2, 3, 5):
        ours = _merges_of(qwen25.train_bpe(texts, 320, min_frequency=min_frequency))
        ref = _reference_train(texts, 320, [EOT], min_frequency)
        assert ours == ref, min_frequency
    # with min_frequency=5 only pairs seen >= 5 times are merged: " the" appears 4 times here
    assert ("Ġ", "t") not in _merges_of(qwen25.train_bpe(texts, 320, min_frequency=5))


@settings(max_examples=60)
@given(
    st.lists(st.text(st.sampled_from("abc dé\n'1"), max_size=30), min_size=1, max_size=6),
    st.integers(260, 300),
    st.integers(0, 4),
)
def test_hypothesis_matches_reference_trainer(texts: list[str], vocab_size: int, min_frequency: int) -> None:
    ours = _merges_of(qwen25.train_bpe(texts, vocab_size, min_frequency=min_frequency, num_threads=2, chunk_chars=7))
    assert ours == _reference_train(texts, vocab_size, [EOT], min_frequency)


# -- bad inputs ------------------------------------------------------------------------------------
def test_bad_inputs() -> None:
    with pytest.raises(qwen25.Qwen25ValueError, match="vocab_size=256"):
        qwen25.train_bpe(["abc"], 256)  # 256 bytes + 1 special do not fit
    with pytest.raises(qwen25.Qwen25ValueError, match="vocab_size=10"):
        qwen25.train_bpe(["abc"], 10, special_tokens=())
    with pytest.raises(TypeError, match=r"texts\[3\] is bytes"):
        qwen25.train_bpe(["a", "b", "c", b"d"], 300)  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"texts\[2\] is NoneType"):
        qwen25.train_bpe(iter(["aaaa", "bbbb", None]), 300, chunk_chars=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single str"):
        qwen25.train_bpe("some text", 300)
    with pytest.raises(TypeError, match="special_tokens"):
        qwen25.train_bpe(["x"], 300, special_tokens=EOT)
    with pytest.raises(qwen25.Qwen25ValueError, match="duplicates"):
        qwen25.train_bpe(["x"], 300, special_tokens=[EOT, EOT])
    with pytest.raises(qwen25.Qwen25ValueError, match="empty"):
        qwen25.train_bpe(["x"], 300, special_tokens=[""])
    with pytest.raises(TypeError, match="vocab_size"):
        qwen25.train_bpe(["x"], 300.0)  # type: ignore[arg-type]
    with pytest.raises(qwen25.Qwen25ValueError, match="min_frequency=-1"):
        qwen25.train_bpe(["x"], 300, min_frequency=-1)
    with pytest.raises(qwen25.Qwen25ValueError, match="num_threads"):
        qwen25.train_bpe(["x"], 300, num_threads=0)


def test_empty_corpus_gives_bytes_and_specials() -> None:
    tok = qwen25.train_bpe([], 1000)
    assert tok.vocab_size == 257
    assert tok.encode("hi" + EOT) == [tok.token_to_id("h"), tok.token_to_id("i"), 256]
    assert tok.decode(tok.encode("héllo")) == "héllo"


def test_counter_keeps_only_distinct_pre_tokens() -> None:
    from tokenizers import Regex, pre_tokenizers

    from qwen25 import _native

    split = pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated")
    texts = MULTILINGUAL + CORPUS[:3]
    distinct: set[str] = set()
    for t in texts:
        for stretch in t.split(EOT):
            distinct.update(p for p, _ in split.pre_tokenize_str(unicodedata.normalize("NFC", stretch)))
    tr = _native.BpeTrainer([EOT])
    for _ in range(20):  # the same stream 20 times: no growth
        tr.feed(texts, 2)
    assert tr.n_words == len(distinct)
    tr.train(300)
    with pytest.raises(RuntimeError, match="already trained"):
        tr.train(300)


def test_feeding_thread_and_polling_thread_do_not_deadlock() -> None:
    import threading

    from qwen25 import _native

    tr = _native.BpeTrainer([EOT])
    texts = CORPUS * 4
    def feed() -> None:
        for _ in range(3):
            tr.feed(texts, 2)

    worker = threading.Thread(target=feed)
    worker.start()
    seen = [tr.n_words for _ in range(200)]
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert seen == sorted(seen)  # counts only grow
    assert tr.n_words >= seen[-1] and tr.n_words > 0
