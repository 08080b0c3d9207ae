"""Router kind ``prior``: the best single teacher, by mean combined reward over the calibration
prompts (a failed response counts as the prompt's lowest valid reward), a tie going to the
alphabetically first name (``core.ranking.best_single_teacher``), never to the teacher listed
first. It ignores the prompt; it is the fallback every learned kind must beat
(``router.kind: auto``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from persyn.core.ranking import best_single_teacher
from persyn.router.base import (
    ArrayRouter,
    NoSettings,
    RouterExample,
    load_array_router,
    reward_matrix,
    save_array_router,
)


class PriorRouter(ArrayRouter):
    """Scores every prompt with the teachers' mean calibration rewards and routes every prompt
    to ``best``.

    Attributes:
        teachers: teacher names (score order).
        means: ``[n_teachers]`` mean filled reward (uniform zeros when no example is valid).
    """

    kind = "prior"
    scores_are_rewards = True  # mean filled rewards
    uses_embeddings = False

    def __init__(self, teachers: list[str], means: np.ndarray):
        self.teachers = list(teachers)
        self.means = np.asarray(means, dtype=np.float64)

    @classmethod
    def fit(
        cls, cfg: NoSettings, teachers: list[str], examples: list[RouterExample], seed: int, progress=None
    ) -> PriorRouter:
        """The mean reward of each teacher over ``examples`` (routing goes to ``best``)."""
        _, rewards = reward_matrix(examples)
        means = rewards.mean(0) if len(rewards) else np.zeros(len(teachers))
        if progress is not None:
            progress.update(1)
        return cls(teachers, means)

    @property
    def best(self) -> str | None:
        """The best single teacher: highest mean, a tie to the alphabetically first name
        (``core.ranking.best_single_teacher``); None without teachers."""
        return best_single_teacher(self.teachers, self.means) if len(self.teachers) else None

    def scores(self, texts: list[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """The same ``means`` for every text, shape ``[len(texts), n_teachers]``."""
        return np.tile(self.means, (len(texts), 1))

    def save(self, directory: str | Path) -> None:
        save_array_router(directory, {"kind": self.kind, "teachers": self.teachers}, {"means": self.means})

    @classmethod
    def load(cls, directory: str | Path) -> PriorRouter:
        meta, arrays = load_array_router(directory)
        return cls(meta["teachers"], arrays["means"])
