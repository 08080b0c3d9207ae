"""The ``reference`` teacher: answers with the prompt set's own reference solution, in a style.

Not a model: a teacher of known quality and a chosen style, so that a pool can hold responses that
differ in form (answer only, terse steps, verbose steps) while being correct.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from persyn.config import TeacherConfig
from persyn.core.records import Completion, Prompt

STYLES = ("solution", "answer", "terse", "verbose")

# Left-to-right chains of integers joined by + and - (reasoning_gym chain_sum and the simple
# basic_arithmetic problems): the only expressions we spell out step by step.
_CHAIN = re.compile(r"^\s*-?\d+(\s*[+-]\s*-?\d+)+\s*$")


def chain_steps(expression: str) -> list[tuple[int, str, int, int]] | None:
    """Left-to-right steps of a ``+``/``-`` chain of integers: ``[(left, op, right, result)]``,
    or None when ``expression`` is not such a chain (parentheses, ``*``, ``/``)."""
    if not _CHAIN.match(expression):
        return None
    terms: list[int] = []
    ops: list[str] = []
    for tok in expression.split():
        if tok in "+-" and len(tok) == 1:
            ops.append(tok)
        elif re.fullmatch(r"-?\d+", tok):
            terms.append(int(tok))
        else:  # e.g. "3+4" written without spaces: not spelled out
            return None
    if len(terms) != len(ops) + 1:
        return None
    steps, acc = [], terms[0]
    for op, t in zip(ops, terms[1:], strict=True):
        new = acc + t if op == "+" else acc - t
        steps.append((acc, op, t, new))
        acc = new
    return steps


def _fmt(v: int) -> str:
    return f"({v})" if v < 0 else str(v)


def render_reference(p: Prompt, style: str) -> str | None:
    """The reference teacher's response to ``p`` in ``style``, or None when the prompt lacks
    what the style needs.

    - ``solution``: the prompt set's worked solution (else the answer);
    - ``answer``: only the final-answer line ``#### <answer>``;
    - ``terse``: the computation lines only, then ``#### <answer>`` (arithmetic chains: one line
      per operation; worked solutions: the lines that contain ``=``);
    - ``verbose``: the steps explained in full sentences, then ``#### <answer>``.
    """
    answer = p.answer.strip() if p.answer is not None and p.answer.strip() else None
    if style == "answer":
        return f"#### {answer}" if answer else None
    if style == "solution":
        return p.solution if p.solution is not None and p.solution.strip() else answer
    if answer is None:
        return None
    expr = str(p.metadata.get("expression") or "")
    steps = chain_steps(expr) if expr else None
    body = (p.solution or "").rsplit("####", 1)[0].strip()
    if style == "terse":
        if steps:
            lines = [f"{_fmt(a)} {op} {_fmt(b)} = {r}" for a, op, b, r in steps]
        else:
            lines = [ln.strip() for ln in body.splitlines() if "=" in ln]
            lines = lines or ([f"{expr} = {answer}"] if expr else [])  # no steps to show: the answer
        return "\n".join(lines + [f"#### {answer}"])
    if steps:
        lines = [f"We need to compute {expr}. Let's work from left to right, one operation at a time."]
        for i, (a, op, b, r) in enumerate(steps):
            verb = "Adding" if op == "+" else "Subtracting"
            first = "First" if i == 0 else "Next"
            lines.append(f"{first}, we start from {a}. {verb} {b} gives {_fmt(a)} {op} {_fmt(b)} = {r}.")
    else:
        intro = [] if body.lower().startswith("let's") else ["Let's solve this step by step."]
        lines = intro + ([body] if body else [])
    lines.append(f"So the final answer is {answer}.")
    return "\n".join(lines + [f"#### {answer}"])


class ReferenceEngine:
    """Answers every prompt with ``render_reference(prompt, style)``. A prompt without the
    field the style needs gives a failed item."""

    def __init__(self, teacher: TeacherConfig, seed: int = 0):
        style = teacher.style
        if style not in STYLES:
            raise ValueError(f"unknown reference style '{style}' (known: {', '.join(STYLES)})")
        self.style = style

    def generate(self, prompts: list[Prompt]) -> Iterator[list[tuple[str, Completion]]]:
        out = []
        for p in prompts:
            text = render_reference(p, self.style)
            if text is None or not text.strip():
                out.append((p.id, Completion("", error="no reference solution for this prompt")))
            else:
                out.append((p.id, Completion(text, finish_reason="stop")))
        yield out
