"""``executor: local`` (the default): jobs run in this process, one after another; a model is
loaded once per run and kept."""

from __future__ import annotations

from collections.abc import Iterator

from persyn.config import RunConfig
from persyn.core.errors import BatchesInFlight
from persyn.core.worker import Worker
from persyn.execution.base import Executor
from persyn.execution.jobs import Job


class LocalExecutor(Executor):
    """Runs jobs in this process, in the order given; each yields its rows batch by batch."""

    def __init__(self, cfg: RunConfig | None = None) -> None:
        self._workers: dict[str, Worker] = {}

    def worker(self, job: Job) -> Worker:
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
        """Yield ``(job, rows)`` as each batch of each job is done.

        Raises:
            BatchesInFlight: after every other job ran, when some job's batches are still
                running (``batch.wait: false``): one status naming them all.
        """
        in_flight: list[str] = []
        for job in jobs:
            if not job.items:
                continue
            try:
                for rows in self.worker(job).run(job.items):
                    yield job, rows
            except BatchesInFlight as exc:  # the other jobs still run: their work is stored
                in_flight.append(str(exc))
        if in_flight:
            raise BatchesInFlight("; ".join(in_flight))

    def close(self) -> None:
        self._workers.clear()
