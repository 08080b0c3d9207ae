"""``persyn estimate``: generations, tokens and cost of Route-then-Generate vs
Generate-then-Select for a config, before anything (more) is generated.

Per teacher, a response's expected prompt and completion tokens are the budget's
(``budget.cost.CostModel``: fitted on its calibration responses once they exist, on the prompt's
length; before that, ``max_new_tokens`` completion tokens and (chars + system prompt + template)
/ 4 prompt tokens), averaged over the prompt set, so ``persyn estimate`` and ``budget:`` expect the
same tokens of the same run. ``engine: reference``
teachers cost nothing. The routed prompts are split among teachers as the router assigned them
when it has, else as the Oracle picks on the calibration set, else evenly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from persyn.budget.cost import price_of
from persyn.engines.openai_batch import takes_batch_files
from persyn.pipeline import Pipeline
from persyn.runtime.budget import cost_model


@dataclass
class TeacherEstimate:
    """Expected generations, tokens and cost (USD, None without prices) of one teacher under
    Route-then-Generate (``rtg_*``) and Generate-then-Select (``gts_*``)."""

    teacher: str
    source: str  # "calibration" (measured means) or "settings" (max_new_tokens)
    prompt_tokens: float
    completion_tokens: float
    rtg_generations: float
    gts_generations: int
    rtg_cost: float | None
    gts_cost: float | None
    rtg_escalations: float = 0.0  # of rtg_generations: expected later tries of the verified cascade
    # measured on the calibration responses (wall seconds per response, the teacher's concurrency
    # taken into account); None before calibration or for a teacher that is not a model
    seconds_per_response: float | None = None

    @property
    def rtg_seconds(self) -> float | None:
        """Expected wall seconds of its Route-then-Generate responses (None when unmeasured)."""
        return None if self.seconds_per_response is None else self.seconds_per_response * self.rtg_generations

    @property
    def gts_seconds(self) -> float | None:
        """Expected wall seconds of its Generate-then-Select responses (None when unmeasured)."""
        return None if self.seconds_per_response is None else self.seconds_per_response * self.gts_generations


@dataclass
class EstimateTotals:
    """The pool's totals under Route-then-Generate (``rtg_*``) and Generate-then-Select
    (``gts_*``): generations, tokens, cost (USD; None when no teacher is priced), the cost with
    every teacher synchronous (``*_cost_sync``) and with batch files where a teacher takes them
    (``*_cost_batch``), and wall seconds (teachers answer one after another; None when a model
    teacher is unmeasured)."""

    rtg_generations: float
    gts_generations: int
    rtg_tokens: float
    gts_tokens: float
    rtg_cost: float | None
    gts_cost: float | None
    rtg_cost_sync: float | None
    rtg_cost_batch: float | None
    gts_cost_sync: float | None
    gts_cost_batch: float | None
    rtg_seconds: float | None
    gts_seconds: float | None


@dataclass
class Estimate:
    """What ``persyn estimate`` prints.

    Attributes:
        n_prompts, n_calibration: the prompt set and its calibration part.
        split: how the routed prompts are split among teachers (``router``, ``oracle on
            calibration`` or ``even``).
        teachers: one ``TeacherEstimate`` per teacher, in config order.
        totals: the pool's ``EstimateTotals``.
        budget: the budgeted route's expected spend and reward beside the unconstrained route's,
            once routed under ``budget:``; else None.
        verify: with ``verify:``, the cascade's pass rates and expected tries per routed prompt
            (each teacher's ``rtg_generations`` then counts its expected escalations,
            ``rtg_escalations``); else None.
    """

    n_prompts: int
    n_calibration: int
    split: str
    teachers: list[TeacherEstimate]
    totals: EstimateTotals
    budget: dict | None
    verify: dict | None


def estimate(pipe: Pipeline) -> Estimate:
    """The ``Estimate`` for ``pipe``'s config and store. Generates nothing."""
    cfg = pipe.cfg
    pipe.prepare()
    prompts = pipe.store.prompts()
    cal = pipe.store.prompts(calibration=True)
    n, n_cal, names = len(prompts), len(cal), cfg.teacher_names
    keys = {(p.id, t.name): pipe.key_of(t, p) for p in cal for t in cfg.teachers}
    gens = pipe.store.generations(keys.values())

    split, how = _routed_split(pipe, names)
    first, later, verify = _cascade(pipe, split, n - n_cal)
    # the one expected-tokens model, the budget's (budget.cost.CostModel), over the prompt set
    stored = {k: gens[key] for k, key in keys.items() if key in gens}
    model = cost_model(pipe.ctx, (cal, stored))
    t_in, t_out = model.tokens(np.array([len(p.text) for p in prompts], dtype=np.float64))
    rows = []
    for j, t in enumerate(cfg.teachers):
        mine = [gens[keys[(p.id, t.name)]] for p in cal if keys[(p.id, t.name)] in gens]
        mine = [g for g in mine if g.ok and g.completion_tokens is not None]
        pt, ct, source = float(t_in[:, j].mean()), float(t_out[:, j].mean()), model.models[j].source
        rtg = n_cal + first.get(t.name, (n - n_cal) * split[t.name]) + later.get(t.name, 0.0)
        # a served teacher's requests overlap up to its concurrency; local engines run in turn
        per = sum(g.seconds for g in mine) / len(mine) / getattr(t, "concurrency", 1) if mine else None
        rows.append(
            TeacherEstimate(
                t.name,
                source,
                pt,
                ct,
                rtg,
                n,
                _cost(t, pt, ct, rtg),
                _cost(t, pt, ct, n),
                later.get(t.name, 0.0),
                per if t.RUNS_A_MODEL else None,
            )
        )
    totals = EstimateTotals(
        rtg_generations=sum(r.rtg_generations for r in rows),
        gts_generations=n * len(names),
        rtg_tokens=sum(r.rtg_generations * (r.prompt_tokens + r.completion_tokens) for r in rows),
        gts_tokens=sum(r.gts_generations * (r.prompt_tokens + r.completion_tokens) for r in rows),
        rtg_cost=_sum([r.rtg_cost for r in rows]),
        gts_cost=_sum([r.gts_cost for r in rows]),
        # side by side: every teacher synchronous, and every teacher that can through batch files
        **{
            f"{which}_cost_{mode}": _sum(
                [
                    _cost(t, r.prompt_tokens, r.completion_tokens, gens(r), batch and takes_batch_files(t))
                    for t, r in zip(cfg.teachers, rows, strict=True)
                ]
            )
            for which, gens in (("rtg", lambda r: r.rtg_generations), ("gts", lambda r: r.gts_generations))
            for mode, batch in (("sync", False), ("batch", True))
        },
        # teachers answer one after another: the stage's wall time is the sum (None when a model
        # teacher is unmeasured)
        rtg_seconds=_sum_measured(rows, "rtg_seconds"),
        gts_seconds=_sum_measured(rows, "gts_seconds"),
    )
    from persyn.runtime.budget import stored_budget

    budgeted = stored_budget(pipe.ctx)
    return Estimate(
        n_prompts=n,
        n_calibration=n_cal,
        split=how,
        teachers=rows,
        totals=totals,
        budget=budgeted.figures if budgeted is not None else None,
        verify=verify,
    )


def _sum_measured(rows: list[TeacherEstimate], field: str) -> float | None:
    """The sum of ``field`` over the model teachers, None when one of them is unmeasured."""
    values = [getattr(r, field) for r in rows if r.source != "not a model"]
    return None if any(v is None for v in values) else sum(values)


def _cascade(pipe: Pipeline, split: dict[str, float], n_routed: int):
    """With ``verify``: expected first answers and escalations per teacher over the routed
    prompts (``core.cascade.expected_generations``), each teacher passing at its calibration
    pass rate (0 before calibration is checked: the worst case, ``max_tries`` per prompt);
    the prompts' rankings are the router's once routed, else the split's first teacher then
    the others by pass rate. Without ``verify``: nothing (the split alone)."""
    from persyn.core.cascade import expected_generations

    cfg = pipe.cfg
    if cfg.verify is None:
        return {}, {}, None
    names = cfg.teacher_names
    rates, source = {n: 0.0 for n in names}, "worst case (calibration not checked yet)"
    try:
        _, table, _ = pipe.reward_table()
        for i, n in enumerate(names):
            rates[n] = sum(
                cfg.verify.passes(row[i].quality, cfg.quality.kind) for row in table.values()
            ) / len(table)
        source = "calibration pass rates"
    except Exception:  # noqa: BLE001 - nothing calibrated or scored yet: the worst case
        pass
    key = pipe.store.route_key()
    assigned = pipe.store.assignments(key) if key else {}
    if assigned:
        from persyn.runtime.cascade import ranking

        rankings = [ranking(t, coef, names) for t, coef in assigned.values()]
        weights = [1.0] * len(rankings)
    else:
        by_rate = sorted(names, key=lambda n: (-rates[n], n))
        rankings = [[f] + [n for n in by_rate if n != f] for f in names]
        weights = [n_routed * split[f] for f in names]
    first: dict[str, float] = {}
    later: dict[str, float] = {}
    for r, w in zip(rankings, weights, strict=True):
        f1, l1 = expected_generations([r], rates, cfg.verify.max_tries)
        for d, src in ((first, f1), (later, l1)):
            for t, v in src.items():
                d[t] = d.get(t, 0.0) + w * v
    info = {
        "max_tries": cfg.verify.max_tries,
        "pass_rates": rates,
        "source": source,
        "expected_tries_per_routed_prompt": (sum(first.values()) + sum(later.values())) / max(1, n_routed),
    }
    return first, later, info


def _routed_split(pipe: Pipeline, names: list[str]) -> tuple[dict[str, float], str]:
    key = pipe.store.route_key()
    assigned = pipe.store.assignments(key) if key else {}
    if assigned:
        c = Counter(t for t, _ in assigned.values())
        return {n: c.get(n, 0) / len(assigned) for n in names}, "router"
    try:
        from persyn.scoring.combine import oracle_pick

        _, table, _ = pipe.reward_table()
        picks = Counter(oracle_pick(cands) for cands in table.values())
        total = sum(v for k, v in picks.items() if k is not None)
        if total:
            return {n: picks.get(n, 0) / total for n in names}, "oracle on calibration"
    except Exception:  # noqa: BLE001 - nothing calibrated or scored yet: fall through
        pass
    return {n: 1 / len(names) for n in names}, "even"


def _cost(
    t, prompt_tokens: float, completion_tokens: float, generations: float, batch: bool | None = None
) -> float | None:
    """``generations`` responses of this size, priced by ``budget.cost.price_of`` (``batch``:
    as the teacher makes them, synchronously, or through batch files; seconds are not estimated
    here: a price per second adds nothing before a response is timed)."""
    per = price_of(t, prompt_tokens, completion_tokens, batch=batch)
    return None if per is None else generations * per


def _sum(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None
