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
    the reference worked solution (for the ``reference`` teacher).

    ``messages``: a chat prompt's conversation (``[{"role", "content"}]``, system message and
    earlier turns included, ending with a user turn), or None for a one-turn text prompt. For a
    chat prompt ``text`` is ``render_conversation(messages)`` (what the router embeds and the
    reports show); what teachers and the student see is the conversation itself.
    """

    id: str
    text: str
    answer: str | None = None
    solution: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] | None = None

    @property
    def conversation(self) -> list[dict[str, str]]:
        """The prompt as chat turns: ``messages``, or one user turn holding ``text``."""
        return self.messages if self.messages is not None else [{"role": "user", "content": self.text}]


def render_conversation(messages: list[dict[str, str]]) -> str:
    """A conversation as one text: a lone user turn is its content; otherwise one paragraph per
    turn, ``"ROLE: content"``, joined by blank lines (the rendering the router embeds)."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


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
    returned with the score. ``messages``: the prompt's conversation for a chat prompt (scored
    as the turns before the response), else None (``prompt`` is one user turn)."""

    key: str
    prompt: str
    response: str
    messages: list[dict[str, str]] | None = None

    @property
    def conversation(self) -> list[dict[str, str]]:
        """The prompt as chat turns (see ``Prompt.conversation``)."""
        return self.messages if self.messages is not None else [{"role": "user", "content": self.prompt}]


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
    conversation: list[dict[str, str]] | None = None  # a chat prompt's turns (``Prompt.messages``)

    def to_dict(self) -> dict[str, Any]:
        """The ``dataset.jsonl`` object (key order fixed: id, messages, teacher, quality,
        learnability, reward, source); ``messages`` is the prompt's conversation (one user turn
        for a text prompt) followed by the assistant's response."""
        turns = (
            self.conversation if self.conversation is not None else [{"role": "user", "content": self.prompt}]
        )
        return {
            "id": self.id,
            "messages": [*turns, {"role": "assistant", "content": self.response}],
            "teacher": self.teacher,
            "quality": self.quality,
            "learnability": self.learnability,
            "reward": self.reward,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> DatasetLine:
        """Read one ``dataset.jsonl`` object back: the last turn is the response, the turns
        before it the prompt (a conversation when there is more than one user turn).

        Raises:
            KeyError / ValueError: the object lacks ``id``, ``messages`` or ``teacher``.
        """
        msgs = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        reply = msgs[-1]["content"] if msgs and msgs[-1]["role"] == "assistant" else ""
        head = msgs[:-1] if msgs and msgs[-1]["role"] == "assistant" else msgs
        if not any(m["role"] == "user" for m in head):
            raise KeyError("user")
        chat = not (len(head) == 1 and head[0]["role"] == "user")
        return cls(
            row["id"],
            render_conversation(head),
            reply,
            row["teacher"],
            row.get("quality"),
            row.get("learnability"),
            row.get("reward"),
            row.get("source", ""),
            head if chat else None,
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


@dataclass
class TeacherMeans:
    """A teacher's calibration means.

    Attributes:
        quality: mean quality over **every** calibration prompt, a failed response (generation
            or score) counting as quality 0: a teacher that often fails is worse, not unseen.
        learnability: mean student log-prob per response token (nats, ≤ 0) over its valid
            responses; None when it has none (failures have no tokens to score).
        valid: how many of its calibration responses have both scores (None when unknown).
    """

    quality: float
    learnability: float | None
    valid: int | None = None
