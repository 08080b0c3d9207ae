"""The persyn dataset of a run, assembled once: every calibration prompt's Oracle pick (with
``verify``, among the responses that pass) and every routed prompt's accepted response (its
cascade's; without ``verify``, the routed teacher's), with the routing records and the failures.
The ``export`` stage writes it as the run's files; the ``persyn`` strategy's dataset is these
lines (``selection.routed``)."""

from __future__ import annotations

from dataclasses import dataclass

from persyn.core.card import name_teacher_models
from persyn.core.errors import PersynError
from persyn.core.records import DatasetLine, Failure, Generation, Prompt
from persyn.runtime.budget import BudgetedRoute, stored_budget
from persyn.runtime.cascade import Cascades, kept_attempts, read_cascades, verified_pick
from persyn.runtime.context import RunContext
from persyn.runtime.rewards import RewardTable, reward_table
from persyn.runtime.routing import assignments
from persyn.scoring.combine import oracle_pick


@dataclass
class PersynDataset:
    """A run's persyn dataset and what it was assembled from.

    Attributes:
        lines: the dataset, in the prompts' source order (teacher models named).
        routing: ``routing.jsonl``'s rows, one per routed prompt.
        failures: failed responses and prompts left out (``failed.jsonl``).
        prompts: every prompt of the run; calibration: the calibration prompts.
        table: their Eq. 2 candidates; calibration_gens: their responses by (prompt id, teacher).
        assigned: each routed prompt's routed teacher and router coefficients.
        cascades: each routed prompt's ranking and cascade; routed_gens: their responses by key.
        pick: the calibration line's rule (``runtime.cascade.verified_pick``).
        budgeted: the budgeted routing, or None without limits.
    """

    lines: list[DatasetLine]
    routing: list[dict]
    failures: list[Failure]
    prompts: list[Prompt]
    calibration: list[Prompt]
    table: RewardTable
    calibration_gens: dict[tuple[str, str], Generation]
    assigned: dict[str, tuple[str, dict[str, float]]]
    cascades: Cascades
    routed_gens: dict[str, Generation]
    pick: object
    budgeted: BudgetedRoute | None


def persyn_dataset(ctx: RunContext) -> PersynDataset:
    """Assemble the run's persyn dataset from the store (nothing is generated or written).

    Raises:
        PersynError: a stage before it has not run (a prompt not routed, a response missing or
            unchecked: names which command to run).
    """
    cfg = ctx.cfg
    cal, table, cal_gens = reward_table(ctx)
    assigned = assignments(ctx)
    cascades = read_cascades(ctx)
    # the responses the cascades asked for (a shared store may hold other teachers' too)
    routed_gens = ctx.store.generations([a.key for w in cascades.walks.values() for a in w.attempts])
    all_prompts = ctx.store.prompts()
    cal_ids = {p.id for p in cal}
    verify = cfg.verify
    check = verified_pick(ctx)
    kept = kept_attempts(ctx, cascades, routed_gens)

    budgeted = stored_budget(ctx)
    lines: list[DatasetLine] = []
    routing_lines = []
    failures = [
        Failure(g.phase, g.prompt_id, g.teacher, g.error)
        for g in list(cal_gens.values()) + list(routed_gens.values())
        if not g.ok
    ]
    for p in all_prompts:
        if p.id in cal_ids:
            cands = table[p.id]
            pick = check(cands)
            if pick is None:
                why = (
                    "no teacher gave a valid response to this calibration prompt"
                    if oracle_pick(cands) is None
                    else "verify: no teacher's response to this calibration prompt passed the check"
                )
                failures.append(Failure("export", p.id, None, why))
                continue
            c = next(c for c in cands if c.teacher == pick)
            g = cal_gens[(p.id, pick)]
            lines.append(
                DatasetLine.of(p, pick, g.response, "calibration", (c.quality, c.learnability, c.reward))
            )
        else:
            pick, coef = assigned[p.id]
            walk = cascades.walks[p.id]
            line = {"id": p.id, "teacher": pick, "coefficients": coef}
            if budgeted is not None and p.id in budgeted.per_prompt:
                line["expected_reward"], line["expected_cost"] = budgeted.per_prompt[p.id]
            if verify is not None:
                line["attempts"] = [a.to_dict() for a in walk.attempts]
                line["accepted"] = walk.accepted
            routing_lines.append(line)
            if not walk.done or not walk.attempts:
                waiting = walk.next_generate or pick
                what = f"no response from {waiting}" if walk.next_score is None else "an unchecked response"
                raise PersynError(f"prompt {p.id} has {what}: run `persyn generate` first")
            if walk.accepted is not None:
                a = walk.attempts[-1]
                g = routed_gens[a.key]
                scores = (a.quality, None, None) if verify is not None else (None, None, None)
                lines.append(DatasetLine.of(p, walk.accepted, g.response, "routed", scores))
            elif verify is not None and p.id in kept:
                teacher, c = kept[p.id]
                g = routed_gens[cascades.keys[(p.id, teacher)]]
                lines.append(
                    DatasetLine.of(p, teacher, g.response, "routed", (c.quality, c.learnability, c.reward))
                )
            elif verify is not None and any(a.status not in ("failed", "skipped") for a in walk.attempts):
                tried = "; ".join(f"{a.teacher}: {a.why or a.status}" for a in walk.attempts)
                failures.append(
                    Failure("verify", p.id, None, f"no teacher passed in {walk.tries} tries ({tried})")
                )
    name_teacher_models(lines, cfg.teachers)
    return PersynDataset(
        lines, routing_lines, failures, all_prompts, cal, table, cal_gens, assigned, cascades,
        routed_gens, check, budgeted,
    )  # fmt: skip
