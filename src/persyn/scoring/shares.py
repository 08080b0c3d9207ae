"""What a run wrote, said out loud: the share of dataset lines whose quality check failed or
was never made, and the share of each teacher's responses cut at ``max_new_tokens``.

A dataset can be full of wrong answers while every stage succeeds (the Oracle keeps its pick
on a calibration prompt no teacher got right; a routed answer is not checked without
``verify:``). These figures go to the console, ``summary.json`` and the report, so a user sees
them without reading the lines.
"""

from __future__ import annotations

from collections.abc import Iterable

from persyn.core.records import DatasetLine, Generation

# A teacher with at least this share of its responses cut at max_new_tokens gets a warning.
TRUNCATION_WARN_SHARE = 0.10


def line_status(quality: float | None, threshold: float | None) -> str:
    """``passed``, ``failed`` or ``unknown`` for a line of quality ``quality`` (None: never
    scored, or its scoring failed) under the pass threshold ``threshold`` (None: the run has no
    pass rule, e.g. a reward model without ``verify.pass_quality``: every line is unknown)."""
    if quality is None or threshold is None:
        return "unknown"
    return "passed" if quality >= threshold - 1e-12 else "failed"


def quality_shares(lines: Iterable[DatasetLine], threshold: float | None, fix: str | None) -> dict:
    """The dataset's lines by quality check, overall and per teacher and source.

    Args:
        lines: the dataset's lines (their ``quality``: None when not scored).
        threshold: the quality a line needs to pass (``line_status``).
        fix: the setting that removes the failed and unknown lines (shown with the warning).

    Returns:
        ``{"pass_quality", "lines", "passed", "failed", "unknown", "share_failed_or_unknown",
        "by_teacher": {teacher: {source: {"lines", "passed", "failed", "unknown"}}}, "fix"}``
        (the share is None for an empty dataset).
    """
    total = {"passed": 0, "failed": 0, "unknown": 0}
    by_teacher: dict[str, dict[str, dict[str, int]]] = {}
    for x in lines:
        status = line_status(x.quality, threshold)
        total[status] += 1
        cell = by_teacher.setdefault(x.teacher, {}).setdefault(
            x.source, {"lines": 0, "passed": 0, "failed": 0, "unknown": 0}
        )
        cell["lines"] += 1
        cell[status] += 1
    n = sum(total.values())
    bad = total["failed"] + total["unknown"]
    return {
        "pass_quality": threshold,
        "lines": n,
        **total,
        "share_failed_or_unknown": bad / n if n else None,
        "by_teacher": by_teacher,
        "fix": fix if bad else None,
    }


def truncation_shares(gens: Iterable[Generation], max_new_tokens: dict[str, int | None]) -> dict:
    """Per teacher, its successful responses and those cut at ``max_new_tokens`` (the engine's
    ``finish_reason`` ``length``).

    Args:
        gens: the run's responses (failed ones are not counted).
        max_new_tokens: each teacher's ``max_new_tokens`` (shown with the warning; None for
            a teacher without one, such as ``reference``).

    Returns:
        ``{teacher: {"responses", "cut", "share", "max_new_tokens", "warn"}}`` for every teacher
        of ``max_new_tokens``; ``share`` is None without responses; ``warn`` is True at a share
        of ``TRUNCATION_WARN_SHARE`` or more.
    """
    out = {t: {"responses": 0, "cut": 0} for t in max_new_tokens}
    for g in gens:
        if g.ok and g.teacher in out:
            out[g.teacher]["responses"] += 1
            out[g.teacher]["cut"] += g.finish_reason == "length"
    for t, f in out.items():
        f["share"] = f["cut"] / f["responses"] if f["responses"] else None
        f["max_new_tokens"] = max_new_tokens[t]
        f["warn"] = f["share"] is not None and f["share"] >= TRUNCATION_WARN_SHARE
    return out


def quality_warning(q: dict | None) -> str | None:
    """The console's one-line warning for ``quality_shares`` figures (None when every line
    passed)."""
    if not q or not q.get("share_failed_or_unknown"):
        return None
    return (
        f"{q['failed'] + q['unknown']} of {q['lines']} dataset lines "
        f"({q['share_failed_or_unknown']:.0%}) failed the quality check ({q['failed']}) or were "
        f"never checked ({q['unknown']}); {q['fix']}"
    )


def truncation_warnings(t: dict | None) -> list[str]:
    """One warning line per teacher whose share cut is at the threshold or above."""
    return [
        f"teacher '{name}': {f['cut']} of {f['responses']} responses ({f['share']:.0%}) were cut at "
        f"max_new_tokens {f['max_new_tokens']}; raise the teacher's max_new_tokens"
        for name, f in (t or {}).items()
        if f.get("warn")
    ]
