"""The executor contract: where a stage's jobs run (``core.plugins.EXECUTORS``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from persyn.execution.jobs import Job


class Executor(ABC):
    """Runs jobs (one model's share of a stage each) and hands back their result rows as they
    come; built as ``Cls(cfg)`` (``persyn.execution.make_executor``). The stage that calls it
    stores the rows, so an executor never writes to the store."""

    @abstractmethod
    def run(self, jobs: list[Job]) -> Iterator[tuple[Job, list]]:
        """Yield ``(job, rows)`` as each batch (or shard) of each job is done, every item of
        every job once (a failed item as the rows ``job.fail`` makes). Closing the iterator
        early stops the work."""

    @abstractmethod
    def check(self, job: Job) -> None:
        """Make sure ``job`` can run before any work starts (build its worker; a served
        teacher checks its server).

        Raises:
            PersynError / MissingAssetError: it cannot (the message says why).
        """

    @abstractmethod
    def close(self) -> None:
        """Release the workers (and a Ray session this executor started)."""
