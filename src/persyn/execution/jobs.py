"""Jobs: one model's share of a stage (a teacher's prompts, or the responses for the student
or the quality scorer), as every executor takes them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from persyn.config import RunConfig, TeacherConfig
from persyn.core.records import Completion
from persyn.core.settings import ResourcesConfig
from persyn.core.worker import Worker
from persyn.engines.base import make_engine


@dataclass
class Job:
    """One model's share of a stage.

    Attributes:
        name: what the job is, for progress and errors (e.g. ``teacher 'a'``, ``learnability``).
        build: makes the worker (loads the model); picklable (Ray ships it to its workers).
            The worker's ``run`` takes ``items`` and yields lists of result rows.
        items: prompts (generation) or ``ScoreItem``s (scoring).
        fail: ``fail(items, error)`` → result rows recording ``items`` as failed items.
        resources: what one Ray worker asks for; ``resources_field`` names it in the config.
        cache: the local executor keeps the worker under this key for later jobs (None: not
            kept).
        tag: the caller's handle (the teacher config, or the score kind).
        min_shard: the fewest items a Ray shard should carry (a served teacher's
            ``concurrency``: a worker runs one shard at a time).
    """

    name: str
    build: Callable[[], Worker]
    items: list
    fail: Callable[[list, str], list]
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    resources_field: str = ""
    cache: str | None = None
    tag: Any = None
    min_shard: int = 1


def generation_failed(prompts: list, error: str) -> list:
    """Result rows recording ``prompts`` as failed generations (``error`` says why)."""
    return [(p.id, Completion("", error=error)) for p in prompts]


def score_failed(items: list, error: str) -> list:
    """Result rows recording ``items`` as failed scores (``error`` says why)."""
    return [(it.key, None, error) for it in items]


def teacher_job(cfg: RunConfig, teacher: TeacherConfig, prompts: list) -> Job:
    """The job of ``teacher`` answering ``prompts``; result rows are ``(prompt id, Completion)``."""
    names = cfg.teacher_names
    where = f"teachers.{names.index(teacher.name)}" if teacher.name in names else "synthesis.model"
    return Job(
        name=f"teacher '{teacher.name}'",
        build=functools.partial(make_engine, teacher, cfg.seed, str(cfg.output_dir)),
        items=prompts,
        fail=generation_failed,
        resources=teacher.resources,
        resources_field=f"{where}.resources",
        cache=f"teacher/{teacher.name}",
        tag=teacher,
        min_shard=teacher.min_shard(),
    )


def scorer_job(
    kind: str, build: Callable[[], Worker], items: list, resources: ResourcesConfig, cache: str | None
) -> Job:
    """The job of a scorer (``build`` makes it) scoring ``items``; result rows are
    ``(item key, value or None, error or None)``."""
    section = "student" if kind == "learnability" else "quality"
    return Job(
        name=kind,
        build=build,
        items=items,
        fail=score_failed,
        resources=resources,
        resources_field=f"{section}.resources",
        cache=cache,
        tag=kind,
    )
