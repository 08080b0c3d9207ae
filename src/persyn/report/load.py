"""Read a run directory for the report: the typed ``summary.json``, the JSONL files ``persyn
export`` writes, ``run_config.json`` and the selection strategies' summaries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from persyn.core.errors import InputError, PersynError
from persyn.core.io import jsonl_records
from persyn.core.summary import RunSummary, StrategySummary, StudentsSummary, parse_summary


@dataclass
class RunFiles:
    """What the report reads from one run directory.

    Attributes:
        run_dir: the run's output directory.
        summary: ``summary.json``, typed (a ``StrategySummary`` for a run with ``strategy``
            other than ``persyn``).
        dataset: the lines of ``dataset.jsonl``, one dict each.
        calibration: the lines of ``calibration.jsonl``; None when the file is missing.
        routing: the lines of ``routing.jsonl``; None when the file is missing.
        run_config: ``run_config.json``; None when the file is missing.
        strategies: ``(directory name, summary)`` of each ``strategies/*/summary.json``, by name.
    """

    run_dir: Path
    summary: RunSummary | StrategySummary
    dataset: list[dict]
    calibration: list[dict] | None
    routing: list[dict] | None
    run_config: dict | None
    strategies: list[tuple[str, StrategySummary]]


def load_run(run_dir: Path) -> RunFiles:
    """Read every file of ``run_dir`` that the report shows.

    Raises:
        PersynError: ``run_dir`` is not a directory, or ``summary.json`` or ``dataset.jsonl``
            is missing.
        InputError: a file is not valid JSON (a ``.jsonl`` file's message names the line), a
            line is not a JSON object, or a summary lacks a field (named).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PersynError(f"{run_dir}: not a run directory; run `persyn run CONFIG.yaml` first")
    summary_path = run_dir / "summary.json"
    summary = parse_summary(read_json(summary_path, required=True), str(summary_path))
    if isinstance(summary, StudentsSummary):
        names = ", ".join(str(run_dir / "students" / n) for n in summary.students)
        raise PersynError(f"{run_dir}: a run of {len(summary.students)} students; report each one: {names}")
    return RunFiles(
        run_dir=run_dir,
        summary=summary,
        dataset=read_jsonl(run_dir / "dataset.jsonl", required=True),
        calibration=read_jsonl(run_dir / "calibration.jsonl", required=False),
        routing=read_jsonl(run_dir / "routing.jsonl", required=False),
        run_config=read_json(run_dir / "run_config.json", required=False),
        strategies=[
            (p.parent.name, read_strategy_summary(p))
            for p in sorted((run_dir / "strategies").glob("*/summary.json"))
        ],
    )


def read_strategy_summary(path: Path) -> StrategySummary:
    """A ``strategies/NAME/summary.json``, typed.

    Raises:
        PersynError: the file is missing.
        InputError: not JSON, not a strategy's summary (no ``strategy`` key), or a field missing.
    """
    summary = parse_summary(read_json(path, required=True), str(path))
    if not isinstance(summary, StrategySummary):
        raise InputError(f"{path}: not a selection strategy's summary (no 'strategy' key)")
    return summary


def missing_file_error(path: Path) -> PersynError:
    """The error for a required file of a run that is not there (says which command writes it)."""
    return PersynError(
        f"{path}: not found; run `persyn run CONFIG.yaml` (or `persyn export CONFIG.yaml`) "
        f"for this output directory first"
    )


def read_json(path: Path, required: bool) -> dict | None:
    """A JSON object file; None when it is missing and not ``required``.

    Raises:
        PersynError: missing and ``required``.
        InputError: not UTF-8, not JSON (the message names the line), or not an object.
    """
    if not path.is_file():
        if required:
            raise missing_file_error(path)
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_jsonl(path: Path, required: bool) -> list[dict] | None:
    """The JSON objects of a JSONL file, blank lines skipped; None when it is missing and not
    ``required``.

    Raises:
        PersynError: missing and ``required``.
        InputError: a line is not UTF-8, not JSON or not an object (the message names the line).
    """
    if not path.is_file():
        if required:
            raise missing_file_error(path)
        return None
    rows = []
    for where, row in jsonl_records(path, path.name):
        if not isinstance(row, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows
