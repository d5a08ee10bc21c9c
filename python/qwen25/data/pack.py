"""Pack tokenized documents into fixed-length uint32 shards, and read them back with numpy.

Layout of a packed folder::

    shard_00000.bin ...   raw little-endian uint32 tokens, whole sequences of ``seq_len``
    docs.idx              uint64 (start, length, source) per document: global offset of its first
                          token, its token count (separator excluded), its source id
    manifest.json         tokenizer, seq_len, separator id, sources, counts, seed, shards

Each document is followed by one ``<|endoftext|>``; the last sequence is padded with it.
Documents are tokenized with ``encode_ordinary`` (a literal ``<|endoftext|>`` inside a document
stays text), so removing separators from the concatenated shards gives back exactly the
documents' tokens, in order.

>>> from qwen25.data import TokenPacker, PackedDataset
>>> with TokenPacker("out/packed", seq_len=2048) as p:      # doctest: +SKIP
...     p.add(["first document", "second one"], source="web")
>>> ds = PackedDataset("out/packed")                         # doctest: +SKIP
>>> ds[0].shape, ds.document(1)                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .. import _native
from ..errors import FormatError, Qwen25FileNotFoundError, Qwen25TypeError, Qwen25ValueError

if TYPE_CHECKING:
    import numpy as np

    from ..tokenizer import Tokenizer

__all__ = ["PackedDataset", "TokenPacker", "MANIFEST"]

MANIFEST = "manifest.json"
FORMAT = "qwen25-packed-v1"


class TokenPacker:
    """Streaming packer: :meth:`add` batches of texts, then :meth:`finish` (or use ``with``)."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        tokenizer: Tokenizer | None = None,
        seq_len: int = 4096,
        seqs_per_shard: int = 16384,
        seed: int | None = None,
        num_threads: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        from ..tokenizer import Tokenizer

        if not isinstance(seq_len, int) or seq_len < 1:
            raise Qwen25ValueError(f"seq_len must be a positive int, got {seq_len!r}")
        if not isinstance(seqs_per_shard, int) or seqs_per_shard < 1:
            raise Qwen25ValueError(f"seqs_per_shard must be a positive int, got {seqs_per_shard!r}")
        self.tokenizer = tokenizer or Tokenizer.qwen25()
        sep = self.tokenizer.token_to_id("<|endoftext|>")
        if sep is None:
            raise Qwen25ValueError("the tokenizer has no <|endoftext|> token to separate documents")
        self.sep = int(sep)
        self.out_dir = os.fspath(out_dir)
        self.seq_len, self.seqs_per_shard, self.seed = seq_len, seqs_per_shard, seed
        self.num_threads = num_threads
        self.extra = dict(extra or {})
        self._sources: dict[str, int] = {}
        self._per_source: list[list[int]] = []  # [documents, tokens] per source id
        self._inner = _native.Packer(self.tokenizer._tok, self.out_dir, seq_len, seqs_per_shard, self.sep)
        self._manifest: dict[str, Any] | None = None

    def _source_id(self, name: str) -> int:
        sid = self._sources.get(name)
        if sid is None:
            sid = self._sources[name] = len(self._sources)
            self._per_source.append([0, 0])
        return sid

    def add(self, texts: Iterable[str], source: str | Sequence[str] = "default") -> int:
        """Tokenize and append ``texts`` in order; ``source`` names one source for all, or one
        per text. Returns the document tokens added."""
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a sequence of str, not a single str/bytes")
        texts = list(texts)
        names = [source] * len(texts) if isinstance(source, str) else list(source)
        if len(names) != len(texts):
            raise Qwen25ValueError(f"{len(texts)} texts but {len(names)} sources")
        ids = [self._source_id(n) for n in names]
        n = int(self._inner.add_texts(texts, ids, self.num_threads))
        for sid in ids:
            self._per_source[sid][0] += 1
        return n

    def add_tokens(self, tokens: Sequence[int], source: str = "default") -> None:
        """Append one already tokenized document."""
        sid = self._source_id(source)
        self._inner.add_tokens([int(t) for t in tokens], sid)
        self._per_source[sid][0] += 1

    def add_token_arrays(self, tokens: Any, lengths: Any, source: str | Sequence[str] = "default") -> int:
        """Append many already tokenized documents in one native call: ``tokens`` holds their ids
        back to back (a uint32 array-like), ``lengths`` one token count per document; ``source``
        names one source for all, or one per document. Returns the document tokens added."""
        import numpy as np

        lens = np.asarray(lengths)
        if lens.ndim != 1 or (lens.size and (lens.dtype.kind not in "iu" or int(lens.min()) < 0)):
            raise Qwen25ValueError("lengths must be a 1-d array of non-negative ints")
        toks = np.asarray(tokens)
        if toks.ndim != 1 or (toks.size and toks.dtype.kind not in "iu"):
            raise Qwen25ValueError("tokens must be a 1-d array of ints")
        if int(lens.sum()) != toks.size:
            raise Qwen25ValueError(f"lengths add up to {int(lens.sum())} tokens but {toks.size} were given")
        names = [source] * len(lens) if isinstance(source, str) else list(source)
        if len(names) != len(lens):
            raise Qwen25ValueError(f"{len(lens)} documents but {len(names)} sources")
        ids = [self._source_id(n) for n in names]
        tok_bytes = toks.astype("<u4", copy=False).tobytes()  # one copy (none made before it)
        n = int(self._inner.add_token_batch(tok_bytes, lens.astype("<u8", copy=False).tobytes(), ids))
        for sid in ids:
            self._per_source[sid][0] += 1
        return n

    def finish(self) -> dict[str, Any]:
        """Write the last shard, the document index and the manifest; returns the manifest."""
        import numpy as np

        if self._manifest is not None:
            return self._manifest
        n_docs, n_doc_tokens, n_tokens, n_seq, n_pad, shards = self._inner.finish()
        idx = np.fromfile(os.path.join(self.out_dir, "docs.idx"), dtype="<u8").reshape(-1, 3)
        for sid in range(len(self._sources)):  # tokens per source, from the document index
            self._per_source[sid][1] = int(idx[idx[:, 2] == sid, 1].sum())
        m = {
            "format": FORMAT,
            "tokenizer": {"name": "qwen25", "vocab_size": self.tokenizer.vocab_size, "source": list(self.tokenizer._source)},
            "seq_len": self.seq_len,
            "seqs_per_shard": self.seqs_per_shard,
            "separator_id": self.sep,
            "dtype": "uint32",
            "seed": self.seed,
            "sources": [
                {"id": sid, "name": name, "documents": self._per_source[sid][0], "tokens": self._per_source[sid][1]}
                for name, sid in self._sources.items()
            ],
            "counts": {
                "documents": n_docs,
                "document_tokens": n_doc_tokens,
                "tokens": n_tokens,
                "sequences": n_seq,
                "padding": n_pad,
            },
            "shards": [{"file": f, "tokens": t} for f, t in shards],
            **({"extra": self.extra} if self.extra else {}),
        }
        from .records import write_json

        write_json(os.path.join(self.out_dir, MANIFEST), m, indent=2, sort_keys=True)
        self._manifest = m
        return m

    def __enter__(self) -> TokenPacker:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.finish()


def _index(i: Any, what: str) -> int:
    """``i`` as an int index, as a list takes it (ints, numpy ints, anything with ``__index__``)."""
    import operator

    try:
        return operator.index(i)
    except TypeError:
        raise Qwen25TypeError(f"{what} index must be an int, not {type(i).__name__} ({i!r:.40})") from None


class PackedDataset:
    """Torch-free, memory-mapped reader of a packed folder: by sequence and by document."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import numpy as np

        self.path = os.fspath(path)
        mpath = os.path.join(self.path, MANIFEST)
        try:
            with open(mpath, encoding="utf-8") as f:
                self.manifest: dict[str, Any] = json.load(f)
        except FileNotFoundError:
            raise Qwen25FileNotFoundError(2, "no manifest (unfinished or not a packed folder)", mpath) from None
        except json.JSONDecodeError as e:
            raise FormatError(f"{mpath}:{e.lineno}: {e.msg}", mpath, e.lineno) from None
        if not isinstance(self.manifest, dict):
            raise FormatError(f"{mpath}: holds {type(self.manifest).__name__}, not a JSON object", mpath, 0)
        if self.manifest.get("format") != FORMAT:
            raise FormatError(f"{mpath}: format is {self.manifest.get('format')!r}, expected {FORMAT!r}", mpath, 0)

        def key(obj: dict[str, Any], name: str, kind: type, where: str = "") -> Any:
            if name not in obj:
                raise FormatError(f"{mpath}: {where}no key {name!r}", mpath, 0)
            v = obj[name]
            if not isinstance(v, kind) or isinstance(v, bool):
                raise FormatError(f"{mpath}: {where}{name!r} is {v!r}, not {kind.__name__}", mpath, 0)
            return v

        self.seq_len = key(self.manifest, "seq_len", int)
        if self.seq_len < 1:
            raise FormatError(f"{mpath}: 'seq_len' is {self.seq_len}, not >= 1", mpath, 0)
        self.separator_id = key(self.manifest, "separator_id", int)
        self._shards = []
        starts = [0]
        for j, s in enumerate(key(self.manifest, "shards", list)):
            if not isinstance(s, dict):
                raise FormatError(f"{mpath}: shards[{j}] is {s!r}, not an object", mpath, 0)
            p = os.path.join(self.path, key(s, "file", str, f"shards[{j}]: "))
            want = key(s, "tokens", int, f"shards[{j}]: ")
            try:
                n = os.path.getsize(p) // 4
            except FileNotFoundError:
                raise Qwen25FileNotFoundError(2, f"shard {j} of {mpath} is missing", p) from None
            if n != want or n % self.seq_len:
                raise FormatError(f"{p}: holds {n} tokens, manifest says {want} (seq_len {self.seq_len})", p, 0)
            self._shards.append(np.memmap(p, dtype="<u4", mode="r") if n else np.zeros(0, dtype="<u4"))
            starts.append(starts[-1] + n)
        self._starts = np.array(starts, dtype=np.int64)
        idx_path = os.path.join(self.path, "docs.idx")
        try:
            raw = np.fromfile(idx_path, dtype="<u8")
        except FileNotFoundError:
            raise Qwen25FileNotFoundError(2, "the document index is missing", idx_path) from None
        if raw.size % 3:
            raise FormatError(f"{idx_path}: size is not a whole number of (start, length, source) records", idx_path, 0)
        self.doc_index = raw.reshape(-1, 3).astype(np.int64)

    @property
    def n_tokens(self) -> int:
        return int(self._starts[-1])

    def __len__(self) -> int:
        return self.n_tokens // self.seq_len

    @property
    def num_documents(self) -> int:
        return len(self.doc_index)

    def tokens(self, start: int, stop: int) -> np.ndarray:
        """Global token range [start, stop) (a copy when it spans shards)."""
        import numpy as np

        if not 0 <= start <= stop <= self.n_tokens:
            raise IndexError(f"token range [{start}, {stop}) outside [0, {self.n_tokens})")
        parts = []
        k = int(np.searchsorted(self._starts, start, side="right")) - 1
        pos = start
        while pos < stop:
            lo = pos - int(self._starts[k])
            hi = min(stop, int(self._starts[k + 1])) - int(self._starts[k])
            parts.append(self._shards[k][lo:hi])
            pos = int(self._starts[k]) + hi
            k += 1
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, dtype="<u4")

    def sequence(self, i: int) -> np.ndarray:
        i = _index(i, "sequence")
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sequence {i} out of range ({n} sequences)")
        return self.tokens(i * self.seq_len, (i + 1) * self.seq_len)

    __getitem__ = sequence

    def iter_sequences(self, start: int = 0) -> Iterator[np.ndarray]:
        """Sequences from ``start`` on (seekable: resume from a saved index)."""
        for i in range(start, len(self)):
            yield self.sequence(i)

    def _document_row(self, i: int) -> np.ndarray:
        """Row ``i`` of :attr:`doc_index`, ``(start, length, source)``, negative ``i`` from the end."""
        i = _index(i, "document")
        if not -self.num_documents <= i < self.num_documents:
            raise IndexError(f"document {i} out of range ({self.num_documents} documents)")
        return self.doc_index[i]

    def document(self, i: int) -> np.ndarray:
        """The tokens of document ``i`` (separator excluded)."""
        s, n, _ = self._document_row(i)
        return self.tokens(int(s), int(s + n))

    def document_source(self, i: int) -> str:
        sid = int(self._document_row(i)[2])
        return next(s["name"] for s in self.manifest["sources"] if s["id"] == sid)

    def document_starts(self, i: int) -> np.ndarray:
        """Offsets within sequence ``i`` where a document starts (for per-document attention and
        position resets); 0 is included when the sequence starts inside a document."""
        import numpy as np

        i = _index(i, "sequence")
        lo, hi = i * self.seq_len, (i + 1) * self.seq_len
        st = self.doc_index[:, 0]
        a, b = np.searchsorted(st, lo, side="left"), np.searchsorted(st, hi, side="left")
        out = st[a:b] - lo
        if len(out) == 0 or out[0] != 0:
            out = np.concatenate([[0], out])
        return out.astype(np.int64)

    def position_ids(self, i: int) -> np.ndarray:
        """Positions for sequence ``i`` that restart at 0 where each document starts (and at the
        sequence start), as Megatron's ``reset_position_ids``. Passed to
        :meth:`qwen25.model.Qwen2ForCausalLM.forward` as ``position_ids``, they also keep attention
        within documents (a position that does not follow its predecessor by +1 starts one). A
        document's separator, and the padding after the last one, continue its positions."""
        import numpy as np

        i = _index(i, "sequence")
        if not -len(self) <= i < len(self):
            raise IndexError(f"sequence {i} out of range ({len(self)} sequences)")
        i %= len(self)
        starts = self.document_starts(i)
        t = np.arange(self.seq_len, dtype=np.int64)
        return t - starts[np.searchsorted(starts, t, side="right") - 1]
