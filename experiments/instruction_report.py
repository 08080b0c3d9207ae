"""Tables of the instruction run's write-up (issue 46), read from its committed records.

    python experiments/instruction_report.py src/persyn/configs/evidence-instruction.yaml docs/evidence/instruction

Nothing is trained or generated (the IFEval checkers run on four fixed responses, for the
floor). Reads what ``experiments/verified_report.py`` reads (``results.csv``,
``evals/KEY.json``, ``datasets/STUDENT/seed-S/ARM/``, ``runs/seed-S/``) plus
``validation.csv`` (the epochs sweep) where present, and labels every prompt, held out and
pooled, by its number of instructions (IFEval's prompts carry 1-3, the pool's constrained
prompts 1-3), which plays the part round 3's reasoning-gym task played in its tables. Writes
``RECORDS/report.md`` and ``RECORDS/report.json`` and prints the Markdown:

1. IFEval's four numbers per arm (prompt-level and instruction-level, strict and loose; mean ±
   std over seeds) and the truncated share;
2. prompt-level strict accuracy (the paired figure) per number of instructions;
3. the plan's comparisons (docs/experiments.md, "The instruction setting (issue #46): the
   plan"): the two primaries Holm-corrected across exactly these two, the named secondaries
   uncorrected (every arm − the untouched student among them), the primaries per number of
   instructions, and the stop rule;
4. the reading named beside the primaries: accuracy and the comparisons on the IFEval prompts
   that no response following nothing passes (``ifeval_floor.py``'s split, its functions);
5.-10. ``verified_report``'s tables: the share of the Oracle's gain recovered; routing and
   escalations; generations and SFT time; the share of dataset lines that follow every
   instruction (quality 1); truncation; the smallest effect each primary detects;
11. the epochs sweep on the validation prompts and the length it chose;
12. instruction-level strict accuracy per instruction group (exploratory).

The run may be in progress: an arm not evaluated yet is said so and skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from persyn.core.errors import InputError
from persyn.experiment.comparisons import UNSEEDED, UNTRAINED

sys.path.insert(0, str(Path(__file__).resolve().parent))
import verified_report as vr  # noqa: E402
from ifeval_floor import benchmark_prompts, floor_mask, split_accuracy  # noqa: E402
from ifeval_floor import comparisons as floor_comparisons  # noqa: E402
from instruction_probe import DEGENERATE, degenerate_passes  # noqa: E402

#: The arms in the plan's order; ``persyn`` is persyn-verified (the verified cascade).
ARMS = ("persyn", "car-verified", "car", "oracle-verified", "strongest")
#: The secondary comparisons the plan names (p uncorrected), with what each measures.
SECONDARY = (
    ("car-verified", "car", "what checking alone adds"),
    ("oracle-verified", "persyn", "how much of best-of-n the cascade keeps, at what cost"),
    ("persyn", "strongest", "the method against the strongest teacher's data"),
    *((arm, UNTRAINED, "fine-tuning at all") for arm in ARMS),
)
#: The seed SD the plan's power figures assumed (docs/experiments.md, "Power").
PLAN_SEED_SD = 0.03
#: The run's code (920ffd2) counts every attempt of the cascade in a dataset's ``generations``.
GENERATIONS_NOTE = "`generations`: every response the arm's dataset cost, the cascade's escalations included"
#: IFEval's four numbers: (key, label, level, mode).
MEASURES = (
    ("prompt_strict", "prompt strict", "prompt", "strict"),
    ("prompt_loose", "prompt loose", "prompt", "loose"),
    ("instruction_strict", "instruction strict", "instruction", "strict"),
    ("instruction_loose", "instruction loose", "instruction", "loose"),
)


def n_label(instructions: list) -> str:
    """The label of a prompt with these instructions: ``"1 instruction"``, ``"2 instructions"``…"""
    n = len(instructions)
    return f"{n} instruction" + ("" if n == 1 else "s")


def labels_from_config(config: Path) -> tuple[vr.Labels, dict[str, list[int]], int]:
    """Every prompt's label by its number of instructions (``vr.Labels``: IFEval's 541 held-out
    prompts by text, the config's whole training pool by id and by text), the plan (``{arm:
    planned seeds}``) and the evaluation's ``max_new_tokens``.

    Raises:
        InputError: a pool prompt carries no ``instruction_id_list`` (not an instruction run).
        MissingAssetError: the ifeval extra is not installed.
    """
    from persyn.config import parse_config
    from persyn.evaluate_ifeval import ifeval_prompt_set
    from persyn.experiment.config import load_experiment
    from persyn.prompts import load_prompts

    exp = load_experiment(config)
    run = parse_config(exp.run, "experiment run")
    pool, _ = load_prompts(run.prompts.model_copy(update={"sample": None}), run.seed, require_answer=False)
    bad = [p.id for p in pool if "instruction_id_list" not in p.metadata]
    if bad:
        raise InputError(
            f"{config}: pool prompt {bad[0]!r} has no instruction_id_list: not an instruction run"
        )
    labels = vr.Labels(
        eval_task={q.text: n_label(q.metadata["instruction_id_list"]) for q in ifeval_prompt_set()},
        pool_task={p.id: n_label(p.metadata["instruction_id_list"]) for p in pool},
        pool_text={p.text: n_label(p.metadata["instruction_id_list"]) for p in pool},
    )
    plan = {s: list(exp.strategy_seeds.get(s, exp.seeds)) for s in exp.strategies}
    return labels, plan, exp.eval.max_new_tokens


# ---------------------------------------------------------------- IFEval's own numbers


def ifeval_numbers(records: list[dict], where: str = "evaluation") -> dict:
    """IFEval's four accuracies of one evaluation (``evaluate_ifeval.ifeval_scores``, as
    IFEval's ``evaluation_main`` computes them: prompt level, every instruction of a prompt
    followed; instruction level, the share of all instructions followed; ``strict`` and
    ``loose``), the truncated share (``finish_reason`` "length") and, per instruction group (the
    id's part before ``:``), instruction-level strict accuracy and the instruction count.

    Args:
        records: per-prompt records with ``strict`` and ``loose`` (one bool per instruction)
            and ``instruction_id_list``.

    Raises:
        InputError: no records; a record lacks one of those keys, or its lists differ in
            length (the message names ``where`` and the record).
    """
    from persyn.evaluate_ifeval import ifeval_scores

    if not records:
        raise InputError(f"{where}: no per-prompt records")
    for r in records:
        for key in ("strict", "loose", "instruction_id_list"):
            if key not in r:
                raise InputError(
                    f"{where}: record {r.get('id')!r} has no '{key}' (not an IFEval evaluation?)"
                )
        ids, strict, loose = r["instruction_id_list"], r["strict"], r["loose"]
        if not (len(ids) == len(strict) == len(loose)):
            raise InputError(
                f"{where}: record {r.get('id')!r} has {len(ids)} instructions, {len(strict)} strict and "
                f"{len(loose)} loose checks"
            )
    scores = ifeval_scores(records)
    out = {key: scores[key]["accuracy"] for key, *_ in MEASURES}
    out["truncated"] = sum(r.get("finish_reason") == "length" for r in records) / len(records)
    groups: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for iid, row in scores["per_type"].items():
        g = groups[iid.split(":", 1)[0]]
        g[0] += row["strict"] * row["n"]
        g[1] += row["n"]
    out["groups"] = {g: {"accuracy": c[0] / c[1], "n": c[1]} for g, c in sorted(groups.items())}
    return out


def ifeval_table(records: Path, rows: list[dict]) -> dict:
    """Per arm: ``seeds`` and per seed the ``ifeval_numbers`` of its evaluation (the untouched
    student's seed is ``UNSEEDED``)."""
    out: dict[str, dict] = {}
    for row in rows:
        seed = UNSEEDED if row["seed"] is None else row["seed"]
        nums = ifeval_numbers(vr.eval_records(records, row), f"evals/{row['eval_key']}.json")
        out.setdefault(row["strategy"], {})[seed] = nums
    return {arm: {"seeds": sorted(by), "by_seed": {s: by[s] for s in sorted(by)}} for arm, by in out.items()}


# ---------------------------------------------------------------- validation: the epochs sweep


def validation_table(records: Path) -> dict | None:
    """The epochs sweep (``validation.csv`` rows with sweep ``sft_epochs``): ``{"rows":
    [{epochs, strategy, accuracy, ci_low, ci_high}], "mean": {epochs: mean over the swept
    strategies}, "chosen": the epochs with the best mean, "chosen_by_run": the epochs
    results.md says the run chose and used (None before it says so)}``; None when the file or
    the sweep is absent. Ties go to the fewer epochs (the cheaper fine-tune), as ``persyn
    experiment`` chooses.

    Raises:
        InputError: a row lacks a column this reads.
    """
    path = records / "validation.csv"
    if not path.is_file():
        return None
    with open(path) as f:
        raw = [r for r in csv.DictReader(f) if r.get("sweep") == "sft_epochs"]
    if not raw:
        return None
    rows = []
    for r in raw:
        for key in ("value", "strategy", "accuracy", "ci_low", "ci_high"):
            if key not in r:
                raise InputError(f"{path}: no column '{key}'")
        rows.append(
            {
                "epochs": float(r["value"]),
                "strategy": r["strategy"],
                **{k: float(r[k]) for k in ("accuracy", "ci_low", "ci_high")},
            }
        )
    by: dict[float, list[float]] = defaultdict(list)
    for r in rows:
        by[r["epochs"]].append(r["accuracy"])
    mean = {e: float(np.mean(v)) for e, v in sorted(by.items())}
    best = max(mean.values())
    # what the run itself chose and used (results.md's note), beside this recomputation
    md = records / "results.md"
    found = (
        re.search(r"SFT epochs chosen on validation: ([0-9.]+)\.", md.read_text()) if md.is_file() else None
    )
    return {
        "rows": rows,
        "mean": mean,
        "chosen": min(e for e, m in mean.items() if m == best),
        "chosen_by_run": float(found.group(1)) if found else None,
    }


# ---------------------------------------------------------------- the whole report


#: The arms whose teacher is chosen once per seed, on that seed's calibration prompts.
SINGLE_TEACHER_ARMS = ("car", "car-verified", "strongest")


def single_teachers(records: Path, student: str, arms: tuple[str, ...] = SINGLE_TEACHER_ARMS) -> dict:
    """Which teacher each single-teacher arm's dataset came from, per seed:
    ``{arm: {seed: {teacher: lines}}}`` read from ``datasets/STUDENT/seed-S/ARM/dataset.jsonl``
    (only the seeds whose dataset is recorded). CAR chooses its teacher on each seed's own
    calibration set, so the arm need not have the same teacher on every seed.

    Raises:
        KeyError: a dataset line has no ``teacher`` (named with its arm and seed).
    """
    out: dict[str, dict[int, dict[str, int]]] = {}
    for arm in arms:
        for s in vr.dataset_seeds(records, student, arm):
            lines = vr.read_jsonl(records / "datasets" / student / f"seed-{s}" / arm / "dataset.jsonl")
            out.setdefault(arm, {})[s] = dict(
                Counter(vr.need(x, "teacher", f"{arm} seed {s} line") for x in lines)
            )
    return out


def build(
    records: Path,
    labels: vr.Labels,
    plan: dict[str, list[int]],
    n_boot: int = vr.N_BOOT,
    eval_max_new_tokens: int | None = None,
) -> dict:
    """Every table as one JSON-able dict: ``verified_report.build``'s with this plan's arms,
    secondaries and assumed seed SD, plus ``ifeval`` (``ifeval_table``), ``floor`` (the
    floor prompts' ids, ``split_accuracy`` and the comparisons on the rest) and
    ``validation`` (``validation_table``); ``eval_max_new_tokens`` (the evaluation's budget, from
    the config) is kept for the text.

    Raises:
        FileNotFoundError, InputError, KeyError: as ``verified_report.build``.
        MissingAssetError: the ifeval extra is not installed.
    """
    t = vr.build(
        records,
        labels,
        plan,
        n_boot,
        arms=ARMS,
        secondary=SECONDARY,
        plan_seed_sd=PLAN_SEED_SD,
        generations_note=GENERATIONS_NOTE,
    )
    rows = vr.read_results(records)
    ev = vr.load_evals(records, rows, labels.eval_task)
    floor = floor_mask(ev.ids, degenerate_passes(benchmark_prompts(ev.ids)))
    pairs = [*vr.PRIMARY, *((a, b) for a, b, _ in SECONDARY if b != UNTRAINED)]
    t["ifeval"] = ifeval_table(records, rows)
    t["floor"] = {
        "n_floor": int(floor.sum()),
        "n_prompts": len(floor),
        "floor_prompts": [i for i, f in zip(ev.ids, floor, strict=True) if f],
        "accuracy": split_accuracy(ev, floor),
        "comparisons": floor_comparisons(ev, floor, pairs, n_boot),
    }
    t["validation"] = validation_table(records)
    t["single_teachers"] = single_teachers(records, t["student"])
    t["eval_max_new_tokens"] = eval_max_new_tokens
    return t


# ---------------------------------------------------------------- Markdown


def md_ifeval(t: dict) -> list[str]:
    cols = [*(m[1] for m in MEASURES), "truncated"]
    keys = [*(m[0] for m in MEASURES), "truncated"]
    out = [
        "## IFEval's four numbers per arm (mean ± std over seeds)",
        "",
        f"Read from evals/KEY.json (each record's strict and loose checks); {t['n_prompts']['all']} "
        "prompts. Prompt level: every instruction of the prompt followed; instruction level: the "
        "share of all instructions followed. Prompt strict is the paired figure; the other three and "
        f"the truncated share (answers cut at the evaluation's {t['eval_max_new_tokens']} tokens) are "
        "reported, not tested.",
        "",
        "| arm | seeds | " + " | ".join(cols) + " |",
        "| --- | --- |" + " ---: |" * len(cols),
    ]
    for arm in [UNTRAINED, *t["arms"]]:
        r = t["ifeval"].get(arm)
        if r is None:
            continue
        seeds = "–" if r["seeds"] == [UNSEEDED] else vr._seeds(r["seeds"])
        cells = [vr._cell([r["by_seed"][s][k] for s in r["seeds"]]) for k in keys]
        out.append(f"| {arm} | {seeds} | " + " | ".join(cells) + " |")
    return out


def md_single_teachers(t: dict) -> list[str]:
    st = t["single_teachers"]
    seeds = sorted({s for per in st.values() for s in per})
    out = [
        "## The teacher behind each single-teacher arm, per seed",
        "",
        "Read from datasets/STUDENT/seed-S/ARM/dataset.jsonl (the teacher and its number of lines). "
        "CAR chooses its teacher on each seed's own calibration prompts, so `car` and "
        "`car-verified` need not have the same teacher on every seed.",
        "",
    ]
    if not st:
        return [*out, "No single-teacher dataset recorded yet."]
    out += [
        "| arm | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "| --- |" + " --- |" * len(seeds),
    ]
    for arm, per in st.items():
        cells = [", ".join(f"{n} {c}" for n, c in sorted(per[s].items())) if s in per else "–" for s in seeds]
        out.append(f"| {arm} | " + " | ".join(cells) + " |")
    return out


def md_floor(t: dict) -> list[str]:
    f = t["floor"]
    out = [
        "## Beyond the floor (the reading named beside the primaries)",
        "",
        f"{f['n_floor']} of {f['n_prompts']} IFEval prompts are passed strictly by at least one of "
        f"{len(DEGENERATE)} responses that follow nothing ({', '.join(f'`{n}`' for n in DEGENERATE)}); the rest are the "
        "prompts only following the instructions passes (`experiments/ifeval_floor.py`'s split). "
        "Prompt-level strict, mean ± std over seeds; differences with seed-aware 95% intervals.",
        "",
        "| arm | seeds | all prompts | floor prompts | the rest |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for arm in [UNTRAINED, *t["arms"]]:
        a = f["accuracy"].get(arm)
        if a is None:
            continue
        seeds = vr._seeds(a["seeds"]) if a["seeds"] else "–"
        out.append(
            f"| {arm} | {seeds} | {vr._cell(a['all'])} | {vr._cell(a['floor'])} | {vr._cell(a['rest'])} |"
        )
    out += [
        "",
        "The primaries on the rest are the reading the plan names; the other rows are exploratory.",
        "",
        "| comparison | role | seeds | all prompts | the rest |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for c in f["comparisons"]:
        d, r = c["all"], c["rest"]
        if d is None:
            continue
        out.append(
            f"| {c['a']} − {c['b']} | {'primary' if (c['a'], c['b']) in vr.PRIMARY else 'exploratory'} | "
            f"{vr._seeds(d['seeds'])} | {vr._s(d['mean'])} {vr._iv(d['low'], d['high'])} | "
            + ("–" if r is None else f"{vr._s(r['mean'])} {vr._iv(r['low'], r['high'])}")
            + " |"
        )
    return out


def md_validation(t: dict) -> list[str]:
    v = t["validation"]
    out = ["## The epochs sweep on the validation prompts", ""]
    if v is None:
        return [*out, "No sweep recorded yet (validation.csv)."]
    strategies = list(dict.fromkeys(r["strategy"] for r in v["rows"]))
    out += [
        "Prompt-level strict accuracy on the validation prompts (constrained prompts from base "
        "instructions the pool never uses; validation.csv, Wilson 95%); the length with the best "
        "mean of the swept arms is used for every arm (ties: fewer epochs).",
        "",
        "| epochs | " + " | ".join(strategies) + " | mean |",
        "| ---: |" + " ---: |" * (len(strategies) + 1),
    ]
    for e, m in v["mean"].items():
        cells = []
        for s in strategies:
            r = next((r for r in v["rows"] if r["epochs"] == e and r["strategy"] == s), None)
            cells.append("–" if r is None else f"{r['accuracy']:.3f} {vr._iv(r['ci_low'], r['ci_high'])}")
        mark = " (chosen)" if e == v["chosen"] else ""
        out.append(f"| {e:g}{mark} | " + " | ".join(cells) + f" | {m:.3f} |")
    run = v["chosen_by_run"]
    out += [
        "",
        "The run's own choice (results.md): "
        + (
            "not recorded yet."
            if run is None
            else f"{run:g} epochs"
            + (
                "."
                if run == v["chosen"]
                else ", which differs from the recomputation above: read the run's log."
            )
        ),
    ]
    return out


def md_groups(t: dict) -> list[str]:
    arms = [a for a in [UNTRAINED, *t["arms"]] if a in t["ifeval"]]
    groups = sorted({g for a in arms for n in t["ifeval"][a]["by_seed"].values() for g in n["groups"]})
    out = [
        "## Instruction-level strict accuracy per instruction group (exploratory)",
        "",
        "Mean over seeds (evals/KEY.json); in parentheses the group's instructions in IFEval.",
        "",
        "| group | " + " | ".join(arms) + " |",
        "| --- |" + " ---: |" * len(arms),
    ]
    for g in groups:
        cells, n = [], None
        for a in arms:
            per = [x["groups"][g] for x in t["ifeval"][a]["by_seed"].values() if g in x["groups"]]
            n = n or (per[0]["n"] if per else None)
            cells.append(vr._n(float(np.mean([p["accuracy"] for p in per]))) if per else "–")
        out.append(f"| {g} ({n}) | " + " | ".join(cells) + " |")
    return out


def markdown(t: dict, config: Path | str) -> str:
    """The report as Markdown."""
    lines = [
        "# The instruction run (issue 46): tables from the committed records",
        "",
        f"From the records of `{config}` (`python experiments/instruction_report.py`); student "
        f"{t['student']}; held out: IFEval's {t['n_prompts']['all']} prompts. Nothing trained or "
        "generated here. Evaluated so far: "
        + vr.evaluated_so_far(t)
        + '. `persyn` is persyn-verified (the verified cascade). A "task" in the tables from '
        "verified_report is a prompt's number of instructions.",
        "",
    ]
    # (section, named by the plan): the plan says everything it does not name is exploratory
    sections = [
        (md_ifeval, True),
        (md_single_teachers, True),
        (vr.md_accuracy, False),
        (vr.md_comparisons, True),
        (md_floor, True),
        (vr.md_gain, False),
        (vr.md_routing, False),
        (vr.md_generations, False),
        (vr.md_right_share, False),
        (vr.md_truncation, True),
        (vr.md_detectable, False),
        (md_validation, True),
        (md_groups, False),
    ]
    for k, (part, named) in enumerate(sections, 1):
        head, *body = part(t)
        title = re.sub(r"^## (\d+\. )?", "", head).replace("per task", "per number of instructions")
        if not named and "exploratory" not in title:
            title += " (exploratory)"
        body = [
            x.replace(
                "**The primaries per task**", "**The primaries per number of instructions** (exploratory)"
            )
            for x in body
        ]
        lines += [f"## {k}. {title}", *body, ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("records", type=Path)
    ap.add_argument("--n-boot", type=int, default=vr.N_BOOT, help="bootstrap resamples")
    args = ap.parse_args(argv)
    labels, plan, budget = labels_from_config(args.config)
    t = build(args.records, labels, plan, args.n_boot, budget)
    (args.records / "report.json").write_text(
        json.dumps(vr._jsonable(t), indent=1, ensure_ascii=False) + "\n"
    )
    md = markdown(t, args.config)
    (args.records / "report.md").write_text(md)
    print(md)
    return t


if __name__ == "__main__":
    main()
