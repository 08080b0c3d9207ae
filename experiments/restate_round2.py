"""Corrections of 2026-12-06 to the evidence run's write-up (issue 29, setting 2), recomputed
from the committed records.

    python experiments/restate_round2.py                   # prints the figures
    python experiments/restate_round2.py --write-headers   # also restates the results files' status

Reads only committed files: ``docs/evidence/models/`` (``results.csv``, ``evals/KEY.json``),
``docs/evidence/models-knn/tables.json``, ``docs/evidence/demo/`` (``results.csv``,
``evals/``), ``docs/pool-probe.json`` and the two configs (the held-out prompts are drawn again
from ``evidence-models.yaml`` to label each with its task, as ``evidence_tables.py`` does).
Writes ``docs/evidence/models/restated.json`` and prints it as Markdown. Nothing is trained or
generated.

The figures, one per correction:

1. ``car − strongest`` beside ``persyn − strongest``: the seed-aware and prompt-only intervals of
   ``persyn.experiment.paired.paired_difference`` (bootstrap seed 0, as ``results.md``), and the
   split by task: each task's own difference and its share of the all-prompt difference
   (difference × the task's prompts / all prompts).
2. What ``docs/pool-probe.json`` holds about the probe that qualified setting 2: ``auto``'s
   held-out gain at 100 calibration prompts, and per task the untouched student's accuracy and
   the Oracle's picks. A task-level router's recovered gain needs each prompt's Eq. 2 reward per
   teacher, which the file does not keep: marked not recomputable.
3. The Eq. 2 reward on gcd: a wrong answer's reward bound (α·learnability_norm when another
   teacher is right), the teachers' gcd accuracy and learnability in the probe, a plug-in
   estimate of each teacher's expected reward (approximate: see ``plug_in_reward``), and where the
   learned router (knn follow-up) and the Oracle sent gcd.
4. The smallest effect the design detects (``detectable``), for each comparison.
5. The status line of each records directory (``status``): a finished or stopped run is no
   longer headed "Partial results, run in progress".
6. The demo pool's routing per arm (``results.csv``'s ``routing``), for the sentence on terse
   and verbose steps.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

from persyn.config import parse_config
from persyn.experiment.comparisons import UNTRAINED, correctness, pair
from persyn.experiment.config import load_experiment
from persyn.experiment.paired import paired_difference

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evidence_tables import task_of_prompts  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "docs/evidence/models"
KNN = ROOT / "docs/evidence/models-knn"
DEMO = ROOT / "docs/evidence/demo"
PROBE = ROOT / "docs/pool-probe.json"
CONFIGS = {
    MODELS: ROOT / "src/persyn/configs/evidence-models.yaml",
    KNN: ROOT / "src/persyn/configs/evidence-models-knn.yaml",
    DEMO: ROOT / "src/persyn/configs/evidence-demo.yaml",
}
PARTIAL = "**Partial results, run in progress:**"
RESTATED = "**Not in progress:**"

#: Figures of the issue that the committed data cannot reproduce (correction 2 and 3).
ISSUE_FIGURES = {
    "task_level_router_recovered_four_tasks": 0.30,
    "task_level_router_recovered_three_tasks": 0.04,
    "fitted_router_wrong_share_gcd": "about half",
}


def read_rows(records: Path) -> list[dict]:
    """``results.csv`` with ``seed`` as int (None for the untouched student)."""
    with open(records / "results.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["seed"] = int(r["seed"]) if r["seed"] else None
    return rows


def load_correctness(records: Path, config: Path) -> tuple[dict, list[str], np.ndarray]:
    """Per strategy and seed the 0/1 correctness on the held-out prompts (record order), the
    prompt ids, and each prompt's task (from the config's evaluation prompts, drawn again)."""
    rows = read_rows(records)
    first = json.loads((records / "evals" / f"{rows[0]['eval_key']}.json").read_text())["records"]
    ids = [r["id"] for r in first]
    exp = load_experiment(config)
    task = task_of_prompts(exp.eval.prompts, exp.eval.seed)
    tasks = np.array([task[r["prompt"]] for r in first])
    return correctness(records, rows, ids), ids, tasks


def _short(d: dict) -> dict:
    keys = ("mean", "low", "high", "prompt_low", "prompt_high", "p", "per_seed", "seed_std", "n_seeds")
    return {k: d[k] for k in keys}


def difference_by_task(found: dict, a: str, b: str, tasks: np.ndarray) -> dict:
    """``a − b`` on all prompts and per task (``paired_difference``), with each task's share of
    the all-prompt difference (its difference × its prompts / all prompts)."""
    x, y = pair(found[a], found[b])
    out = {"all": _short(paired_difference(x, y))}
    for t in sorted(set(tasks)):
        m = tasks == t
        d = _short(paired_difference(x[:, m], y[:, m]))
        d["n_prompts"] = int(m.sum())
        d["share_of_all"] = d["mean"] * int(m.sum()) / len(tasks)
        out[t] = d
    return out


def spread(found: dict, a: str, b: str) -> dict:
    """The two SDs of ``a − b`` that set its interval's width: ``seed_sd`` (SD over seeds of the
    per-seed mean difference, ddof 1) and ``prompt_sd`` (SD over prompts of each prompt's
    seed-averaged difference, ddof 1), with the seeds and prompts they come from."""
    x, y = pair(found[a], found[b])
    d = x - y
    within = float(d.var(0, ddof=1).mean())  # a prompt's variance across seeds, averaged
    return {
        "seed_sd": float(d.mean(1).std(ddof=1)),
        "prompt_sd": float(d.mean(0).std(ddof=1)),
        "n_seeds": int(d.shape[0]),
        "n_prompts": int(d.shape[1]),
        # the issue's estimators: the seed SD with ddof 0, the prompt SD net of seed noise
        "seed_sd_ddof0": float(d.mean(1).std(ddof=0)),
        "prompt_sd_net": float(math.sqrt(max(0.0, d.mean(0).var(ddof=1) - within / d.shape[0]))),
    }


def detectable(
    seed_sd: float,
    prompt_sd: float,
    n_seeds: int,
    n_prompts: int,
    effect: float = 0.05,
    alpha: float = 0.05,
    m: int = 1,
) -> dict:
    """The smallest paired difference the design detects, by a normal approximation to the
    seed-aware interval (the approximation of ``experiments/power.py``).

    The mean difference over ``n_seeds`` seeds and ``n_prompts`` shared prompts has
    ``SE = sqrt(seed_sd² / n_seeds + prompt_sd² / n_prompts)``: ``seed_sd`` is the SD of the
    per-seed mean differences (training variance, plus the prompt noise of one seed), and
    ``prompt_sd`` the SD of the per-prompt seed-averaged differences, which enters once since
    every seed answers the same prompts (the two-stage bootstrap of ``paired.py`` resamples
    seeds and prompts independently, so its variance has the same two terms). The test is
    two-sided at ``alpha / m`` (``m`` Holm-corrected primaries: the first is tested at alpha/m).

    Returns:
        ``se``; ``half_width`` (z·SE: the smallest difference whose interval excludes 0 when
        the estimate lands on it); ``mde_80`` ((z + z_0.8)·SE: the true difference detected with
        80% power); ``power`` (the chance that a true difference ``effect`` is detected, both
        tails); ``effect``, ``alpha``, ``m``.
    """
    z = float(norm.ppf(1 - alpha / (2 * m)))
    se = math.sqrt(seed_sd**2 / n_seeds + prompt_sd**2 / n_prompts)
    return {
        "se": se,
        "half_width": z * se,
        "mde_80": (z + float(norm.ppf(0.8))) * se,
        "power": float(norm.cdf(effect / se - z) + norm.cdf(-effect / se - z)),
        "effect": effect,
        "alpha": alpha,
        "m": m,
    }


def probe_facts(probe: dict, student: str = "smollm2") -> dict:
    """What ``pool-probe.json`` holds about the probe that qualified setting 2, per task."""
    s = probe[student]
    names, picks, per_task = s["names"], s["picks"], s["per_task"]
    gain = s["routers"]["100"]["held_out"]["auto"]["gain"]
    tasks = sorted(picks)
    out = {
        "auto_gain_100": {k: gain[k] for k in ("mean", "low", "high")},
        "auto_picks_100": s["routers"]["100"]["auto"],
        "oracle_reward_gain": {k: s["oracle_gain"][k] for k in ("mean", "low", "high")},
        "best_single": s["best_single"],
        "tasks": {},
    }
    for t in tasks:
        n = per_task[f"{t}|{names[0]}"]["n"]
        own = [x for x in names if x.startswith(student)]
        out["tasks"][t] = {
            "n": n,
            "student_accuracy": {x: per_task[f"{t}|{x}"]["accuracy"] for x in own},
            "best_teacher_accuracy": max(per_task[f"{t}|{x}"]["accuracy"] for x in names),
            "oracle_picks": {x: picks[t].get(x, 0) for x in names},
            "oracle_picks_best_single": picks[t].get(s["best_single"], 0),
            "oracle_picks_student_own": sum(picks[t].get(x, 0) for x in own),
        }
    out["task_level_router"] = {
        "recomputable": False,
        "issue_figures": {
            "four_tasks": ISSUE_FIGURES["task_level_router_recovered_four_tasks"],
            "three_tasks": ISSUE_FIGURES["task_level_router_recovered_three_tasks"],
        },
        "needs": "each prompt's Eq. 2 reward per teacher (quality and learnability per prompt, "
        "normalised within the prompt) and the probe's held-out split: the probe's store "
        "(runs/pool-probe, not committed); pool-probe.json keeps per-task means only",
    }
    return out


def plug_in_reward(per_task: dict, names: list[str], task: str, alpha: float) -> dict[str, float]:
    """An approximate expected Eq. 2 reward per teacher on ``task``:
    ``(1 − α)·accuracy + α·minmax(mean learnability)``, the min-max taken across the teachers'
    per-task means. The true expected reward normalises within each prompt (a tie on quality
    gives 0.5 to all), which needs per-prompt values; this plug-in only ranks the teachers."""
    acc = {n: per_task[f"{task}|{n}"]["accuracy"] for n in names}
    lrn = {n: per_task[f"{task}|{n}"]["learnability"] for n in names}
    lo, hi = min(lrn.values()), max(lrn.values())
    return {n: (1 - alpha) * acc[n] + alpha * (lrn[n] - lo) / (hi - lo) for n in names}


def gcd_reward(probe: dict, knn_tables: dict, alpha: float, student: str = "smollm2") -> dict:
    """Correction 3's figures: why the Eq. 2 target points at the wrong teachers on gcd."""
    s = probe[student]
    names, per_task = s["names"], s["per_task"]
    plug = plug_in_reward(per_task, names, "gcd", alpha)
    routing = knn_tables["routing"][student]
    return {
        "alpha": alpha,
        "wrong_reward_max_if_another_right": alpha,  # (1 − α)·0 + α·1
        "right_reward_min_if_another_wrong": 1 - alpha,  # (1 − α)·1 + α·0
        "wrong_reward_max_if_all_wrong": (1 - alpha) * 0.5 + alpha,  # a tie on quality gives 0.5
        "probe_gcd": {
            n: {
                "accuracy": per_task[f"gcd|{n}"]["accuracy"],
                "learnability": per_task[f"gcd|{n}"]["learnability"],
            }
            for n in names
        },
        "plug_in_expected_reward_gcd": dict(sorted(plug.items(), key=lambda kv: -kv[1])),
        "routing_gcd": {
            arm: routing[arm]["gcd"] for arm in ("persyn-knn", "oracle", "persyn") if arm in routing
        },
        "fitted_router_wrong_share": {
            "recomputable": False,
            "issue_figure": ISSUE_FIGURES["fitted_router_wrong_share_gcd"],
            "needs": "each routed gcd prompt's teachers' quality and learnability (the run's store, "
            "runs/evidence-models, not committed) to fit the expected reward and count its wrong lines",
        },
    }


def status(records: Path, config: Path, found: dict | None = None) -> dict:
    """The state of a records directory: its progress line, whether ``results.md`` is headed as
    a run in progress, the fine-tunes the config plans that have no record (for a config with
    one student and no per-student lists), and the line that replaces the header."""
    progress = (records / "progress.txt").read_text().strip()
    md = (records / "results.md").read_text()
    rows = read_rows(records)
    ran = sorted(
        {(r["strategy"], r["seed"]) for r in rows if r["seed"] is not None}, key=lambda x: (x[1], x[0])
    )
    exp = load_experiment(config)
    run = parse_config(exp.run, "experiment run")
    planned = None
    missing: list[tuple[str, int]] = []
    if len(run.students) == 1:
        planned = [(s, seed) for s in exp.strategies for seed in exp.seeds]
        missing = [p for p in planned if p not in set(ran)]  # in the config's order of arms
    out = {
        "progress_txt": progress,
        "headed_in_progress": PARTIAL in md,
        "ran": len(ran),
        "planned": None if planned is None else len(planned),
        "missing": [f"{s} seed {seed}" for s, seed in missing],
    }
    out["line"] = restated_line(records, out, found)
    return out


def restated_line(records: Path, st: dict, found: dict | None) -> str | None:
    """The status line for a run that is not in progress (None for a finished one)."""
    if not st["headed_in_progress"] and st["progress_txt"] == "done":
        return None
    if records == DEMO and found is not None:
        # setting 1 stopped by its rule on seed 0: the rule's pair, oracle − strongest
        d = paired_difference(found["oracle"][0], found["strongest"][0])
        arms = sorted(a for a in found if a != UNTRAINED)
        return (
            f"{RESTATED} stopped at seed 0 by its stop rule, as fixed on 2026-12-03 (oracle − strongest on seed 0: "
            f"{d['mean']:+.3f}, prompt-only 95% [{d['prompt_low']:+.3f}, {d['prompt_high']:+.3f}], "
            "not above 0: no headroom); only seed 0's fine-tunes ran ("
            + ", ".join(a for a in arms)
            + "); see docs/experiments.md, Setting 1 (restated 2026-12-06)."
        )
    if st["missing"]:
        return (
            f"{RESTATED} stopped with {st['ran']} of {st['planned']} fine-tunes run; cut, never run: "
            + ", ".join(st["missing"])
            + " (optional arms; docs/experiments.md, Compute, cuts and deviations; restated 2026-12-06)."
        )
    return f"{RESTATED} every fine-tune ran (restated 2026-12-06)."


def write_status(records: Path, line: str) -> None:
    """Replace ``results.md``'s in-progress header (or an earlier restated line) with ``line``
    and ``progress.txt``'s progress line with it too (without the Markdown)."""
    md_path = records / "results.md"
    md = md_path.read_text()
    pattern = re.compile(r"^(" + re.escape(PARTIAL) + "|" + re.escape(RESTATED) + r").*$", re.M)
    if pattern.search(md):
        md = pattern.sub(lambda _: line + "  ", md, count=1)
        md_path.write_text(md)
    plain = line.replace(RESTATED, "not in progress:").strip()
    (records / "progress.txt").write_text(plain + "\n")


def demo_routing(records: Path) -> dict:
    """Dataset lines per teacher for each of the demo's arms (``results.csv``'s ``routing``) and
    its accuracy (seed 0)."""
    out = {}
    for r in read_rows(records):
        if r["seed"] is None or r["student"] != "smollm2":
            continue
        out[r["strategy"]] = {"routing": json.loads(r["routing"]), "accuracy": float(r["accuracy"])}
    return out


def build() -> dict:
    found, _, tasks = load_correctness(MODELS, CONFIGS[MODELS])
    out: dict = {"n_prompts": {t: int((tasks == t).sum()) for t in sorted(set(tasks))} | {"all": len(tasks)}}
    out["differences"] = {
        f"{a} − {b}": difference_by_task(found, a, b, tasks)
        for a, b in [("car", "strongest"), ("persyn", "strongest"), ("oracle", "car"), ("persyn", "car")]
    }
    probe = json.loads(PROBE.read_text())
    rows = read_rows(MODELS)
    car_teacher = {
        r["seed"]: next(t for t, n in json.loads(r["routing"]).items() if n)
        for r in rows
        if r["strategy"] == "car"
    }
    shared = [json.loads(r["routing"])[car_teacher[r["seed"]]] for r in rows if r["strategy"] == "persyn"]
    # persyn's lines whose teacher is car's (the same response: one store), mean over seeds
    n_train = sorted({int(r["n_train"]) for r in rows if r["strategy"] == "persyn"})
    out["persyn_lines_shared_with_car"] = {"mean": float(np.mean(shared)), "per_seed": shared, "of": n_train}
    out["setting_probe"] = probe_facts(probe)
    alpha = parse_config(load_experiment(CONFIGS[MODELS]).run, "experiment run").alpha
    out["gcd_reward"] = gcd_reward(probe, json.loads((KNN / "tables.json").read_text()), alpha)
    out["detectable"] = {}
    for a, b in [("oracle", "car"), ("car", "strongest"), ("persyn", "strongest"), ("persyn", "car")]:
        sp = spread(found, a, b)
        d = out["differences"][f"{a} − {b}"]["all"]
        args = (sp["seed_sd"], sp["prompt_sd"], sp["n_seeds"], sp["n_prompts"])
        out["detectable"][f"{a} − {b}"] = {
            **sp,
            "level_0.05": detectable(*args),
            "holm_2": detectable(*args, m=2),  # as one of the run's two Holm-corrected primaries
            "bootstrap_half_width": (d["high"] - d["low"]) / 2,
        }
    # oracle − car with the issue's estimators (its 0.033 and 0.32), the same function
    sp = spread(found, "oracle", "car")
    issue = (sp["seed_sd_ddof0"], sp["prompt_sd_net"], sp["n_seeds"], sp["n_prompts"])
    out["detectable"]["oracle − car, seed SD ddof 0, prompt SD net of seed noise"] = {
        "seed_sd": issue[0],
        "prompt_sd": issue[1],
        "n_seeds": issue[2],
        "n_prompts": issue[3],
        "level_0.05": detectable(*issue),
        "holm_2": detectable(*issue, m=2),
    }
    demo_rows = read_rows(DEMO)
    demo_ids = [
        r["id"]
        for r in json.loads((DEMO / "evals" / f"{demo_rows[0]['eval_key']}.json").read_text())["records"]
    ]
    demo_found = correctness(DEMO, [r for r in demo_rows if r["student"] == "smollm2"], demo_ids)
    out["status"] = {
        str(d.relative_to(ROOT)): status(d, CONFIGS[d], demo_found if d == DEMO else None)
        for d in (MODELS, KNN, DEMO)
    }
    out["demo_routing"] = demo_routing(DEMO)
    return out


def _iv(d: dict) -> str:
    return (
        f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] seed-aware, "
        f"[{d['prompt_low']:+.3f}, {d['prompt_high']:+.3f}] prompt-only"
    )


def markdown(out: dict) -> str:
    lines = ["# Corrections of 2026-12-06, recomputed (experiments/restate_round2.py)", ""]
    lines += ["## 1. Paired differences by task", ""]
    for name, by_task in out["differences"].items():
        lines.append(
            f"- **{name}**: {_iv(by_task['all'])}; per seed "
            + ", ".join(f"{x:+.3f}" for x in by_task["all"]["per_seed"])
        )
        for t, d in by_task.items():
            if t != "all":
                lines.append(f"  - {t} ({d['n_prompts']}): {_iv(d)}; share of all {d['share_of_all']:+.3f}")
    sp = out["setting_probe"]
    sh = out["persyn_lines_shared_with_car"]
    lines.append(
        f"- persyn's lines with car's teacher: {sh['mean']:.1f} of {sh['of']} (per seed {sh['per_seed']})"
    )
    lines += ["", "## 2. The probe that qualified setting 2 (docs/pool-probe.json)", ""]
    g = sp["auto_gain_100"]
    lines.append(
        f"- auto at 100 calibration prompts: {g['mean']:.2f} [{g['low']:.2f}, {g['high']:.2f}], picks {sp['auto_picks_100']}"
    )
    for t, f in sp["tasks"].items():
        lines.append(
            f"- {t} ({f['n']}): student's own answers right {f['student_accuracy']}, best teacher "
            f"{f['best_teacher_accuracy']:.2f}; Oracle picks {f['oracle_picks']} (best single "
            f"{sp['best_single']} {f['oracle_picks_best_single']}, student's own {f['oracle_picks_student_own']})"
        )
    lines.append(
        f"- task-level router: not recomputable ({sp['task_level_router']['needs']}); issue: {sp['task_level_router']['issue_figures']}"
    )
    gr = out["gcd_reward"]
    lines += ["", "## 3. The Eq. 2 reward on gcd", ""]
    lines.append(
        f"- α {gr['alpha']}: a wrong answer earns at most {gr['wrong_reward_max_if_another_right']:.2f} when another "
        f"teacher is right (at most {gr['wrong_reward_max_if_all_wrong']:.2f} when all are wrong); a right one at least "
        f"{gr['right_reward_min_if_another_wrong']:.2f}"
    )
    lines.append(
        "- probe gcd: "
        + "; ".join(f"{n} {v['accuracy']:.2f} / {v['learnability']:.2f}" for n, v in gr["probe_gcd"].items())
    )
    lines.append(
        "- plug-in expected reward on gcd: "
        + ", ".join(f"{n} {v:.3f}" for n, v in gr["plug_in_expected_reward_gcd"].items())
    )
    for arm, r in gr["routing_gcd"].items():
        lines.append(f"- {arm} gcd lines: " + ", ".join(f"{n} {v:.3g}" for n, v in r.items()))
    lines += ["", "## 4. Smallest detectable effect", ""]
    for name, d in out["detectable"].items():
        head = f"- {name}: seed SD {d['seed_sd']:.3f}, prompt SD {d['prompt_sd']:.3f}, {d['n_seeds']} × {d['n_prompts']}"
        if "bootstrap_half_width" in d:
            head += f", bootstrap half-width {d['bootstrap_half_width']:.3f}"
        lines.append(head)
        for key, label in (("level_0.05", "at 0.05"), ("holm_2", "Holm, 2 primaries")):
            x = d[key]
            lines.append(
                f"  - {label}: SE {x['se']:.4f}, half-width {x['half_width']:.3f}, 80%-power effect "
                f"{x['mde_80']:.3f}, power for +{x['effect']:.2f} {x['power']:.0%}"
            )
    lines += ["", "## 5. Status of the records", ""]
    for d, st in out["status"].items():
        lines.append(
            f"- {d}: progress.txt {st['progress_txt']!r}; headed in progress {st['headed_in_progress']}; line: {st['line']}"
        )
    lines += ["", "## 6. Demo routing (seed 0)", ""]
    for arm, r in out["demo_routing"].items():
        lines.append(f"- {arm} ({r['accuracy']:.3f}): {r['routing']}")
    return "\n".join(lines) + "\n"


def _ci(d: dict, low: str = "low", high: str = "high") -> str:
    return f"{d['mean']:+.3f} [{d[low]:+.3f}, {d[high]:+.3f}]"


def doc_tables(out: dict) -> str:
    """The tables of docs/experiments.md's corrections of 2026-12-06, as pasted there."""
    diffs, det = out["differences"], out["detectable"]
    pair_names = ("car − strongest", "persyn − strongest")
    lines = [
        "| task (prompts) | " + " | ".join(pair_names) + " |",
        "| --- | ---: | ---: |",
    ]
    for t, n in out["n_prompts"].items():
        cells = []
        for name in pair_names:
            d = diffs[name][t]
            share = "" if t == "all" else f" ({d['share_of_all']:+.3f} of all)"
            cells.append(_ci(d) + share)
        lines.append(f"| {t} ({n}) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| comparison | seed SD | prompt SD | SE | half-width at 0.05 (Holm, 2) | bootstrap half-width "
        "| power for +0.05 at 0.05 (Holm, 2) | effect found with 80% power (Holm, 2) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ("persyn − car", "oracle − car", "persyn − strongest", "car − strongest"):
        d = det[name]
        a, h = d["level_0.05"], d["holm_2"]
        lines.append(
            f"| {name} | {d['seed_sd']:.3f} | {d['prompt_sd']:.3f} | {a['se']:.3f} | "
            f"{a['half_width']:.3f} ({h['half_width']:.3f}) | {d['bootstrap_half_width']:.3f} | "
            f"{a['power']:.0%} ({h['power']:.0%}) | {a['mde_80']:.3f} ({h['mde_80']:.3f}) |"
        )
    # the doc's minus sign (U+2212) before a number
    return "\n".join(re.sub(r"(?<!\w)-(?=\d)", "\u2212", line) for line in lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--write-headers", action="store_true", help="restate the status line of stopped runs' results files"
    )
    args = ap.parse_args()
    out = build()
    (MODELS / "restated.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    if args.write_headers:
        for d, st in out["status"].items():
            if st["line"]:
                write_status(ROOT / d, st["line"])
    print(markdown(out))
    print("## Tables for docs/experiments.md\n")
    print(doc_tables(out))


if __name__ == "__main__":
    main()
