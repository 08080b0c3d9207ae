"""Stage 6 (Route-then-Generate): the routed teacher answers each routed prompt; with
``verify:``, each response is checked and a failed one goes to the next teacher of the
prompt's ranking (the verified cascade, ``core.cascade``)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from persyn.core.cascade import FAILED
from persyn.core.cascade import SKIPPED as SKIPPED_ATTEMPT
from persyn.core.errors import PersynError
from persyn.core.faults import crash_point, register
from persyn.core.records import Generation, Prompt
from persyn.runtime.budget import SKIPPED, cost_model
from persyn.runtime.cascade import read_cascades
from persyn.runtime.context import RunContext, stage
from persyn.runtime.prompts import prepare
from persyn.runtime.responses import generate_responses
from persyn.runtime.scores import score_generations
from persyn.scoring.quality import quality_scorer_class

BUDGET_CHUNK = 64  # routed responses generated between two checks of the actual spend
CASCADE_ROUND = register("cascade.round", "after a round of the verified cascade is stored")


@stage("generate", 6, before=prepare)
def generate(ctx: RunContext) -> int:
    """Each routed prompt's cascade runs to its end: its next teacher answers, the answer is
    checked (``verify``), and so on until one passes or ``verify.max_tries`` teachers have
    answered (one, unchecked, without ``verify``). Every step reads the store first, so a
    killed run resumes where it stopped and no teacher answers a prompt twice. A cascade that
    *ended* on a response that failed (an error) or was skipped by the budget tries that one
    once more on a new run; a failed response the cascade has moved past is never asked again
    (a resumed run takes the uninterrupted run's steps). Each round asks the prompts in the
    order of how far their cascades have got, then in source order, so a resumed budgeted run
    spends in the same order. Returns the number of responses generated.

    Under ``budget.max_cost`` a response (first try or escalation) goes out only if its worst
    case (``budget.cost.CostModel.worst_costs``) fits in what the routed responses have not
    spent yet; one that does not is recorded as failed, "skipped by budget".

    With ``verify.on_fail: keep``, the attempts of a prompt no teacher passed are scored for
    learnability too (its line is the attempt of highest Eq. 2 reward among them).

    Raises:
        PersynError: a prompt is not routed yet; ``verify`` with the verifier and a routed
            prompt without a gold answer (names it).
    """
    cfg = ctx.cfg
    _check_answers(ctx)
    cap = _BudgetCap(ctx) if cfg.budget is not None and cfg.budget.max_cost is not None else None
    made = 0
    c = read_cascades(ctx)
    by_id = {p.id: p for p in c.prompts}
    retry = [
        (by_id[pid], w.attempts[-1].teacher)
        for pid, w in c.walks.items()
        if w.done and w.attempts and w.attempts[-1].status in (FAILED, SKIPPED_ATTEMPT)
    ]
    if retry:  # as every stage does: a failed item is tried again on the next run
        made += _generate(ctx, retry, cap)
    scored_before: set[str] = set()
    while True:
        c = read_cascades(ctx)
        to_score = [w.next_score for w in c.walks.values() if w.next_score is not None]
        if to_score:
            if set(to_score) <= scored_before:  # scored once, still asked for: would not move on
                raise PersynError(
                    f"{len(to_score)} routed response(s) could not be scored (e.g. {to_score[0]})"
                )
            scored_before |= set(to_score)
            gens = ctx.store.generations(to_score)
            score_generations(ctx, list(gens.values()), by_id, kinds=("quality",))
            crash_point(CASCADE_ROUND)
            continue
        todo = sorted(
            ((len(w.attempts), i, by_id[pid], w.next_generate) for i, (pid, w) in enumerate(c.walks.items())
             if w.next_generate is not None),
            key=lambda x: (x[0], x[1]),
        )  # fmt: skip
        if not todo:
            break
        pairs = [(p, t) for _, _, p, t in todo]
        made += _generate(ctx, pairs, cap)
        stored = ctx.store.generations([c.keys[(p.id, t)] for p, t in pairs])
        if not stored:  # nothing was stored for them: the loop would not move on
            raise PersynError(
                f"{len(pairs)} routed response(s) could not be generated (e.g. prompt {pairs[0][0].id})"
            )
        crash_point(CASCADE_ROUND)
    if cfg.verify is not None and cfg.verify.on_fail == "keep":
        failed = [
            a.key for w in c.walks.values() if w.accepted is None for a in w.attempts if a.status != FAILED
        ]
        gens = [g for g in ctx.store.generations(failed).values() if g.ok]
        if gens:
            score_generations(ctx, gens, by_id, kinds=("learnability",))
    return made


def _check_answers(ctx: RunContext) -> None:
    """``verify`` with the verifier needs each routed prompt's gold answer."""
    cfg = ctx.cfg
    if cfg.verify is None or not quality_scorer_class(cfg.quality.kind).NEEDS_GOLD_ANSWER:
        return
    missing = [p.id for p in ctx.store.prompts(calibration=False) if p.answer is None]
    if missing:
        raise PersynError(
            f"verify: {len(missing)} routed prompt(s) have no gold answer to check a response against "
            f"(e.g. prompt {missing[0]}; prompts.answer_field is {cfg.prompts.answer_field!r})"
        )


class _BudgetCap:
    """``budget.max_cost`` as a cap on actual spend: what the routed cascades' attempts have
    spent (read once, then added to as responses come back), and the worst case of each new
    one."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.model = cost_model(ctx)
        self.max_cost = ctx.cfg.budget.max_cost
        self.index = {n: i for i, n in enumerate(ctx.cfg.teacher_names)}
        c = read_cascades(ctx)
        keys = [a.key for w in c.walks.values() for a in w.attempts]
        gens = ctx.store.generations(keys).values()
        self.total = self.model.actual([g for g in gens if g.error != SKIPPED])

    def spent(self) -> float:
        return self.total

    def add(self, keys: list[str]) -> None:
        """Count the responses just stored under ``keys``."""
        gens = self.ctx.store.generations(keys).values()
        self.total += self.model.actual([g for g in gens if g.error != SKIPPED])

    def worst(self, items: list[tuple[Prompt, str]]) -> np.ndarray:
        w = self.model.worst_costs([p.text for p, _ in items])
        return np.array([w[i, self.index[t]] for i, (_, t) in enumerate(items)], dtype=np.float64)


def _over_capacity(ctx: RunContext, items: list[tuple[Prompt, str]]) -> list[tuple[Prompt, str]]:
    """The items a teacher's ``max_prompts`` cannot take: its routed attempts so far plus these,
    in order, past its capacity (escalations count against it as first tries do)."""
    caps = {t.name: t.max_prompts for t in ctx.cfg.teachers if t.max_prompts is not None}
    if not caps:
        return []
    c = read_cascades(ctx)
    used = {n: 0 for n in caps}
    for w in c.walks.values():
        for a in w.attempts:
            if a.teacher in used and a.status != SKIPPED_ATTEMPT:
                used[a.teacher] += 1
    over = []
    for p, t in items:
        if t in caps:
            if used[t] >= caps[t]:
                over.append((p, t))
            else:
                used[t] += 1
    return over


def _skip(ctx: RunContext, items: list[tuple[Prompt, str]]) -> None:
    """Record ``items`` as not generated: failed, "skipped by budget"."""
    teachers = {t.name: t for t in ctx.cfg.teachers}
    ctx.store.add_generations(
        [
            Generation(ctx.key_of(teachers[t], p), p.id, t, "", "failed", SKIPPED, phase="routed")
            for p, t in items
        ]
    )


def _generate(ctx: RunContext, items: list[tuple[Prompt, str]], cap: _BudgetCap | None) -> int:
    """Generate ``(prompt, teacher)`` responses, under ``cap`` in chunks whose worst case fits
    in what is left, within the teachers' ``max_prompts`` (the others stored as skipped);
    returns the responses generated."""
    over = _over_capacity(ctx, items)
    if over:
        _skip(ctx, over)
        dropped = {(p.id, t) for p, t in over}
        items = [(p, t) for p, t in items if (p.id, t) not in dropped]
    if cap is None:
        return generate_responses(ctx, _by_teacher(ctx, items), "routed") if items else 0
    made, pending = 0, list(items)
    worst = dict(zip([(p.id, t) for p, t in pending], cap.worst(pending), strict=True))
    while pending:
        room = cap.max_cost - cap.spent()
        chunk, rest, skipped, used = [], [], [], 0.0
        for p, t in pending:
            w = worst[(p.id, t)]
            if w > room * (1 + 1e-9) + 1e-12:  # spend only grows: it will not fit later either
                skipped.append((p, t))
            elif len(chunk) < BUDGET_CHUNK and used + w <= room * (1 + 1e-9) + 1e-12:
                chunk.append((p, t))
                used += w
            else:
                rest.append((p, t))
        if skipped:
            _skip(ctx, skipped)
        if chunk:
            made += generate_responses(ctx, _by_teacher(ctx, chunk), "routed")
            teachers = {t.name: t for t in ctx.cfg.teachers}
            cap.add([ctx.key_of(teachers[t], p) for p, t in chunk])
        pending = rest
    return made


def _by_teacher(ctx: RunContext, items: list[tuple[Prompt, str]]):
    by: dict[str, list[Prompt]] = defaultdict(list)
    for p, t in items:
        by[t].append(p)
    return [(t, by[t.name]) for t in ctx.cfg.teachers if by.get(t.name)]
