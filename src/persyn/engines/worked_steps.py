"""Worked steps of a reasoning_gym problem, written from the entry's own metadata.

The ``reference`` teacher's ``terse`` and ``verbose`` styles spell a problem's solution out.
reasoning_gym gives most tasks an answer and no worked solution, so each task here has a writer
that derives the steps from what the task generator recorded (the chain's expression, the
animals and their counts, the words and the letter, the numbers): the task's own solution, in a
form a user with the labelled set could write once per task.

A writer returns :class:`Worked`: an opening sentence and the steps, each one line of
computation (``terse``) and the same step in a full sentence (``verbose``). A task without a
writer, or an entry whose metadata lacks what its writer needs, has no worked steps (None).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# Left-to-right chains of integers joined by + and - (reasoning_gym chain_sum and the simple
# basic_arithmetic problems).
_CHAIN = re.compile(r"^\s*-?\d+(\s*[+-]\s*-?\d+)+\s*$")


@dataclass(frozen=True)
class Step:
    """One step: ``terse`` is the computation line, ``verbose`` the step in a full sentence."""

    terse: str
    verbose: str


@dataclass(frozen=True)
class Worked:
    """A problem's worked steps: ``intro`` opens the verbose style; ``steps`` in order."""

    intro: str
    steps: list[Step]


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
        else:  # e.g. "3+4" written without spaces: not spelled out, no crash
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


def _chain(meta: dict) -> Worked | None:
    expr = str(meta.get("expression") or "")
    steps = chain_steps(expr) if expr else None
    if not steps:
        return None
    out = []
    for i, (a, op, b, r) in enumerate(steps):
        line = f"{_fmt(a)} {op} {_fmt(b)} = {r}"
        verb = "Adding" if op == "+" else "Subtracting"
        first = "First" if i == 0 else "Next"
        out.append(Step(line, f"{first}, we start from {a}. {verb} {b} gives {line}."))
    intro = f"We need to compute {expr}. Let's work from left to right, one operation at a time."
    return Worked(intro, out)


def _legs(meta: dict) -> Worked | None:
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    animals = meta.get("animals")
    if not isinstance(animals, dict) or not animals or any(a not in ANIMALS for a in animals):
        return None
    steps, parts = [], []
    for animal, n in animals.items():
        legs = ANIMALS[animal]
        total = int(n) * legs
        parts.append(total)
        line = f"{n} * {legs} = {total}"
        count = "there is 1" if int(n) == 1 else f"there are {n}"
        steps.append(Step(line, f"Each {animal} has {legs} legs and {count}, so that is {line} legs."))
    if len(parts) > 1:
        line = " + ".join(map(str, parts)) + f" = {sum(parts)}"
        steps.append(Step(line, f"Adding the legs of all the animals gives {line}."))
    return Worked("Let's count the legs of each kind of animal, then add them up.", steps)


def _letters(meta: dict) -> Worked | None:
    letter, words = meta.get("target_letter"), meta.get("span")
    if not isinstance(letter, str) or len(letter) != 1 or not isinstance(words, list) or not words:
        return None
    counts = [str(w).lower().count(letter.lower()) for w in words]
    steps = []
    for w, c in zip(words, counts, strict=True):
        times = "1 time" if c == 1 else f"{c} times"
        spelled = "-".join(str(w))
        steps.append(Step(f"{w}: {c}", f'The word "{w}" ({spelled}) contains "{letter}" {times}.'))
    line = " + ".join(map(str, counts)) + f" = {sum(counts)}"
    steps.append(Step(line, f"Adding the counts of all the words gives {line}."))
    return Worked(f'Let\'s go through the text word by word and count the letter "{letter}".', steps)


def _gcd(meta: dict) -> Worked | None:
    numbers = meta.get("numbers")
    if not isinstance(numbers, list) or len(numbers) < 2 or any(int(n) <= 0 for n in numbers):
        return None
    steps, g = [], int(numbers[0])
    for n in numbers[1:]:  # gcd(a, b, c) = gcd(gcd(a, b), c)
        a, b = max(g, int(n)), min(g, int(n))
        while b:
            q, r = divmod(a, b)
            line = f"{a} = {q} * {b} + {r}"
            steps.append(Step(line, f"Dividing {a} by {b} gives {q} with remainder {r}: {line}."))
            a, b = b, r
        g = a
    steps.append(Step(f"gcd = {g}", f"The remainder is 0, so the last divisor, {g}, is the GCD."))
    return Worked("Let's use the Euclidean algorithm: divide, then keep dividing by the remainder.", steps)


# task name → writer of its worked steps from the entry's metadata
WRITERS: dict[str, Callable[[dict], Worked | None]] = {
    "chain_sum": _chain,
    "basic_arithmetic": _chain,
    "leg_counting": _legs,
    "letter_counting": _letters,
    "gcd": _gcd,
}


def worked_steps(metadata: dict) -> Worked | None:
    """The worked steps of a prompt from its metadata, or None.

    Args:
        metadata: a prompt's metadata: ``source_dataset`` names the task; the task's fields
            are read from ``task_metadata`` (every reasoning_gym prompt carries it), or from the
            metadata itself (``expression`` alone is enough for a chain of + and -).

    Returns:
        :class:`Worked`, or None when the task has no writer or its fields are missing.
    """
    fields = {**metadata, **(metadata.get("task_metadata") or {})}
    writer = WRITERS.get(str(metadata.get("source_dataset") or ""))
    if writer is None and fields.get("expression"):
        writer = _chain  # a prompt set's own arithmetic chain, from any source
    return writer(fields) if writer is not None else None
