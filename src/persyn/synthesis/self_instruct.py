"""Self-Instruct (Wang et al. 2023, arXiv 2212.10560) as Montessori-Instruct runs it: the
generator model sees a numbered list of example prompts and writes the next one.

Each request shows ``shots`` examples: seed prompts, and once some synthetic prompts are kept,
up to a quarter of the shots from them (Self-Instruct: 6 human-written + 2 generated of 8).
"""

from __future__ import annotations

import random
import re
from typing import Any, ClassVar

from persyn.synthesis.generator import Generator

INTRO = "Here are examples of problems. Write one new problem of the same kind."
_NEXT = re.compile(r"\n\s*(?:Problem|Example)\s*\d+\s*:|\n\s*\n")
_LEAD = re.compile(r"^\s*(?:Problem|Example)\s*\d+\s*:\s*")


def fewshot_request(seeds: list[str], kept: list[str], shots: int, rng: random.Random) -> str:
    """The generator's prompt: ``INTRO``, then ``shots`` numbered examples (a quarter, rounded
    down, from ``kept`` synthetic prompts when there are enough, the rest from ``seeds``; drawn
    with ``rng``), then the number of the one to write."""
    n_kept = min(len(kept), shots // 4)
    picked = rng.sample(seeds, min(len(seeds), shots - n_kept)) + rng.sample(kept, n_kept)
    rng.shuffle(picked)
    lines = [INTRO, ""]
    for i, text in enumerate(picked, 1):
        lines += [f"Problem {i}: {text.strip()}", ""]
    lines.append(f"Problem {len(picked) + 1}:")
    return "\n".join(lines)


def parse_fewshot(text: str) -> str | None:
    """The new prompt in what the generator wrote after ``Problem N:``: up to the next numbered
    example or blank line, with a leading ``Problem N:`` removed; None when nothing is left."""
    text = _LEAD.sub("", text.strip())
    first = _NEXT.split(text, maxsplit=1)[0].strip()
    return first or None


class SelfInstructGenerator(Generator):
    """``generator: self-instruct``: a few-shot request of seed and kept prompts
    (``fewshot_request``), its first new prompt read back (``parse_fewshot``)."""

    def request(self, syn: Any, seeds: list[str], kept: list[str], rng: random.Random) -> str:
        return fewshot_request(seeds, kept, syn.shots, rng)

    def parse(self, text: str) -> tuple[str, str | None] | None:
        prompt = parse_fewshot(text)
        return (prompt, None) if prompt else None


class MontessoriGenerator(SelfInstructGenerator):
    """``generator: montessori``: Self-Instruct's requests from a model first tuned to the
    student by Montessori-Instruct (``persyn.montessori.loop``)."""

    ADAPTS_TO_STUDENT: ClassVar[bool] = True
    NEEDS_TRAINABLE_MODEL: ClassVar[bool] = True
