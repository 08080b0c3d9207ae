"""The numbers the report's sections show: counts per teacher, means, medians, shares. No HTML
and no plotting here; every function takes what ``load.RunFiles`` holds."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from persyn.core.summary import RunSummary, StrategySummary
from persyn.report.load import RunFiles


def num(x: Any) -> float | None:
    """``x`` as a float when it is a finite int or float (bool excluded), else None."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return None if math.isnan(x) or math.isinf(x) else float(x)


def as_int(x: Any) -> int:
    """``x`` truncated to an int when it is a finite number, else 0."""
    n = num(x)
    return int(n) if n is not None else 0


def mean(xs: list[float]) -> float | None:
    """The arithmetic mean; None for an empty list."""
    return sum(xs) / len(xs) if xs else None


def median(xs: list[float]) -> float | None:
    """The median (the mean of the middle two for an even count); None for an empty list."""
    if not xs:
        return None
    s, m = sorted(xs), len(xs) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2


def is_binary(values: list[float]) -> bool:
    """True when there are values and every one is 0 or 1 (a verifier's scores)."""
    return bool(values) and all(v in (0.0, 1.0) for v in values)


def summary_field(summary: RunSummary | StrategySummary, name: str) -> Any:
    """The summary's field ``name``; None where this kind of summary has no such field (a
    strategy's summary has no router evaluation, for one)."""
    return getattr(summary, name, None)


def teacher_names(files: RunFiles) -> list[str]:
    """The summary's teachers in order, then any other teacher a dataset, calibration or routing
    line names (in order of first appearance)."""
    teachers = [str(t) for t in files.summary.teachers or []]
    for row in files.dataset + (files.calibration or []) + (files.routing or []):
        t = row.get("teacher")
        if isinstance(t, str) and t not in teachers:
            teachers.append(t)
    return teachers


def summary_counts(files: RunFiles, teachers: list[str], name: str) -> dict[str, int] | None:
    """The summary's ``{teacher: count}`` field ``name`` over ``teachers`` (0 where absent);
    None when the summary has no such field."""
    v = summary_field(files.summary, name)
    if not isinstance(v, dict):
        return None
    return {t: as_int(v.get(t)) for t in teachers}


def row_counts(rows: list[dict], teachers: list[str], only=None) -> dict[str, int]:
    """``{teacher: how many of rows name it}`` over ``teachers``; ``only(row)`` filters rows."""
    c = Counter(r.get("teacher") for r in rows if only is None or only(r))
    return {t: c.get(t, 0) for t in teachers}


def n_routed(summary: RunSummary | StrategySummary) -> Any:
    """The summary's routed prompts, or prompts minus calibration prompts when it has no such
    field; None when neither is known."""
    n, n_cal = summary.n_prompts, summary.n_calibration
    routed = summary_field(summary, "n_routed")
    if routed is None and num(n) is not None and num(n_cal) is not None:
        routed = int(n) - int(n_cal)
    return routed


def chosen_coefficients(routing: list[dict]) -> dict[str, list[float]]:
    """``{teacher: [router coefficient π of that teacher on each prompt routed to it]}``."""
    coef: dict[str, list[float]] = defaultdict(list)
    for r in routing:
        c = r.get("coefficients")
        if isinstance(c, dict) and isinstance(r.get("teacher"), str):
            v = num(c.get(r["teacher"]))
            if v is not None:
                coef[r["teacher"]].append(v)
    return coef


@dataclass
class CalibrationStats:
    """Per teacher, over ``calibration.jsonl``: the scored values (``quality``,
    ``learnability`` in nats/token, ``reward`` of Eq. 2) and counts of responses, failed
    responses (an error or no response) and Oracle picks."""

    quality: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    learnability: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    reward: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    responses: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    oracle: Counter[str] = field(default_factory=Counter)

    def all_quality(self) -> list[float]:
        """Every scored quality value, of all teachers."""
        return [v for vs in self.quality.values() for v in vs]


def calibration_stats(calibration: list[dict]) -> CalibrationStats:
    """Collect ``CalibrationStats`` from calibration lines (lines without a teacher skipped)."""
    stats = CalibrationStats()
    for r in calibration:
        t = r.get("teacher")
        if not isinstance(t, str):
            continue
        stats.responses[t] += 1
        if r.get("error") is not None or r.get("response") is None:
            stats.failed[t] += 1
        if r.get("oracle") is True:
            stats.oracle[t] += 1
        for key, into in (
            ("quality", stats.quality),
            ("learnability", stats.learnability),
            ("reward", stats.reward),
        ):
            v = num(r.get(key))
            if v is not None:
                into[t].append(v)
    return stats


def quality_kind(run_config: dict | None) -> str | None:
    """``quality.kind`` of ``run_config.json`` (e.g. ``verifier``); None when unknown."""
    q = (run_config or {}).get("quality")
    return q.get("kind") if isinstance(q, dict) else None
