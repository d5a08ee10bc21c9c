"""``build_folder_once``: the folder appears whole or not at all, once, even when another process
finishes the same folder first (every rank of a run builds the debug data at once)."""

from __future__ import annotations

import os

import pytest

from qwen25.train.debug_data import build_folder_once


def _leftovers(d: str) -> list[str]:
    return sorted(n for n in os.listdir(d) if ".tmp" in n)


def test_builds_once_then_reuses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    final = str(tmp_path / "out")
    calls = []

    def build(tmp: str) -> None:
        calls.append(tmp)
        with open(os.path.join(tmp, "done"), "w") as f:
            f.write("1")

    assert build_folder_once(final, "done", build) == final
    assert build_folder_once(final, "done", build) == final
    assert len(calls) == 1 and os.listdir(final) == ["done"] and _leftovers(str(tmp_path)) == []


def test_another_process_wins_the_rename(tmp_path) -> None:  # type: ignore[no-untyped-def]
    final = str(tmp_path / "out")

    def build(tmp: str) -> None:
        with open(os.path.join(tmp, "done"), "w") as f:
            f.write("mine")
        os.makedirs(final)  # the other rank renames its complete copy into place first
        with open(os.path.join(final, "done"), "w") as f:
            f.write("theirs")
        with open(os.path.join(final, "more"), "w") as f:
            f.write("x")

    assert build_folder_once(final, "done", build) == final
    with open(os.path.join(final, "done")) as f:
        assert f.read() == "theirs"
    assert _leftovers(str(tmp_path)) == []


def test_a_failed_build_leaves_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    final = str(tmp_path / "out")

    def build(tmp: str) -> None:
        with open(os.path.join(tmp, "half"), "w") as f:
            f.write("1")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_folder_once(final, "done", build)
    assert os.listdir(tmp_path) == []


def test_a_folder_without_its_marker_is_not_replaced_silently(tmp_path) -> None:  # type: ignore[no-untyped-def]
    final = tmp_path / "out"
    final.mkdir()
    (final / "stray").write_text("x")  # not ours, not complete: the rename must not hide it

    def build(tmp: str) -> None:
        with open(os.path.join(tmp, "done"), "w") as f:
            f.write("1")

    with pytest.raises(OSError):
        build_folder_once(str(final), "done", build)
    assert sorted(os.listdir(final)) == ["stray"] and _leftovers(str(tmp_path)) == []
