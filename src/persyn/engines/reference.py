"""The ``reference`` teacher: answers with the prompt set's own reference solution."""

from __future__ import annotations

from collections.abc import Iterator

from persyn.engines.base import Completion
from persyn.prompts import Prompt


class ReferenceEngine:
    """``style="solution"``: returns ``prompt.solution`` (falling back to ``prompt.answer``);
    ``style="answer"``: returns ``#### <prompt.answer>``. A prompt without the needed field gives
    a failed item."""

    def __init__(self, style: str = "solution"):
        self.style = style

    def generate(self, prompts: list[Prompt]) -> Iterator[list[tuple[str, Completion]]]:
        out = []
        for p in prompts:
            if self.style == "answer":
                text = f"#### {p.answer}" if p.answer is not None and p.answer.strip() else None
            else:
                text = p.solution if p.solution is not None else p.answer
            if text is None or not text.strip():
                out.append((p.id, Completion("", error="no reference solution for this prompt")))
            else:
                out.append((p.id, Completion(text, finish_reason="stop")))
        yield out
