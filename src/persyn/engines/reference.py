"""The ``reference`` teacher: answers with the prompt set's own reference solution."""

from __future__ import annotations

from collections.abc import Iterator

from persyn.engines.base import Completion
from persyn.prompts import Prompt


class ReferenceEngine:
    """Returns ``prompt.solution`` (falling back to ``prompt.answer``). A prompt with neither
    gives a failed item."""

    def generate(self, prompts: list[Prompt]) -> Iterator[list[tuple[str, Completion]]]:
        out = []
        for p in prompts:
            text = p.solution if p.solution is not None else p.answer
            if text is None or not text.strip():
                out.append((p.id, Completion("", error="no reference solution for this prompt")))
            else:
                out.append((p.id, Completion(text, finish_reason="stop")))
        yield out
