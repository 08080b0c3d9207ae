"""The calibration set ``prepare`` fixes: a seeded uniform draw (``calibration.select: random``)
or prompts that cover the prompt distribution, by k-center greedy on their embeddings
(``diverse``, the seed set of ``active``, and the spreading step of each ``active`` round).

k-center greedy (Sener & Savarese 2018, the core-set approach): repeatedly take the prompt
farthest (cosine distance) from every prompt taken so far, so the set covers the prompt
distribution instead of sampling its dense regions again.
"""

from __future__ import annotations

import random

import numpy as np


def draw_calibration(prompt_ids: list[str], n_cal: int, seed: int) -> list[str]:
    """The calibration subset X_cal: ``n_cal`` ids drawn uniformly without replacement with
    ``random.Random(seed)``, kept in source order."""
    rng = random.Random(seed)
    return [prompt_ids[i] for i in sorted(rng.sample(range(len(prompt_ids)), n_cal))]


def k_center(x: np.ndarray, k: int, seed: int, taken: list[int] | None = None) -> list[int]:
    """``k`` new row indices of ``x`` (``[n, hidden]`` unit vectors) by k-center greedy.

    Args:
        k: rows to add (capped at the rows not taken).
        seed: picks the first center when ``taken`` is empty (so different seeds draw
            different sets).
        taken: rows already chosen (covered, never returned).

    Returns the added indices, in the order they were taken; ties go to the lowest index.
    """
    n = len(x)
    taken = list(taken or [])
    k = min(k, n - len(taken))
    if k <= 0:
        return []
    added: list[int] = []
    if not taken:
        first = int(np.random.default_rng(seed).integers(n))
        added.append(first)
        taken = [first]
    dist = 1.0 - (x @ x[taken].T).max(1)
    dist[taken] = -np.inf
    while len(added) < k:
        i = int(np.argmax(dist))
        added.append(i)
        dist = np.minimum(dist, 1.0 - x @ x[i])
        dist[i] = -np.inf
    return added
