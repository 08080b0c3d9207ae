"""One-call helpers of the Python API (``persyn.run``, ``persyn.read_dataset``)."""

from __future__ import annotations

from pathlib import Path

from persyn.config import RunConfig, load_config
from persyn.core.errors import InputError
from persyn.core.io import dataset_lines
from persyn.core.records import DatasetLine
from persyn.core.summary import RunSummary, StrategySummary, StudentsSummary
from persyn.pipeline import Pipeline


def run(
    config: RunConfig | str | Path | dict, output_dir: str | Path | None = None
) -> RunSummary | StrategySummary | StudentsSummary:
    """Run every stage of ``config`` (a ``RunConfig``, a YAML path or a dict) and return the
    summary (for ``students:``, one run per student sharing the teachers' responses: see
    ``persyn.students``); resumes from the output directory's store like ``persyn run``.

    Raises:
        ConfigError: an invalid config (the field is named).
        PersynError: anything else persyn refuses (bad prompts, a held output directory, ...).
    """
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    if output_dir is not None:
        cfg = cfg.model_copy(update={"output_dir": Path(output_dir)})
    if cfg.students is not None:
        from persyn.students import run_students

        return run_students(cfg)
    with Pipeline(cfg) as pipe:
        return pipe.run()


def read_dataset(path: str | Path) -> list[DatasetLine]:
    """The lines of a ``dataset.jsonl`` (or of ``OUTPUT_DIR/dataset.jsonl`` given the output
    directory), in file order.

    Raises:
        InputError: the file is missing, or a line is not a dataset line (file:line named).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "dataset.jsonl"
    if not path.exists():
        raise InputError(f"{path}: not found (run `persyn run` first)")
    return [line for _, _, line in dataset_lines(path)]
