"""A brute-force pure-Python reference of the decontamination rules: the plain O(mn) LCS
dynamic program over every pair, literal n-gram sets, ``unicodedata`` normalisation. It shares
no code with qwen25."""

from __future__ import annotations

import math
import unicodedata


def lcs_dp(a: list[int], b: list[int]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            cur[j + 1] = prev[j] + 1 if x == y else max(prev[j + 1], cur[j])
        prev = cur
    return prev[-1]


def rule(lcs: int, lt: int, le: int, lcs_min: int, ratio: float) -> bool:
    ppm = math.floor(ratio * 1e6 + 0.5)
    return lcs >= lcs_min and lcs * 10**6 >= ppm * min(lt, le)


def grams(s: list, n: int) -> set[tuple]:
    return {tuple(s[i : i + n]) for i in range(len(s) - n + 1)}


def shared_positions(t: list, e: list, n: int) -> list[int]:
    g = grams(e, n)
    return [p for p in range(len(t) - n + 1) if tuple(t[p : p + n]) in g]


def window_bounds(p: int, n: int, k: int, length: int) -> tuple[int, int]:
    start = max(0, p + n // 2 - k // 2)
    end = min(length, start + k)
    return max(0, end - k), end


def witnesses(
    test: list[list[int]], t: list[int], *, mode: str, ngram: int = 13, lcs_min: int = 13, ratio: float = 0.6,
    window: int | str | None = None,
) -> list[tuple[int, int | None]]:
    """Every (test index, lcs) meeting the rule, ascending. lcs is None in ngram mode."""
    out: list[tuple[int, int | None]] = []
    for i, e in enumerate(test):
        if mode == "ngram":
            if shared_positions(t, e, ngram):
                out.append((i, None))
            continue
        if mode == "lcs":
            lcs = lcs_dp(t, e)
            if rule(lcs, len(t), len(e), lcs_min, ratio):
                out.append((i, lcs))
            continue
        hits = shared_positions(t, e, ngram)
        if not hits:
            continue
        if window is None:
            lcs = lcs_dp(t, e)
            if rule(lcs, len(t), len(e), lcs_min, ratio):
                out.append((i, lcs))
            continue
        if window == "auto":
            # every pair of equal n-grams places e at p - q; judge t there, widened by a quarter
            # of |e| on both sides (ceil), clipped to t
            # (the witness is the leftmost alignment that meets the rule)
            slack = -(-len(e) // 4)
            offsets = sorted({p - q for p in range(len(t) - ngram + 1) for q in range(len(e) - ngram + 1)
                              if t[p : p + ngram] == e[q : q + ngram]})
            found = None
            for off in offsets:
                lo = min(max(0, off - slack), len(t))
                hi = min(max(0, off + len(e) + slack), len(t))
                lcs = lcs_dp(t[lo:hi], e)
                if rule(lcs, hi - lo, len(e), lcs_min, ratio):
                    found = lcs
                    break
            if found is not None:
                out.append((i, found))
            continue
        for p in hits:
            s, en = window_bounds(p, ngram, window, len(t))
            lcs = lcs_dp(t[s:en], e)
            if rule(lcs, en - s, len(e), lcs_min, ratio):
                out.append((i, lcs))
                break
    return out


def _drop(c: str) -> bool:
    return unicodedata.category(c)[0] in "PS"


def normalize(text: str) -> str:
    return " ".join("".join(c for c in text if not _drop(c)).split())


def words(text: str) -> list[str]:
    out = []
    for w in text.split():
        w = "".join(c for c in w if not _drop(c)).lower()
        if w:
            out.append(w)
    return out
