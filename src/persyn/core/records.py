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
    teacher_model: str | None = None  # the teacher's model id (``core.card.teacher_model_id``)

    @classmethod
    def of(
        cls,
        prompt: Prompt,
        teacher: str,
        response: str,
        source: str,
        scores: tuple[float | None, float | None, float | None] = (None, None, None),
    ) -> DatasetLine:
        """The line of ``teacher``'s ``response`` to ``prompt`` (its id, text and, for a chat
        prompt, its conversation); ``scores``: ``(quality, learnability, reward)``."""
        return cls(prompt.id, prompt.text, response, teacher, *scores, source, prompt.messages)

    @property
    def turns(self) -> list[dict[str, str]]:
        """The prompt as chat turns: ``conversation``, or one user turn holding ``prompt``."""
        return (
            self.conversation if self.conversation is not None else [{"role": "user", "content": self.prompt}]
        )

    @property
    def pair(self) -> tuple:
        """The SFT example: ``(prompt, response)``, or ``(prompt, response, turns)`` for a chat
        line (``prompt`` then renders the turns)."""
        if self.conversation is None:
            return (self.prompt, self.response)
        return (self.prompt, self.response, self.conversation)

    def to_dict(self) -> dict[str, Any]:
        """The ``dataset.jsonl`` object (key order fixed: id, messages, teacher, teacher_model
        when known, quality, learnability, reward, source); ``messages`` is the prompt's conversation (one user turn
        for a text prompt) followed by the assistant's response. ``from_dict`` reads it back."""
        return {
            "id": self.id,
            "messages": [*self.turns, {"role": "assistant", "content": self.response}],
            "teacher": self.teacher,
            **({"teacher_model": self.teacher_model} if self.teacher_model is not None else {}),
            "quality": self.quality,
            "learnability": self.learnability,
            "reward": self.reward,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, row: Any, training: bool = False) -> DatasetLine:
        """Read one ``dataset.jsonl`` object back (the one reader of dataset lines): of
        ``messages``, the turns of role system, user and assistant count (``{role, content}``
        kept); the last, when it is the assistant's, is the response (else the response is
        empty), the turns before it the prompt (a conversation unless it is one user turn).

        ``training``: read an SFT example (``train``, ``evaluate``, the influence probe):
        ``id`` and ``teacher`` may be missing (then ``""``), and the line must end with a
        non-empty assistant turn. Otherwise ``id`` and ``teacher`` are required.

        Raises:
            ValueError: what is wrong with the line (without where it is): no ``messages`` list,
                no user turn with text, no response (``training``), no ``id`` or ``teacher``.
        """
        msgs = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(msgs, list):
            raise ValueError("missing field 'messages' (a list of role/content turns)")
        turns = [m for m in msgs if isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")]
        for role in ("user", "assistant") if training else ("user",):
            first = next((m for m in turns if m["role"] == role), None)
            if first is None:
                raise ValueError(f"'messages' has no {role} turn")
            content = first.get("content")
            if not isinstance(content, str) or not content.strip():
                raise ValueError(f"the {role} turn has empty or non-text 'content'")
        ends = turns[-1]["role"] == "assistant"
        if training and not ends:
            raise ValueError("'messages' must end with the assistant turn (the response)")
        head = [{"role": m["role"], "content": m.get("content")} for m in (turns[:-1] if ends else turns)]
        reply = turns[-1].get("content") if ends else ""
        if training and (not isinstance(reply, str) or not reply.strip()):
            raise ValueError("the assistant turn has empty or non-text 'content'")
        for name in () if training else ("id", "teacher"):
            if name not in row:
                raise ValueError(f"missing field '{name}'")
        chat = not (len(head) == 1 and head[0]["role"] == "user")
        return cls(
            row["id"] if "id" in row else "",
            render_conversation(head),
            reply,
            row["teacher"] if "teacher" in row else "",
            row.get("quality"),
            row.get("learnability"),
            row.get("reward"),
            row.get("source", ""),
            head if chat else None,
            row.get("teacher_model"),
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
