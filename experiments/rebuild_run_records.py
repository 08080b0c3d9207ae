"""Rebuild an experiment's per-seed PerSyn run records (``RecordCopy.save_run``'s files:
summary.json, routing.jsonl, calibration.jsonl, failed.jsonl, router.json) from its stores,
when the records were lost but the stores were kept (or loaded back with store_records.py).

For each seed it copies that seed's store into a scratch folder, builds PerSyn's dataset there
exactly as ``persyn experiment`` does (same run config, same seed; every response and score comes
from the store, so nothing is generated), checks that the rebuilt ``dataset.jsonl`` is the
recorded one byte for byte, and only then writes the run files to
``RECORDS/runs/STUDENT/seed-SEED/``. A seed whose dataset differs is reported and not written.
The rebuilt summary.json has no stage ``seconds`` (the rebuild's would be the cached steps' time,
not the original pipeline's) and says it was rebuilt (``rebuilt``).
Run it with the code that built the records (e.g. ``PYTHONPATH=PINNED/src``)::

    python experiments/rebuild_run_records.py CONFIG RECORDS [--seeds 0 1 2]

Exit status 1 when a rebuilt dataset differs from the recorded one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from persyn.experiment.config import load_experiment
from persyn.experiment.records import RecordCopy
from persyn.experiment.runner import Experiment
from persyn.pipeline import Pipeline
from persyn.selection.verified import split_verified
from persyn.students import seed_store


def rebuild(config: Path, records: Path, seeds: list[int] | None) -> int:
    """Rebuild and write the run records of ``seeds`` (all of the config's by default);
    returns the number of (student, seed) pairs whose rebuilt dataset differed."""
    exp = load_experiment(config)
    runner = Experiment(exp, log=print)
    copy = RecordCopy(exp.output_dir, records, print)
    bad = 0
    for seed in seeds if seeds is not None else exp.seeds:
        for student, cfg in runner.student_runs(seed):
            store = Path(cfg.output_dir) / "store.sqlite"
            recorded = copy._dataset_dir(student, "persyn", seed) / "dataset.jsonl"
            if not store.is_file() or not recorded.is_file():
                print(
                    f"seed {seed} · {student}: no store ({store}) or no recorded dataset ({recorded}); skipped"
                )
                continue
            with tempfile.TemporaryDirectory() as tmp:
                seed_store(store, Path(tmp) / "store.sqlite")  # a copy: the run's own is never written
                scratch = cfg.model_copy(update={"output_dir": Path(tmp)})
                strategy, verified = split_verified("persyn")
                with Pipeline(scratch) as pipe:
                    pipe.build_strategy(
                        strategy, Path(tmp) / "strategies" / "persyn", seed=seed, verified=verified
                    )
                    pipe.export()
                    made = pipe.new_generations
                rebuilt = Path(tmp) / "strategies" / "persyn" / "dataset.jsonl"
                if rebuilt.read_bytes() != recorded.read_bytes():
                    print(
                        f"seed {seed} · {student}: the rebuilt dataset differs from {recorded}; nothing written"
                    )
                    bad += 1
                    continue
                summary_path = Path(tmp) / "summary.json"
                summary = json.loads(summary_path.read_text())
                summary.pop("seconds", None)
                summary["rebuilt"] = "from the store by experiments/rebuild_run_records.py (no stage times)"
                summary_path.write_text(json.dumps(summary, indent=2) + "\n")
                n = copy.save_run(student, seed, Path(tmp))
                print(
                    f"seed {seed} · {student}: dataset identical ({made} responses generated); {n} run files written"
                )
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("records", type=Path)
    ap.add_argument("--seeds", type=int, nargs="*")
    args = ap.parse_args()
    sys.exit(1 if rebuild(args.config, args.records, args.seeds) else 0)


if __name__ == "__main__":
    main()
