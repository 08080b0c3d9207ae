"""Per-teacher calibration means: the one aggregate that the summary, the strategies (strongest,
CAR, mix) and the report read."""

from __future__ import annotations

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
