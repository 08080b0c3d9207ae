"""Build a strategy's dataset: select, generate the chosen responses that are missing, write
``dataset.jsonl`` and ``summary.json``."""

from __future__ import annotations

from pathlib import Path

from persyn.core.faults import crash_point, register
from persyn.core.hashing import stable_hash
from persyn.core.io import jsonl_text, write_atomic
from persyn.core.records import DatasetLine, Failure
from persyn.core.summary import StrategySummary
from persyn.selection.base import generations_needed, get_strategy, select
from persyn.stages.context import RunContext
from persyn.stages.responses import generate_responses
from persyn.stages.rewards import stored_rewards
from persyn.stages.score import stored_scores

STRATEGY_DATASET = register(
    "strategy.dataset", "after a strategy's dataset.jsonl is written, before its summary"
)


def build_strategy(
    ctx: RunContext, name: str, out_dir: Path | None = None, seed: int | None = None
) -> StrategySummary:
    """Select with ``name``, generate the chosen responses that are missing, and write
    ``dataset.jsonl`` (the pipeline's line format; ``source`` is ``calibration``/``routed``
    for ``persyn``, else the strategy's name) and ``summary.json`` to ``out_dir`` (default
    ``OUTPUT_DIR/strategies/NAME``). ``seed`` draws ``random`` / ``mix`` (default: the run
    seed). Returns the summary.

    Raises:
        ConfigError / PersynError: see ``select``.
    """
    strategy = get_strategy(name)
    picks, details = select(ctx, name, seed)
    cfg = ctx.cfg
    names = cfg.teacher_names
    teachers = {t.name: t for t in cfg.teachers}
    prompts = ctx.store.prompts()
    cal_ids = {p.id for p in ctx.store.prompts(calibration=True)}
    by_teacher: dict[str, list] = {n: [] for n in names}
    for p in prompts:
        if p.id in picks:
            by_teacher[picks[p.id]].append(p)
    generate_responses(ctx, [(teachers[n], by_teacher[n]) for n in names if by_teacher[n]], name)
    keys = {p.id: ctx.key_of(teachers[picks[p.id]], p) for p in prompts if p.id in picks}
    gens = ctx.store.generations(keys.values())
    scores = stored_scores(ctx)
    rewards = stored_rewards(ctx, prompts)

    lines: list[DatasetLine] = []
    failures: list[Failure] = []
    for p in prompts:
        if p.id not in picks:
            failures.append(Failure(name, p.id, None, "no valid response"))
            continue
        g = gens.get(keys[p.id])
        if g is None or not g.ok:
            failures.append(Failure(name, p.id, picks[p.id], g.error if g else "no response"))
            continue
        q, lv = scores.get(g.key, (None, None))
        if name == "persyn":
            source = "calibration" if p.id in cal_ids else "routed"
        else:
            source = name
        lines.append(
            DatasetLine.of(p, picks[p.id], g.response, source, (q, lv, rewards.get((p.id, picks[p.id]))))
        )
    out = out_dir or ctx.out / "strategies" / name
    out.mkdir(parents=True, exist_ok=True)
    rows = [x.to_dict() for x in lines]
    write_atomic(out / "dataset.jsonl", jsonl_text(rows))
    crash_point(STRATEGY_DATASET)
    n, n_cal = len(prompts), len(cal_ids)
    summary = StrategySummary(
        strategy=name,
        seed=cfg.seed if seed is None else seed,
        n_prompts=n,
        n_calibration=n_cal if strategy.needs_calibration(cfg) else 0,
        n_dataset=len(lines),
        teachers=names,
        generations=generations_needed(cfg, strategy, n, n_cal),
        generations_generate_then_select=n * len(names),
        routing={t: sum(1 for x in lines if x.teacher == t) for t in names},
        details=details,
        failed=len(failures),
        failures=[f.to_dict() for f in failures],
        dataset_hash=stable_hash([[x["id"], x["messages"]] for x in rows]),
    )
    write_atomic(out / "summary.json", summary.to_json())
    return summary
