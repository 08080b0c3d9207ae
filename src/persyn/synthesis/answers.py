"""Gold answers for prompts nobody labelled.

- ``computed_answer``: the value of the arithmetic expression a prompt states, evaluated exactly
  by sympy (only where the task allows it: the prompt holds one expression of numbers).
- ``majority_answer``: the most common final answer among several teachers' responses
  (self-consistency's majority vote, Wang et al. 2023, arXiv 2203.11171, used here across
  teachers rather than samples), with its agreement. A pseudo-gold: when most teachers are
  wrong the same way, it is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Numbers, + - * / ^ and parentheses, with at least one operator between two operands.
# Not part of a longer token: no letter, digit, ^ or $ right before or after it ("x^3 + 4x^2" is
# algebra, not the expression "3 + 4").
_EXPR = re.compile(r"(?<![\w^$.])[-(]*\d[\d.]*(?:\s*[-+*/^×÷]\s*[-(]*\d[\d.]*\)*)+\)*(?![\w^$])")


def arithmetic_expression(prompt: str) -> str | None:
    """The one arithmetic expression of numbers that ``prompt`` states (e.g. ``"12 + 7 - 30"``),
    or None when it states none or several different ones."""
    found = {m.group(0).strip().rstrip(".") for m in _EXPR.finditer(prompt)}
    return found.pop() if len(found) == 1 else None


def computed_answer(prompt: str) -> str | None:
    """The exact value of the one arithmetic expression in ``prompt`` (e.g. ``"What is
    12 + 7 - 30?"`` → ``"-11"``; ``"1/4 + 1/2"`` → ``"3/4"``), or None when the prompt holds no
    such expression, several different ones, or one sympy cannot evaluate to a number
    (division by zero). Needs sympy."""
    from sympy import Rational, nsimplify
    from sympy.parsing.sympy_parser import parse_expr

    expr = arithmetic_expression(prompt)
    if expr is None:
        return None
    expr = expr.replace("×", "*").replace("÷", "/").replace("^", "**")
    if expr.count("(") != expr.count(")"):
        return None
    try:
        value = nsimplify(parse_expr(expr, evaluate=True), rational=True)
    except (SyntaxError, TypeError, ValueError, ZeroDivisionError, AttributeError):
        return None
    if not value.is_number or not value.is_finite:
        return None
    value = Rational(value)
    return str(value.p) if value.q == 1 else f"{value.p}/{value.q}"


@dataclass
class Majority:
    """The vote on one prompt: ``answer`` (the pseudo-gold, None when no answer wins),
    ``votes`` for it, ``voters`` (responses with a parsable answer), ``agreement`` =
    votes / voters, and ``note`` (why there is no answer)."""

    answer: str | None
    votes: int
    voters: int
    note: str | None = None

    @property
    def agreement(self) -> float:
        return self.votes / self.voters if self.voters else 0.0


def majority_answer(responses: list[str], min_voters: int = 2) -> Majority:
    """The final answer that strictly more responses give than any other.

    Answers are extracted with math-verify's ``parse`` and grouped by its ``verify``
    (``"0.5"`` and ``"1/2"`` are one answer). A tie for the most votes, or fewer than
    ``min_voters`` parsable answers, gives no pseudo-gold (``answer`` None, with a ``note``).
    """
    from math_verify import parse, verify

    groups: list[tuple[list, str, int]] = []  # (parsed representative, its text, votes)
    voters = 0
    for text in responses:
        parsed = parse(text)
        if not parsed:
            continue
        voters += 1
        for i, (rep, shown, votes) in enumerate(groups):
            if verify(rep, parsed):
                groups[i] = (rep, shown, votes + 1)
                break
        else:
            groups.append((parsed, str(parsed[-1]), 1))
    if voters < min_voters:
        return Majority(None, 0, voters, f"{voters} parsable answer(s), a majority needs {min_voters}")
    groups.sort(key=lambda g: -g[2])
    if len(groups) > 1 and groups[0][2] == groups[1][2]:
        tied = [g for g in groups if g[2] == groups[0][2]]
        shown = ", ".join(f"{g[1]} ({g[2]})" for g in tied)
        return Majority(None, groups[0][2], voters, f"no majority: a tie between {shown}")
    return Majority(groups[0][1], groups[0][2], voters)
