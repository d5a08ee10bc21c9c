"""Real text found offline on any machine with this test environment, for the datatrove parity
tests: English prose (the long descriptions in installed packages' METADATA, their licence and
README files, the docstrings of the standard library) and code (standard library modules).
Deterministic: files are taken in sorted order."""

from __future__ import annotations

import ast
import site
import sysconfig
from pathlib import Path


def _site_packages() -> list[Path]:
    return sorted({Path(p) for p in site.getsitepackages() if Path(p).is_dir()})


def _read(p: Path, limit: int = 200_000) -> str | None:
    try:
        t = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return t[:limit] if t.strip() else None


def prose(n: int = 240) -> list[str]:
    """Up to ``n`` English documents: package descriptions, licences, READMEs, docstrings."""
    out: list[str] = []
    for sp in _site_packages():
        for p in sorted(sp.glob("*.dist-info/METADATA")):
            t = _read(p)
            if t and "\n\n" in t:
                body = t.split("\n\n", 1)[1]  # the description after the headers
                if len(body) > 500:
                    out.append(body)
        for pat in ("*.dist-info/LICENSE*", "*.dist-info/licenses/*", "*/README*", "*/LICENSE*"):
            for p in sorted(sp.glob(pat)):
                t = _read(p) if p.is_file() else None
                if t and len(t) > 300:
                    out.append(t)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for p in sorted(stdlib.glob("*.py")):
        src = _read(p, limit=10**7)
        if src is None:
            continue
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        docs = [ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))]
        text = "\n\n".join(d for d in docs if d)
        if len(text) > 300:
            out.append(text)
    # one spread over the sources rather than the first n of one kind
    step = max(1, len(out) // n)
    return out[::step][:n]


def code(n: int = 120) -> list[str]:
    """Up to ``n`` Python modules of the standard library."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out = [t for p in sorted(stdlib.glob("*.py")) if (t := _read(p)) and len(t) > 200]
    step = max(1, len(out) // n)
    return out[::step][:n]
