"""The loss curve as a PNG: with matplotlib when it is installed (axes, labels, stage boundaries),
else a plain built-in plot (axes, a grid and the curve; no text) written with zlib alone."""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from collections.abc import Sequence

__all__ = ["plot_loss", "png_plot", "write_png_plot"]


def plot_loss(path: str | os.PathLike[str], steps: Sequence[int], losses: Sequence[float], *,
              title: str = "", stage_starts: Sequence[int] = ()) -> str | None:
    """Write the curve to ``path`` (atomically). Returns a note when matplotlib is missing (the
    plot then has no labels), else None."""
    note = None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        png = png_plot(steps, losses)
        note = ("matplotlib is not installed: loss.png is a plain plot without axis labels "
                "(pip install matplotlib for a labelled one)")
    else:
        fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
        ax.plot(list(steps), list(losses), lw=1.2)
        for s in stage_starts:
            ax.axvline(s, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss (nats/token)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        png = buf.getvalue()
    from ..data.records import write_bytes

    write_bytes(path, png)
    return note


def _png_bytes(width: int, height: int, rows: list[bytearray]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(r) for r in rows)  # filter type 0 per scanline
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def write_png_plot(path: str | os.PathLike[str], xs: Sequence[float], ys: Sequence[float], *,
                   width: int = 640, height: int = 400) -> None:
    """Write :func:`png_plot` of (xs, ys) to ``path`` (atomically)."""
    from ..data.records import write_bytes

    write_bytes(path, png_plot(xs, ys, width=width, height=height))


def png_plot(xs: Sequence[float], ys: Sequence[float], *, width: int = 640, height: int = 400) -> bytes:
    """A line plot of (xs, ys) as an RGB PNG: white background, grey grid, black axes, blue line."""
    rows = [bytearray(b"\xff" * (3 * width)) for _ in range(height)]

    def put(x: int, y: int, rgb: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            rows[y][3 * x:3 * x + 3] = bytes(rgb)

    def line(x0: int, y0: int, x1: int, y1: int, rgb: tuple[int, int, int]) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            put(x0, y0, rgb)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    left, right, top, bottom = 40, width - 15, 15, height - 30
    for i in range(1, 5):  # grid
        gy = top + (bottom - top) * i // 5
        gx = left + (right - left) * i // 5
        line(left, gy, right, gy, (225, 225, 225))
        line(gx, top, gx, bottom, (225, 225, 225))
    line(left, bottom, right, bottom, (0, 0, 0))
    line(left, top, left, bottom, (0, 0, 0))
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(float(y))]
    if pts:
        x_lo, x_hi = min(p[0] for p in pts), max(p[0] for p in pts)
        y_lo, y_hi = min(p[1] for p in pts), max(p[1] for p in pts)
        xr, yr = (x_hi - x_lo) or 1.0, (y_hi - y_lo) or 1.0

        def px(p: tuple[float, float]) -> tuple[int, int]:
            return (left + round((p[0] - x_lo) / xr * (right - left)),
                    bottom - round((p[1] - y_lo) / yr * (bottom - top)))

        prev = px(pts[0])
        put(*prev, (31, 119, 180))
        for p in pts[1:]:
            cur = px(p)
            line(*prev, *cur, (31, 119, 180))
            prev = cur
    return _png_bytes(width, height, rows)
