"""Tables of the round-3 evidence run's write-up (issue 45), read from its committed records.

    python experiments/verified_report.py src/persyn/configs/evidence-verified.yaml docs/evidence/verified

Nothing is trained or generated. Reads, under RECORDS:

- ``results.csv``: which evaluation record (``eval_key``) is which arm and seed, with
  ``train_seconds``; ``evals/KEY.json``: each evaluation's per-prompt records (``id``,
  ``prompt``, ``correct``, ``finish_reason``);
- ``datasets/STUDENT/seed-S/ARM/{dataset.jsonl,summary.json}``: every arm's training set
  (lines with ``teacher``, ``quality``: 1.0 checked right, 0.0 wrong, null unchecked);
- ``runs/seed-S/{routing.jsonl,summary.json,router.json}``: PerSyn's (the verified cascade's)
  run per seed (seeds 1-7: seed 0's were lost on a bare machine).

and labels every prompt with its reasoning-gym task (the config's prompt draws, drawn again:
the held-out prompts by text, the training pool by id). Writes ``RECORDS/report.md`` and
``RECORDS/report.json`` and prints the Markdown:

1. accuracy per task, mean ± std over seeds (the PerSyn paper's Table-2 layout);
2. the pre-registered paired comparisons (docs/experiments.md, "Round 3"): the two primaries
   Holm-corrected across exactly these two, the named secondaries uncorrected, then the
   primaries per task;
3. the share of the Oracle's gain recovered, over car and over car-verified;
4. routing and escalations per task (runs/seed-S/routing.jsonl) and dataset lines per teacher;
5. generations and SFT wall time per arm;
6. the share of right lines per arm and task;
7. truncation per arm and task;
8. the smallest effect each primary detects with 80% power (Holm over 2).

The run may be in progress: an arm with fewer seeds is compared on the seeds both sides have,
and an arm without any evaluation is said to be "not evaluated yet" and skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from persyn.core.errors import InputError
from persyn.experiment.comparisons import UNSEEDED, UNTRAINED, Correctness, pair, read_records
from persyn.experiment.paired import gain_ratio, holm, paired_difference

sys.path.insert(0, str(Path(__file__).resolve().parent))
from restate_round2 import detectable, difference_by_task, spread  # noqa: E402

#: The arms in the plan's order (docs/experiments.md, "Round 3"); ``persyn`` is persyn-verified.
ARMS = (
    "persyn",
    "car-verified",
    "car",
    "oracle-verified",
    "persyn-plain",
    "strongest",
    "strongest-verified",
    "persyn-prior",
)
#: The two primary comparisons (A, B): A − B, Holm-corrected across exactly these two.
PRIMARY = (("persyn", "car-verified"), ("persyn", "car"))
#: The secondary comparisons the plan names (p uncorrected), with what each measures.
SECONDARY = (
    ("car-verified", "car", "what checking alone adds"),
    ("oracle-verified", "persyn", "how much of best-of-n the cascade keeps, at what cost"),
    ("persyn-plain", "car", "the last run's persyn − car, replicated"),
    ("car", "strongest", "the last run's car − strongest"),
    ("persyn", "persyn-prior", "what the learned ranking adds beyond escalation"),
)
ORACLE = "oracle-verified"
GAIN_BASES = ("car", "car-verified")
N_BOOT = 2000
#: The seed SD the plan's power figures assumed (the last run's oracle − car; experiments/power.py).
PLAN_SEED_SD = 0.033

#: How round 3's pinned code (1e3d1b9) counted a dataset's ``generations`` (md_generations says so).
ROUND3_GENERATIONS = (
    "`generations` as the run's pinned code wrote it: one response per routed prompt, so for "
    "the cascade without its escalations; fixed on main in 8e84798"
)

#: Why round 3 has no run records for seed 0 (md_routing says so where they are missing).
ROUND3_LOST_RUNS = (
    " (seed 0's were lost on a bare machine, 2026-12-06, second session; its datasets are recorded)"
)

# {arm: {seed: [prompts] values}}: 0/1 correctness, or 0/1 truncation
PerSeed = dict[str, dict[int, np.ndarray]]


# ---------------------------------------------------------------- inputs


@dataclass
class Labels:
    """Task labels of the prompts: ``eval_task`` held-out prompt text → task; ``pool_task``
    training-pool prompt id → task; ``pool_text`` its text → task (for lines without a pool
    id)."""

    eval_task: dict[str, str]
    pool_task: dict[str, str]
    pool_text: dict[str, str]


def labels_from_config(config: Path) -> tuple[Labels, dict[str, list[int]]]:
    """The task labels (``Labels``, from the config's prompt draws, drawn again) and the plan:
    ``{arm: planned seeds}`` (``strategy_seeds``, else ``seeds``)."""
    from evidence_tables import task_of_prompts

    from persyn.config import parse_config
    from persyn.experiment.config import load_experiment
    from persyn.prompts import load_prompts

    exp = load_experiment(config)
    run = parse_config(exp.run, "experiment run")
    # the whole pool: every seed draws its own ``sample`` of it
    pool, _ = load_prompts(run.prompts.model_copy(update={"sample": None}), run.seed, require_answer=False)
    labels = Labels(
        eval_task=task_of_prompts(exp.eval.prompts, exp.eval.seed),
        pool_task={p.id: p.metadata.get("source_dataset", "?") for p in pool},
        pool_text={p.text: p.metadata.get("source_dataset", "?") for p in pool},
    )
    plan = {s: list(exp.strategy_seeds.get(s, exp.seeds)) for s in exp.strategies}
    return labels, plan


def read_results(records: Path) -> list[dict]:
    """``results.csv``'s rows, ``seed`` as int (None for the untouched student) and
    ``train_seconds`` as float (None where empty).

    Raises:
        FileNotFoundError: no ``results.csv``.
        InputError: a column this report needs is missing, or an arm and seed has two rows.
    """
    path = records / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the run's results (one row per evaluation) are missing")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    need = ("student", "strategy", "seed", "eval_key", "train_seconds")
    seen: set[tuple[str, int | None]] = set()
    for r in rows:
        for key in need:
            if key not in r:
                raise InputError(f"{path}: no column '{key}'")
        r["seed"] = int(r["seed"]) if r["seed"] else None
        r["train_seconds"] = float(r["train_seconds"]) if r["train_seconds"] else None
        if (r["strategy"], r["seed"]) in seen:
            raise InputError(f"{path}: two rows for {r['strategy']} seed {r['seed']}")
        seen.add((r["strategy"], r["seed"]))
    return rows


def eval_records(records: Path, row: dict) -> list[dict]:
    """The per-prompt records of one ``results.csv`` row (``evals/KEY.json``), each checked
    for ``id``, ``prompt`` and ``correct``.

    Raises:
        FileNotFoundError: the file is missing (names the key, arm and seed).
        InputError: it has no ``records``, or a record lacks one of the keys.
    """
    path = records / "evals" / f"{row['eval_key']}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the evaluation record results.csv names for {row['strategy']} seed {row['seed']}"
        )
    recs = read_records(path)
    for rec in recs:
        for key in ("id", "prompt", "correct"):
            if key not in rec:
                raise InputError(f"{path}: a record has no '{key}'")
    return recs


@dataclass
class Evals:
    """Every evaluation on the held-out prompts, aligned: ``ids`` and ``tasks`` (``[P]``, the
    first row's record order), ``correct`` and ``truncated`` (``{arm: {seed: [P] 0/1}}``; the
    untouched student's seed is ``UNSEEDED``) and ``train_seconds`` (``{arm: {seed: s}}``)."""

    ids: list[str]
    tasks: np.ndarray
    correct: PerSeed
    truncated: PerSeed
    train_seconds: dict[str, dict[int, float]]


def load_evals(records: Path, rows: list[dict], eval_task: dict[str, str]) -> Evals:
    """Read every evaluation of ``rows`` and align them on the first one's prompts.

    Raises:
        InputError: no rows; an evaluation lacks one of the prompts.
        KeyError: a held-out prompt has no task label (the config is not the run's).
    """
    if not rows:
        raise InputError(f"{records / 'results.csv'}: no evaluation yet")
    first = eval_records(records, rows[0])
    ids = [r["id"] for r in first]
    tasks = np.array([_label(eval_task, r["prompt"], "held-out prompt") for r in first])
    ev = Evals(ids, tasks, {}, {}, {})
    for row in rows:
        by_id = {r["id"]: r for r in eval_records(records, row)}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise InputError(f"evals/{row['eval_key']}.json: no record for prompt {missing[0]!r}")
        seed = UNSEEDED if row["seed"] is None else row["seed"]
        arm = row["strategy"]
        ev.correct.setdefault(arm, {})[seed] = np.array([bool(by_id[i]["correct"]) for i in ids], float)
        ev.truncated.setdefault(arm, {})[seed] = np.array(
            [by_id[i].get("finish_reason") == "length" for i in ids], float
        )
        if row["train_seconds"] is not None:
            ev.train_seconds.setdefault(arm, {})[seed] = row["train_seconds"]
    return ev


def _label(table: dict[str, str], key: str, what: str) -> str:
    if key not in table:
        raise KeyError(f"{what} {key[:80]!r} has no task label: is the config the run's?")
    return table[key]


def read_json(path: Path) -> dict:
    """A JSON file, or FileNotFoundError naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    return json.loads(path.read_text())


def read_jsonl(path: Path) -> list[dict]:
    """A JSON-lines file, or FileNotFoundError naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing")
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def need(d: dict, key: str, where: Path | str):
    """``d[key]``, or KeyError naming the record and the key."""
    if key not in d:
        raise KeyError(f"{where}: no '{key}'")
    return d[key]


def dataset_seeds(records: Path, student: str, arm: str) -> list[int]:
    """The seeds with a recorded dataset of ``arm`` (``datasets/STUDENT/seed-S/ARM/dataset.jsonl``)."""
    base = records / "datasets" / student
    return sorted(
        int(p.name.split("-", 1)[1]) for p in base.glob("seed-*") if (p / arm / "dataset.jsonl").is_file()
    )


def dataset(records: Path, student: str, seed: int, arm: str) -> tuple[list[dict], dict]:
    """One arm's dataset lines and its ``summary.json`` for one seed."""
    d = records / "datasets" / student / f"seed-{seed}" / arm
    return read_jsonl(d / "dataset.jsonl"), read_json(d / "summary.json")


def line_task(line: dict, labels: Labels) -> str:
    """The task of a dataset line: by its pool id, else by its last user turn's text.

    Raises:
        KeyError: neither is a pool prompt.
    """
    if line.get("id") in labels.pool_task:
        return labels.pool_task[line["id"]]
    text = next((m["content"] for m in reversed(line.get("messages", [])) if m["role"] == "user"), "")
    return _label(labels.pool_text, text, f"dataset line {line.get('id')!r}:")


def runs_root(records: Path, student: str | None = None) -> Path:
    """Where PerSyn's per-seed run records are: ``runs/STUDENT/`` as ``persyn experiment
    --records`` keeps them, else ``runs/`` (round 3's records, copied by hand)."""
    if student is not None and (records / "runs" / student).is_dir():
        return records / "runs" / student
    return records / "runs"


def run_seeds(records: Path, student: str | None = None) -> list[int]:
    """The seeds with PerSyn's run records (``RUNS/seed-S/summary.json``, ``runs_root``)."""
    return sorted(
        int(p.name.split("-", 1)[1])
        for p in runs_root(records, student).glob("seed-*")
        if (p / "summary.json").is_file()
    )


# ---------------------------------------------------------------- statistics


def per_task_means(values: PerSeed, tasks: np.ndarray) -> dict:
    """Per arm: ``{"seeds": [...], "by_task": {task | "all": [per-seed mean]}}`` of ``[P]``
    0/1 arrays (accuracy or truncation), the seeds in order (the untouched student's
    ``UNSEEDED`` kept as is)."""
    out = {}
    names = sorted(set(tasks))
    for arm, by_seed in values.items():
        seeds = sorted(by_seed)
        by_task = {t: [float(by_seed[s][tasks == t].mean()) for s in seeds] for t in names}
        by_task["all"] = [float(by_seed[s].mean()) for s in seeds]
        out[arm] = {"seeds": seeds, "by_task": by_task}
    return out


def compare(correct: Correctness, a: str, b: str, n_boot: int = N_BOOT) -> dict | None:
    """``a − b`` on the seeds both arms have (``paired.paired_difference``: mean over seeds,
    seed-aware and prompt-only 95% intervals, per seed, seed std, p), with ``seeds``; None
    when an arm is not evaluated or they share no seed."""
    if a not in correct or b not in correct:
        return None
    x, y = pair(correct[a], correct[b])
    if not len(x):
        return None
    sa, sb = set(correct[a]), set(correct[b])
    # the untouched student's one evaluation stands for every seed of the other side, as in ``pair``
    seeds = sorted((sb if sa == {UNSEEDED} else sa) & (sa if sb == {UNSEEDED} else sb))
    return {"a": a, "b": b, "seeds": seeds, **paired_difference(x, y, n_boot=n_boot)}


def primaries(correct: Correctness, n_boot: int = N_BOOT) -> list[dict]:
    """The two primary comparisons (``PRIMARY``), each with ``p_holm``: Holm's adjustment
    across exactly these two (``paired.holm``). With only one evaluated yet, its ``p_holm`` is
    ``min(1, 2p)``, the bound Holm gives whichever the other's p (``holm_note`` says so). A
    primary not evaluated is ``{"a", "b", "missing": True}``."""
    rows = []
    for a, b in PRIMARY:
        d = compare(correct, a, b, n_boot)
        rows.append({"a": a, "b": b, "missing": True} if d is None else {**d, "missing": False})
    done = [r for r in rows if not r["missing"]]
    if len(done) == len(PRIMARY):
        for r, adj in zip(done, holm([r["p"] for r in done]), strict=True):
            r["p_holm"], r["holm_note"] = adj, "Holm over 2"
    for r in done:
        if "p_holm" not in r:
            r["p_holm"], r["holm_note"] = (
                min(1.0, 2 * r["p"]),
                "≤ Holm bound: the other primary not evaluated yet",
            )
    return rows


def secondaries(
    correct: Correctness, n_boot: int = N_BOOT, named: tuple[tuple[str, str, str], ...] = SECONDARY
) -> list[dict]:
    """The named secondary comparisons (``named``: ``(a, b, what)``, round 3's ``SECONDARY`` by
    default), p uncorrected (``p_holm`` None), with ``what``; an arm not evaluated gives ``{"a",
    "b", "what", "missing": True}``."""
    rows = []
    for a, b, what in named:
        d = compare(correct, a, b, n_boot)
        base = {"a": a, "b": b, "what": what}
        rows.append(
            {**base, "missing": True} if d is None else {**base, **d, "missing": False, "p_holm": None}
        )
    return rows


def primaries_by_task(correct: Correctness, tasks: np.ndarray) -> dict:
    """Each evaluated primary per task (``restate_round2.difference_by_task``: each task's own
    difference and its share of the all-prompt one), keyed ``"A − B"``."""
    out = {}
    for a, b in PRIMARY:
        if a in correct and b in correct and set(correct[a]) & set(correct[b]):
            out[f"{a} − {b}"] = difference_by_task(correct, a, b, tasks)
    return out


def gain_recovered(
    correct: Correctness, a: str, base: str, oracle: str = ORACLE, n_boot: int = N_BOOT
) -> dict | None:
    """The share of the Oracle's gain over ``base`` that ``a`` recovers, (acc(a) − acc(base)) /
    (acc(oracle) − acc(base)), with its seed-aware interval (``paired.gain_ratio``: ratio None
    when the oracle's mean gain is not > 0; low / high None when fewer than 95% of the
    resamples have a positive denominator), on the seeds all three share; with
    ``oracle_minus_base`` and ``a_minus_base`` (``paired_difference``) and ``seeds``. None when
    an arm is not evaluated or the three share no seed."""
    if any(n not in correct for n in (a, base, oracle)):
        return None
    seeds = sorted(set(correct[a]) & set(correct[base]) & set(correct[oracle]))
    if not seeds:
        return None
    x, o, b = (np.stack([correct[n][s] for s in seeds]) for n in (a, oracle, base))
    return {
        "a": a,
        "base": base,
        "oracle": oracle,
        "seeds": seeds,
        "oracle_minus_base": paired_difference(o, b, n_boot=n_boot),
        "a_minus_base": paired_difference(x, b, n_boot=n_boot),
        **gain_ratio(x, b, o, n_boot=n_boot),
    }


def detectable_primaries(
    correct: Correctness, plan: dict[str, list[int]], plan_seed_sd: float = PLAN_SEED_SD
) -> dict:
    """For each primary, the smallest effect found with 80% power as one of two
    Holm-corrected primaries (``restate_round2.detectable`` with ``m=2``), from the observed
    seed SD and per-prompt SD of that difference (``restate_round2.spread``) at the seeds
    evaluated and projected to the planned seeds; ``{"estimable": False, "why"}`` with fewer
    than two shared seeds (no seed SD), with the one seed's prompt SD and, for reference only,
    the planned seeds' effect under the plan's assumed seed SD (``plan_seed_sd``, round 3's
    ``PLAN_SEED_SD`` by default)."""
    out = {}
    for a, b in PRIMARY:
        name = f"{a} − {b}"
        shared = len(set(correct.get(a, {})) & set(correct.get(b, {})))
        if not shared:
            out[name] = {"estimable": False, "why": "not evaluated yet on a seed both arms have"}
            continue
        planned = len(set(plan.get(a, [])) & set(plan.get(b, []))) or shared  # seeds both are planned on
        if shared < 2:
            x, y = pair(correct[a], correct[b])
            prompt_sd = float((x - y).mean(0).std(ddof=1))
            out[name] = {
                "estimable": False,
                "n_seeds": shared,
                "why": f"{shared} seed: the seed SD cannot be estimated",
                "prompt_sd": prompt_sd,
                "planned_seeds": planned,
                # for reference only: the plan's assumed seed SD, not an observed one
                "plan_seed_sd": plan_seed_sd,
                "with_plan_seed_sd": detectable(plan_seed_sd, prompt_sd, planned, x.shape[1], m=2),
            }
            continue
        sp = spread(correct, a, b)
        args = (sp["seed_sd"], sp["prompt_sd"])
        out[name] = {
            "estimable": True,
            **sp,
            "now": detectable(*args, sp["n_seeds"], sp["n_prompts"], m=2),
            "planned_seeds": planned,
            "planned": detectable(*args, planned, sp["n_prompts"], m=2),
        }
    return out


def stop_rule(correct: Correctness, n_boot: int = N_BOOT) -> dict | None:
    """The plan's stop rule: oracle-verified − car on seed 0, prompt-only 95% interval (None
    before both are evaluated on seed 0)."""
    if 0 not in correct.get(ORACLE, {}) or 0 not in correct.get("car", {}):
        return None
    d = paired_difference(correct[ORACLE][0], correct["car"][0], n_boot=n_boot)
    return {
        "mean": d["mean"],
        "prompt_low": d["prompt_low"],
        "prompt_high": d["prompt_high"],
        "headroom": d["prompt_low"] > 0,
    }


# ---------------------------------------------------------------- routing and escalation


def escalation_counts(routing: list[dict], pool_task: dict[str, str]) -> dict[str, Counter]:
    """Counts per task (and ``"all"``) of one seed's routed prompts (``routing.jsonl`` lines):
    ``routed``; ``first:TEACHER`` (the router's first choice); ``escalated`` (more than one
    attempt: the first answer failed the check and another teacher was asked);
    ``accepted_try_K`` (accepted at attempt K, from 1); ``dropped`` (no attempt accepted).

    Raises:
        KeyError: a line lacks ``id``, ``teacher`` or ``attempts``, or its id is not a pool
            prompt.
    """
    out: dict[str, Counter] = {"all": Counter()}
    for line in routing:
        where = f"routing.jsonl line {need(line, 'id', 'routing.jsonl line')!r}"
        task = _label(pool_task, line["id"], "routed prompt")
        attempts = need(line, "attempts", where)
        keys = ["routed", "first:" + need(line, "teacher", where)]
        if len(attempts) > 1:
            keys.append("escalated")
        tries = [k for k, t in enumerate(attempts, 1) if t.get("status") == "accepted"]
        keys.append(f"accepted_try_{tries[0]}" if tries else "dropped")
        for c in (out.setdefault(task, Counter()), out["all"]):
            c.update(keys)
    return out


def check_summary(counts: Counter, summary: dict, where: Path) -> list[str]:
    """Where one seed's counts from ``routing.jsonl`` disagree with its ``summary.json``'s
    ``verify`` (``routed_prompts``, ``accepted_at_try``, ``dropped``): one line per mismatch."""
    v = need(summary, "verify", where)
    got = {
        "routed_prompts": counts["routed"],
        "dropped": counts["dropped"],
        "accepted_at_try": [counts[f"accepted_try_{k}"] for k in range(1, len(v["accepted_at_try"]) + 1)],
    }
    return [f"{where}: {k} {v[k]} in summary.json, {got[k]} in routing.jsonl" for k in got if v[k] != got[k]]


def routing_table(records: Path, student: str, pool_task: dict[str, str]) -> dict:
    """Routing and escalation of PerSyn's cascade over the seeds with run records:
    ``seeds``; ``missing_seeds`` (seeds with a persyn dataset but no run records); ``counts`` ``{task: {key: total over seeds}}`` (``escalation_counts``' keys);
    ``teachers`` (``verify.teachers`` of each summary.json, summed: first_answers,
    escalations, rejected, accepted per teacher); ``mismatches`` (``check_summary``)."""
    seeds = run_seeds(records, student)
    total: dict[str, Counter] = {}
    teachers: dict[str, Counter] = {}
    mismatches: list[str] = []
    for s in seeds:
        d = runs_root(records, student) / f"seed-{s}"
        counts = escalation_counts(read_jsonl(d / "routing.jsonl"), pool_task)
        summary = read_json(d / "summary.json")
        mismatches += check_summary(counts["all"], summary, d / "summary.json")
        for task, c in counts.items():
            total.setdefault(task, Counter()).update(c)
        for name, t in need(need(summary, "verify", d), "teachers", d / "summary.json").items():
            teachers.setdefault(name, Counter()).update({k: v for k, v in t.items() if isinstance(v, int)})
    return {
        "seeds": seeds,
        "missing_seeds": sorted(set(dataset_seeds(records, student, "persyn")) - set(seeds)),
        "counts": {t: dict(c) for t, c in total.items()},
        "teachers": {n: dict(c) for n, c in teachers.items()},
        "mismatches": mismatches,
        "path": runs_root(records, student).relative_to(records).as_posix(),
    }


def auto_choices(records: Path, student: str) -> dict:
    """Per seed with run records, the router kind ``auto`` chose (``summary.json``'s
    ``router_eval.kind`` and ``reason``, ``router.json``'s ``kind``), and per seed with both
    datasets whether persyn's and persyn-prior's are one dataset (the same ``dataset_hash``:
    the same lines and responses)."""
    out: dict = {"kinds": {}, "same_dataset": {}}
    for s in run_seeds(records, student):
        d = runs_root(records, student) / f"seed-{s}"
        ev = need(read_json(d / "summary.json"), "router_eval", d / "summary.json")
        router = d / "router.json"
        out["kinds"][s] = {
            "kind": need(ev, "kind", d / "summary.json"),
            "reason": ev.get("reason"),
            "router_json": read_json(router).get("kind") if router.is_file() else None,
        }
    for s in sorted(
        set(dataset_seeds(records, student, "persyn")) & set(dataset_seeds(records, student, "persyn-prior"))
    ):
        a, b = (dataset(records, student, s, n)[1] for n in ("persyn", "persyn-prior"))
        out["same_dataset"][s] = need(a, "dataset_hash", "persyn summary.json") == need(
            b, "dataset_hash", "persyn-prior summary.json"
        )
    return out


def teacher_lines_by_task(records: Path, student: str, arm: str, labels: Labels) -> dict:
    """Dataset lines per task and teacher of ``arm``, mean over its recorded seeds:
    ``{"seeds": [...], "mean": {task: {teacher: lines}}, "by_source": {task: {"SOURCE ·
    TEACHER": lines}}}``, SOURCE the line's ``source`` (``calibration``: the Oracle's pick on a
    calibration prompt; ``routed``: the cascade's accepted answer), so that what escalation
    adds is told apart from what the calibration prompts add."""
    seeds = dataset_seeds(records, student, arm)
    per_seed, per_source = [], []
    for s in seeds:
        c: dict[str, Counter] = {}
        src: dict[str, Counter] = {}
        for line in dataset(records, student, s, arm)[0]:
            task, teacher = line_task(line, labels), need(line, "teacher", f"{arm} seed {s} line")
            c.setdefault(task, Counter())[teacher] += 1
            src.setdefault(task, Counter())[f"{line.get('source') or 'unknown'} · {teacher}"] += 1
        per_seed.append(c)
        per_source.append(src)

    def means(per: list[dict[str, Counter]]) -> dict:
        tasks = sorted({t for c in per for t in c})
        keys = sorted({n for c in per for t in c.values() for n in t})
        return {t: {n: float(np.mean([c.get(t, Counter())[n] for c in per])) for n in keys} for t in tasks}

    return {"seeds": seeds, "mean": means(per_seed), "by_source": means(per_source)}


# ---------------------------------------------------------------- datasets: cost and quality


def quality_counts(lines: list[dict], labels: Labels) -> dict[str, Counter]:
    """Per task (and ``"all"``) the lines whose ``quality`` is 1 (``right``: checked right),
    another number (``wrong``), or null (``unchecked``).

    Raises:
        KeyError: a line has no ``quality`` key.
    """
    out: dict[str, Counter] = {"all": Counter()}
    for line in lines:
        q = need(line, "quality", f"dataset line {line.get('id')!r}")
        kind = "unchecked" if q is None else ("right" if float(q) == 1.0 else "wrong")
        for c in (out.setdefault(line_task(line, labels), Counter()), out["all"]):
            c[kind] += 1
    return out


def right_share_table(records: Path, student: str, arms: list[str], labels: Labels) -> dict:
    """Per arm with recorded datasets: ``seeds``; ``share`` ``{task: [per-seed right /
    (right + wrong)]}`` (None for a seed with no checked line of the task); ``right`` ``{task:
    [per-seed count of right lines]}``; ``unchecked`` (lines with quality null, summed over
    seeds, counted apart from the share)."""
    out = {}
    for arm in arms:
        seeds = dataset_seeds(records, student, arm)
        if not seeds:
            continue
        per = [quality_counts(dataset(records, student, s, arm)[0], labels) for s in seeds]
        tasks = sorted({t for c in per for t in c})
        share = {
            t: [
                c[t]["right"] / (c[t]["right"] + c[t]["wrong"])
                if c.get(t) and c[t]["right"] + c[t]["wrong"]
                else None
                for c in per
            ]
            for t in tasks
        }
        right = {t: [c[t]["right"] if c.get(t) else 0 for c in per] for t in tasks}
        out[arm] = {
            "seeds": seeds,
            "share": share,
            "right": right,
            "unchecked": sum(c["all"]["unchecked"] for c in per),
        }
    return out


def generations_table(records: Path, student: str, arms: list[str], ev: Evals) -> dict:
    """Per arm with recorded datasets, means over its recorded seeds: ``lines`` (dataset
    lines), ``generations`` (``summary.json``'s ``generations`` as the run's pinned code
    1e3d1b9 wrote it: one response per routed prompt, so for the cascade not its escalations;
    main counts them since 8e84798), ``per_line`` (generations / lines, per seed then mean);
    for ``persyn`` also ``cascade_generations`` (``runs/seed-S/summary.json``'s
    ``generations``: calibration plus every routed attempt) over the seeds with run records,
    and ``cascade_per_line``; ``sft_minutes`` (results.csv ``train_seconds`` / 60, mean over
    evaluated seeds) with ``sft_seeds``."""
    out = {}
    for arm in arms:
        seeds = dataset_seeds(records, student, arm)
        if not seeds:
            continue
        lines, gens = [], []
        for s in seeds:
            rows, summary = dataset(records, student, s, arm)
            lines.append(len(rows))
            gens.append(need(summary, "generations", f"datasets/{student}/seed-{s}/{arm}/summary.json"))
        row = {
            "seeds": seeds,
            "lines": float(np.mean(lines)),
            "generations": float(np.mean(gens)),
            "per_line": float(np.mean([g / n for g, n in zip(gens, lines, strict=True) if n]))
            if any(lines)
            else None,
        }
        if arm == "persyn":
            row.update(cascade_generations(records, dict(zip(seeds, lines, strict=True)), student))
        secs = ev.train_seconds.get(arm, {})
        row["sft_seeds"] = sorted(secs)
        row["sft_minutes"] = float(np.mean(list(secs.values()))) / 60 if secs else None
        out[arm] = row
    return out


def cascade_generations(records: Path, lines: dict[int, int], student: str | None = None) -> dict:
    """PerSyn's generations as its runs counted them (``runs/seed-S/summary.json``'s
    ``generations``), mean over the seeds with run records and a dataset (``cascade_seeds``),
    and per kept line (``lines``: dataset lines per seed); ``pipeline_seconds`` per seed (its
    ``seconds``, the stages' wall time, summed)."""
    seeds = [s for s in run_seeds(records, student) if s in lines]
    if not seeds:
        return {
            "cascade_seeds": [],
            "cascade_generations": None,
            "cascade_per_line": None,
            "pipeline_seconds": {},
            "pipeline_seconds_missing": [],
        }
    summaries = {s: read_json(runs_root(records, student) / f"seed-{s}" / "summary.json") for s in seeds}
    gens = {s: need(summaries[s], "generations", f"runs/seed-{s}/summary.json") for s in seeds}
    return {
        "cascade_seeds": seeds,
        "cascade_generations": float(np.mean(list(gens.values()))),
        "cascade_per_line": float(np.mean([gens[s] / lines[s] for s in seeds])),
        # run records rebuilt from a store (rebuild_run_records.py) keep no stage times
        "pipeline_seconds": {
            s: float(sum(summaries[s]["seconds"].values())) for s in seeds if "seconds" in summaries[s]
        },
        "pipeline_seconds_missing": [s for s in seeds if "seconds" not in summaries[s]],
    }


# ---------------------------------------------------------------- the whole report


def build(
    records: Path,
    labels: Labels,
    plan: dict[str, list[int]],
    n_boot: int = N_BOOT,
    *,
    arms: tuple[str, ...] = ARMS,
    secondary: tuple[tuple[str, str, str], ...] = SECONDARY,
    plan_seed_sd: float = PLAN_SEED_SD,
    generations_note: str | None = None,
    lost_runs_note: str | None = None,
) -> dict:
    """Every table as one JSON-able dict (see the module docstring); ``plan`` is ``{arm:
    planned seeds}`` (``labels_from_config``). ``arms``, ``secondary``, ``plan_seed_sd`` and
    ``generations_note`` (how the run's code counted a dataset's ``generations``) and
    ``lost_runs_note`` (why a seed has no run records) default to round 3's; another run's report (``instruction_report.py``) passes its own plan's.

    Raises:
        FileNotFoundError: results.csv, an evaluation record it names, or a run / dataset
            file is missing.
        InputError, KeyError: a record lacks a key this report reads (the message names it).
    """
    rows = read_results(records)
    students = sorted({r["student"] for r in rows})
    if len(students) != 1:
        raise InputError(f"{records / 'results.csv'}: this report reads one student, found {students}")
    student = students[0]
    ev = load_evals(records, rows, labels.eval_task)
    arms = [a for a in plan if a in arms] + [a for a in arms if a not in plan]
    tasks = sorted(set(ev.tasks))
    return {
        "student": student,
        "n_boot": n_boot,
        "tasks": tasks,
        "n_prompts": {t: int((ev.tasks == t).sum()) for t in tasks} | {"all": len(ev.ids)},
        "plan": plan,
        "arms": arms,
        "evaluated": {a: sorted(s for s in ev.correct.get(a, {}) if s != UNSEEDED) for a in arms},
        "accuracy": per_task_means(ev.correct, ev.tasks),
        "truncated": per_task_means(ev.truncated, ev.tasks),
        "primary": primaries(ev.correct, n_boot),
        "secondary": secondaries(ev.correct, n_boot, secondary),
        "primary_by_task": primaries_by_task(ev.correct, ev.tasks),
        "stop_rule": stop_rule(ev.correct, n_boot),
        "gain": {b: gain_recovered(ev.correct, "persyn", b, n_boot=n_boot) for b in GAIN_BASES},
        "routing": routing_table(records, student, labels.pool_task),
        "auto": auto_choices(records, student),
        "lines_by_task": {a: teacher_lines_by_task(records, student, a, labels) for a in ("persyn", ORACLE)},
        "generations": generations_table(records, student, arms, ev),
        "right_share": right_share_table(records, student, arms, labels),
        "detectable": detectable_primaries(ev.correct, plan, plan_seed_sd),
        "generations_note": ROUND3_GENERATIONS if generations_note is None else generations_note,
        "lost_runs_note": ROUND3_LOST_RUNS if lost_runs_note is None else lost_runs_note,
    }


# ---------------------------------------------------------------- Markdown


def _n(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _s(x: float) -> str:
    """A signed number, 3 decimals, with the minus sign of the write-up (U+2212)."""
    return f"{x:+.3f}".replace("-", "−")


def _iv(lo: float | None, hi: float | None) -> str:
    return "–" if lo is None or hi is None else f"[{_s(lo)}, {_s(hi)}]"


def _cell(values: list) -> str:
    """mean ± sample std (0 with one value) of the non-None values, or –."""
    v = [x for x in values if x is not None]
    if not v:
        return "–"
    std = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return f"{np.mean(v):.3f} ± {std:.3f}"


def _seeds(seeds: list[int]) -> str:
    """``[0, 1, 2, 5]`` → ``0–2, 5``."""
    if not seeds:
        return "none"
    runs = [[seeds[0]]]
    for s in seeds[1:]:
        if s == runs[-1][-1] + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)


#: What the tables say of an arm of the plan that the config no longer lists (a cut, logged).
CUT = "not run (cut: not in the config's strategies)"


def _missing(t: dict, arm: str) -> str:
    if arm not in t["plan"]:
        return f"{arm}: {CUT}"
    return f"{arm}: not evaluated yet (planned seeds {_seeds(t['plan'][arm])})"


def evaluated_so_far(t: dict) -> str:
    """The header's "persyn 2 of 3 seeds; …; strongest not run (cut: …)" list."""
    ev = t["evaluated"]
    return "; ".join(
        f"{a} {len(ev[a])} of {len(t['plan'][a])} seeds" if a in t["plan"] else f"{a} {CUT}"
        for a in t["arms"]
    )


def md_accuracy(t: dict) -> list[str]:
    cols = [*t["tasks"], "all"]
    out = [
        "## 1. Accuracy per task (mean ± std over seeds)",
        "",
        "Read from results.csv and evals/KEY.json of each row; held-out prompts: "
        + ", ".join(f"{c} {t['n_prompts'][c]}" for c in cols)
        + ". Std is the sample std over seeds (0 with one seed).",
        "",
        "| arm | seeds | " + " | ".join(cols) + " |",
        "| --- | --- |" + " ---: |" * len(cols),
    ]
    acc = t["accuracy"]
    if UNTRAINED in acc:
        out.append(
            f"| {UNTRAINED} | – | " + " | ".join(_cell(acc[UNTRAINED]["by_task"][c]) for c in cols) + " |"
        )
    missing = []
    for arm in t["arms"]:
        if arm not in acc:
            missing.append(arm)
            continue
        seeds = acc[arm]["seeds"]
        planned = len(t["plan"].get(arm, [])) or len(seeds)
        out.append(
            f"| {arm} | {len(seeds)} of {planned} ({_seeds(seeds)}) | "
            + " | ".join(_cell(acc[arm]["by_task"][c]) for c in cols)
            + " |"
        )
    out += ["", *(f"- {_missing(t, a)}" for a in missing)]
    return out


def _diff_row(d: dict, role: str, note: str = "") -> str:
    p = f"{_n(d['p_holm'])} (Holm)" if d.get("p_holm") is not None else _n(d["p"])
    return (
        f"| {d['a']} − {d['b']} | {role} | {_seeds(d['seeds'])} | {_s(d['mean'])} | {_iv(d['low'], d['high'])} | "
        f"{_iv(d['prompt_low'], d['prompt_high'])} | {', '.join(_s(x) for x in d['per_seed'])} | "
        f"{_n(d['seed_std'])} | {p} | {note} |"
    )


def _secondary_note(t: dict, d: dict) -> str:
    """The note beside a secondary row: generations for oracle-verified − persyn, auto's kind
    for persyn − persyn-prior."""
    if (d["a"], d["b"]) == (ORACLE, "persyn"):
        g = t["generations"]
        o, p = g.get(ORACLE, {}), g.get("persyn", {})
        cas = p.get("cascade_generations")
        return (
            f"generations per seed: {ORACLE} {_g(o.get('generations'))}, persyn {_g(cas)} made (cascade, seeds "
            f"{_seeds(p.get('cascade_seeds', []))}; {_g(p.get('generations'))} recorded)"
        )
    if (d["a"], d["b"]) == ("persyn", "persyn-prior"):
        return _prior_label(t)
    return d["what"]


def _g(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _prior_label(t: dict) -> str:
    """Whether ``auto`` picked a learned kind, per seed, and whether the two datasets are one."""
    kinds = t["auto"]["kinds"]
    learned = [s for s, k in kinds.items() if k["kind"] != "prior"]
    same = [s for s, v in t["auto"]["same_dataset"].items() if v]
    head = (
        f"auto picked a learned kind on seeds {_seeds(sorted(learned))}"
        if learned
        else f"auto picked prior on every seed with run records ({_seeds(sorted(kinds))})"
    )
    tail = f"; one dataset (same dataset_hash) on seeds {_seeds(same)}: says nothing there" if same else ""
    return head + tail


def md_comparisons(t: dict) -> list[str]:
    out = [
        "## 2. Paired comparisons",
        "",
        "Read from evals/KEY.json: the same held-out prompts, the seeds both arms have. Seed-aware "
        "95%: two-stage bootstrap over seeds, then prompts; prompt-only 95%: prompts resampled, the "
        f"fine-tuned models fixed ({t['n_boot']} resamples, bootstrap seed 0). The two primaries' p are "
        "Holm-corrected across exactly these two; the secondaries (named in the plan) are uncorrected.",
        "",
        "| comparison | role | seeds | difference | seed-aware 95% | prompt-only 95% | per seed | seed std | p | note |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for d in t["primary"]:
        if d["missing"]:
            out.append(f"| {d['a']} − {d['b']} | **primary** | – | not evaluated yet | | | | | | |")
        else:
            out.append(_diff_row(d, "**primary**", d["holm_note"]))
    for d in t["secondary"]:
        if d["missing"]:
            gone = [x for x in (d["a"], d["b"]) if x not in t["accuracy"]]
            cut = [x for x in gone if x not in t["plan"] and x != UNTRAINED]
            why = f"not run ({', '.join(cut)} cut)" if cut else f"not evaluated yet ({', '.join(gone)})"
            out.append(f"| {d['a']} − {d['b']} | secondary | – | {why} | | | | | | {d['what']} |")
        else:
            out.append(_diff_row(d, "secondary", _secondary_note(t, d)))
    sr = t["stop_rule"]
    if sr:
        verdict = "above 0: headroom, the run goes on" if sr["headroom"] else "not above 0: no headroom"
        out += [
            "",
            f"Stop rule (oracle-verified − car, seed 0, prompt-only 95%): {_s(sr['mean'])} "
            f"{_iv(sr['prompt_low'], sr['prompt_high'])}, {verdict}.",
        ]
    if "persyn-prior" in t["arms"]:
        out += ["", f"persyn − persyn-prior: {_prior_label(t)}."]
    elif t["auto"]["kinds"]:
        out += ["", f"The `auto` router: {_prior_label(t)}."]
    out += md_by_task(t)
    return out


def md_by_task(t: dict) -> list[str]:
    names = list(t["primary_by_task"])
    if not names:
        return ["", "Primaries per task: not evaluated yet."]
    out = [
        "",
        "**The primaries per task** (seed-aware 95%; in parentheses the task's share of the "
        "all-prompt difference: its difference × its prompts / all prompts):",
        "",
        "| task (prompts) | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for task in [*t["tasks"], "all"]:
        cells = []
        for name in names:
            d = t["primary_by_task"][name][task]
            share = "" if task == "all" else f" ({_s(d['share_of_all'])} of all)"
            cells.append(f"{_s(d['mean'])} {_iv(d['low'], d['high'])}{share}")
        out.append(f"| {task} ({t['n_prompts'][task]}) | " + " | ".join(cells) + " |")
    return out


def md_gain(t: dict) -> list[str]:
    out = [
        "## 3. Oracle gain recovered",
        "",
        f"(persyn − base) / ({ORACLE} − base) in student accuracy, on the seeds the three share "
        "(evals/KEY.json); interval: the same seed-and-prompt resamples for numerator and "
        "denominator (`paired.gain_ratio`), given only when ≥ 95% of the resamples have a "
        "positive denominator.",
        "",
        "| base | seeds | oracle − base (seed-aware 95%) | persyn − base | recovered | 95% | resamples with oracle > base |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for base, g in t["gain"].items():
        if g is None:
            out.append(f"| {base} | – | not evaluated yet | | | | |")
            continue
        o, a = g["oracle_minus_base"], g["a_minus_base"]
        flag = "" if o["low"] > 0 else " (interval not above 0: a gain not shown to exist)"
        out.append(
            f"| {base} | {_seeds(g['seeds'])} | {_s(o['mean'])} {_iv(o['low'], o['high'])}{flag} | {_s(a['mean'])} | "
            f"{_n(g['ratio'])} | {_iv(g['low'], g['high']) if g['low'] is not None else 'not bounded'} | "
            f"{g['positive_share']:.1%} |"
        )
    return out


def md_routing(t: dict) -> list[str]:
    r = t["routing"]
    gone = r["missing_seeds"]
    note = t.get("lost_runs_note", ROUND3_LOST_RUNS) if 0 in gone else ""  # round 3's note is seed 0's
    lost = f"; no run records for seed {_seeds(gone)}{note}" if gone else ""
    out = [
        "## 4. Routing and escalations per task",
        "",
        f"Read from {r.get('path', 'runs')}/seed-S/routing.jsonl (PerSyn's routed prompts; calibration prompts are not "
        f"routed), seeds {_seeds(r['seeds'])}{lost}. Counts summed over the seeds; shares of the "
        "routed prompts. Escalated: the first answer failed the check and the next teacher was asked.",
        "",
    ]
    if not r["seeds"]:
        return [*out, "No run records."]
    counts = r["counts"]
    firsts = sorted({k.split(":", 1)[1] for c in counts.values() for k in c if k.startswith("first:")})
    tries = sorted({k for c in counts.values() for k in c if k.startswith("accepted_try_")})
    out += [
        "| task | routed | "
        + " | ".join(f"first choice {n}" for n in firsts)
        + " | escalated | "
        + " | ".join(f"accepted at try {k.rsplit('_', 1)[1]}" for k in tries)
        + " | dropped |",
        "| --- | ---: |" + " ---: |" * (len(firsts) + len(tries) + 2),
    ]
    for task in [*t["tasks"], "all"]:
        c = counts.get(task, {})
        n = c.get("routed", 0)
        cell = _share_cell(c)
        out.append(
            f"| {task} | {n} | "
            + " | ".join(cell(f"first:{f}") for f in firsts)
            + f" | {cell('escalated')} | "
            + " | ".join(cell(k) for k in tries)
            + f" | {cell('dropped')} |"
        )
    out += [
        "",
        "routing.jsonl against summary.json's `verify` counts: "
        + ("consistent on every seed." if not r["mismatches"] else "; ".join(r["mismatches"])),
    ]
    out += md_teachers(r) + md_lines(t)
    return out


def _share_cell(c: dict):
    """A function of a key: its count's share of ``c["routed"]``, 3 decimals, with the count."""
    n = c.get("routed", 0)
    return lambda k: f"{c.get(k, 0) / n:.3f} ({c.get(k, 0)})" if n else "–"


def md_teachers(r: dict) -> list[str]:
    keys = ("first_answers", "escalations", "rejected", "accepted")
    out = [
        "",
        f"Per teacher ({r.get('path', 'runs')}/seed-S/summary.json `verify.teachers`, summed over seeds "
        f"{_seeds(r['seeds'])}):",
        "",
        "| teacher | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
        "| --- |" + " ---: |" * len(keys),
    ]
    for name, c in r["teachers"].items():
        out.append(f"| {name} | " + " | ".join(str(c.get(k, 0)) for k in keys) + " |")
    return out


def md_lines(t: dict) -> list[str]:
    out = []
    for arm, lt in t["lines_by_task"].items():
        if not lt["seeds"]:
            continue
        teachers = sorted({n for c in lt["mean"].values() for n in c})
        out += [
            "",
            f"**{arm}: dataset lines per teacher and task** (datasets/{t['student']}/seed-S/{arm}/dataset.jsonl, "
            f"calibration and routed lines, mean over seeds {_seeds(lt['seeds'])}):",
            "",
            "| task | " + " | ".join(teachers) + " | all |",
            "| --- |" + " ---: |" * (len(teachers) + 1),
        ]
        for task, c in lt["mean"].items():
            out.append(
                f"| {task} | " + " | ".join(f"{c[n]:.1f}" for n in teachers) + f" | {sum(c.values()):.1f} |"
            )
        sources = sorted({k for c in lt.get("by_source", {}).values() for k in c})
        if len({k.split(" · ")[0] for k in sources}) < 2:
            continue
        out += [
            "",
            f"{arm}'s lines by source (the same lines: `calibration` the Oracle's picks on the "
            "calibration prompts, `routed` the answers accepted on the routed prompts, by teacher):",
            "",
            "| task | " + " | ".join(sources) + " |",
            "| --- |" + " ---: |" * len(sources),
        ]
        for task, c in lt["by_source"].items():
            out.append(f"| {task} | " + " | ".join(f"{c[k]:.1f}" for k in sources) + " |")
    return out


def md_generations(t: dict) -> list[str]:
    out = [
        "## 5. Generations and SFT wall time per arm",
        "",
        f"Means over seeds. Lines and recorded generations: datasets/{t['student']}/seed-S/ARM/summary.json"
        f" ({t.get('generations_note', ROUND3_GENERATIONS)}); generations made by the "
        f"cascade: {t['routing'].get('path', 'runs')}/seed-S/summary.json (every attempt; seeds with run "
        "records only); SFT minutes: "
        "results.csv `train_seconds` / 60 over the evaluated seeds (wall time: pauses of the run "
        "fall in some, see the log in docs/experiments.md).",
        "",
        "| arm | dataset seeds | lines | generations recorded | generations made | generations per kept line | SFT seeds | SFT min |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for arm, g in t["generations"].items():
        per = g["per_line"]
        made_s, per_s = _g(g["generations"]), _n(per)
        if arm == "persyn":
            made_s = f"{_g(g['cascade_generations'])} (seeds {_seeds(g['cascade_seeds'])})"
            per_s = (
                f"{_n(g['cascade_per_line'])} made (seeds {_seeds(g['cascade_seeds'])}); {_n(per)} recorded"
            )
        elif arm == "persyn-prior":
            made_s = "not recorded (its run's summary is not committed)"
            per_s = f"{_n(per)} recorded"
        out.append(
            f"| {arm} | {_seeds(g['seeds'])} | {g['lines']:.1f} | {_g(g['generations'])} | {made_s} | "
            f"{per_s} | {_seeds(g['sft_seeds'])} | {_n(g['sft_minutes'])} |"
        )
    secs = t["generations"].get("persyn", {}).get("pipeline_seconds", {})
    missing = t["generations"].get("persyn", {}).get("pipeline_seconds_missing", [])
    if missing:
        out += [
            "",
            f"PerSyn's pipeline wall time of seeds {_seeds(missing)}: not kept (their run records were "
            "rebuilt from the store by experiments/rebuild_run_records.py, which keeps no stage times).",
        ]
    if secs:
        out += [
            "",
            f"PerSyn's pipeline wall time per seed ({t['routing'].get('path', 'runs')}/seed-S/summary.json "
            "`seconds`, summed over its "
            "stages): "
            + ", ".join(f"seed {s} {v / 60:.1f} min" for s, v in secs.items())
            + ". Not comparable across seeds: one store is chained across seeds, so later seeds' "
            "responses were mostly cached, and the machine was shared at times.",
        ]
    return out


def md_right_share(t: dict) -> list[str]:
    cols = [*t["tasks"], "all"]
    out = [
        "## 6. Right lines per arm and task",
        "",
        f"Share of each arm's dataset lines with quality 1 (the answer checked right) among its "
        f"checked lines, mean ± std over the recorded seeds (datasets/{t['student']}/seed-S/ARM/dataset.jsonl). "
        "Lines with quality null (unchecked) are counted apart, in the last column (summed over seeds).",
        "",
        "| arm | seeds | " + " | ".join(cols) + " | unchecked lines |",
        "| --- | --- |" + " ---: |" * (len(cols) + 1),
    ]
    for arm, r in t["right_share"].items():
        out.append(
            f"| {arm} | {_seeds(r['seeds'])} | "
            + " | ".join(_cell(r["share"].get(c, [])) for c in cols)
            + f" | {r['unchecked']} |"
        )
    out += [
        "",
        "**Right lines per arm and task** (the count of lines with quality 1, mean ± std over the "
        "same seeds): what the student is taught right, whatever else the dataset holds.",
        "",
        "| arm | seeds | " + " | ".join(cols) + " |",
        "| --- | --- |" + " ---: |" * len(cols),
    ]
    for arm, r in t["right_share"].items():
        counts = r.get("right", {})
        out.append(
            f"| {arm} | {_seeds(r['seeds'])} | "
            + " | ".join(_count_cell(counts.get(c, [])) for c in cols)
            + " |"
        )
    return out


def _count_cell(values: list) -> str:
    if not values:
        return "–"
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{float(np.mean(values)):.1f} ± {sd:.1f}"


def md_truncation(t: dict) -> list[str]:
    cols = [*t["tasks"], "all"]
    out = [
        "## 7. Truncation per arm and task",
        "",
        'Share of held-out answers cut at the evaluation budget (finish_reason "length"), mean '
        "over the evaluated seeds (evals/KEY.json).",
        "",
        "| arm | seeds | " + " | ".join(cols) + " |",
        "| --- | --- |" + " ---: |" * len(cols),
    ]
    for arm in [UNTRAINED, *t["arms"]]:
        r = t["truncated"].get(arm)
        if r is None:
            continue
        seeds = "–" if r["seeds"] == [UNSEEDED] else _seeds(r["seeds"])
        out.append(
            f"| {arm} | {seeds} | " + " | ".join(_n(float(np.mean(r["by_task"][c]))) for c in cols) + " |"
        )
    return out


def md_detectable(t: dict) -> list[str]:
    out = [
        "## 8. Smallest detectable effect of the primaries",
        "",
        "Normal approximation of the seed-aware interval (`restate_round2.detectable`, the "
        "approximation of experiments/power.py): SE = √(seed SD² / seeds + prompt SD² / prompts), "
        "the observed seed SD (per-seed mean differences, ddof 1) and prompt SD (each prompt's "
        "seed-averaged difference) of that difference; two-sided at 0.05 / 2 (Holm over the two "
        "primaries); the effect found with 80% power, at the seeds evaluated and at the planned seeds "
        "with the same SDs.",
        "",
    ]
    for name, d in t["detectable"].items():
        if not d["estimable"]:
            line = f"- {name}: cannot be estimated yet ({d['why']})."
            if "with_plan_seed_sd" in d:
                w = d["with_plan_seed_sd"]
                line += (
                    f" For reference only: its prompt SD on that seed is {_n(d['prompt_sd'])}; with the "
                    f"plan's assumed seed SD {d['plan_seed_sd']} at {d['planned_seeds']} seeds, SE "
                    f"{w['se']:.4f} and an 80%-power effect of {_n(w['mde_80'])} (power for +0.05: {w['power']:.0%})."
                )
            out.append(line)
            continue
        now, pl = d["now"], d["planned"]
        out.append(
            f"- {name}: seed SD {_n(d['seed_sd'])}, prompt SD {_n(d['prompt_sd'])}, {d['n_seeds']} seeds × "
            f"{d['n_prompts']} prompts: SE {now['se']:.4f}, 80%-power effect **{_n(now['mde_80'])}** "
            f"(power for +0.05: {now['power']:.0%}); at {d['planned_seeds']} seeds: SE {pl['se']:.4f}, "
            f"{_n(pl['mde_80'])} ({pl['power']:.0%})."
        )
    return out


def markdown(t: dict, config: Path | str) -> str:
    """The report as Markdown."""
    lines = [
        "# Round 3 (issue 45): the verified cascade, tables from the committed records",
        "",
        f"From the records of `{config}` (`python experiments/verified_report.py`); student "
        f"{t['student']}. Nothing trained or generated here. Evaluated so far: "
        + evaluated_so_far(t)
        + ". `persyn` is persyn-verified (the verified cascade).",
        "",
    ]
    for part in (
        md_accuracy,
        md_comparisons,
        md_gain,
        md_routing,
        md_generations,
        md_right_share,
        md_truncation,
        md_detectable,
    ):
        lines += [*part(t), ""]
    return "\n".join(lines).rstrip() + "\n"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("records", type=Path)
    ap.add_argument("--n-boot", type=int, default=N_BOOT, help="bootstrap resamples")
    args = ap.parse_args()
    labels, plan = labels_from_config(args.config)
    t = build(args.records, labels, plan, args.n_boot)
    (args.records / "report.json").write_text(json.dumps(_jsonable(t), indent=1, ensure_ascii=False) + "\n")
    md = markdown(t, args.config)
    (args.records / "report.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
