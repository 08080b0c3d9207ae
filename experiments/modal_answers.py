"""Did the students learn the task, or its most common answer? An exploratory check of an
evidence run's held-out accuracy, read from its committed records (nothing trained or
generated).

    python experiments/modal_answers.py src/persyn/configs/evidence-verified.yaml docs/evidence/verified
    python experiments/modal_answers.py src/persyn/configs/evidence-models.yaml docs/evidence/models \\
        --compare persyn:strongest car:strongest persyn:car

Found while writing up round 3 (issue 45), not planned before it: on reasoning-gym's
letter_counting, 58% of the held-out prompts have the answer 1, and a student that says "1" to
every one of them scores about 0.56 without counting anything; on gcd a third of the answers are
2. So, per task: the modal gold answer of the held-out prompts and its share (what a constant
answer would score, were every such answer checked right), and each arm's accuracy on the
prompts whose answer is the modal one and on the rest (mean ± std over seeds). A student that
learned the constant scores near 1 on the first and near 0 on the second; one that learned the
task scores on both (but a student biased *away* from the modal answer scores well on the
second: neither split measures the skill alone). So also the balanced accuracy, the mean over a
task's answer classes of the accuracy within each, on which a constant answer scores at most one
over the number of classes. Then the named paired comparisons (seed-aware and prompt-only 95%, as in the
runs' own tables) on all prompts and on the non-modal prompts only, per task and overall.

Writes ``RECORDS/modal.json`` (or ``--out``) and prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from persyn.core.errors import InputError
from persyn.core.io import write_atomic
from persyn.experiment.comparisons import UNSEEDED, UNTRAINED

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verified_report import (  # noqa: E402
    PRIMARY,
    SECONDARY,
    Evals,
    compare,
    eval_records,
    labels_from_config,
    load_evals,
    read_results,
)

N_BOOT = 2000
#: An answer class counts in the balanced accuracy when at least this many held-out prompts have it.
MIN_CLASS = 5


def golds(records: Path, row: dict, ids: list[str]) -> np.ndarray:
    """The gold answers (as strings) of one evaluation's records, in the order of ``ids``.

    Raises:
        InputError: a record has no ``gold`` (the evaluation did not check against references),
            or a prompt of ``ids`` is missing.
    """
    by_id = {r["id"]: r for r in eval_records(records, row)}
    out = []
    for i in ids:
        rec = by_id.get(i)
        if rec is None or "gold" not in rec or rec["gold"] is None:
            raise InputError(f"evals/{row['eval_key']}.json: prompt {i!r} has no gold answer")
        out.append(str(rec["gold"]).strip())
    return np.array(out)


def modal_answers(tasks: np.ndarray, gold: np.ndarray) -> dict[str, dict]:
    """Per task: ``modal`` (the most common gold answer; ties broken by the smaller string),
    ``share`` (its share of the task's prompts), ``n``, and ``mask`` (``[P]`` bool, the task's
    prompts whose gold is the modal answer)."""
    out = {}
    for t in sorted(set(tasks)):
        in_task = tasks == t
        counts = Counter(gold[in_task])
        modal = min(counts, key=lambda a: (-counts[a], a))
        out[t] = {
            "modal": modal,
            "share": counts[modal] / int(in_task.sum()),
            "n": int(in_task.sum()),
            "mask": in_task & (gold == modal),
        }
    return out


def split_accuracy(ev: Evals, modal: dict[str, dict]) -> dict[str, dict]:
    """Per arm and task: per-seed accuracy on the modal-answer prompts (``on_modal``) and on the
    others (``off_modal``), and the seeds; the untouched student under ``UNTRAINED``."""
    out: dict[str, dict] = {}
    for arm, by_seed in ev.correct.items():
        seeds = sorted(by_seed)
        cells = {}
        for t, m in modal.items():
            in_task = ev.tasks == t
            on, off = m["mask"], in_task & ~m["mask"]
            cells[t] = {
                "on_modal": [float(by_seed[s][on].mean()) for s in seeds],
                "off_modal": [float(by_seed[s][off].mean()) if off.any() else None for s in seeds],
                "all": [float(by_seed[s][in_task].mean()) for s in seeds],
            }
        off_all = ~np.any([m["mask"] for m in modal.values()], axis=0)
        cells["all"] = {
            "on_modal": [float(by_seed[s][~off_all].mean()) for s in seeds],
            "off_modal": [float(by_seed[s][off_all].mean()) for s in seeds],
            "all": [float(by_seed[s].mean()) for s in seeds],
        }
        out[arm] = {"seeds": [s for s in seeds if s != UNSEEDED], "tasks": cells}
    return out


def balanced_accuracy(ev: Evals, tasks: list[str], gold: np.ndarray, min_prompts: int = MIN_CLASS) -> dict:
    """Per arm and task, per seed: the mean over the task's answer classes (gold answers with at
    least ``min_prompts`` held-out prompts) of the accuracy within each class (balanced accuracy,
    the mean per-class recall): a constant answer scores 1 / (number of classes) at most, whatever
    the skew. ``{arm: {"seeds", "tasks": {task: [per seed]}, "classes": {task: n}}}``."""
    out: dict[str, dict] = {}
    classes = {}
    for t in tasks:
        counts = Counter(gold[ev.tasks == t])
        classes[t] = sorted(a for a, n in counts.items() if n >= min_prompts)
    for arm, by_seed in ev.correct.items():
        seeds = sorted(by_seed)
        cells = {
            t: [
                float(np.mean([by_seed[s][(ev.tasks == t) & (gold == a)].mean() for a in classes[t]]))
                if classes[t]
                else None
                for s in seeds
            ]
            for t in tasks
        }
        out[arm] = {
            "seeds": [s for s in seeds if s != UNSEEDED],
            "tasks": cells,
            "classes": {t: len(c) for t, c in classes.items()},
        }
    return out


def _subset(correct: dict, mask: np.ndarray) -> dict:
    return {arm: {s: v[mask] for s, v in by_seed.items()} for arm, by_seed in correct.items()}


def comparisons(
    ev: Evals, modal: dict[str, dict], pairs: list[tuple[str, str]], n_boot: int = N_BOOT
) -> list:
    """Each ``(a, b)`` whose arms are both evaluated: ``a − b`` (``verified_report.compare``) on
    all prompts and on the non-modal prompts, overall and per task; ``{"a", "b", "rows":
    {scope: {subset: difference}}}``, scope ``all`` or a task, subset ``all`` or ``off_modal``."""
    off_all = ~np.any([m["mask"] for m in modal.values()], axis=0)
    scopes = {"all": np.ones(len(ev.ids), bool)} | {t: ev.tasks == t for t in modal}
    out = []
    for a, b in pairs:
        if a not in ev.correct or b not in ev.correct:
            continue
        rows = {}
        for scope, in_scope in scopes.items():
            rows[scope] = {
                "all": compare(_subset(ev.correct, in_scope), a, b, n_boot),
                "off_modal": compare(_subset(ev.correct, in_scope & off_all), a, b, n_boot),
            }
        out.append({"a": a, "b": b, "rows": rows})
    return out


def _ms(values: list) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "–"
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return f"{np.mean(v):.3f} ± {sd:.3f}"


def _diff(d: dict | None) -> str:
    if d is None:
        return "–"
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def markdown(modal: dict, acc: dict, comps: list, arms: list[str], balanced: dict | None = None) -> list[str]:
    """The Markdown tables (see the module docstring)."""
    out = [
        "**The modal answer per task** (held-out prompts):",
        "",
        "| task | prompts | modal answer | its share |",
        "| --- | ---: | ---: | ---: |",
    ]
    out += [f"| {t} | {m['n']} | {m['modal']} | {m['share']:.3f} |" for t, m in modal.items()]
    out += [
        "",
        "**Accuracy on the modal-answer prompts / on the others** (mean ± std over seeds):",
        "",
        "| arm | seeds | " + " | ".join(f"{t}: modal / others" for t in [*modal, "all"]) + " |",
        "| --- | --- |" + " ---: |" * (len(modal) + 1),
    ]
    for arm in arms:
        if arm not in acc:
            continue
        a = acc[arm]
        seeds = "–" if not a["seeds"] else ", ".join(map(str, a["seeds"]))
        cells = [
            f"{_ms(a['tasks'][t]['on_modal'])} / {_ms(a['tasks'][t]['off_modal'])}" for t in [*modal, "all"]
        ]
        out.append(f"| {arm} | {seeds} | " + " | ".join(cells) + " |")
    if balanced:
        tasks = list(modal)
        n_cls = next(iter(balanced.values()))["classes"]
        out += [
            "",
            f"**Balanced accuracy** (the mean over a task's answer classes with at least {MIN_CLASS} "
            "held-out prompts of the accuracy within each; a constant answer scores at most "
            "1 / classes; mean ± std over seeds):",
            "",
            "| arm | " + " | ".join(f"{t} ({n_cls[t]} classes)" for t in tasks) + " |",
            "| --- |" + " ---: |" * len(tasks),
        ]
        for arm in arms:
            if arm in balanced:
                out.append(f"| {arm} | " + " | ".join(_ms(balanced[arm]["tasks"][t]) for t in tasks) + " |")
    out += [
        "",
        "**Paired differences on all prompts and on the non-modal prompts only** (seed-aware 95%; "
        "exploratory):",
        "",
        "| comparison | scope | all prompts | non-modal prompts | seeds |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for c in comps:
        for scope, r in c["rows"].items():
            seeds = ", ".join(map(str, (r["all"] or {}).get("seeds", [])))
            out.append(
                f"| {c['a']} − {c['b']} | {scope} | {_diff(r['all'])} | {_diff(r['off_modal'])} | {seeds} |"
            )
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items() if k != "mask"}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("records", type=Path)
    ap.add_argument(
        "--compare",
        nargs="*",
        default=None,
        help="A:B pairs (A − B); default: round 3's primary and secondary comparisons",
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--n-boot", type=int, default=N_BOOT)
    args = ap.parse_args(argv)
    labels, _ = labels_from_config(args.config)
    rows = read_results(args.records)
    ev = load_evals(args.records, rows, labels.eval_task)
    gold = golds(args.records, rows[0], ev.ids)
    modal = modal_answers(ev.tasks, gold)
    acc = split_accuracy(ev, modal)
    if args.compare is None:
        pairs = [*PRIMARY, *((a, b) for a, b, _ in SECONDARY)]
    else:
        pairs = []
        for spec in args.compare:
            a, sep, b = spec.partition(":")
            if not sep or not a or not b:
                raise SystemExit(f"--compare: expected A:B, got {spec!r}")
            pairs.append((a, b))
    comps = comparisons(ev, modal, pairs, args.n_boot)
    balanced = balanced_accuracy(ev, list(modal), gold)
    arms = [UNTRAINED, *dict.fromkeys(r["strategy"] for r in rows if r["strategy"] != UNTRAINED)]
    print("\n".join(markdown(modal, acc, comps, arms, balanced)))
    result = _jsonable(
        {"modal": modal, "accuracy": acc, "balanced": balanced, "comparisons": comps, "n_boot": args.n_boot}
    )
    out = args.out or args.records / "modal.json"
    write_atomic(out, json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
