"""Per-teacher calibration means: the one aggregate that the summary, the strategies (strongest,
CAR, mix) and the report read."""

from __future__ import annotations

import numpy as np

from persyn.core import ranking
from persyn.core.errors import PersynError
from persyn.core.records import TeacherMeans  # noqa: F401 - its home is core.records
from persyn.scoring.combine import Candidate


def calibration_means(table: dict[str, list[Candidate]], names: list[str]) -> dict[str, TeacherMeans]:
    """Per-teacher means from ``table`` (prompt id → Eq. 2 candidates in teacher order, as the
    reward table gives them); see ``TeacherMeans`` for how failures count.

    Raises:
        PersynError: an empty table (no calibration prompt).
    """
    if not table:
        raise PersynError("no calibration prompts: the calibration means need calibration scores")
    out = {}
    for i, name in enumerate(names):
        cands = [row[i] for row in table.values()]
        q = [c.quality if c.quality is not None else 0.0 for c in cands]
        lv = [c.learnability for c in cands if c.learnability is not None]
        valid = sum(1 for c in cands if c.valid)
        out[name] = TeacherMeans(sum(q) / len(q), sum(lv) / len(lv) if lv else None, valid)
    return out


def best_single_teacher(names: list[str], rewards: list[list[float | None]]) -> str | None:
    """The teacher with the highest mean combined reward (Eq. 2) over prompts, ``rewards``
    being one row per prompt in teacher order; a failed response counts as the prompt's lowest
    valid reward (a prompt with none is skipped), and a tie goes to the alphabetically first
    name (``core.ranking.best_single_teacher``, the ``prior`` router's rule). None without
    teachers."""
    filled = []
    for row in rewards:
        valid = [r for r in row if r is not None]
        if valid:
            filled.append([min(valid) if r is None else r for r in row])
    # The mean as the prior router takes it (NumPy, float64), so both name the same teacher.
    means = np.array(filled, dtype=np.float64).mean(0) if filled else np.zeros(len(names))
    return ranking.best_single_teacher(names, means)
