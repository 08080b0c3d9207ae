"""Router kind ``knn``: a teacher's score for a prompt is the mean combined reward it earned on
the k calibration prompts nearest to it (cosine similarity of frozen sentence embeddings), as
in RouterBench's kNN router and the kNN baseline of arXiv 2505.12601. k is chosen on the
training prompts by leave-one-out regret, so a cross-validation around ``fit`` is nested."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from persyn.router.base import (
    ArrayRouter,
    EncoderSettings,
    RouterExample,
    load_array_router,
    pick_regrets,
    reward_matrix,
    save_array_router,
)
from persyn.router.embeddings import PromptEncoder

# Added to the neighbour mean so that a tie among teachers goes to the one with the higher
# mean reward overall (the prior), not to the first in order.
PRIOR_TIEBREAK = 1e-6


def neighbour_scores(sims: np.ndarray, rewards: np.ndarray, prior: np.ndarray, k: int) -> np.ndarray:
    """Scores ``[q, n_teachers]``: the mean of ``rewards`` over each query's ``k`` most similar
    rows (``sims [q, m]``; −inf marks a row a query may not use), plus a tie-break by ``prior``."""
    k = max(1, min(k, sims.shape[1]))
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return rewards[nearest].mean(1) + PRIOR_TIEBREAK * prior


def choose_k(x: np.ndarray, rewards: np.ndarray, grid: list[int]) -> tuple[int, dict[int, float]]:
    """The k of ``grid`` with the lowest leave-one-out mean regret on ``(x, rewards)``; a tie
    goes to the larger k (the smoother router). Returns ``(k, {k: regret})``."""
    m = len(x)
    if m < 3:
        return max(1, min(grid[0], m)), {}
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    prior = rewards.mean(0)
    figures = {}
    for k in sorted({min(k, m - 1) for k in grid}):
        picks = neighbour_scores(sims, rewards, prior, k).argmax(1)
        figures[k] = float(pick_regrets(picks, rewards).mean())
    best = min(figures.values())
    return max(k for k, v in figures.items() if v <= best + 1e-12), figures


class KNNSettings(EncoderSettings):
    """``knn``'s settings: the frozen encoder's, and the k candidates (chosen by
    leave-one-out regret on the calibration prompts)."""

    knn_k: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 3, 5, 9, 15, 25], min_length=1
    )


class KNNRouter(ArrayRouter):
    """Cosine k-nearest-neighbour router on frozen prompt embeddings.

    Attributes:
        teachers: teacher names (score order).
        x: ``[m, hidden]`` unit vectors of the calibration prompts.
        rewards: ``[m, n_teachers]`` their filled rewards.
        k: neighbours averaged.
        encoder: the ``PromptEncoder.meta()`` of the embeddings.
    """

    Settings = KNNSettings
    kind = "knn"
    scores_are_rewards = True  # the neighbours' mean filled rewards
    uses_embeddings = True

    def __init__(self, teachers: list[str], x: np.ndarray, rewards: np.ndarray, k: int, encoder: dict):
        self.teachers, self.x, self.rewards, self.k, self.encoder = (
            list(teachers),
            x,
            rewards,
            int(k),
            encoder,
        )

    @classmethod
    def fit(
        cls, cfg: KNNSettings, teachers: list[str], examples: list[RouterExample], seed: int, progress=None
    ) -> KNNRouter:
        """Keep the valid examples' embeddings and rewards; choose k among ``cfg.knn_k``.

        Raises:
            ValueError: an example has no embedding, or none has a valid response.
        """
        idx, rewards = reward_matrix(examples)
        if not idx:
            raise ValueError("no calibration prompt has a valid response")
        x = cls.stacked_embeddings([examples[i] for i in idx])
        k, _ = choose_k(x, rewards, list(cfg.knn_k))
        if progress is not None:
            progress.update(1)
        return cls(teachers, x, rewards, k, PromptEncoder.of(cfg).meta())

    def scores(self, texts: list[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """Neighbour-mean rewards ``[len(texts), n_teachers]`` of the query ``embeddings``.

        Raises:
            ValueError: no embeddings given.
        """
        sims = self.query_embeddings(embeddings) @ self.x.T
        return neighbour_scores(sims, self.rewards, self.rewards.mean(0), self.k)

    def save(self, directory: str | Path) -> None:
        meta = {"kind": self.kind, "teachers": self.teachers, "k": self.k, "embedding": self.encoder}
        save_array_router(directory, meta, {"x": self.x, "rewards": self.rewards})

    @classmethod
    def load(cls, directory: str | Path) -> KNNRouter:
        meta, a = load_array_router(directory)
        return cls(meta["teachers"], a["x"], a["rewards"], meta["k"], meta["embedding"])
