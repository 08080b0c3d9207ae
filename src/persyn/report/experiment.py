"""An experiment's HTML report: what ``persyn experiment`` wrote (``results.csv``, ``paired.csv``,
``validation.csv``, its PNG plots and, where ``experiments/evidence_tables.py`` ran, the per-task
``tables.json``) as one self-contained page, for an experiment's output directory or the records
directory it copies its results to."""

from __future__ import annotations

import base64
import csv
import json
import statistics
from pathlib import Path

from persyn.core.errors import InputError, PersynError
from persyn.core.io import write_atomic
from persyn.report.html import esc, img, note, page, table

# The files that make a directory an experiment's (results.md alone is prose, not read).
EXPERIMENT_FILES = ("results.csv", "paired.csv")
_NUMERIC = {
    "results.csv": ("accuracy", "correct", "n_eval", "n_train", "generations"),
    "paired.csv": ("mean", "low", "high", "p", "prompt_low", "prompt_high", "seed_std", "n_seeds"),
    "validation.csv": ("accuracy",),
}


def is_experiment_dir(path: Path) -> bool:
    """True when ``path`` holds an experiment's ``results.csv`` and ``paired.csv``."""
    return all((Path(path) / f).is_file() for f in EXPERIMENT_FILES)


def read_csv(path: Path) -> list[dict]:
    """The rows of one of the experiment's CSV files, the columns in ``_NUMERIC`` as floats
    (an empty cell stays None).

    Raises:
        InputError: a required column is missing, or a numeric cell is not a number (the
            message names the file, the line and the value).
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = _NUMERIC.get(path.name, ())
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}: no column {', '.join(missing)} (columns: {reader.fieldnames})")
        rows = []
        for line, row in enumerate(reader, start=2):
            for col in need:
                cell = row[col]
                try:
                    row[col] = float(cell) if cell not in ("", None) else None
                except ValueError:
                    raise InputError(f"{path}:{line}: {col} is not a number: {cell!r}") from None
            rows.append(row)
    return rows


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def _interval(lo: float | None, hi: float | None) -> str:
    return "–" if lo is None or hi is None else f"[{_signed(lo)}, {_signed(hi)}]"


def accuracy_section(rows: list[dict]) -> str:
    """Per student, one row per strategy: seeds, mean ± sample std of accuracy over seeds, the
    per-seed accuracies, the mean share of answers cut at the evaluation budget, training lines,
    generations and the SFT minutes summed over seeds (the same figures as ``results.md``)."""
    parts = []
    for student in dict.fromkeys(r["student"] for r in rows):
        groups: dict[str, list[dict]] = {}
        for r in rows:
            if r["student"] == student:
                groups.setdefault(r["strategy"], []).append(r)
        body = []
        for name, rs in groups.items():
            accs = [r["accuracy"] for r in rs]
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            trunc = statistics.fmean(float(r.get("truncated") or 0.0) for r in rs)
            sft_min = sum(float(r.get("train_seconds") or 0.0) for r in rs) / 60
            body.append(
                [
                    esc(name),
                    str(len(rs)),
                    f"{statistics.fmean(accs):.3f} ± {std:.3f}",
                    ", ".join(f"{a:.3f}" for a in accs),
                    f"{trunc:.1%}",
                    f"{rs[0]['n_train']:.0f}",
                    f"{rs[0]['generations']:.0f}",
                    f"{sft_min:.1f}",
                ]
            )
        header = ["strategy", "seeds", "accuracy (mean ± std)", "per seed", "truncated", "train lines",
                  "generations", "SFT min"]  # fmt: skip
        parts.append(f"<h3>{esc(student)}</h3>\n" + table(header, body, left=1))
    return "\n".join(parts)


def paired_section(rows: list[dict]) -> str:
    """Per student, persyn − each strategy: the role (primary comparisons first), the mean
    difference over seeds, its seed-aware 95% interval (seeds and prompts resampled) and the
    prompt-only one (prompts resampled, models fixed), the per-seed differences and their std,
    and the p-value (Holm-corrected for the primary comparisons, uncorrected otherwise)."""
    parts = []
    for student in dict.fromkeys(r["student"] for r in rows):
        mine = [r for r in rows if r["student"] == student]
        mine.sort(key=lambda r: r.get("role") != "primary")  # stable: the file's order within a role
        body = []
        for r in mine:
            holm = r.get("p_holm") not in (None, "")
            p = f"{float(r['p_holm']):.3f} (Holm)" if holm else f"{r['p']:.3f}"
            mark = " ✓" if r["low"] > 0 or r["high"] < 0 else ""
            per_seed = ", ".join(_signed(x) for x in json.loads(r.get("per_seed") or "[]"))
            body.append(
                [
                    esc(f"{r['a']} − {r['b']}"),
                    esc(r.get("role") or "exploratory"),
                    _signed(r["mean"]) + mark,
                    _interval(r["low"], r["high"]),
                    _interval(r["prompt_low"], r["prompt_high"]),
                    per_seed,
                    f"{r['seed_std']:.3f}",
                    p,
                ]
            )
        header = ["comparison", "role", "difference", "seed-aware 95%", "prompt-only 95%", "per seed",
                  "seed std", "p"]  # fmt: skip
        parts.append(f"<h3>{esc(student)}</h3>\n" + table(header, body, left=2))
    return note(
        "✓: the seed-aware interval excludes 0. Primary comparisons were named before the run; "
        "every other row is exploratory."
    ) + "\n".join(parts)


def per_task_section(tables: dict, order: list[str] = ()) -> str:
    """Accuracy per task (mean ± std over seeds) from ``tables.json`` (``{"accuracy": {student:
    {strategy: {task: [per-seed accuracy]}}}}``), strategies in ``order`` first."""
    parts = []
    for student, by_strategy in tables.get("accuracy", {}).items():
        tasks = sorted({t for cells in by_strategy.values() for t in cells if t != "all"}) + ["all"]
        rank = {name: i for i, name in enumerate(order)}
        body = []
        for name, cells in sorted(by_strategy.items(), key=lambda kv: rank.get(kv[0], len(rank))):
            row = [esc(name)]
            for t in tasks:
                v = cells.get(t) or []
                sd = statistics.stdev(v) if len(v) > 1 else 0.0
                row.append(f"{statistics.fmean(v):.3f} ± {sd:.3f}" if v else "–")
            body.append(row)
        parts.append(f"<h3>{esc(student)}</h3>\n" + table(["strategy", *tasks], body, left=1))
    return "\n".join(parts)


def validation_section(rows: list[dict]) -> str:
    """Every evaluation on the validation split (sweeps, the best single teacher's choice)."""
    cols = [
        c
        for c in ("sweep", "value", "student", "strategy", "seed", "steps", "accuracy")
        if rows and c in rows[0]
    ]
    body = [[f"{r[c]:.3f}" if c == "accuracy" else esc(r.get(c, "")) for c in cols] for r in rows]
    return table(cols, body, left=4)


def plots_section(exp_dir: Path) -> str:
    """Every PNG in ``exp_dir`` (sorted by name), embedded as a base64 data URI."""
    out = []
    for png in sorted(exp_dir.glob("*.png")):
        uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
        out.append(f"<h3>{esc(png.name)}</h3>\n" + img(uri, png.stem))
    return "\n".join(out) or note("no plots in this directory")


def write_experiment_report(exp_dir: Path, out: Path | None = None) -> Path:
    """Write an experiment's report as one self-contained HTML page and return its path.

    Reads, in ``exp_dir``: ``results.csv`` and ``paired.csv`` (required), ``validation.csv``,
    ``tables.json``, ``progress.txt`` and ``*.png`` (optional; a missing one leaves its
    section out).

    Raises:
        PersynError: ``exp_dir`` lacks ``results.csv`` or ``paired.csv`` (run ``persyn
            experiment CONFIG`` first).
        InputError: a CSV lacks a column or holds a non-number where a number belongs (file,
            line and value named), or ``tables.json`` is not JSON.
    """
    exp_dir = Path(exp_dir)
    if not is_experiment_dir(exp_dir):
        raise PersynError(
            f"{exp_dir}: no {' and '.join(EXPERIMENT_FILES)}; run `persyn experiment CONFIG.yaml` first"
        )
    results = read_csv(exp_dir / "results.csv")
    paired = read_csv(exp_dir / "paired.csv")
    head = ""
    progress = (exp_dir / "progress.txt").read_text().strip() if (exp_dir / "progress.txt").is_file() else ""
    if progress and progress != "done":  # the runner writes "done" when every fine-tune has run
        head = note(f"Partial results, the run in progress or stopped: {esc(progress)}")
    sections = [
        ("accuracy", "Accuracy per strategy", head + accuracy_section(results)),
        ("paired", "Paired differences: persyn − each strategy", paired_section(paired)),
    ]
    if (exp_dir / "tables.json").is_file():
        try:
            tables = json.loads((exp_dir / "tables.json").read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{exp_dir / 'tables.json'}: not JSON ({exc})") from None
        order = list(dict.fromkeys(r["strategy"] for r in results))
        sections.append(("tasks", "Accuracy per task", per_task_section(tables, order)))
    if (exp_dir / "validation.csv").is_file():
        sections.append(
            (
                "validation",
                "Choices on the validation split",
                validation_section(read_csv(exp_dir / "validation.csv")),
            )
        )
    sections.append(("plots", "Plots", plots_section(exp_dir)))
    out = exp_dir / "report.html" if out is None else Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, page(exp_dir, sections))
    return out
