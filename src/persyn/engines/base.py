"""The engine contract: prompts in, one completion per prompt out, batch by batch.

Engines are plug-ins: each lives in its own module of this package and is listed by name in
``persyn.core.plugins.ENGINES``; ``make_engine`` builds the one a teacher names.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator

from persyn.config import TeacherConfig
from persyn.core.plugins import ENGINES, load
from persyn.core.records import Completion, Prompt
from persyn.core.worker import Worker


class Engine(Worker):
    """A response generator, built as ``Cls(teacher, seed)`` (``core.plugins.ENGINES``).

    ``work_units(prompts)`` (from ``Worker``): the batches ``generate`` forms; the default, one
    prompt per group, is right for an engine whose answers do not depend on batching.
    """

    @abstractmethod
    def generate(self, prompts: list[Prompt]) -> Iterator[list[tuple[str, Completion]]]:
        """Yield ``[(prompt_id, Completion), ...]`` one batch at a time, so that the caller can
        store each batch as soon as it is done; a prompt that fails is a Completion with
        ``error`` set, not an exception."""


def make_engine(teacher: TeacherConfig, seed: int) -> Engine:
    """Build the engine for ``teacher`` (model loading happens here).

    Raises:
        MissingAssetError: the teacher's model (or the engine's extra) is not installed.
    """
    return load(ENGINES, teacher.engine, "engine")(teacher, seed)


def prompt_text(prompt: str | Prompt) -> str:
    """The text of a prompt given as a string or a ``Prompt`` (a chat prompt's rendering)."""
    return prompt if isinstance(prompt, str) else prompt.text


def base_model_prompt(teacher: TeacherConfig, prompt: str | Prompt) -> str:
    """What a model without a chat template is fed: ``prompt_template`` (default
    ``"{prompt}\\n"``) filled with the prompt's text, after ``system_prompt`` and a blank line."""
    text = prompt_text(prompt)
    content = teacher.prompt_template.replace("{prompt}", text) if teacher.prompt_template else f"{text}\n"
    return f"{teacher.system_prompt}\n\n{content}" if teacher.system_prompt else content


def teacher_messages(teacher: TeacherConfig, prompt: str | Prompt) -> list[dict[str, str]]:
    """The chat turns a teacher receives for ``prompt``: its conversation (one user turn for a
    text prompt), with ``prompt_template`` filled with the last user turn's content, and the
    teacher's ``system_prompt`` first unless the conversation brings its own system message."""
    turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt.conversation
    turns = [dict(m) for m in turns]
    last = max(i for i, m in enumerate(turns) if m["role"] == "user")
    if teacher.prompt_template:
        turns[last]["content"] = teacher.prompt_template.replace("{prompt}", turns[last]["content"])
    if teacher.system_prompt and turns[0]["role"] != "system":
        turns.insert(0, {"role": "system", "content": teacher.system_prompt})
    return turns
