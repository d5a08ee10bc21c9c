"""qwen25.rl.verify against hand-labelled answers: each pair below was judged by hand (equal or
not as a grader of MATH/GSM8K answers would judge it), never by the code under test."""

from __future__ import annotations

import pytest

from qwen25.rl.verify import extract_answer, math_equal

# (response, the answer a reader extracts by hand)
EXTRACT = [
    ("The answer is \\boxed{42}.", "42"),
    ("First \\boxed{1}, then correcting: \\boxed{2}", "2"),
    ("So $x = \\boxed{\\frac{1}{2}}$", "\\frac{1}{2}"),
    ("nested \\boxed{\\sqrt{\\frac{a}{b}}} end", "\\sqrt{\\frac{a}{b}}"),
    ("\\fbox{7}", "7"),
    ("\\boxed 5 is it", "5"),
    ("Natalia sold 48/2 = 24 clips in May.\nIn total 48+24 = 72.\n#### 72", "72"),
    ("#### 1,000\n", "1,000"),
    ("no final answer here", None),
    ("\\boxed{}", None),
    ("unbalanced \\boxed{3", None),
    ("both \\boxed{3} and\n#### 4", "3"),
]


@pytest.mark.parametrize("text,expected", EXTRACT)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


# (prediction, reference, equal?) -- labelled by hand
PAIRS = [
    ("42", "42", True),
    ("42.0", "42", True),
    ("1,000", "1000", True),
    ("\\frac{1}{2}", "0.5", True),
    ("\\dfrac{1}{2}", "\\frac12", True),
    ("1/2", "0.5", True),
    ("-\\frac{3}{4}", "-0.75", True),
    ("50\\%", "0.5", True),
    ("50%", "50", True),
    ("$5$", "5", True),
    ("x = 5", "5", True),
    ("5 \\text{ cm}", "5", True),
    ("90^\\circ", "90", True),
    ("\\text{(B)}", "(B)", True),
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),
    ("x+1", "1+x", True),
    ("2x+2", "2(x+1)", True),
    ("(1, 2)", "(1,2)", True),
    ("(1/2, 3)", "(0.5, 3)", True),
    ("[0, 1)", "[0,1)", True),
    ("\\pi/2", "\\frac{\\pi}{2}", True),
    ("1e3", "1000", True),
    ("0.3333333333", "1/3", True),
    ("\\left( 3, 4 \\right)", "(3,4)", True),
    ("3.", "3", True),
    ("41", "42", False),
    ("0.5", "0.51", False),
    ("\\frac{1}{3}", "0.33", False),
    ("(1, 2)", "(2, 1)", False),
    ("[0, 1)", "[0, 1]", False),
    ("(1, 2)", "(1, 2, 3)", False),
    ("x+1", "x-1", False),
    ("2\\sqrt{2}", "\\sqrt{2}", False),
    ("5", "-5", False),
    ("A", "B", False),
    ("", "0", False),
    ("1,2", "12", False),
    ("\\frac{1}{0}", "1", False),
    ("50%", "0.05", False),
    ("not a number {", "3", False),
]


@pytest.mark.parametrize("pred,ref,expected", PAIRS)
def test_math_equal_hand_labelled(pred: str, ref: str, expected: bool) -> None:
    assert math_equal(pred, ref) is expected
    assert math_equal(ref, pred) is expected  # symmetric


def test_none_and_types() -> None:
    assert math_equal(None, "1") is False and math_equal("1", None) is False
    with pytest.raises(TypeError):
        extract_answer(3)  # type: ignore[arg-type]


def test_extract_then_compare_end_to_end() -> None:
    assert math_equal(extract_answer("thus \\boxed{\\dfrac{2}{4}}"), extract_answer("#### 0.5"))
    assert not math_equal(extract_answer("thus \\boxed{3}"), extract_answer("#### 4"))
