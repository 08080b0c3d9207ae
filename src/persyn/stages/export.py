"""Stage 7: write the run's outputs atomically: ``dataset.jsonl`` (SFT-ready), ``routing.jsonl``,
``calibration.jsonl``, ``failed.jsonl``, the dataset card ``README.md`` and ``summary.json``."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

from persyn.budget.cost import price_of
from persyn.config import TeacherConfig
from persyn.config.verify import pass_threshold
from persyn.core.card import dataset_card, write_dataset_card
from persyn.core.deps import require
from persyn.core.faults import crash_point, register
from persyn.core.hashing import stable_hash
from persyn.core.io import jsonl_text, replace_dir, write_atomic
from persyn.core.records import DatasetLine, Failure, Generation, Prompt
from persyn.core.summary import RouterEvaluation, RunSummary
from persyn.runtime.budget import SKIPPED, cost_model
from persyn.runtime.context import RunContext, stage
from persyn.runtime.dataset import persyn_dataset
from persyn.runtime.prompts import prepare
from persyn.runtime.rewards import RewardTable
from persyn.scoring.combine import oracle_pick
from persyn.scoring.means import calibration_means
from persyn.scoring.quality import quality_scorer_class
from persyn.scoring.shares import quality_shares, truncation_shares
from persyn.store import read_router_evaluation

EXPORT_DATASET = register("export.dataset", "after dataset.jsonl is written, before the other files")
EXPORT_FORMATS = register("export.formats", "after dataset.parquet / dataset_hf are written")
EXPORT_SUMMARY = register("export.summary", "after summary.json is written (the run's last write)")


def export(ctx: RunContext, new_generations: int = 0) -> RunSummary:
    """Write the run's files and ``summary.json`` (``new_generations``: responses this command
    generated) and return the summary.

    Raises:
        PersynError: a stage before export has not run (names which), or a file cannot be written.
    """
    summary = _export(ctx, new_generations)
    summary.seconds = ctx.seconds()
    write_dataset_card(ctx.out, card_of(ctx.cfg, summary))
    write_atomic(ctx.out / "summary.json", summary.to_json())
    crash_point(EXPORT_SUMMARY)
    return summary


def card_of(cfg, summary: RunSummary) -> str:
    """The run's dataset card (``core.card``): its teachers, student, persyn's version and the
    hash of the config's key."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        persyn_version = version("persyn")
    except PackageNotFoundError:  # run from a source tree that is not installed
        persyn_version = "(not installed)"
    teachers = [t.model_dump() for t in cfg.teachers]
    return dataset_card(summary, teachers, cfg.student.model, persyn_version, stable_hash(cfg.key_dump()))


@stage("export", 7, before=prepare)
def _export(ctx: RunContext, new_generations: int) -> RunSummary:
    cfg = ctx.cfg
    data = persyn_dataset(ctx)
    cal, table, cal_gens = data.calibration, data.table, data.calibration_gens
    assigned, cascades, routed_gens = data.assigned, data.cascades, data.routed_gens
    lines, routing_lines, failures = data.lines, data.routing, data.failures
    all_prompts, check, budgeted, verify = data.prompts, data.pick, data.budgeted, cfg.verify
    rows = [x.to_dict() for x in lines]
    write_atomic(ctx.out / "dataset.jsonl", jsonl_text(rows))
    write_dataset_formats(ctx.out, rows, cfg.dataset_formats)
    if cfg.dataset_formats:
        crash_point(EXPORT_FORMATS)
    write_atomic(ctx.out / "routing.jsonl", jsonl_text(routing_lines, ascii_only=True))
    write_atomic(ctx.out / "failed.jsonl", jsonl_text((f.to_dict() for f in failures), ascii_only=True))
    write_atomic(ctx.out / "calibration.jsonl", jsonl_text(calibration_lines(cal, table, cal_gens, check)))
    crash_point(EXPORT_DATASET)

    n, n_cal, names = len(all_prompts), len(cal), cfg.teacher_names
    cal_route = Counter(check(table[p.id]) for p in cal)
    dataset_count = Counter(x.teacher for x in lines)
    router_eval = read_router_evaluation(ctx.store)
    if table:
        means = {t: vars(m) for t, m in calibration_means(table, names).items()}
    else:
        means = {t: {"quality": None, "learnability": None, "valid": 0} for t in names}
    return RunSummary(
        n_prompts=n,
        n_calibration=n_cal,
        n_routed=n - n_cal,
        n_dataset=len(lines),
        teachers=names,
        generations=len(cal_gens) + sum(1 for g in routed_gens.values() if g.error != SKIPPED),
        generations_new=new_generations,
        generation_calls=ctx.store.generation_calls(),
        generations_generate_then_select=n * len(names),
        routing={t: dataset_count.get(t, 0) for t in names},
        routing_routed={t: sum(1 for v in assigned.values() if v[0] == t) for t in names},
        oracle_calibration={t: cal_route.get(t, 0) for t in names},
        calibration_means=means,
        **tokens_and_cost(cfg.teachers, list(cal_gens.values()) + list(routed_gens.values())),
        router_eval=router_eval,
        seeds=ctx.store.seeds(),
        alpha=cfg.alpha,
        normalize=cfg.normalize,
        failed=len(failures),
        failures=[f.to_dict() for f in failures],
        skipped_prompts=ctx.store.load_report(),
        precision=precision_table(cfg),
        budget=budget_figures(ctx, budgeted, router_eval, cal, cal_gens, routed_gens),
        verify=verify_figures(ctx, cascades, lines, failures) if verify is not None else None,
        data_quality=quality_shares(lines, *pass_rule(cfg)),
        truncation=truncation_shares(
            list(cal_gens.values()) + list(routed_gens.values()),
            {t.name: getattr(t, "max_new_tokens", None) for t in cfg.teachers},
        ),
    )


def pass_rule(cfg) -> tuple[float | None, str]:
    """The quality a dataset line needs to count as passed (``verify``'s threshold; 1.0 for the
    0/1 and share scorers without ``verify``; None for a reward model without one) and the
    setting that leaves out the lines that do not pass."""
    v, kind = cfg.verify, cfg.quality.kind
    threshold = pass_threshold(v, kind)
    if v is not None:
        if v.on_fail == "keep":
            return threshold, "set verify.on_fail: drop to leave out the prompts no teacher passed"
        return threshold, "see failed.jsonl for the lines whose scoring failed"
    if threshold is None:
        return None, "set verify: with pass_quality to check every answer against a threshold"
    return threshold, (
        "set verify: to check every routed answer, escalate the failed ones and keep only "
        'passing lines (docs/method.md, "The verified cascade")'
    )


def verify_figures(ctx: RunContext, cascades, lines: list[DatasetLine], failures: list[Failure]) -> dict:
    """``summary.json``'s ``verify``: the cascade's settings and what it did (see
    ``RunSummary.verify``)."""
    from persyn.core.cascade import ACCEPTED, REJECTED
    from persyn.core.cascade import SKIPPED as SKIP

    cfg = ctx.cfg
    v = cfg.verify
    names = cfg.teacher_names
    per = {
        n: {"first_answers": 0, "escalations": 0, "rejected": 0, "accepted": 0, "failed": 0} for n in names
    }
    at_try = [0] * v.max_tries
    skipped = tries = 0
    for w in cascades.walks.values():
        for i, a in enumerate(x for x in w.attempts if x.status != SKIP):
            per[a.teacher]["first_answers" if i == 0 else "escalations"] += 1
            per[a.teacher]["rejected"] += a.status == REJECTED
            per[a.teacher]["accepted"] += a.status == ACCEPTED
            per[a.teacher]["failed"] += a.status not in (REJECTED, ACCEPTED)
        tries += w.tries
        skipped += any(a.status == SKIP for a in w.attempts)
        if w.accepted is not None:
            at_try[w.tries - 1] += 1
    routed_ids = {p.id for p in cascades.prompts}
    kept = sum(1 for x in lines if x.id in routed_ids and cascades.walks[x.id].accepted is None)
    dropped = sum(1 for f in failures if f.stage == "verify")
    n = len(cascades.prompts)
    return {
        "max_tries": v.max_tries,
        "on_fail": v.on_fail,
        "pass_quality": v.threshold(cfg.quality.kind),
        "router_target": v.router_target,
        "teachers": per,
        "accepted_at_try": at_try,
        "routed_prompts": n,
        "dropped": dropped,
        "kept_failing": kept,
        "skipped_by_budget": skipped,
        "routed_generations": tries,
        "generations_per_routed_prompt": tries / n if n else None,
        "calibration_dropped": sum(
            1 for f in failures if f.stage == "export" and f.error.startswith("verify:")
        ),
    }


def budget_figures(
    ctx: RunContext,
    budgeted,
    router_eval: RouterEvaluation | None,
    cal: list,
    cal_gens: dict,
    routed_gens: dict,
) -> dict | None:
    """``summary.json``'s ``budget``: the budgeted routing's figures with what was actually
    spent (routed and calibration, priced as ``budget.cost`` prices estimates) and the prompts
    skipped by the budget; the calibration frontier. None without limits or frontier."""
    front = router_eval.frontier if router_eval is not None else None
    if budgeted is None and front is None:
        return None
    model = cost_model(ctx, (cal, cal_gens))  # export has read the calibration already
    routed = list(routed_gens.values())
    out = dict(budgeted.figures) if budgeted is not None else {"max_cost": None, "unit": model.unit}
    out["actual_cost"] = model.actual([g for g in routed if g.error != SKIPPED])
    out["calibration_cost"] = model.actual(list(cal_gens.values()))
    out["skipped"] = sum(1 for g in routed if g.error == SKIPPED)
    out["frontier"] = front
    return out


def precision_table(cfg) -> dict[str, dict[str, str]]:
    """The dtype each transformers model slot of ``cfg`` runs in and why
    (``persyn.models.loading.model_dtype``): the student (unless scored by llama.cpp), each
    ``transformers`` teacher, the reward model."""
    from persyn.models.loading import model_dtype

    slots = {}
    if cfg.student.backend == "transformers":
        slots["student"] = cfg.student.dtype
    for t in cfg.teachers:
        if (dtype := t.local_dtype()) is not None:
            slots[f"teacher:{t.name}"] = dtype
    if quality_scorer_class(cfg.quality.kind).NEEDS_MODEL:
        slots["reward_model"] = cfg.quality.dtype
    return {k: dict(zip(("dtype", "reason"), model_dtype(v), strict=True)) for k, v in slots.items()}


def calibration_lines(
    cal: list[Prompt], table: RewardTable, gens: dict[tuple[str, str], Generation], pick_of=oracle_pick
) -> list[dict]:
    """``calibration.jsonl`` rows: every teacher's response to every calibration prompt with its
    scores (quality, learnability, normalised terms, Eq. 2 reward; null where it failed) and
    whether it is the pick of ``pick_of`` (the Oracle's; with ``verify``, among the passing)."""
    rows = []
    for p in cal:
        pick = pick_of(table[p.id])
        for c in table[p.id]:
            g = gens[(p.id, c.teacher)]
            rows.append(
                {
                    "id": p.id,
                    "teacher": c.teacher,
                    "prompt": p.text,
                    **({"messages": p.messages} if p.messages is not None else {}),
                    "response": g.response if g.ok else None,
                    "error": g.error,
                    "quality": c.quality,
                    "learnability": c.learnability,
                    "quality_norm": c.quality_norm,
                    "learnability_norm": c.learnability_norm,
                    "reward": c.reward,
                    "oracle": c.teacher == pick,
                }
            )
    return rows


def tokens_and_cost(teachers: list[TeacherConfig], gens: list[Generation]) -> dict:
    """``tokens`` per teacher (prompt and completion tokens of ``gens``, as the teacher counted
    them) and ``cost_usd`` per teacher (``budget.cost.price_of`` on those tokens and the
    responses' seconds; None without prices)."""
    tokens = {t.name: {"prompt": 0, "completion": 0} for t in teachers}
    seconds = {t.name: 0.0 for t in teachers}
    for g in gens:
        if g.teacher in tokens:
            tokens[g.teacher]["prompt"] += g.prompt_tokens or 0
            tokens[g.teacher]["completion"] += g.completion_tokens or 0
            seconds[g.teacher] += g.seconds or 0.0
    cost: dict[str, float | None] = {}
    for t in teachers:
        got = price_of(t, tokens[t.name]["prompt"], tokens[t.name]["completion"], seconds[t.name])
        cost[t.name] = None if got is None else round(float(got), 6)
    return {"tokens": tokens, "cost_usd": cost}


def write_dataset_formats(out: Path, rows: list[dict], formats: list[str]) -> None:
    """Write the dataset lines ``rows`` as ``dataset.parquet`` and/or ``dataset_hf/``
    (``datasets`` ``save_to_disk``), each through a temporary name and a rename.

    Raises:
        MissingAssetError: the ``datasets`` library is not installed.
    """
    if not formats:
        return
    require("datasets", "dataset_formats", "pip install 'persyn[hf]'")
    import datasets

    ds = datasets.Dataset.from_list(rows)
    if "parquet" in formats:
        tmp = out / f".dataset.parquet.tmp{os.getpid()}"
        ds.to_parquet(str(tmp))
        os.replace(tmp, out / "dataset.parquet")
    if "hf" in formats:
        tmp = out / f".dataset_hf.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        ds.save_to_disk(str(tmp))
        replace_dir(tmp, out / "dataset_hf")
