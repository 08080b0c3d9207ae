"""The records that pass between stages: prompts, teacher completions and stored responses,
items to score, and the lines of the output dataset.

Plain dataclasses, no behaviour beyond building themselves: every stage may import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Prompt:
    """One prompt x. ``answer`` is the reference final answer (for the verifier); ``solution``
    the reference worked solution (for the ``reference`` teacher)."""

    id: str
    text: str
    answer: str | None = None
    solution: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completion:
    """A teacher's answer to one prompt, as an engine returns it. ``error`` set means the item
    failed (recorded, not fatal): e.g. a prompt longer than the context, or an empty response.
    Token counts are the teacher tokenizer's; ``seconds`` is wall time."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None  # "stop" | "length" | None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Generation:
    """One teacher response to one prompt, as stored. ``status`` is ``ok`` or ``failed`` (then
    ``error`` says why; ``response`` may be empty). ``phase`` names what asked for it
    (``calibration``, ``routed``, ``generate-then-select`` or a strategy)."""

    key: str
    prompt_id: str
    teacher: str
    response: str
    status: str = "ok"
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    seconds: float = 0.0
    phase: str = "calibration"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def of(cls, key: str, prompt_id: str, teacher: str, c: Completion, phase: str) -> Generation:
        """The stored form of engine completion ``c``."""
        return cls(
            key,
            prompt_id,
            teacher,
            c.text,
            "failed" if c.error else "ok",
            c.error,
            c.prompt_tokens,
            c.completion_tokens,
            c.finish_reason,
            c.seconds,
            phase,
        )


@dataclass
class ScoreItem:
    """One (prompt, response) pair to score; ``key`` (the response's generation key) is
    returned with the score."""

    key: str
    prompt: str
    response: str


@dataclass
class DatasetLine:
    """One SFT example in TRL's conversational format, with where it came from.

    ``quality``/``learnability``/``reward`` are the response's scores where it was scored
    (calibration and Generate-then-Select responses), else None; ``source`` says what chose it:
    the Oracle pick among every teacher's calibration responses (``calibration``), the router's
    teacher (``routed``), or a selection strategy (its name, e.g. ``strongest``, ``random``).
    """

    id: str
    prompt: str
    response: str
    teacher: str
    quality: float | None
    learnability: float | None
    reward: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The ``dataset.jsonl`` object (key order fixed: id, messages, teacher, quality,
        learnability, reward, source)."""
        return {
            "id": self.id,
            "messages": [
                {"role": "user", "content": self.prompt},
                {"role": "assistant", "content": self.response},
            ],
            "teacher": self.teacher,
            "quality": self.quality,
            "learnability": self.learnability,
            "reward": self.reward,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> DatasetLine:
        """Read one ``dataset.jsonl`` object back (the first user and assistant turns).

        Raises:
            KeyError / ValueError: the object lacks ``id``, ``messages`` or ``teacher``.
        """
        turns = {m["role"]: m["content"] for m in reversed(row["messages"])}
        return cls(
            row["id"],
            turns["user"],
            turns.get("assistant", ""),
            row["teacher"],
            row.get("quality"),
            row.get("learnability"),
            row.get("reward"),
            row.get("source", ""),
        )


@dataclass
class Failure:
    """A failed item, as ``failed.jsonl`` lists it: the stage, the prompt, the teacher (None
    when no teacher is to blame) and why."""

    stage: str
    prompt_id: str
    teacher: str | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "prompt_id": self.prompt_id,
            "teacher": self.teacher,
            "error": self.error,
        }
