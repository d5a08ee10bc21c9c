"""``plot_loss`` writes loss.png atomically, with matplotlib and without it (the built-in plot);
Pillow reads the files back."""

from __future__ import annotations

import os
import sys

import pytest

from qwen25.train.plot import plot_loss, write_png_plot

Image = pytest.importorskip("PIL.Image")


def _pixels(path: str) -> tuple[tuple[int, int], set[tuple[int, int, int]]]:
    with Image.open(path) as im:
        im.load()
        rgb = im.convert("RGB")
        w, h = rgb.size
        return rgb.size, {rgb.getpixel((x, y)) for x in range(0, w) for y in range(0, h)}


def test_without_matplotlib_the_plain_plot_is_a_png(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    path = str(tmp_path / "loss.png")
    note = plot_loss(path, [1, 2, 3, 4], [4.0, 3.0, 2.5, 2.0])
    assert note is not None and "matplotlib is not installed" in note
    size, colours = _pixels(path)
    assert size == (640, 400) and (31, 119, 180) in colours and (0, 0, 0) in colours  # curve and axes
    assert os.listdir(tmp_path) == ["loss.png"]  # no temporary file left


def test_with_matplotlib_the_labelled_plot_is_a_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    path = str(tmp_path / "loss.png")
    assert plot_loss(path, [1, 2, 3], [3.0, 2.0, 1.0], title="t", stage_starts=[2]) is None
    size, _ = _pixels(path)
    assert size == (800, 500)  # figsize 8x5 at 100 dpi
    assert os.listdir(tmp_path) == ["loss.png"]


def test_write_png_plot_replaces_an_older_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "p.png"
    path.write_bytes(b"old")
    write_png_plot(path, [0, 1], [1.0, 0.0], width=50, height=30)
    assert _pixels(str(path))[0] == (50, 30) and os.listdir(tmp_path) == ["p.png"]
