"""The prompt set's settings: where the prompts come from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_serializer, model_validator

from persyn.core.settings import StrictModel


class TaskMix(StrictModel):
    """One task of a mixed reasoning_gym prompt set: its name, its share of ``size``
    (``weight``, relative to the others') and its generator arguments."""

    task: str
    weight: Annotated[float, Field(gt=0)] = 1.0
    task_kwargs: dict[str, Any] = Field(default_factory=dict)


class PromptsConfig(StrictModel):
    """Where the prompts come from.

    ``source: reasoning_gym`` draws ``size`` problems of ``task``, seeded by ``seed`` when given,
    else by the run seed (an experiment pins it, so that its seeds share one prompt set); with
    ``tasks`` (a list of ``TaskMix``) it draws a mixed set instead, each task's share of
    ``size`` in proportion to its ``weight`` (rounded, at least 1), task after task;
    ``jsonl`` / ``parquet`` read ``path`` with the named fields; ``hf`` reads a Hugging Face
    dataset with the ``datasets`` library: ``path`` a ``save_to_disk`` directory, or ``name``
    (and ``config_name``) from the local HF cache (never downloaded), and its ``split``
    (needed when the dataset has several). ``ifeval_constrained`` makes ``size`` instruction
    prompts with 1 to 3 checkable IFEval constraints each (``persyn.ifeval_constraints``),
    seeded by ``seed`` (else the run seed); ``task_kwargs``: ``max_constraints`` (3),
    ``exclude`` (instruction ids left out), ``bases`` (``[start, end]``: only that range of a
    fixed shuffle of the base instructions, so that two sets given disjoint ranges, a training
    pool and a validation split, share none).

    ``prompt_field`` names a string column, or a chat ``messages`` column (a list of
    ``{role, content}`` ending with a user turn: the whole conversation is the prompt).
    ``input_field`` (Alpaca): appended to the prompt field's text after a blank line when
    non-empty. ``solution_field`` names a worked solution used by the ``reference`` teacher
    (default: the answer itself).
    """

    source: Literal["reasoning_gym", "jsonl", "parquet", "hf", "synthetic", "ifeval_constrained"] = (
        "reasoning_gym"
    )
    task: str = "gsm_symbolic"
    size: Annotated[int, Field(ge=1)] | None = None
    task_kwargs: dict[str, Any] = Field(default_factory=dict)
    tasks: list[TaskMix] | None = None
    seed: int | None = None
    path: Path | None = None
    name: str | None = None
    config_name: str | None = None
    split: str | None = None
    prompt_field: str = "prompt"
    input_field: str | None = None
    answer_field: str | None = "answer"
    solution_field: str | None = None
    id_field: str | None = None
    # Two prompts with the same id and different content: an error, or keep the first (skip),
    # or keep both, the later ones as ID~2, ID~3... (rename). Exact duplicates are skipped.
    on_duplicate: Literal["error", "skip", "rename"] = "error"
    # Keep a seeded random subset of this many prompts (drawn with the run seed) from the set
    # loaded above: an experiment's seeds draw their own training prompts from one pool.
    sample: Annotated[int, Field(ge=2)] | None = None

    @model_serializer(mode="wrap")
    def _without_unset_sample(self, handler):
        # A prompt set that does not subsample dumps as it did before `sample` existed, so the
        # result keys hashing a config stay valid.
        data = handler(self)
        if isinstance(data, dict) and data.get("sample") is None:
            data.pop("sample", None)
        return data

    @model_validator(mode="after")
    def _check_source(self) -> PromptsConfig:
        if self.source in ("jsonl", "parquet") and self.path is None:
            raise ValueError(f"source '{self.source}' needs 'path'")
        if self.source == "hf" and (self.path is None) == (self.name is None):
            raise ValueError(
                "source 'hf' needs 'path' (a save_to_disk directory) or 'name' (a cached dataset)"
            )
        if self.source == "reasoning_gym" and self.size is None:
            self.size = 120
        if self.source == "ifeval_constrained" and self.size is None:
            raise ValueError("source 'ifeval_constrained' needs 'size' (how many prompts to make)")
        if self.tasks is not None:
            if self.source != "reasoning_gym":
                raise ValueError(f"'tasks' (a mixed set) needs source 'reasoning_gym', got '{self.source}'")
            if not self.tasks:
                raise ValueError("tasks: the list is empty")
            names = [t.task for t in self.tasks]
            if len(set(names)) != len(names):
                raise ValueError(f"tasks: a task is listed twice ({', '.join(names)})")
        return self
