"""Per-task tables of an evidence run, read from its committed records (issue 29's write-up).

    python experiments/evidence_tables.py src/persyn/configs/evidence-models.yaml docs/evidence/models

Reads ``RECORDS/results.csv`` (which evaluation record is which student, strategy and seed) and
``RECORDS/evals/KEY.json`` (the per-prompt records), labels every held-out prompt with its
reasoning-gym task (the config's evaluation prompts, drawn again: the draw is seeded), and
writes ``RECORDS/tables.md`` and ``RECORDS/tables.json``:

- accuracy per task and on all held-out prompts, mean ± std over seeds (the layout of the
  PerSyn paper's Table 2: rows are arms, columns are tasks and the average);
- the share of answers cut at the evaluation budget, per task;
- with ``--run-dir`` (the run's own directory, where the datasets are), the routing
  distribution per task: each teacher's share of the dataset lines of each task.

Nothing is trained or generated; a record that is missing is an error naming its key.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from persyn.config import parse_config
from persyn.experiment.config import load_experiment
from persyn.prompts import load_prompts


def task_of_prompts(prompts_cfg, seed: int) -> dict[str, str]:
    """Prompt text → reasoning-gym task name, for the prompt set ``prompts_cfg`` draws."""
    prompts, _ = load_prompts(prompts_cfg, seed, require_answer=False)
    return {p.text: p.metadata.get("source_dataset", "?") for p in prompts}


def per_task(records: list[dict], task: dict[str, str]) -> dict[str, dict[str, float]]:
    """For one evaluation: ``{task: {"n", "accuracy", "truncated"}}``, plus ``"all"``.

    Raises:
        KeyError: a record's prompt is not in the evaluation prompt set (the config is not the
            run's).
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[task[r["prompt"]]].append(r)
    groups["all"] = list(records)
    return {
        name: {
            "n": len(rs),
            "accuracy": float(np.mean([bool(r["correct"]) for r in rs])),
            "truncated": float(np.mean([r.get("finish_reason") == "length" for r in rs])),
        }
        for name, rs in groups.items()
    }


def routing_per_task(
    run_dir: Path, student: str, strategy: str, seed: int, task: dict[str, str]
) -> dict[str, Counter]:
    """Teacher counts per task in one strategy's dataset of one seed (``{task: Counter}``), or
    ``{}`` when the dataset is not in ``run_dir``. A strategy's dataset is
    ``RUN/strategies/NAME/dataset.jsonl``; a variant's (``variants:``) is PerSyn's dataset of
    its own run, ``RUN/variants/NAME/strategies/persyn/dataset.jsonl``; RUN is
    ``run/seed-S/students/STUDENT`` for a ``students:`` config, else ``run/seed-S``."""
    seed_dir = run_dir / "run" / f"seed-{seed}"
    base = seed_dir / "students" / student if (seed_dir / "students" / student).is_dir() else seed_dir
    candidates = [
        base / "strategies" / strategy / "dataset.jsonl",
        base / "variants" / strategy / "strategies" / "persyn" / "dataset.jsonl",
    ]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return {}
    out: dict[str, Counter] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        row = json.loads(line)
        out[task.get(_user_turn(row), "?")][row["teacher"]] += 1
    return out


def _user_turn(row: dict) -> str:
    """The prompt text of a dataset line (its last user turn)."""
    return next(m["content"] for m in reversed(row["messages"]) if m["role"] == "user")


def _cell(values: list[float]) -> str:
    # the sample std, as in results.md (0 for one seed)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.3f} ± {std:.3f}" if values else "–"


def build(config: Path, records: Path, run_dir: Path | None) -> dict:
    """The tables as one JSON-able dict: ``{"tasks", "accuracy", "truncated", "routing"}``.

    ``accuracy[student][strategy][task]`` is the list of per-seed accuracies (seed order as in
    ``results.csv``); ``truncated`` likewise; ``routing[student][strategy][task][teacher]`` the
    mean line count over seeds.

    Raises:
        FileNotFoundError: ``results.csv`` or an evaluation record it names is missing.
    """
    exp = load_experiment(config)
    test_task = task_of_prompts(exp.eval.prompts, exp.eval.seed)
    run = parse_config(exp.run, "experiment run")
    train_task = task_of_prompts(run.prompts, run.seed)
    with open(records / "results.csv") as f:
        rows = list(csv.DictReader(f))
    tasks = sorted({t for t in test_task.values()})
    acc: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    trunc: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    routing: dict = defaultdict(dict)
    for row in rows:
        key = row["eval_key"]
        path = records / "evals" / f"{key}.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: the record results.csv names for {row['strategy']} seed {row['seed']}"
            )
        stats = per_task(json.loads(path.read_text())["records"], test_task)
        for t, s in stats.items():
            acc[row["student"]][row["strategy"]][t].append(s["accuracy"])
            trunc[row["student"]][row["strategy"]][t].append(s["truncated"])
    if run_dir is not None:
        for row in rows:
            if not row["seed"]:
                continue
            counts = routing_per_task(run_dir, row["student"], row["strategy"], int(row["seed"]), train_task)
            slot = routing[row["student"]].setdefault(row["strategy"], defaultdict(list))
            for t, c in counts.items():
                slot[t].append(c)
        for by_strategy in routing.values():
            for strategy, by_task in by_strategy.items():
                by_strategy[strategy] = {
                    t: {
                        name: sum(c[name] for c in cs) / len(cs)
                        for name in sorted({n for c in cs for n in c})
                    }
                    for t, cs in sorted(by_task.items())
                }
    return {
        "tasks": tasks,
        "accuracy": acc,
        "truncated": trunc,
        "routing": routing,
        "n": _task_sizes(rows, records, test_task),
    }


def _task_sizes(rows: list[dict], records: Path, test_task: dict[str, str]) -> dict[str, int]:
    first = json.loads((records / "evals" / f"{rows[0]['eval_key']}.json").read_text())["records"]
    return dict(Counter(test_task[r["prompt"]] for r in first)) | {"all": len(first)}


def markdown(t: dict, config: Path) -> str:
    """The tables of ``build`` as Markdown."""
    cols = [*t["tasks"], "all"]
    lines = [
        "# Per-task tables",
        "",
        f"From the committed records of `{config}` (`python experiments/evidence_tables.py`). "
        "Held-out prompts per task: " + ", ".join(f"{c} {t['n'].get(c, 0)}" for c in cols) + ".",
    ]
    for student, by_strategy in t["accuracy"].items():
        lines += ["", f"## {student}: accuracy per task (mean ± std over seeds)", ""]
        lines += ["| strategy | seeds | " + " | ".join(cols) + " |", "| --- | ---: |" + " ---: |" * len(cols)]
        for strategy, by_task in by_strategy.items():
            seeds = len(by_task["all"])
            lines.append(
                f"| {strategy} | {seeds} | " + " | ".join(_cell(by_task.get(c, [])) for c in cols) + " |"
            )
        lines += ["", f"## {student}: answers cut at the evaluation budget, per task (mean over seeds)", ""]
        lines += ["| strategy | " + " | ".join(cols) + " |", "| --- |" + " ---: |" * len(cols)]
        for strategy, by_task in t["truncated"][student].items():
            lines.append(
                f"| {strategy} | " + " | ".join(f"{np.mean(by_task.get(c, [0])):.1%}" for c in cols) + " |"
            )
        if t["routing"].get(student):
            lines += ["", f"## {student}: dataset lines per teacher and task (mean over seeds)", ""]
            teachers = sorted({n for s in t["routing"][student].values() for c in s.values() for n in c})
            lines += [
                "| strategy | task | " + " | ".join(teachers) + " |",
                "| --- | --- |" + " ---: |" * len(teachers),
            ]
            for strategy, by_task in t["routing"][student].items():
                for task, counts in by_task.items():
                    cells = " | ".join(f"{counts.get(n, 0):.3g}" for n in teachers)
                    lines.append(f"| {strategy} | {task} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("records", type=Path)
    ap.add_argument("--run-dir", type=Path, default=None, help="the run's output_dir (for routing per task)")
    args = ap.parse_args()
    t = build(args.config, args.records, args.run_dir)
    (args.records / "tables.json").write_text(json.dumps(t, indent=1, sort_keys=True) + "\n")
    (args.records / "tables.md").write_text(markdown(t, args.config))
    print((args.records / "tables.md").read_text())


if __name__ == "__main__":
    main()
