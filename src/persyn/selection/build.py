"""Build a strategy's dataset: select, generate the chosen responses that are missing, write
``dataset.jsonl`` and ``summary.json``; with ``verified``, only the lines that pass the quality
check (``selection.verified``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from persyn.core.card import name_teacher_models
from persyn.core.faults import crash_point, register
from persyn.core.hashing import stable_hash
from persyn.core.io import jsonl_text, write_atomic
from persyn.core.records import DatasetLine, Failure
from persyn.core.summary import StrategySummary
from persyn.runtime.context import RunContext
from persyn.runtime.responses import generate_responses
from persyn.runtime.rewards import reward_rows, stored_rewards
from persyn.runtime.scores import stored_scores
from persyn.scoring.combine import pick_passing
from persyn.selection.base import get_strategy, select
from persyn.selection.verified import pass_rule, pass_threshold, score_quality, verified_name

STRATEGY_DATASET = register(
    "strategy.dataset", "after a strategy's dataset.jsonl is written, before its summary"
)


def build_strategy(
    ctx: RunContext,
    name: str,
    out_dir: Path | None = None,
    seed: int | None = None,
    verified: bool = False,
) -> StrategySummary:
    """Select with ``name``, generate the chosen responses that are missing, and write
    ``dataset.jsonl`` (the pipeline's line format; ``source`` is ``calibration``/``routed``
    for ``persyn``, else the strategy's name) and ``summary.json`` to ``out_dir`` (default
    ``OUTPUT_DIR/strategies/NAME``). ``seed`` draws ``random`` / ``mix`` (default: the run
    seed). Returns the summary.

    ``verified``: the strategy's verified dataset (default folder ``strategies/NAME-verified``,
    summary ``strategy`` ``NAME-verified``): only lines whose quality passes the check
    (``selection.verified.pass_rule``). A Generate-then-Select strategy re-picks by its own
    criterion among the passing responses (a prompt is dropped only when no teacher passed);
    any other strategy keeps exactly its own lines that pass, its responses' missing quality
    scored first. Nothing is generated beyond what the strategy itself needs. Dropped prompts
    are failures of stage ``verify``; ``details["verified"]`` holds ``kept``, ``dropped``,
    ``source`` (the strategy) and ``pass_quality``.

    Raises:
        ConfigError / PersynError: see ``select``; with ``verified``, ``quality.kind:
            reward_model`` without ``verify.pass_quality`` (before anything is generated).
    """
    strategy = get_strategy(name)
    threshold = pass_threshold(ctx.cfg) if verified else None  # refused before any generation
    passes = pass_rule(ctx.cfg) if verified else None
    picks, details = select(ctx, name, seed)
    cfg = ctx.cfg
    names = cfg.teacher_names
    prompts = ctx.store.prompts()
    cal_ids = {p.id for p in ctx.store.prompts(calibration=True)}
    not_passing: set[str] = set()  # prompts with a valid response, none passing
    if passes is not None and strategy.generate_then_select:
        by = getattr(strategy, "by", "reward")
        for pid, cands in reward_rows(ctx, prompts, require_all=False).items():
            pick = pick_passing(cands, by, passes)
            if pick is None and pid in picks:
                not_passing.add(pid)
            picks.pop(pid, None)
            if pick is not None:
                picks[pid] = pick
    own = strategy.own_lines(ctx)
    if own is None:
        lines, failures, dropped = _lines_of_picks(ctx, name, strategy, picks, not_passing, passes, threshold)
    else:
        lines, failures, dropped = _passing(ctx, *own, passes, threshold)
    if passes is not None:
        details["verified"] = {
            "kept": len(lines),
            "dropped": dropped,
            "source": name,
            "pass_quality": threshold,
        }
    out = out_dir or ctx.out / "strategies" / (verified_name(name) if verified else name)
    out.mkdir(parents=True, exist_ok=True)
    name_teacher_models(lines, ctx.cfg.teachers)
    rows = [x.to_dict() for x in lines]
    write_atomic(out / "dataset.jsonl", jsonl_text(rows))
    crash_point(STRATEGY_DATASET)
    n, n_cal = len(prompts), len(cal_ids)
    summary = StrategySummary(
        strategy=verified_name(name) if verified else name,
        seed=cfg.seed if seed is None else seed,
        n_prompts=n,
        n_calibration=n_cal if strategy.needs_calibration(cfg) else 0,
        n_dataset=len(lines),
        teachers=names,
        generations=strategy.generations(ctx, n, n_cal),
        generations_generate_then_select=n * len(names),
        routing={t: sum(1 for x in lines if x.teacher == t) for t in names},
        details=details,
        failed=len(failures),
        failures=[f.to_dict() for f in failures],
        dataset_hash=stable_hash([[x["id"], x["messages"]] for x in rows]),
    )
    write_atomic(out / "summary.json", summary.to_json())
    return summary


def _lines_of_picks(ctx, name, strategy, picks, not_passing, passes, threshold):
    """The dataset of a strategy's picks: the chosen responses (generated where missing), with
    their scores; with ``passes``, only those whose quality passes (missing ones scored).
    Returns ``(lines, failures, dropped)``."""
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
    if passes is not None and score_quality(
        ctx,
        list(gens.values()),
        {p.id: p for p in prompts},
        {k for k, v in scores.items() if v[0] is not None},
    ):
        scores = stored_scores(ctx)
    rewards = stored_rewards(ctx, prompts)

    lines: list[DatasetLine] = []
    failures: list[Failure] = []
    dropped = 0
    for p in prompts:
        if p.id in not_passing:
            why = "no teacher's response passed the check"
            failures.append(Failure("verify", p.id, None, f"{why} (pass_quality {threshold:g})"))
            dropped += 1
            continue
        if p.id not in picks:
            failures.append(Failure(name, p.id, None, "no valid response"))
            continue
        g = gens.get(keys[p.id])
        if g is None or not g.ok:
            failures.append(Failure(name, p.id, picks[p.id], g.error if g else "no response"))
            continue
        q, lv = scores.get(g.key, (None, None))
        if passes is not None and not passes(q):
            why = (
                "quality could not be scored" if q is None else f"quality {q:g} < pass_quality {threshold:g}"
            )
            failures.append(Failure("verify", p.id, picks[p.id], why))
            dropped += 1
            continue
        if strategy.sources_by_split:
            source = "calibration" if p.id in cal_ids else "routed"
        else:
            source = name
        lines.append(
            DatasetLine.of(p, picks[p.id], g.response, source, (q, lv, rewards.get((p.id, picks[p.id]))))
        )
    return lines, failures, dropped


def _passing(ctx, lines, failures, passes, threshold):
    """``lines`` assembled elsewhere, with ``passes`` only those whose response's quality passes
    (missing quality scored first). Returns ``(lines, failures, dropped)``."""
    if passes is None:
        return lines, failures, 0
    teachers = {t.name: t for t in ctx.cfg.teachers}
    by_id = {p.id: p for p in ctx.store.prompts()}
    keys = [ctx.key_of(teachers[x.teacher], by_id[x.id]) for x in lines]
    gens = ctx.store.generations(keys)
    scores = stored_scores(ctx)
    if score_quality(ctx, list(gens.values()), by_id, {k for k, v in scores.items() if v[0] is not None}):
        scores = stored_scores(ctx)
    kept, failures, dropped = [], list(failures), 0
    for x, key in zip(lines, keys, strict=True):
        q = scores.get(key, (None, None))[0]
        if passes(q):  # the line says the quality it was checked on (routed lines have none without verify)
            kept.append(replace(x, quality=q))
            continue
        why = "quality could not be scored" if q is None else f"quality {q:g} < pass_quality {threshold:g}"
        failures.append(Failure("verify", x.id, x.teacher, why))
        dropped += 1
    return kept, failures, dropped
