"""The ``reference`` teacher: answers with the prompt set's own reference solution, in a style.

Not a model: a teacher of known quality and a chosen style, so that a pool can hold responses that
differ in form (answer only, terse steps, verbose steps) while being correct.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from persyn.core.records import Completion, Prompt
from persyn.engines.base import Engine, TeacherSettings
from persyn.engines.worked_steps import chain_steps, worked_steps

__all__ = ["STYLES", "ReferenceEngine", "ReferenceTeacher", "chain_steps", "render_reference"]

STYLES = ("solution", "answer", "terse", "verbose")


class ReferenceTeacher(TeacherSettings):
    """``engine: reference``: answers with the prompt set's own reference solution (``style:
    solution``), only its final-answer line (``answer``, ``#### <answer>``), its computation
    lines (``terse``) or the steps in full sentences (``verbose``): not a model, but a teacher
    of a known style (see ``render_reference``)."""

    #: The v1 keys held the model engines' settings at their defaults.
    LEGACY_KEY: ClassVar[dict[str, Any]] = {
        "model": None,
        "system_prompt": None,
        "prompt_template": None,
        "temperature": 0.0,
        "top_p": 1.0,
        "max_new_tokens": 256,
        "stop": [],
    }

    RUNS_A_MODEL: ClassVar[bool] = False
    NEEDS_GOLD_ANSWER: ClassVar[bool] = True

    engine: Literal["reference"] = "reference"
    style: Literal["solution", "answer", "terse", "verbose"] = "solution"

    def answers_with_solution(self) -> bool:
        """``style: solution``."""
        return self.style == "solution"

    def key_payload(self, prompt: Prompt, seed: int) -> list:
        """The prompt part of the cache key: the prompt text, its reference solution and answer,
        and what the ``terse`` / ``verbose`` styles spell out (the expression, the task's
        metadata)."""
        payload: list = [prompt.text, prompt.solution, prompt.answer]
        if prompt.metadata.get("expression"):
            payload.append(prompt.metadata["expression"])
        if prompt.metadata.get("task_metadata"):  # ... and the worked steps of other tasks
            payload.append(["task_metadata", prompt.metadata["task_metadata"]])
        return payload


def render_reference(p: Prompt, style: str) -> str | None:
    """The reference teacher's response to ``p`` in ``style``, or None when the prompt lacks
    what the style needs.

    - ``solution``: the prompt set's worked solution (else the answer);
    - ``answer``: only the final-answer line ``#### <answer>``;
    - ``terse``: the computation lines only, then ``#### <answer>`` (tasks with a writer in
      ``worked_steps``: one line per step; worked solutions: the lines that contain ``=``);
    - ``verbose``: the steps explained in full sentences, then ``#### <answer>``.
    """
    answer = p.answer.strip() if p.answer is not None and p.answer.strip() else None
    if style == "answer":
        return f"#### {answer}" if answer else None
    if style == "solution":
        return p.solution if p.solution is not None and p.solution.strip() else answer
    if answer is None:
        return None
    worked = worked_steps(p.metadata)
    body = (p.solution or "").rsplit("####", 1)[0].strip()
    if style == "terse":
        if worked:
            lines = [s.terse for s in worked.steps]
        else:
            expr = str(p.metadata.get("expression") or "")
            lines = [ln.strip() for ln in body.splitlines() if "=" in ln]
            lines = lines or ([f"{expr} = {answer}"] if expr else [])  # no steps to show: the answer
        return "\n".join(lines + [f"#### {answer}"])
    if worked:
        lines = [worked.intro] + [s.verbose for s in worked.steps]
    else:
        intro = [] if body.lower().startswith("let's") else ["Let's solve this step by step."]
        lines = intro + ([body] if body else [])
    lines.append(f"So the final answer is {answer}.")
    return "\n".join(lines + [f"#### {answer}"])


class ReferenceEngine(Engine):
    """Answers every prompt with ``render_reference(prompt, style)``. A prompt without the
    field the style needs gives a failed item."""

    Settings: ClassVar[type[ReferenceTeacher]] = ReferenceTeacher

    def __init__(self, teacher: ReferenceTeacher, seed: int = 0):
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
