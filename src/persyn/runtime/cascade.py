"""The routed prompts' teachers in order and their cascades read off the store
(``core.cascade.walk``): what the generate stage acts on and what export, the summary and the
report read back."""

from __future__ import annotations

from dataclasses import dataclass

from persyn.core.cascade import Stored, Walk, walk
from persyn.core.records import Prompt
from persyn.router.base import rank_teachers
from persyn.runtime.budget import SKIPPED
from persyn.runtime.context import RunContext
from persyn.runtime.routing import assignments
from persyn.runtime.scores import stored_scores
from persyn.scoring.combine import Candidate, combine, oracle_pick, pick_passing


@dataclass
class Cascades:
    """Every routed prompt's ranking and walk.

    Attributes:
        prompts: the routed prompts, in source order.
        rankings: prompt id → its teachers in the order asked.
        walks: prompt id → where its cascade stands.
        keys: (prompt id, teacher) → generation key, for the teachers a walk may ask.
    """

    prompts: list[Prompt]
    rankings: dict[str, list[str]]
    walks: dict[str, Walk]
    keys: dict[tuple[str, str], str]

    @property
    def done(self) -> bool:
        return all(w.done for w in self.walks.values())


def max_tries(ctx: RunContext) -> int:
    """Teachers asked per routed prompt: ``verify.max_tries``, or 1 without ``verify``."""
    return ctx.cfg.verify.max_tries if ctx.cfg.verify is not None else 1


def ranking(first: str, coefficients: dict[str, float], teachers: list[str]) -> list[str]:
    """A routed prompt's teachers in the order a cascade asks them: its assigned teacher
    (the router's argmax, or the budget's choice), then the others by the router's scores
    (``router.base.rank_teachers``: equal scores alphabetically)."""
    order = rank_teachers([[coefficients.get(n, 0.0) for n in teachers]], teachers)[0]
    return [first] + [teachers[i] for i in order if teachers[i] != first]


def read_cascades(ctx: RunContext) -> Cascades:
    """Every routed prompt's cascade as the store holds it now. Without ``verify`` each prompt
    has one try and no check (its response, once stored, is its line).

    Raises:
        PersynError: a prompt is not routed yet.
    """
    cfg = ctx.cfg
    assigned = assignments(ctx)
    prompts = ctx.store.prompts(calibration=False)
    teachers = {t.name: t for t in cfg.teachers}
    k = max_tries(ctx)
    rankings = {p.id: ranking(*assigned[p.id], cfg.teacher_names)[:k] for p in prompts}
    keys = {(p.id, t): ctx.key_of(teachers[t], p) for p in prompts for t in rankings[p.id]}
    gens = ctx.store.generations(keys.values())
    verify = cfg.verify
    quality = ctx.store.scores("quality", ctx.quality_key) if verify is not None else {}
    if verify is not None:
        threshold = verify.threshold(cfg.quality.kind)

        def passes(q: float) -> bool:
            return verify.passes(q, cfg.quality.kind)
    else:
        threshold = float("-inf")

        def passes(q: float) -> bool:
            return True

    walks = {}
    for p in prompts:

        def stored(teacher: str, pid: str = p.id) -> Stored:
            key = keys[(pid, teacher)]
            g = gens.get(key)
            if g is None:
                return Stored(key, False)
            scored = key in quality if verify is not None else True
            q = quality[key][0] if key in quality else (1.0 if verify is None else None)
            return Stored(key, True, g.ok, g.error == SKIPPED, g.error, scored, q)

        walks[p.id] = walk(rankings[p.id], stored, k, passes, threshold)
    return Cascades(prompts, rankings, walks, keys)


def verified_pick(ctx: RunContext):
    """The calibration line's rule: the Oracle pick (Eq. 2 argmax); with ``verify``, the Oracle
    pick among the responses that pass, and with none passing, none (``on_fail: drop``) or the
    Oracle pick of all (``keep``)."""
    cfg = ctx.cfg
    verify = cfg.verify
    if verify is None:
        return oracle_pick

    def pick(cands: list[Candidate]) -> str | None:
        got = pick_passing(cands, "reward", lambda q: verify.passes(q, cfg.quality.kind))
        if got is not None:
            return got
        return oracle_pick(cands) if verify.on_fail == "keep" else None

    return pick


def kept_attempts(ctx: RunContext, cascades, gens: dict) -> dict[str, tuple[str, Candidate]]:
    """``verify.on_fail: keep``: per routed prompt that no teacher passed, its attempt of
    highest Eq. 2 reward among its scored attempts (``scoring.combine``: normalised over
    them), as ``(teacher, candidate)``."""
    cfg = ctx.cfg
    if cfg.verify is None or cfg.verify.on_fail != "keep":
        return {}
    scores = stored_scores(ctx)
    out = {}
    for pid, w in cascades.walks.items():
        if w.accepted is not None:
            continue
        cands = [
            Candidate(a.teacher, *scores.get(a.key, (None, None)))
            for a in w.attempts
            if a.key in gens and gens[a.key].ok
        ]
        combine(cands, cfg.alpha, cfg.normalize)
        pick = oracle_pick(cands)
        if pick is not None:
            out[pid] = (pick, next(c for c in cands if c.teacher == pick))
    return out
