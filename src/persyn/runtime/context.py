"""What every stage of a run shares: the config, the store, the executor, the output
directory's lock and the stage timer, and the one entry every stage goes through (``stage``:
its preparation and its timing). Stages read the context; none of them stores its results here
(results go to the store and are returned)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import cached_property, wraps
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from persyn.config import RunConfig, TeacherConfig
from persyn.core.errors import PersynError
from persyn.core.records import Prompt
from persyn.execution.base import Executor
from persyn.runtime.keys import generation_key
from persyn.store import Store

#: The timed stages, ``{name: (step, "module.function")}``, filled by ``stage`` as their modules
#: are imported (``persyn.pipeline`` imports every stage).
STAGES: dict[str, tuple[int, str]] = {}

R = TypeVar("R")


def stage(
    name: str, step: int, before: Callable[[RunContext], object] | None = None
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """The one entry of a stage: decorates ``fn(ctx, ...)`` so that a call runs ``before(ctx)``
    (for most stages ``runtime.prompts.prepare``, untimed), then ``fn`` with its wall time added
    to ``seconds.NAME`` in the store; and registers ``name`` so that ``summary.json`` reports
    it (``RunContext.seconds``), ordered by ``step`` (its place in the run: the "Stage N" of
    its module). A function not decorated is not timed.

    Raises:
        ValueError: ``name`` is already the name of another function's stage.
    """

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        where = f"{fn.__module__}.{fn.__qualname__}"
        if name in STAGES and STAGES[name][1] != where:
            raise ValueError(f"stage {name!r}: already the stage of {STAGES[name][1]}")
        STAGES[name] = (step, where)

        @wraps(fn)
        def run(ctx: RunContext, *args: Any, **kwargs: Any) -> R:
            if before is not None:
                before(ctx)
            with ctx.timed(name):
                return fn(ctx, *args, **kwargs)

        run.stage = name  # type: ignore[attr-defined]
        return run

    return decorate


def timed_stages() -> list[str]:
    """The names of the registered stages, in run order (by step, then name)."""
    return sorted(STAGES, key=lambda n: (STAGES[n][0], n))


def progress(total: int, desc: str, unit: str = "item", position: int | None = None, initial: int = 0):
    """A progress bar with an ETA on stderr; disabled when there is nothing to do; ``position``:
    its line among bars shown together; ``initial``: done before the bar opens (not in its rate)."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=total == 0,
        file=sys.stderr,
        dynamic_ncols=True,
        position=position,
        initial=initial,
    )


def lock_output_dir(out: Path):
    """Hold an exclusive lock on ``out`` for this process's lifetime; returns the open lock file
    (closing it releases the lock).

    The OS drops the lock when the process dies, so a lock left by a killed run is taken over.

    Raises:
        PersynError: another live persyn process holds the directory.
    """
    import fcntl

    f = open(out / ".persyn.lock", "a+")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise PersynError(
            f"output_dir {out} is in use by another persyn process (pid {holder}); "
            "wait for it to finish or use another output_dir"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


class RunContext:
    """One run's shared resources on one output directory (locked while open).

    Attributes:
        cfg: the validated run configuration.
        out: the output directory.
        store: the run's SQLite store.
        executor: where generation and scoring run (made on first use: exporting needs no Ray).
        prepared: whether ``runtime.prompts.prepare`` has run in this process (it runs once).

    Raises:
        PersynError: ``output_dir`` is a file, or another live process holds it.
    """

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        if self.out.exists() and not self.out.is_dir():
            raise PersynError(f"output_dir: {self.out} exists and is not a directory")
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = lock_output_dir(self.out)
        self.store = Store(self.out / "store.sqlite")
        self._executor: Executor | None = None
        self.prepared = False

    @property
    def executor(self) -> Executor:
        """Where generation and scoring run (``cfg.executor``: local, or Ray)."""
        if self._executor is None:
            from persyn.execution import make_executor

            self._executor = make_executor(self.cfg)
        return self._executor

    def key_of(self, teacher: TeacherConfig, prompt: Prompt) -> str:
        """The cache key of ``teacher``'s response to ``prompt`` under this run's seed."""
        return generation_key(teacher, prompt, self.cfg.seed)

    @cached_property
    def learnability_key(self) -> str:
        """The learnability scorer's cache key (student model, its weights, settings)."""
        from persyn.scoring.learnability import LearnabilityScorer

        return LearnabilityScorer(self.cfg.student).key

    @cached_property
    def quality_key(self) -> str:
        """The quality scorer's cache key (verifier, or reward model and its weights)."""
        from persyn.scoring.quality import make_quality_scorer

        return make_quality_scorer(self.cfg.quality, {}, pool=self.cfg.teacher_names).key

    @contextmanager
    def timed(self, stage: str):
        """Add the wall time of the block to ``seconds.STAGE`` in the store (summed over runs)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            prev = self.store.stage_seconds(stage)
            self.store.set_stage_seconds(stage, prev + time.perf_counter() - start)

    def seconds(self) -> dict[str, float]:
        """Wall seconds per registered stage (``stage``), in run order, summed over every run on
        this store (0.0 for a stage that has not run)."""
        return {s: round(self.store.stage_seconds(s), 2) for s in timed_stages()}

    def close(self) -> None:
        """Close the executor, the store and the lock (in that order, each even if one fails)."""
        try:
            if self._executor is not None:
                self._executor.close()
        finally:
            try:
                self.store.close()
            finally:
                self._lock.close()  # releases the lock
