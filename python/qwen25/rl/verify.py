"""Math answer checking for rejection sampling and RL rewards: pull the final answer out of a
response, and decide whether it equals the reference.

    >>> from qwen25.rl.verify import extract_answer, math_equal
    >>> extract_answer("so the total is \\\\boxed{\\\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    >>> extract_answer("She pays 3 + 4 = 7 dollars.\\n#### 7")
    '7'
    >>> math_equal("\\\\frac{1}{2}", "0.5"), math_equal("1,000", "1000"), math_equal("x+1", "1+x")
    (True, True, True)

``extract_answer`` takes the last ``\\boxed{...}`` (or ``\\fbox{...}``, braces balanced), else what
follows the last ``####`` (GSM8K's marker), else None.

``math_equal`` normalises both sides (``$``, ``\\text{...}``, ``\\left``/``\\right``, ``\\dfrac``,
degree signs, thousands separators, a trailing period, ``x =`` in front), then compares, in order:
the strings; numbers (integers, decimals, fractions, ``\\frac``, percentages either way; equal
within a relative 1e-9, so a rounded decimal matches its fraction); tuples, intervals and lists
element by element (the brackets must agree for intervals); and, with ``sympy`` installed, the
difference of the two expressions simplified to 0.
Anything it cannot parse is unequal: it never raises on odd input.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = ["extract_answer", "math_equal", "normalize_answer"]

_BOX = re.compile(r"\\(?:boxed|fbox)\s*")


def _balanced(text: str, start: int) -> tuple[str, int] | None:
    """The contents of the brace group opening at ``text[start] == '{'`` and the index after it."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i], i + 1
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a response: the last ``\\boxed{}`` / ``\\fbox{}``, else the text after
    the last ``####``, else None. Empty answers are None."""
    if not isinstance(text, str):
        raise TypeError(f"extract_answer needs a str, not {type(text).__name__}")
    found = None
    for m in _BOX.finditer(text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            got = _balanced(text, i)
            if got is not None:
                found = got[0]
        else:  # \boxed 5: the next token
            tok = re.match(r"[^\s$]+", text[i:])
            if tok:
                found = tok.group(0)
    if found is not None:
        found = found.strip()
        return found or None
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip()
        tail = tail.splitlines()[0].strip() if tail else ""
        return tail or None
    return None


# ---------------------------------------------------------------------------- normalising
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox|textit|mathbf)\s*\{([^{}]*)\}")
_UNITS = ("degrees", "degree", "cm", "km", "m", "units", "unit", "dollars", "dollar", "cents", "inches", "inch",
          "feet", "foot", "meters", "meter", "hours", "hour", "minutes", "minute", "seconds", "second",
          "square", "sq")


def normalize_answer(s: str) -> str:
    """A canonical string form of an answer (see the module docstring)."""
    s = str(s).strip()
    s = s.replace("\n", " ").replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", " ")
    s = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)\b\s*", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\displaystyle", "")
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "").replace("\\%", "%")
    s = s.replace("\\$", "").replace("$", "")
    for _ in range(3):
        s = _TEXT.sub(r"\1", s)
    s = s.strip()
    s = re.sub(r"^(?:[a-zA-Z]\w*|\\[a-zA-Z]+)\s*=\s*(?=\S)", "", s)  # "x = 5" -> "5"
    s = s.rstrip(".").strip()
    words = s.split()
    while len(words) > 1 and words[-1].lower().rstrip(".") in _UNITS:
        words.pop()
    s = " ".join(words)
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    s = re.sub(r"\s+", "", s)
    return s


def _number(s: str) -> Fraction | float | None:
    """An exact (Fraction) or float value for plain numeric forms; None otherwise."""
    pct = s.endswith("%")
    t = s[:-1] if pct else s
    value: Fraction | float | None = None
    m = re.fullmatch(r"([+-]?)\\frac\{([^{}]+)\}\{([^{}]+)\}", t) or re.fullmatch(r"([+-]?)\\frac(\d)(\d)", t)
    if m:
        a, b = _number(m.group(2)), _number(m.group(3))
        if a is None or b is None or b == 0:
            return None
        value = (Fraction(a) / Fraction(b)) if isinstance(a, Fraction) and isinstance(b, Fraction) else float(a) / float(b)
        if m.group(1) == "-":
            value = -value
    elif re.fullmatch(r"[+-]?\d+/\d+", t):
        n, d = t.split("/")
        if int(d) == 0:
            return None
        value = Fraction(int(n), int(d))
    elif re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", t):
        value = Fraction(t)
    elif re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", t):
        value = float(t)
    if value is None:
        return None
    return value / 100 if pct else value


def _num_equal(a: Fraction | float, b: Fraction | float) -> bool:
    if a == b:
        return True
    # a rounded decimal of a non-terminating value (0.3333333333 for 1/3): within 1e-9 relative
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _split_top(s: str) -> list[str]:
    """Split on commas outside brackets."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def _latex_to_sympy(s: str) -> str:
    t = s
    for _ in range(5):
        t2 = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", t)
        t2 = re.sub(r"\\sqrt\[([^{}\]]*)\]\{([^{}]*)\}", r"((\2)**(1/(\1)))", t2)
        t2 = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", t2)
        t2 = re.sub(r"\\sqrt(\d)", r"sqrt(\1)", t2)
        t2 = re.sub(r"\^\{([^{}]*)\}", r"**(\1)", t2)
        if t2 == t:
            break
        t = t2
    t = t.replace("\\pi", "pi").replace("\\cdot", "*").replace("\\times", "*").replace("\\infty", "oo")
    t = re.sub(r"\\(sin|cos|tan|log|ln|exp)\b", r"\1", t)
    t = t.replace("^", "**").replace("{", "(").replace("}", ")")
    if "\\" in t:
        raise ValueError("unhandled LaTeX")
    return t


def _symbolic_equal(a: str, b: str) -> bool:
    try:
        import sympy
        from sympy.parsing.sympy_parser import (implicit_multiplication_application, parse_expr,
                                                standard_transformations)
    except ImportError:
        return False
    tr = standard_transformations + (implicit_multiplication_application,)
    try:
        ea = parse_expr(_latex_to_sympy(a), transformations=tr, evaluate=True)
        eb = parse_expr(_latex_to_sympy(b), transformations=tr, evaluate=True)
        if isinstance(ea, sympy.Basic) and isinstance(eb, sympy.Basic):
            diff = sympy.simplify(ea - eb)
            if diff == 0:
                return True
            if diff.is_number and ea.is_number and eb.is_number:
                va, vb = complex(ea.evalf()), complex(eb.evalf())
                return abs(va - vb) <= 1e-6 * max(1.0, abs(va), abs(vb))
    except Exception:  # noqa: BLE001 - any parse or simplify failure means "not shown equal"
        return False
    return False


def math_equal(pred: str | None, ref: str | None) -> bool:
    """Whether the answer ``pred`` equals the reference ``ref`` (see the module docstring).
    None on either side is False."""
    if pred is None or ref is None:
        return False
    a, b = normalize_answer(str(pred)), normalize_answer(str(ref))
    if not a or not b:
        return False
    return _equal(a, b, depth=0)


def _equal(a: str, b: str, depth: int) -> bool:
    if a == b:
        return True
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        if _num_equal(na, nb):
            return True
        # a percentage against the bare number it names ("50%" vs "50")
        if a.endswith("%") != b.endswith("%"):
            na2 = _number(a.rstrip("%")) if a.endswith("%") else na
            nb2 = _number(b.rstrip("%")) if b.endswith("%") else nb
            return na2 is not None and nb2 is not None and _num_equal(na2, nb2)
        return False
    # tuples, intervals, lists: element by element
    if depth < 3:
        pa, pb = _split_top(a), _split_top(b)
        bracketed = len(a) > 1 and len(b) > 1 and a[0] in "([{" and b[0] in "([{" and a[-1] in ")]}" and b[-1] in ")]}"
        if bracketed:
            if (a[0] + a[-1]) != (b[0] + b[-1]) and not ({a[0] + a[-1], b[0] + b[-1]} <= {"()", "{}"}):
                return False
            ia, ib = _split_top(a[1:-1]), _split_top(b[1:-1])
            if len(ia) == len(ib) and len(ia) > 1:
                return all(_equal(x.strip(), y.strip(), depth + 1) for x, y in zip(ia, ib))
        elif len(pa) > 1 and len(pa) == len(pb):
            return all(_equal(x, y, depth + 1) for x, y in zip(pa, pb))
        elif len(pa) > 1 or len(pb) > 1:
            return False
    if (na is None) != (nb is None) and max(len(a), len(b)) > 200:
        return False
    return _symbolic_equal(a, b)
