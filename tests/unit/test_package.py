"""Package-level contracts: light import, error hierarchy, version."""

from __future__ import annotations

import subprocess
import sys

import pytest

import qwen25


def test_import_is_light() -> None:
    code = (
        "import sys, qwen25; "
        "heavy = [m for m in ('torch', 'cupy', 'transformers', 'tokenizers', 'jinja2', 'numpy') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_error_hierarchy_keeps_builtin_meanings() -> None:
    assert issubclass(qwen25.Qwen25ValueError, ValueError)
    assert issubclass(qwen25.FormatError, ValueError)
    assert issubclass(qwen25.UnknownTokenError, KeyError)
    assert issubclass(qwen25.UnknownTokenError, ValueError)
    assert issubclass(qwen25.Qwen25FileNotFoundError, FileNotFoundError)
    for cls in (qwen25.Qwen25ValueError, qwen25.FormatError, qwen25.UnknownTokenError,
                qwen25.DisallowedSpecialTokenError, qwen25.Qwen25IOError, qwen25.Qwen25FileNotFoundError):
        assert issubclass(cls, qwen25.Qwen25Error)


def test_unknown_id_message_is_not_quoted() -> None:
    with pytest.raises(qwen25.UnknownTokenError) as ei:
        qwen25.Tokenizer.qwen25().decode([999_999_999])
    assert str(ei.value) == "unknown token id 999999999"
    assert ei.value.token_id == 999_999_999


def test_version() -> None:
    assert qwen25.__version__.count(".") == 2
