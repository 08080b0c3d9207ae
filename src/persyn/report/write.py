"""``write_report``: read a run directory, build every section and write the page."""

from __future__ import annotations

from pathlib import Path

from persyn.core.errors import PersynError
from persyn.core.io import write_atomic
from persyn.report.html import page
from persyn.report.load import load_run
from persyn.report.plots import Plots
from persyn.report.sections import (
    ReportContext,
    budget_section,
    calibration_section,
    router_section,
    routing_section,
    sample_section,
    strategies_section,
    summary_section,
    verify_section,
)


def write_report(run_dir: Path, out: Path | None = None, sample: int = 8, seed: int = 0) -> Path:
    """Write one run's report as a single self-contained HTML page and return its path.

    Reads, in ``run_dir``: ``summary.json`` and ``dataset.jsonl`` (required),
    ``calibration.jsonl``, ``routing.jsonl``, ``run_config.json`` and
    ``strategies/*/summary.json`` (optional: a section whose file is missing says "not
    available"). Plots are matplotlib PNGs (Agg) embedded as base64 data URIs; every text from
    the run (prompts, responses, teacher names, errors) is HTML-escaped. The page is written
    atomically.

    Args:
        run_dir: the run's output directory (``output_dir`` of its config).
        out: where to write the page (default ``run_dir/report.html``).
        sample: how many dataset lines to show in full (prompt, teacher, scores, response).
        seed: seed of the random choice of those lines.

    Returns:
        The path of the written page.

    Raises:
        PersynError: ``run_dir`` is not a directory, ``summary.json`` or ``dataset.jsonl`` is
            missing (run ``persyn run`` / ``persyn export`` first), ``sample`` is negative, or
            the page cannot be written.
        InputError: a file is not valid JSON (for a ``.jsonl`` file the message names the
            line), a line is not a JSON object, or a summary lacks a field (named).
        MissingAssetError: matplotlib is not installed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PersynError(f"{run_dir}: not a run directory; run `persyn run CONFIG.yaml` first")
    if sample < 0:
        raise PersynError(f"sample: must be >= 0, got {sample}")
    ctx = ReportContext(load_run(run_dir), Plots())
    sections = [
        ("summary", "Summary", summary_section(ctx)),
        ("routing", "Routing per teacher", routing_section(ctx)),
        ("calibration", "Calibration scores per teacher", calibration_section(ctx)),
        ("router", "Router vs Oracle", router_section(ctx)),
        ("verify", "The verified cascade", verify_section(ctx)),
        ("budget", "Budget and the cost–reward frontier", budget_section(ctx)),
        ("sample", "Sample of the dataset", sample_section(ctx, sample, seed)),
        ("strategies", "Selection strategies", strategies_section(ctx)),
    ]
    out = run_dir / "report.html" if out is None else Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, page(run_dir, sections))
    return out
