"""Selection rules on scores (pure functions): which teacher(s) a strategy picks from the
calibration means or a prompt's candidates. Ties are broken by ``core.ranking.best``: the next
criterion (for a pick by quality: mean learnability; by learnability: quality; by CAR or the
Eq. 2 reward: quality, then learnability), then the alphabetically first name, never the order
of the config's teacher list."""

from __future__ import annotations

from persyn.core.errors import ConfigError
from persyn.core.hashing import stable_hash
from persyn.core.ranking import best
from persyn.scoring.combine import Candidate, pick_by
from persyn.scoring.means import TeacherMeans


def strongest(means: dict[str, TeacherMeans], names: list[str]) -> str:
    """The teacher with the highest mean calibration quality; on a tie, the highest mean
    learnability (the student's log-prob per token), then the alphabetically first name."""
    pick = best(names, {n: means[n].quality for n in names}, {n: means[n].learnability for n in names})
    assert pick is not None
    return pick


def family_members(names: list[str], families: dict[str, str | None], family: str | None) -> list[str]:
    """The teachers (in order) whose ``family`` is the student's ``family``.

    Raises:
        ConfigError: the student has no family, or no teacher has it.
    """
    if not family:
        raise ConfigError("strategy 'family-strong' needs student.family (e.g. family: smollm2)")
    same = [n for n in names if families.get(n) == family]
    if not same:
        known = sorted({f for f in families.values() if f})
        raise ConfigError(
            f"strategy 'family-strong': no teacher has family '{family}' "
            f"(teachers' families: {', '.join(known) or 'none set'}); set teachers.N.family"
        )
    return same


def family_strongest(
    means: dict[str, TeacherMeans], names: list[str], families: dict[str, str | None], family: str | None
) -> str:
    """The strongest teacher whose ``family`` equals the student's ``family``.

    Raises:
        ConfigError: see ``family_members``.
    """
    return strongest(means, family_members(names, families, family))


def weakest(means: dict[str, TeacherMeans], names: list[str], exclude: str) -> str:
    """The teacher with the lowest mean calibration quality other than ``exclude``; on a tie,
    the lowest mean learnability, then the alphabetically first name."""
    low = {n: None if means[n].learnability is None else -means[n].learnability for n in names}
    pick = best([n for n in names if n != exclude], {n: -means[n].quality for n in names}, low)
    assert pick is not None
    return pick


def car_scores(means: dict[str, TeacherMeans], beta: float) -> dict[str, float | None]:
    """CAR per teacher (Compatibility-Adjusted Reward, arXiv 2411.07133, §3):

        CAR = r̄ / (1 + β · L̄),  L̄ = −(mean log-prob per response token) ≥ 0 (student NLL)

    with r̄ the teacher's mean calibration quality (our reward; it must be ≥ 0: ``select``
    rescales reward-model quality to [0, 1] first). None for a teacher without a scored
    response."""
    return {
        n: None if m.learnability is None else m.quality / (1.0 + beta * -m.learnability)
        for n, m in means.items()
    }


def rescaled_quality(means: dict[str, TeacherMeans]) -> dict[str, TeacherMeans]:
    """Teacher means with quality min-max rescaled across teachers to [0, 1] (all 1.0 when
    they tie), learnability unchanged."""
    qs = [m.quality for m in means.values()]
    lo, hi = min(qs), max(qs)
    return {
        n: TeacherMeans((m.quality - lo) / (hi - lo) if hi > lo else 1.0, m.learnability, m.valid)
        for n, m in means.items()
    }


def per_prompt_pick(cands: list[Candidate], by: str) -> str | None:
    """Generate-then-Select pick for one prompt: the candidate with the highest ``by``
    (``reward``, ``quality`` or ``learnability``), ties broken as the Oracle's are
    (``scoring.combine.pick_by``); None when none has it."""
    return pick_by(cands, by)


def random_pick(prompt_id: str, names: list[str], seed: int) -> str:
    """A uniformly random teacher for one prompt, a pure function of (seed, prompt id), so the
    draw does not depend on the order or number of other prompts."""
    return names[int(stable_hash(["random", seed, prompt_id]), 16) % len(names)]


def mix_assign(
    prompt_ids: list[str], strong: str, weak: str, ratio: tuple[int, int], seed: int
) -> dict[str, str]:
    """Mix Distillation: exactly round(n · s / (s + w)) prompts (ratio = (s, w)) go to
    ``strong``, the rest to ``weak``; which ones is a seeded random draw."""
    order = sorted(prompt_ids, key=lambda pid: stable_hash(["mix", seed, pid]))
    n_strong = round(len(order) * ratio[0] / (ratio[0] + ratio[1]))
    return {pid: strong if i < n_strong else weak for i, pid in enumerate(order)}
