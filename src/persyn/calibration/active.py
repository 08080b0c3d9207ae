"""The prompts an ``active`` calibration round adds: the ones on which routers trained on the
calibration set so far disagree most or are least certain, spread out by k-center greedy
(``persyn.calibration.draw.k_center``). The rounds themselves run in ``stages.calibrate``.
"""

from __future__ import annotations

import numpy as np

from persyn.calibration.draw import k_center


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
    their disagreement and the margin of the round router whose scores are expected rewards per
    prompt (embedding-based, rewards: ``knn``); k-center greedy then takes ``add`` of the
    ``2·add`` most uncertain, away from the calibration set and from each other.
    """
    from persyn.router.base import router_class

    picks, margin_scores = [], None
    for kind in ROUND_KINDS:
        cls = router_class(kind)
        try:
            router = cls.fit(cfg, teachers, examples, seed)
        except ValueError:  # nothing to learn from yet (e.g. no valid response)
            continue
        s = router.scores([""] * len(x_pool), x_pool)
        picks.append(router.pick(s))
        if cls.scores_are_rewards and cls.uses_embeddings:  # rewards that vary by prompt
            margin_scores = s
    if margin_scores is None:
        margin_scores = np.zeros((len(x_pool), len(teachers)))
    order = uncertainty_order(np.array(picks) if picks else np.zeros((1, len(x_pool)), int), margin_scores)
    candidates = order[: 2 * add].tolist()
    x_cal = np.stack([e.embedding for e in examples])
    added = k_center(np.concatenate([x_cal, x_pool[candidates]]), add, seed, taken=list(range(len(x_cal))))
    return [candidates[i - len(x_cal)] for i in added]
