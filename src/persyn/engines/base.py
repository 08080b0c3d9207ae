"""The engine contract: prompts in, one completion per prompt out, batch by batch; and the
settings every teacher shares.

Engines are plug-ins: each lives in its own module of this package, beside its settings model
(a ``TeacherSettings`` subclass, the engine class's ``Settings``), and is listed by name in
``persyn.core.plugins.ENGINES``; ``make_engine`` builds the one a teacher names. What enters a
teacher's cache key is read from its settings' fields: a field marked ``NOT_IN_KEY`` does not.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator, model_validator

from persyn.core.naming import check_name
from persyn.core.plugins import ENGINES, check, load
from persyn.core.records import Completion, Prompt
from persyn.core.settings import ResourcesConfig, StrictModel
from persyn.core.worker import Worker

#: Prompt metadata that numbers the samples of one generator request (``persyn synthesize``):
#: the same request text sampled n times gives n keys.
SAMPLE = "synthesis_sample"


@dataclass(frozen=True)
class CacheKey:
    """Field metadata (``Annotated[T, CacheKey(False)]``): whether a teacher setting enters the
    cache key of its responses. Unmarked settings do."""

    included: bool


#: The mark of a setting that does not change a response (throughput, retries, prices, placement).
NOT_IN_KEY = CacheKey(False)


class TeacherSettings(StrictModel):
    """What every teacher has, whatever its engine: ``name`` (a directory and store name),
    ``engine`` (a name of ``persyn.core.plugins.ENGINES``), ``family`` (for the
    ``family-strong`` strategy), ``batch_size`` (prompts per yielded batch), prices (USD per
    million input / output tokens for the cost figures in summary.json; per second of
    generation, e.g. a GPU-second, for ``budget:``), ``max_prompts`` (the most routed prompts it
    may answer under ``budget:``) and ``resources`` (its Ray workers). None of these changes a
    response, so none enters a cache key.

    Each engine's settings subclass this; ``persyn.config.teachers.TeacherConfig`` picks the
    subclass by ``engine``.
    """

    #: Settings of other engines that the first cache keys (``generation/v1``, made when one
    #: flat model held every engine's settings) hashed at their defaults: they keep entering this
    #: engine's keys, so that stored responses keep hitting. A new engine leaves it empty.
    LEGACY_KEY: ClassVar[dict[str, Any]] = {}

    # What the rest of persyn asks of a teacher, answered by its engine's settings (never by
    # comparing the engine's name): each engine overrides what differs.
    #: Whether it runs a model: one that is not (the reference teacher) costs nothing, has no
    #: tokens to forecast and writes no new prompts.
    RUNS_A_MODEL: ClassVar[bool] = True
    #: Whether its responses are made from each prompt's gold answer (the prompt set must have one).
    NEEDS_GOLD_ANSWER: ClassVar[bool] = False
    #: Whether it answers through a server, checked once before any work (``preflight``).
    SERVED: ClassVar[bool] = False
    #: Whether persyn can fine-tune it in-process (DPO: the Montessori-Instruct generator).
    TRAINABLE: ClassVar[bool] = False

    name: str
    engine: str
    family: Annotated[str | None, NOT_IN_KEY] = None
    batch_size: Annotated[int, Field(ge=1), NOT_IN_KEY] = 8
    price_input_per_million: Annotated[Annotated[float, Field(ge=0)] | None, NOT_IN_KEY] = None
    price_output_per_million: Annotated[Annotated[float, Field(ge=0)] | None, NOT_IN_KEY] = None
    price_per_second: Annotated[Annotated[float, Field(ge=0)] | None, NOT_IN_KEY] = None
    max_prompts: Annotated[Annotated[int, Field(ge=0)] | None, NOT_IN_KEY] = None
    resources: Annotated[ResourcesConfig, NOT_IN_KEY] = Field(default_factory=ResourcesConfig)

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, v: str) -> str:
        return check(ENGINES, v, "engine")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return check_name(v, "teacher name")

    @classmethod
    def key_field_names(cls) -> list[str]:
        """The settings that enter a cache key: every field not marked ``NOT_IN_KEY``."""
        return [n for n, f in cls.model_fields.items() if NOT_IN_KEY not in f.metadata]

    def local_model(self) -> str | None:
        """The local model this teacher loads (alias, path or HF id), None when it loads none."""
        return None

    def samples(self) -> bool:
        """Whether its responses are sampled (then the seed enters their keys)."""
        return False

    def local_dtype(self) -> str | None:
        """The dtype setting of the model it loads in this process with transformers (a
        ``persyn.core.settings.Dtype``), None when it loads none there."""
        return None

    def min_shard(self) -> int:
        """The fewest prompts worth one Ray shard (a served teacher: its concurrent requests)."""
        return 1

    def answers_with_solution(self) -> bool:
        """Whether its responses are the prompt set's worked solutions (then a prompt file of
        bare answers would teach the bare answer)."""
        return False

    def key_settings(self) -> dict[str, Any]:
        """The settings part of a response's cache key: ``LEGACY_KEY``, then every key field's
        value (JSON-ready)."""
        values = self.model_dump(include=set(self.key_field_names()))
        return {**self.LEGACY_KEY, **values}

    def key_payload(self, prompt: Prompt, seed: int) -> list:
        """The prompt part of a response's cache key (a chat prompt's turns are added by the
        caller): the prompt text, the seed when sampling, the sample number of a synthesis
        request."""
        payload: list = [prompt.text, seed if self.samples() else None]
        if SAMPLE in prompt.metadata:  # the n-th sample of one synthesis request
            payload.append(["sample", prompt.metadata[SAMPLE]])
        return payload


class ModelTeacher(TeacherSettings):
    """A teacher that runs a model: ``model`` (what ``MODEL_HINT`` says), rendered with its chat
    template (with ``system_prompt`` if given) or, for a base model (no chat template),
    ``prompt_template`` with ``{prompt}``; decoding by ``temperature`` (0: greedy) and
    ``top_p``, at most ``max_new_tokens``, stopping at EOS or at any string of ``stop`` (which
    is cut off)."""

    #: The v1 keys held the reference teacher's ``style`` at its default.
    LEGACY_KEY: ClassVar[dict[str, Any]] = {"style": "solution"}
    #: What ``model`` names, for the error when it is missing.
    MODEL_HINT: ClassVar[str] = "alias, HF id or local path"

    model: str | None = None
    system_prompt: str | None = None
    prompt_template: str | None = None
    temperature: Annotated[float, Field(ge=0.0)] = 0.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    max_new_tokens: Annotated[int, Field(ge=1)] = 256
    stop: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_model(self) -> ModelTeacher:
        self.check_needs()
        if self.prompt_template is not None and "{prompt}" not in self.prompt_template:
            raise ValueError("prompt_template must contain '{prompt}'")
        return self

    def samples(self) -> bool:
        """Whether its responses are sampled: ``temperature`` above 0."""
        return self.temperature > 0

    def key_settings(self) -> dict[str, Any]:
        """``TeacherSettings.key_settings``, and for a local model its weights' fingerprint and
        its tokenization rule (issue #17)."""
        from persyn.models.bos import bos_policy_key
        from persyn.models.fingerprint import model_fingerprint

        settings = super().key_settings()
        if ref := self.local_model():
            settings["weights"] = model_fingerprint(ref)
            settings["bos"] = bos_policy_key(ref)
        return settings

    def check_needs(self) -> None:
        """Raise ValueError when a setting the engine needs is missing (``model``)."""
        if not self.model:
            raise ValueError(f"engine '{self.engine}' needs 'model' ({self.MODEL_HINT})")


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

    def run(self, items: list[Prompt]) -> Iterator[list[tuple[str, Completion]]]:
        """An engine's work: ``generate``."""
        return self.generate(items)


def make_engine(teacher: TeacherSettings, seed: int, workdir: Path | str | None = None) -> Engine:
    """Build the engine for ``teacher`` (model loading happens here); an engine class with
    ``USES_WORKDIR`` also gets ``workdir`` (the run's output directory, for state it keeps
    there, e.g. a batch journal).

    Raises:
        MissingAssetError: the teacher's model (or the engine's extra) is not installed.
    """
    cls = load(ENGINES, teacher.engine, "engine")
    if getattr(cls, "USES_WORKDIR", False):
        return cls(teacher, seed, workdir=workdir)
    return cls(teacher, seed)


def prompt_text(prompt: str | Prompt) -> str:
    """The text of a prompt given as a string or a ``Prompt`` (a chat prompt's rendering)."""
    return prompt if isinstance(prompt, str) else prompt.text


def base_model_prompt(teacher: ModelTeacher, prompt: str | Prompt) -> str:
    """What a model without a chat template is fed: ``prompt_template`` (default
    ``"{prompt}\\n"``) filled with the prompt's text, after ``system_prompt`` and a blank line."""
    text = prompt_text(prompt)
    content = teacher.prompt_template.replace("{prompt}", text) if teacher.prompt_template else f"{text}\n"
    return f"{teacher.system_prompt}\n\n{content}" if teacher.system_prompt else content


def teacher_messages(teacher: ModelTeacher, prompt: str | Prompt) -> list[dict[str, str]]:
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
