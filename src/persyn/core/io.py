"""Files: atomic output (a file or directory persyn writes is either the old one or the whole
new one: ``write_atomic`` for a file, ``replace_dir`` for a directory), and JSONL, written by
``jsonl_text`` and read by ``jsonl_records`` / ``jsonl_rows`` (``dataset_lines`` for dataset
lines)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from persyn.core.errors import InputError, PersynError
from persyn.core.faults import crash_point, register
from persyn.core.records import DatasetLine
from persyn.core.urls import redact_url

REPLACE_DIR = register(
    "io.replace_dir", "after the old directory is renamed aside, before the new one is renamed into place"
)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and a rename (never
    half-written).

    Raises:
        PersynError: the file cannot be written (disk full, permissions); names ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PersynError(
            f"{path}: cannot write ({exc}); the previous file, if any, is intact: re-run to write it"
        ) from exc


def jsonl_text(rows: Iterable[dict], ascii_only: bool = False) -> str:
    """One JSON object per line (UTF-8 kept unless ``ascii_only``), each line ending in
    ``\\n``: the format of every ``*.jsonl`` persyn writes."""
    return "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in rows)


def jsonl_records(
    path: Path, what: str = "JSONL file", skip_malformed: bool = False
) -> Iterator[tuple[str, Any]]:
    """Yield ``("FILE:LINE", record)`` for each non-blank line of a JSONL file (``what`` names
    the file in errors); the one JSONL reader.

    ``skip_malformed``: a line that is not JSON is skipped, not an error (a file appended line
    by line, whose last line a kill may have torn).

    Raises:
        InputError: an unreadable file, non-UTF-8 bytes or malformed JSON, naming file and line
            (the line shown shortened, credentials in URLs masked).
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc}") from None
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        where = f"{path}:{lineno}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        if not text.strip():
            continue
        try:
            yield where, json.loads(text)
        except json.JSONDecodeError as exc:
            if skip_malformed:
                continue
            raise InputError(
                f"{where}: malformed JSON: {exc.msg} (column {exc.colno}; the line: {_shown(text.strip())})"
            ) from None


def jsonl_rows(path: Path, what: str = "JSONL file") -> list[Any]:
    """Every record of a JSONL file, in order (``jsonl_records`` without the locations).

    Raises:
        InputError: as ``jsonl_records``.
    """
    return [rec for _, rec in jsonl_records(path, what)]


def _shown(text: str) -> str:
    """A line as an error shows it: URL credentials masked (``core.urls.redact_url``),
    shortened to 80 characters."""
    text = redact_url(text)
    return text if len(text) <= 80 else text[:77] + "..."


def dataset_lines(
    source: Path | list, what: str = "dataset", training: bool = False
) -> Iterator[tuple[str, Any, DatasetLine]]:
    """Yield ``(where, record, line)`` for each line of a ``dataset.jsonl`` (or of a list of
    its objects, ``<dataset>:N``), read by ``DatasetLine.from_dict`` (``training``: as SFT
    examples); the one dataset reader.

    Raises:
        InputError: as ``jsonl_records``, or a line that is not a dataset line, naming the file
            and the 1-based line (``not a dataset line: WHY``; with ``training``: ``WHY``).
    """
    if isinstance(source, list):
        records: Iterable[tuple[str, Any]] = ((f"<dataset>:{i + 1}", r) for i, r in enumerate(source))
    else:
        records = jsonl_records(source, what)
    for where, rec in records:
        try:
            line = DatasetLine.from_dict(rec, training=training)
        except ValueError as exc:
            raise InputError(
                f"{where}: {exc}" if training else f"{where}: not a dataset line: {exc}"
            ) from None
        yield where, rec, line


def _aside(dest: Path) -> Path:
    """Where ``replace_dir`` keeps the old ``dest`` while the new one is renamed in."""
    return dest.with_name(f".{dest.name}.old")


def replace_dir(tmp: Path, dest: Path) -> None:
    """Move the fully written directory ``tmp`` to ``dest``, replacing any ``dest`` there, so
    that at every instant a complete directory, the old or the new one, exists at ``dest`` or
    at its aside name ``.<dest name>.old`` (a sibling of ``dest``).

    The steps: an existing ``dest`` is renamed to the aside name; ``tmp`` is renamed to
    ``dest``; the aside directory is removed. ``tmp`` must be on ``dest``'s filesystem (a
    sibling, or inside a sibling) so that both renames are atomic. Crash point ``io.replace_dir``
    sits between the two renames (reached whether or not there was an old ``dest``).

    A leftover aside directory from a process killed during an earlier call is settled first:

    - ``dest`` present: the earlier swap finished; the aside directory is deleted;
    - ``dest`` absent, ``tmp`` present: the earlier swap stopped between its renames; this call
      completes it with the new ``tmp`` (the old directory is then deleted);
    - ``dest`` and ``tmp`` both absent: the aside directory (the complete old one) is renamed
      back to ``dest``, then ``FileNotFoundError`` is raised for ``tmp``.

    Raises:
        FileNotFoundError: ``tmp`` does not exist (``dest`` is left as it was, or restored).
        OSError: a rename fails (e.g. ``tmp`` on another filesystem); ``dest`` or the aside
            directory still holds the old directory.
    """
    tmp, dest = Path(tmp), Path(dest)
    aside = _aside(dest)
    if aside.exists():
        if dest.exists():
            shutil.rmtree(aside)
        elif not tmp.exists():
            os.replace(aside, dest)
    if not tmp.exists():
        raise FileNotFoundError(f"{tmp}: no directory to move to {dest}")
    if dest.exists():
        os.replace(dest, aside)  # the aside is gone by now: either removed or a rename target
    crash_point(REPLACE_DIR)
    os.replace(tmp, dest)
    shutil.rmtree(aside, ignore_errors=True)
