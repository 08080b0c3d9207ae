"""The verified cascade of one routed prompt, as a pure function of what is stored.

A routed prompt's teachers are asked in its ranking (the router's, ``router.base.rank``); each
response is checked (its quality against ``verify.pass_quality``); the first that passes is
accepted, a failed one sends the prompt to the next teacher, at most ``max_tries`` teachers.
``walk`` reads the state of that walk off the stored responses and scores: it says what the
prompt needs next (a response of a teacher, or the quality of one) or how it ended. Everything a
run does with a cascade, generating, resuming after a kill, exporting, reporting, is this one
walk over the store, so a resumed run takes exactly the steps an uninterrupted one takes and no
teacher answers a prompt twice.

The expected number of tries when the teachers are asked in order with pass probabilities
p_1, p_2, ... and the walk stops at the first pass or after K: E = Σ_{k=1..K} Π_{j<k} (1 − p_j)
(docs/method.md; ``expected_tries``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Why an attempt did not give the prompt its line.
REJECTED = "rejected"  # answered, checked, failed the check
FAILED = "failed"  # the teacher gave no response (an error), counted as a try
SKIPPED = "skipped"  # not generated: the budget could not cover its worst case
UNSCORED = "unscored"  # answered, but the quality scorer failed on it: cannot pass
ACCEPTED = "accepted"


@dataclass(frozen=True)
class Attempt:
    """One teacher's turn on one prompt.

    Attributes:
        teacher: the teacher asked.
        key: its response's generation key.
        status: ``accepted``, ``rejected``, ``failed``, ``skipped`` or ``unscored``.
        quality: the response's quality (None when not scored or not answered).
        why: a short reason (the error of a failed response, the quality and threshold of a
            rejected one).
    """

    teacher: str
    key: str
    status: str
    quality: float | None = None
    why: str | None = None

    def to_dict(self) -> dict:
        return {"teacher": self.teacher, "status": self.status, "quality": self.quality, "why": self.why}


@dataclass
class Walk:
    """Where one prompt's cascade stands.

    Attributes:
        attempts: the finished turns, in order.
        next_generate: the teacher whose response is needed next (None: none).
        next_score: the generation key whose quality is needed next (None: none).
        accepted: the accepted attempt's teacher (None: none yet, or none passed).
    """

    attempts: list[Attempt] = field(default_factory=list)
    next_generate: str | None = None
    next_score: str | None = None
    accepted: str | None = None

    @property
    def done(self) -> bool:
        """Nothing more to generate or score for this prompt."""
        return self.next_generate is None and self.next_score is None

    @property
    def tries(self) -> int:
        """Teachers that answered (or failed to): skipped turns are not tries."""
        return sum(1 for a in self.attempts if a.status != SKIPPED)


@dataclass(frozen=True)
class Stored:
    """What the store holds of one teacher's response to the prompt (see ``walk``)."""

    key: str
    generated: bool  # a row exists (ok, failed or skipped)
    ok: bool = False
    skipped: bool = False
    error: str | None = None
    scored: bool = False  # a quality row exists (its value may be None: the scorer failed)
    quality: float | None = None


def walk(
    ranking: Sequence[str],
    stored: Callable[[str], Stored],
    max_tries: int,
    passes: Callable[[float], bool],
    threshold: float,
) -> Walk:
    """Follow one prompt's cascade over what is stored.

    Args:
        ranking: the prompt's teachers, best first (every teacher once).
        stored: teacher → what the store holds of its response to this prompt.
        max_tries: teachers asked at most.
        passes: whether a quality passes the check.
        threshold: the pass threshold, for the reason written on a rejected attempt.

    Returns:
        The walk: finished attempts and either what is needed next or how it ended.
    """
    out = Walk()
    for teacher in list(ranking)[:max_tries]:
        s = stored(teacher)
        if not s.generated:
            out.next_generate = teacher
            return out
        if s.skipped:  # the budget refused it: the walk ends here (a new run may try it again)
            out.attempts.append(Attempt(teacher, s.key, SKIPPED, None, s.error))
            return out
        if not s.ok:
            out.attempts.append(Attempt(teacher, s.key, FAILED, None, s.error))
            continue
        if not s.scored:
            out.next_score = s.key
            return out
        if s.quality is None:
            out.attempts.append(Attempt(teacher, s.key, UNSCORED, None, "quality could not be scored"))
            continue
        if passes(s.quality):
            out.attempts.append(Attempt(teacher, s.key, ACCEPTED, s.quality, None))
            out.accepted = teacher
            return out
        why = f"quality {s.quality:g} < pass_quality {threshold:g}"
        out.attempts.append(Attempt(teacher, s.key, REJECTED, s.quality, why))
    return out


def expected_tries(p: Sequence[float], max_tries: int) -> float:
    """Expected teachers asked by a cascade with pass probabilities ``p`` (in the order asked),
    stopping at the first pass or after ``max_tries``: E = Σ_{k=1..K} Π_{j<k} (1 − p_j), with
    K = min(max_tries, len(p)).

    Raises:
        ValueError: a probability outside [0, 1].
    """
    if any(not 0.0 <= x <= 1.0 for x in p):
        raise ValueError(f"pass probabilities must lie in [0, 1], got {list(p)}")
    total, reach = 0.0, 1.0
    for x in list(p)[: max(0, max_tries)]:
        total += reach
        reach *= 1.0 - x
    return total


def expected_generations(
    rankings: Sequence[Sequence[str]], p: dict[str, float], max_tries: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Expected first answers and escalations per teacher of cascades over ``rankings`` (one
    per prompt, teachers in the order asked) with pass probabilities ``p`` (per teacher):
    the k-th teacher of a ranking answers with probability Π_{j<k} (1 − p_j) (summed over
    prompts, this is ``expected_tries`` per prompt).

    Returns:
        ``(first, escalations)``: teacher → expected responses as a first try, and as a later one.
    """
    first: dict[str, float] = {}
    later: dict[str, float] = {}
    for ranking in rankings:
        reach = 1.0
        for k, t in enumerate(list(ranking)[: max(0, max_tries)]):
            target = first if k == 0 else later
            target[t] = target.get(t, 0.0) + reach
            reach *= 1.0 - p.get(t, 0.0)
    return first, later
