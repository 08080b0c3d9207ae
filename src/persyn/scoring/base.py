"""The scorer contract: responses in, one score per response out, batch by batch."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator

from persyn.core.records import ScoreItem
from persyn.core.worker import Worker


class Scorer(Worker):
    """Scores responses (``ScoreItem``s): the student's learnability, or a quality scorer
    (``core.plugins.QUALITY_SCORERS``).

    ``work_units(items)`` (from ``Worker``): the groups ``score`` computes together; the
    default, one item per group, is right for a scorer whose numbers do not depend on batching.
    """

    @property
    @abstractmethod
    def key(self) -> str:
        """Identifies the scorer and its settings in the store: a change invalidates the
        cached scores (a class attribute will do)."""

    @abstractmethod
    def score(self, items: list[ScoreItem]) -> Iterator[list[tuple[str, float | None, str | None]]]:
        """Yield ``[(item key, score or None, note or error or None), ...]`` batch by batch,
        every item once; an item that cannot be scored is a row with None and the reason,
        not an exception."""

    def run(self, items: list[ScoreItem]) -> Iterator[list[tuple[str, float | None, str | None]]]:
        """A scorer's work: ``score``."""
        return self.score(items)
