"""A router's scores as expected rewards, so that a budget can trade reward against cost.

``prior`` (mean calibration reward) and ``knn`` (mean reward of the nearest calibration
prompts) score on the reward's own scale already: their scores are used as they are. The
Bradley–Terry kinds (``bt-linear``, ``bt-encoder``) give coefficients π(x) that are identified
only up to a per-prompt constant (Eq. 3 reads differences), so they are first made
shift-invariant with a softmax, ``p_k(x) = exp π_k(x) / Σ_j exp π_j(x)``, and then mapped to
reward per teacher by isotonic regression of the calibration rewards on the cross-validated
``p_k`` (Zadrozny & Elkan 2002, "Transforming classifier scores into accurate multiclass
probability estimates"; monotone, so the router's ranking of prompts for a teacher is kept).
The fit uses the out-of-fold scores of the cross-validation (every calibration prompt scored
by a router that did not see it); with fewer than ``MIN_POINTS`` of them, a teacher's expected
reward is its calibration mean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from persyn.core.io import write_atomic
from persyn.router.base import router_class

MIN_POINTS = 10
FILE = "utility.json"


def scores_are_rewards(kind: str) -> bool:
    """Whether router kind ``kind`` scores with expected rewards already (its class says:
    ``Router.scores_are_rewards``)."""
    return router_class(kind).scores_are_rewards


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``[m, K]`` scores."""
    z = scores - scores.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


@dataclass
class RewardCalibration:
    """Maps router scores ``[m, K]`` to expected rewards ``[m, K]``.

    Attributes:
        kind: the router kind the map belongs to.
        identity: the scores are rewards already (``prior``, ``knn``).
        knots: per teacher, the isotonic fit's ``(x, y)`` knots (interpolated linearly, flat
            beyond the ends); an empty ``x`` means the constant ``y[0]``.
    """

    kind: str
    identity: bool
    knots: list[tuple[list[float], list[float]]]

    @classmethod
    def fit(cls, kind: str, scores: np.ndarray, rewards: np.ndarray) -> RewardCalibration:
        """Fit on out-of-fold ``scores [n, K]`` (several repeats may be stacked as rows) and the
        filled rewards ``rewards [n, K]`` of the same prompts.

        Raises:
            ValueError: shapes that differ.
        """
        if scores_are_rewards(kind):
            return cls(kind, True, [])
        scores, rewards = np.asarray(scores, dtype=np.float64), np.asarray(rewards, dtype=np.float64)
        if scores.shape != rewards.shape:
            raise ValueError(f"scores {scores.shape} and rewards {rewards.shape} differ in shape")
        p = softmax(scores) if len(scores) else scores
        knots = []
        for k in range(rewards.shape[1]):
            if len(p) < MIN_POINTS or np.ptp(p[:, k]) < 1e-12:
                knots.append(([], [float(rewards[:, k].mean()) if len(rewards) else 0.0]))
                continue
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(out_of_bounds="clip").fit(p[:, k], rewards[:, k])
            knots.append((iso.X_thresholds_.tolist(), iso.y_thresholds_.tolist()))
        return cls(kind, False, knots)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Expected rewards ``[m, K]`` of router ``scores [m, K]``."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.identity:
            return scores
        p = softmax(scores)
        cols = []
        for k, (x, y) in enumerate(self.knots):
            cols.append(np.full(len(p), y[0]) if not x else np.interp(p[:, k], x, y))
        return np.stack(cols, axis=1) if cols else p

    def save(self, directory: str | Path) -> None:
        data = {"kind": self.kind, "identity": self.identity, "knots": self.knots}
        write_atomic(Path(directory) / FILE, json.dumps(data) + "\n")

    @classmethod
    def load(cls, directory: str | Path, kind: str) -> RewardCalibration:
        """The calibration saved with a router; a router saved without one (before budgets)
        gets the identity for reward-scale kinds and a softmax otherwise."""
        path = Path(directory) / FILE
        if not path.exists():
            return cls(kind, scores_are_rewards(kind), [])
        d = json.loads(path.read_text())
        return cls(d["kind"], d["identity"], [tuple(k) for k in d["knots"]])


def cross_fitted(kind: str, scores: np.ndarray, rewards: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Expected rewards of one repeat's out-of-fold ``scores [n, K]``, each fold's mapped by a
    ``RewardCalibration`` fitted on the other folds only (so a calibrated kind is not scored on
    the prompts its map was fitted on).

    Args:
        kind: the router kind.
        scores: ``[n, K]`` out-of-fold scores of one repeat.
        rewards: ``[n, K]`` filled rewards.
        folds: ``[n]`` the fold of each prompt in that repeat (``router.base.fold_of``).
    """
    if scores_are_rewards(kind):
        return np.asarray(scores, dtype=np.float64)
    out = np.zeros_like(scores, dtype=np.float64)
    for f in np.unique(folds):
        held = folds == f
        out[held] = RewardCalibration.fit(kind, scores[~held], rewards[~held])(scores[held])
    return out
