"""The engine contract: prompts in, one completion per prompt out, batch by batch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from persyn.config import TeacherConfig
from persyn.prompts import Prompt


@dataclass
class Completion:
    """A teacher's answer to one prompt. ``error`` set means the item failed (recorded, not
    fatal): e.g. a prompt longer than the context, or an empty response."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None  # "stop" | "length" | None
    error: str | None = None
    seconds: float = 0.0


class Engine(Protocol):
    """A response generator. ``generate`` yields ``[(prompt_id, Completion), ...]`` one batch at
    a time so that the caller can store each batch as soon as it is done."""

    def generate(self, prompts: list[Prompt]) -> Iterator[list[tuple[str, Completion]]]: ...


def make_engine(teacher: TeacherConfig, seed: int) -> Engine:
    """Build the engine for ``teacher`` (model loading happens here)."""
    if teacher.engine == "reference":
        from persyn.engines.reference import ReferenceEngine

        return ReferenceEngine(teacher.style)
    if teacher.engine == "llamacpp":
        from persyn.engines.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine(teacher, seed)
    if teacher.engine == "openai":
        from persyn.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(teacher, seed)
    from persyn.engines.transformers_engine import TransformersEngine

    return TransformersEngine(teacher, seed)
