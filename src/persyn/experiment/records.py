"""What lets a long experiment span several sessions or machines: ``RecordCopy`` (the finished
per-evaluation records, every built dataset and the results files copied to a directory that
outlives the run, e.g. a git checkout, and restored from it on a restart; PerSyn's own run
files per seed kept beside them), ``Progress`` (fine-tunes done, wall time and
an ETA in the log) and ``source_revision`` (the commit the run's code came from)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import persyn
from persyn.core.errors import InputError
from persyn.core.io import write_atomic
from persyn.core.summary import StrategySummary, read_summary

# Small outputs worth keeping; stores and model weights never leave the run's directory.
RESULT_FILES = ("results.md", "results.csv", "paired.csv", "validation.csv", "progress.txt")


class RecordCopy:
    """Copies ``out``'s finished records to ``records`` and back.

    ``save`` copies ``evals/*.json`` (each written atomically once its evaluation is complete,
    so a copied file is always whole), the results files and the plots; ``restore`` copies
    into ``out/evals`` every record ``out`` lacks, so a restart on a machine without the run's
    directory re-runs only the fine-tunes whose evaluation is not recorded. ``save_dataset``
    keeps each built dataset (``dataset.jsonl``, ``summary.json`` and the key of the config
    that built it) in ``records/datasets/STUDENT/seed-SEED/NAME``, and ``dataset`` hands it
    back while the key matches, so a restart on a bare machine does not regenerate the teacher
    responses of a dataset already built (hours on a CPU). All do nothing when ``records`` is
    None.
    """

    def __init__(self, out: Path, records: Path | None, log=print):
        self.out, self.records, self.log = Path(out), records and Path(records), log

    def restore(self) -> int:
        """Copy the records ``out/evals`` lacks from ``records/evals``; returns how many."""
        if self.records is None or not (self.records / "evals").is_dir():
            return 0
        (self.out / "evals").mkdir(parents=True, exist_ok=True)
        n = 0
        for src in sorted((self.records / "evals").glob("*.json")):
            dst = self.out / "evals" / src.name
            if not dst.exists():
                shutil.copy2(src, dst)
                n += 1
        if n:
            self.log(f"restored {n} evaluation records from {self.records}")
        return n

    def save(self) -> int:
        """Copy new or changed records, results files and plots to ``records``; returns how
        many files were copied."""
        if self.records is None:
            return 0
        (self.records / "evals").mkdir(parents=True, exist_ok=True)
        pairs = [(p, self.records / "evals" / p.name) for p in sorted((self.out / "evals").glob("*.json"))]
        pairs += [(self.out / f, self.records / f) for f in RESULT_FILES]
        pairs += [(p, self.records / p.name) for p in sorted(self.out.glob("*.png"))]
        n = 0
        for src, dst in pairs:
            if src.is_file() and (not dst.exists() or dst.read_bytes() != src.read_bytes()):
                _copy_whole(src, dst)
                n += 1
        return n

    def _dataset_dir(self, student: str, name: str, seed: int) -> Path:
        return self.records / "datasets" / student / f"seed-{seed}" / name

    def dataset(self, student: str, name: str, seed: int, key: str, dest: Path) -> StrategySummary | None:
        """The recorded dataset of ``(student, name, seed)`` copied into ``dest`` (its
        ``dataset.jsonl`` and ``summary.json``) and its summary, when one is recorded under
        ``key``; None otherwise (none recorded, or recorded by another config: rebuilt)."""
        if self.records is None:
            return None
        src = self._dataset_dir(student, name, seed)
        try:
            if (src / "key.txt").read_text().strip() != key:
                return None
        except FileNotFoundError:
            return None
        dest.mkdir(parents=True, exist_ok=True)
        for f in _DATASET_FILES:
            shutil.copy2(src / f, dest / f)
        summary = read_summary(dest / "summary.json")
        if not isinstance(summary, StrategySummary):
            raise InputError(f"{src / 'summary.json'}: not a strategy's summary")
        return summary

    def save_dataset(self, student: str, name: str, seed: int, key: str, built: Path) -> None:
        """Keep the dataset built in ``built`` (``dataset.jsonl``, ``summary.json``) as the record
        of ``(student, name, seed)`` under ``key``; the key is written last, so a copy cut
        short is never taken for a whole one."""
        if self.records is None:
            return
        dst = self._dataset_dir(student, name, seed)
        dst.mkdir(parents=True, exist_ok=True)
        (dst / "key.txt").unlink(missing_ok=True)
        for f in _DATASET_FILES:
            shutil.copy2(built / f, dst / f)
        write_atomic(dst / "key.txt", key + "\n")

    def save_run(self, student: str, seed: int, run_dir: Path) -> int:
        """Keep PerSyn's run files of ``(student, seed)`` (``RUN_FILES`` that ``run_dir`` has)
        in ``records/runs/STUDENT/seed-SEED/``, flat (``router/router.json`` as
        ``router.json``), each copied whole (a temporary file renamed); returns how many."""
        if self.records is None:
            return 0
        dst = self.records / "runs" / student / f"seed-{seed}"
        dst.mkdir(parents=True, exist_ok=True)
        n = 0
        for f in RUN_FILES:
            src = Path(run_dir) / f
            if src.is_file():
                _copy_whole(src, dst / src.name)
                n += 1
        return n


def _copy_whole(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a temporary file renamed into place, so a copy cut short
    is never taken for a whole one."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copy2(src, tmp)
    tmp.replace(dst)


# What a recorded dataset is: the lines a student trains on and the summary that names them.
_DATASET_FILES = ("dataset.jsonl", "summary.json")
# PerSyn's own run files worth keeping beside its dataset (small; never the store): what the
# write-up reads of routing, escalation, calibration and the router's choice.
RUN_FILES = ("summary.json", "routing.jsonl", "calibration.jsonl", "failed.jsonl", "router/router.json")


class Progress:
    """Counts the fine-tunes of a run and logs each with the wall time so far and an ETA (the
    mean time of the fine-tunes actually run this time, times the ones left; cached ones are
    counted as done and cost nothing)."""

    def __init__(self, total: int, log=print):
        self.total, self.log = total, log
        self.done = self.ran = 0
        self.start = self.last = time.perf_counter()
        self.run_seconds = 0.0

    def step(self, message: str, cached: bool) -> None:
        """One fine-tune finished (``cached``: its evaluation was already recorded)."""
        now = time.perf_counter()
        self.done += 1
        if not cached:
            self.ran += 1
            self.run_seconds += now - self.last
        self.last = now
        self.log(f"[{self.line()}] {message}{' (recorded earlier)' if cached else ''}")

    def line(self) -> str:
        """``k/N fine-tunes, H:MM elapsed, ETA H:MM`` (no ETA before one has run)."""
        elapsed = time.perf_counter() - self.start
        left = self.total - self.done
        eta = f", ETA {_hm(left * self.run_seconds / self.ran)}" if self.ran and left else ""
        return f"{self.done}/{self.total} fine-tunes, {_hm(elapsed)} elapsed{eta}"


def _hm(seconds: float) -> str:
    m = int(seconds // 60)
    return f"{m // 60}:{m % 60:02d}"


def source_revision() -> str:
    """persyn's version and, when it runs from a git checkout, the commit (with ``+dirty``
    when the checkout has uncommitted changes to tracked files), e.g. ``0.1.0 @ 1a2b3c4d5e6f``."""
    src = Path(persyn.__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return persyn.__version__
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return persyn.__version__
    return f"{persyn.__version__} @ {sha.stdout.strip()[:12]}{'+dirty' if dirty else ''}"
