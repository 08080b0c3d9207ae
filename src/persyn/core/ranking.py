"""The one tie-breaking rule of every pick by a criterion (a strategy's teacher, a prompt's
Oracle / GRAPE / best-of-n candidate): the highest value of the criterion; on a tie, the highest
value of the next criterion given, and so on; a tie on every criterion goes to the
alphabetically first name. The order in which a config lists its teachers never decides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def best(names: Sequence[str], *criteria: Mapping[str, float | None]) -> str | None:
    """The name ranked first by ``criteria`` (higher is better; a missing or None value ranks
    below every number), among the names that have a value for the first criterion.

    Args:
        names: the candidates (any order: the result does not depend on it).
        criteria: ``{name: value}`` mappings, the first the main criterion, the others its
            tie-breakers in order.

    Returns:
        The winning name, or None when no name has a value for the first criterion.
    """

    def rank(n: str) -> tuple:
        vals = tuple(c.get(n) for c in criteria)
        # (has a value, value) per criterion: None ranks below any number.
        return tuple(x for v in vals for x in ((v is not None), v if v is not None else 0.0))

    have = sorted(n for n in names if criteria and criteria[0].get(n) is not None)
    if not have:
        return None
    return max(have, key=rank)  # max keeps the first of equal keys: the alphabetical first


def best_single_teacher(names: Sequence[str], means: Sequence[float | None]) -> str | None:
    """The best single teacher: the highest of ``means`` (``means[i]`` is ``names[i]``'s mean
    reward, e.g. a NumPy array in teacher order), a tie going to the alphabetically first name
    (``best``), never to the teacher the config lists first. The one rule of the ``prior``
    router and the router evaluation's ``best_single_teacher``.

    Returns:
        The teacher's name; None when no teacher has a mean.

    Raises:
        ValueError: ``names`` and ``means`` differ in length.
    """
    if len(names) != len(means):
        raise ValueError(f"{len(names)} teachers but {len(means)} means")
    return best(names, {n: None if m is None else float(m) for n, m in zip(names, means, strict=True)})


def filled_rewards(rewards: Sequence[float | None]) -> list[float] | None:
    """``rewards`` (one prompt's, in teacher order) with a failed response (None) counted as the
    prompt's lowest valid reward: the one rule by which the router's figures, its training
    matrix and the best single teacher count a failure. None when no response is valid."""
    valid = [r for r in rewards if r is not None]
    if not valid:
        return None
    return [min(valid) if r is None else r for r in rewards]
