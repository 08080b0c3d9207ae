"""Combined reward (PerSyn Eq. 2) and the pairwise router labels derived from it.

    r = (1 − α) · norm(r_q) + α · norm(r_l)

Both terms are normalised within each prompt, across the teachers that answered it, before
mixing (min-max by default, or z-score). When all candidates tie on a term, the term gives every
candidate the same value (0.5 for min-max, 0 for z-score), never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from persyn.core.ranking import best


def normalize(values: list[float], how: str = "minmax") -> list[float]:
    """Normalise one prompt's values across its candidates.

    Args:
        values: one value per candidate (finite floats).
        how: ``minmax`` → [0, 1]; ``zscore`` → mean 0, unit (population) std.

    Returns:
        A list of the same length. All-equal input gives 0.5 (minmax) or 0.0 (zscore) each.
    """
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return [0.5 if how == "minmax" else 0.0] * len(values)
    if how == "minmax":
        return [(v - lo) / (hi - lo) for v in values]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / std for v in values]


@dataclass
class Candidate:
    """One teacher's scored response to one prompt (valid: both terms present)."""

    teacher: str
    quality: float | None
    learnability: float | None
    quality_norm: float | None = None
    learnability_norm: float | None = None
    reward: float | None = None

    @property
    def valid(self) -> bool:
        return self.quality is not None and self.learnability is not None


def combine(cands: list[Candidate], alpha: float, how: str = "minmax") -> list[Candidate]:
    """Fill ``quality_norm``, ``learnability_norm`` and ``reward`` (Eq. 2) of the valid
    candidates of one prompt, in place; invalid ones (a failed generation or score) keep
    ``reward = None``. Returns ``cands``.

    Raises:
        ValueError: ``alpha`` outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    valid = [c for c in cands if c.valid]
    qn = normalize([c.quality for c in valid], how)  # type: ignore[misc]
    ln = normalize([c.learnability for c in valid], how)  # type: ignore[misc]
    for c, q, lv in zip(valid, qn, ln, strict=True):
        c.quality_norm, c.learnability_norm = q, lv
        c.reward = (1.0 - alpha) * q + alpha * lv
    return cands


# A per-prompt pick's tie-breakers, after its own criterion.
TIE_BREAKS = {
    "reward": ("quality", "learnability"),
    "quality": ("learnability",),
    "learnability": ("quality",),
}


def pick_by(cands: list[Candidate], by: str) -> str | None:
    """The teacher of the candidate with the highest ``by`` (``reward``, ``quality`` or
    ``learnability``) among those that have it; on a tie the next of ``TIE_BREAKS[by]``, then
    the alphabetically first teacher (``core.ranking``); None when none has it."""
    crit = [{c.teacher: getattr(c, k) for c in cands} for k in (by, *TIE_BREAKS[by])]
    return best([c.teacher for c in cands], *crit)


def pick_passing(cands: list[Candidate], by: str, passes: Callable[[float | None], bool]) -> str | None:
    """A Generate-then-Select pick among one prompt's passing candidates: the teacher of the
    highest ``by`` (``reward``, ``quality`` or ``learnability``; ties as ``scoring.combine.pick_by``)
    among the valid candidates whose quality passes, the rewards as Eq. 2 gave them over all
    candidates (as the verified calibration lines' Oracle pick). None when none passes."""
    return pick_by([c for c in cands if c.valid and passes(c.quality)], by)


def oracle_pick(cands: list[Candidate]) -> str | None:
    """The Oracle router's teacher: argmax of the combined reward over valid candidates (on a
    tie: the higher quality, then the higher learnability, then the alphabetically first
    teacher), or None when no candidate is valid."""
    return pick_by(cands, "reward")


def pair_labels(rewards: list[float | None], ties: str = "drop") -> list[tuple[int, int, float]]:
    """Bradley–Terry training pairs for one prompt (PerSyn §router labels).

    Every unordered pair of candidates (a < b, indices into ``rewards``) gives ``(a, b, C)``
    with C = 1 if r_b > r_a, 0 if r_b < r_a. A failed candidate (None) loses to every valid
    one. Ties (including two failed candidates) are dropped, or kept with C = 0.5 when
    ``ties == "half"`` (P2L's bt-tie).
    """
    out = []
    n = len(rewards)
    for a in range(n):
        for b in range(a + 1, n):
            ra = -math.inf if rewards[a] is None else rewards[a]
            rb = -math.inf if rewards[b] is None else rewards[b]
            if rb > ra:
                out.append((a, b, 1.0))
            elif rb < ra:
                out.append((a, b, 0.0))
            elif ties == "half" and not (rewards[a] is None and rewards[b] is None):
                out.append((a, b, 0.5))
    return out
