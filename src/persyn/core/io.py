"""Atomic output: a file or directory persyn writes is either the old one or the whole new
one (``write_atomic`` for a file, ``replace_dir`` for a directory)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from persyn.core.errors import PersynError
from persyn.core.faults import crash_point, register

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
