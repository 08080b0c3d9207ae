"""Where the heavy stages run: teacher generation and response scoring, as jobs.

A stage hands the executor one ``Job`` per model (a teacher's prompts, or the responses for the
student or the quality scorer) and stores the result rows it gets back, as they come. The
executor decides where the work runs:

- ``LocalExecutor`` (``executor: local``, the default): in this process, one job after another;
  a model is loaded once per run and kept.
- ``RayExecutor`` (``executor: ray``, ``persyn.ray_executor``): every job at once on a Ray
  cluster, sharded, one long-lived worker per loaded model.

Workers are engines (``generate``) and scorers (``score``): both take a list of items and yield
lists of result rows. A worker whose results depend on which items are processed together
(batched generation, padded scoring) has ``work_units(items)``: the groups it would process
together. The Ray executor cuts shards along those groups, so that both executors compute the
same numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from persyn.config import ResourcesConfig, RunConfig, TeacherConfig


@dataclass
class Job:
    """One model's share of a stage.

    Attributes:
        name: what the job is, for progress and errors (e.g. ``teacher 'a'``, ``learnability``).
        build: makes the worker (loads the model); picklable (Ray ships it to its workers).
        method: the worker's method that takes ``items`` and yields lists of result rows.
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
    build: Callable[[], Any]
    method: str
    items: list
    fail: Callable[[list, str], list]
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    resources_field: str = ""
    cache: str | None = None
    tag: Any = None
    min_shard: int = 1


def work_units(worker: Any, items: list) -> list[list]:
    """The groups of ``items`` that ``worker`` processes together (its ``work_units`` method),
    else one group per item. Every item is in exactly one group."""
    plan = getattr(worker, "work_units", None)
    return plan(items) if plan is not None else [[it] for it in items]


def _generation_failed(prompts: list, error: str) -> list:
    from persyn.engines.base import Completion

    return [(p.id, Completion("", error=error)) for p in prompts]


def _score_failed(items: list, error: str) -> list:
    return [(it.key, None, error) for it in items]


def teacher_job(cfg: RunConfig, teacher: TeacherConfig, prompts: list) -> Job:
    """The job of ``teacher`` answering ``prompts``; result rows are ``(prompt id, Completion)``."""
    from persyn.engines.base import make_engine

    index = cfg.teacher_names.index(teacher.name)
    return Job(
        name=f"teacher '{teacher.name}'",
        build=functools.partial(make_engine, teacher, cfg.seed),
        method="generate",
        items=prompts,
        fail=_generation_failed,
        resources=teacher.resources,
        resources_field=f"teachers.{index}.resources",
        cache=f"teacher/{teacher.name}",
        tag=teacher,
        min_shard=teacher.concurrency if teacher.engine == "openai" else 1,
    )


def scorer_job(
    kind: str, build: Callable[[], Any], items: list, resources: ResourcesConfig, cache: str | None
) -> Job:
    """The job of a scorer (``build`` makes it) scoring ``items``; result rows are
    ``(item key, value or None, error or None)``."""
    section = "student" if kind == "learnability" else "quality"
    return Job(
        name=kind,
        build=build,
        method="score",
        items=items,
        fail=_score_failed,
        resources=resources,
        resources_field=f"{section}.resources",
        cache=cache,
        tag=kind,
    )


class LocalExecutor:
    """Runs jobs in this process, in the order given; each yields its rows batch by batch."""

    def __init__(self) -> None:
        self._workers: dict[str, Any] = {}

    def worker(self, job: Job) -> Any:
        """The worker of ``job``: built now, or the one kept under ``job.cache``."""
        if job.cache is None:
            return job.build()
        if job.cache not in self._workers:
            self._workers[job.cache] = job.build()
        return self._workers[job.cache]

    def check(self, job: Job) -> None:
        """Build the worker of ``job`` now (a served teacher checks its server here)."""
        self.worker(job)

    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, list]]:
        """Yield ``(job, rows)`` as each batch of each job is done."""
        for job in jobs:
            if not job.items:
                continue
            for rows in getattr(self.worker(job), job.method)(job.items):
                yield job, rows

    def close(self) -> None:
        self._workers.clear()


def make_executor(cfg: RunConfig):
    """The executor that ``cfg.executor`` names.

    Raises:
        MissingAssetError: ``executor: ray`` without Ray installed (says what to install).
    """
    if cfg.executor == "ray":
        from persyn.ray_executor import RayExecutor

        return RayExecutor(cfg)
    return LocalExecutor()
