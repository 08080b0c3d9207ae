"""The contract every executor runs: a worker (an engine or a scorer) holds one model, takes a
list of items and yields lists of result rows, batch by batch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any


class Worker(ABC):
    """What a ``Job`` builds and an executor runs (``persyn.engines.base.Engine``,
    ``persyn.scoring.base.Scorer``): the worker's type says what its work is."""

    @abstractmethod
    def run(self, items: list[Any]) -> Iterator[list[Any]]:
        """The work: yield result rows for ``items`` batch by batch (an engine generates, a
        scorer scores)."""

    def work_units(self, items: list[Any]) -> list[list[Any]]:
        """The groups of ``items`` this worker processes together, in the order it would; every
        item is in exactly one group. The Ray executor cuts shards along them, so that a worker
        whose numbers depend on which items share a batch (padded, batched) computes the same
        numbers under either executor. Default: one group per item (no batching)."""
        return [[it] for it in items]
