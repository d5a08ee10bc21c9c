"""The qwen25 exception hierarchy.

Every error qwen25 raises on purpose is a :class:`Qwen25Error`, and also the builtin exception a
Python user would expect for it: ``ValueError`` for bad values and malformed files, ``KeyError``
for unknown token ids, ``FileNotFoundError``/``OSError`` for files. So both
``except qwen25.Qwen25Error`` and ``except ValueError`` work.
"""

from __future__ import annotations


class Qwen25Error(Exception):
    """Base class of every error qwen25 raises on purpose."""


class Qwen25ValueError(Qwen25Error, ValueError):
    """A bad argument value."""


class Qwen25TypeError(Qwen25Error, TypeError):
    """An argument of the wrong type (a non-``str`` text, a float token id, ...)."""


class FormatError(Qwen25Error, ValueError):
    """A malformed input file. ``path`` and ``line`` (1-based; 0 if none applies) say where."""

    def __init__(self, message: str, path: str = "", line: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class UnknownTokenError(Qwen25Error, KeyError, ValueError):
    """A token id that is not in the vocabulary. ``token_id`` is the id."""

    def __init__(self, message: str, token_id: int | None = None) -> None:
        super().__init__(message)
        self.token_id = token_id

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DisallowedSpecialTokenError(Qwen25Error, ValueError):
    """A special token that ``disallowed_special`` forbids was found in the text."""

    def __init__(self, message: str, token: str = "") -> None:
        super().__init__(message)
        self.token = token


class Qwen25IOError(Qwen25Error, OSError):
    """A file could not be read or written."""


class Qwen25FileNotFoundError(Qwen25IOError, FileNotFoundError):
    """A file or folder does not exist."""


__all__ = [
    "Qwen25Error",
    "Qwen25ValueError",
    "Qwen25TypeError",
    "FormatError",
    "UnknownTokenError",
    "DisallowedSpecialTokenError",
    "Qwen25IOError",
    "Qwen25FileNotFoundError",
]
