"""Restate the old experiments' claims with an interval that counts seed-to-seed variance.

The old Montessori and strategy experiments kept per-seed accuracies but, for the strategy
experiment, no per-prompt records, so the two-stage bootstrap of ``persyn experiment`` cannot be
run on them. What they do support: the per-seed paired differences (same prompts, same seed),
treated as a sample of seeds, with a Student-t interval over seeds (df = seeds - 1). With 3
seeds t = 4.30, so only a large, consistent difference clears 0.

Reads the committed ``docs/montessori-results.json`` and ``docs/experiment-results.csv``;
writes ``docs/restated-claims.json`` and prints a Markdown table.

    python experiments/restate_claims.py
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

from scipy import stats

DOCS = Path(__file__).resolve().parent.parent / "docs"

#: The claims the docs made, as (source, a, b): a - b per seed.
MONTESSORI = [
    ("influence-1", "loss-1"),
    ("influence-1", "learnability-1"),
    ("influence-1", "base"),
    ("influence-2", "influence-1"),
]
STRATEGIES = [("persyn", "strongest"), ("persyn", "random"), ("car", "persyn"), ("oracle", "persyn")]


def seed_interval(diffs: list[float], level: float = 0.95) -> dict:
    """Mean of per-seed differences with a Student-t interval over seeds.

    Args:
        diffs: one paired difference per seed (accuracy units, same prompts).
        level: the interval's coverage.

    Returns:
        ``mean``, ``low``, ``high``, ``per_seed``, ``seed_std``, ``n_seeds``.

    Raises:
        ValueError: fewer than 2 seeds (no spread to estimate).
    """
    if len(diffs) < 2:
        raise ValueError(f"a seed interval needs at least 2 seeds, got {len(diffs)}")
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * sd / len(diffs) ** 0.5
    return {
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "per_seed": diffs,
        "seed_std": sd,
        "n_seeds": len(diffs),
    }


def montessori() -> dict:
    """The Montessori claims: per-seed differences from the committed students' accuracies."""
    data = json.loads((DOCS / "montessori-results.json").read_text())
    out = {}
    for a, b in MONTESSORI:
        acc_a, acc_b = data["students"][a]["accuracy"], data["students"][b]["accuracy"]
        row = seed_interval([x - y for x, y in zip(acc_a, acc_b, strict=True)])
        prompt_only = data["paired"].get(f"{a} - {b}")
        if prompt_only:
            row["prompt_only"] = [prompt_only["low"], prompt_only["high"]]
        out[f"{a} - {b}"] = row
    return out


def strategies() -> dict:
    """The old strategy experiment's claims (docs/experiment-results.csv, 116 prompts, 3 seeds)."""
    acc: dict[str, dict[int, float]] = defaultdict(dict)
    with open(DOCS / "experiment-results.csv") as f:
        for row in csv.DictReader(f):
            if row["seed"]:
                acc[row["strategy"]][int(row["seed"])] = float(row["accuracy"])
    out = {}
    for a, b in STRATEGIES:
        seeds = sorted(set(acc[a]) & set(acc[b]))
        out[f"{a} - {b}"] = seed_interval([acc[a][s] - acc[b][s] for s in seeds])
    return out


def main() -> None:
    result = {"montessori": montessori(), "strategies": strategies()}
    (DOCS / "restated-claims.json").write_text(json.dumps(result, indent=1) + "\n")
    print(
        "| experiment | difference | mean | per seed | 95% t-interval over seeds | prompt-only (as reported) |"
    )
    print("| --- | --- | ---: | --- | --- | --- |")
    for name, rows in result.items():
        for diff, r in rows.items():
            per = ", ".join(f"{d:+.3f}" for d in r["per_seed"])
            po = r.get("prompt_only")
            po_text = f"[{po[0]:+.3f}, {po[1]:+.3f}]" if po else "–"
            print(
                f"| {name} | {diff} | {r['mean']:+.3f} | {per} | [{r['low']:+.3f}, {r['high']:+.3f}] | {po_text} |"
            )


if __name__ == "__main__":
    main()
