"""Choosing calibration prompts on their embeddings: k-center greedy coverage (``diverse``) and
the router-uncertainty ranking of ``active`` calibration rounds.

k-center greedy (Sener & Savarese 2018, the core-set approach): repeatedly take the prompt
farthest (cosine distance) from every prompt taken so far, so the set covers the prompt
distribution instead of sampling its dense regions again.
"""

from __future__ import annotations

import numpy as np


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


def uncertainty_order(picks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Candidates from the most to the least uncertain.

    Args:
        picks: ``[n_routers, n]`` each router's pick per candidate prompt.
        scores: ``[n, n_teachers]`` one router's scores in reward units (e.g. ``knn``'s).

    The routers' disagreement (distinct picks) ranks first; among equals, the smaller gap
    between the best and second-best score (less certain) comes first.
    """
    disagree = np.array([len(set(col.tolist())) for col in picks.T])
    top2 = np.sort(scores, axis=1)[:, -2:] if scores.shape[1] > 1 else np.zeros((len(scores), 2))
    margin = top2[:, 1] - top2[:, 0]
    return np.lexsort((np.arange(len(margin)), margin, -disagree))


#: Router kinds fitted each ``active`` round to measure uncertainty (fast, frozen-embedding kinds).
ROUND_KINDS = ("prior", "bt-linear", "knn")


def next_round(
    cfg, teachers: list[str], examples: list, x_pool: np.ndarray, add: int, seed: int
) -> list[int]:
    """Indices into the candidate pool (embeddings ``x_pool [m, hidden]``) of the ``add``
    prompts an ``active`` round answers next.

    The routers of ``ROUND_KINDS`` are trained on ``examples`` (the calibration set so far, with
    embeddings) under ``cfg`` (a ``RouterConfig``); ``uncertainty_order`` ranks the pool by
    their disagreement and ``knn``'s margin; k-center greedy then takes ``add`` of the ``2·add``
    most uncertain, away from the calibration set and from each other.
    """
    from persyn.router.base import router_class

    picks, knn_scores = [], None
    for kind in ROUND_KINDS:
        try:
            router = router_class(kind).fit(cfg, teachers, examples, seed)
        except ValueError:  # nothing to learn from yet (e.g. no valid response)
            continue
        s = router.scores([""] * len(x_pool), x_pool)
        picks.append(router.pick(s))
        if kind == "knn":
            knn_scores = s
    if knn_scores is None:
        knn_scores = np.zeros((len(x_pool), len(teachers)))
    order = uncertainty_order(np.array(picks) if picks else np.zeros((1, len(x_pool)), int), knn_scores)
    candidates = order[: 2 * add].tolist()
    x_cal = np.stack([e.embedding for e in examples])
    added = k_center(np.concatenate([x_cal, x_pool[candidates]]), add, seed, taken=list(range(len(x_cal))))
    return [candidates[i - len(x_cal)] for i in added]
