"""Atomic file output: a file persyn writes is either the old one or the whole new one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from persyn.core.errors import PersynError


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
            f"{path}: cannot write ({exc}); the store is intact: re-run to export again"
        ) from exc


def jsonl_text(rows: Iterable[dict], ascii_only: bool = False) -> str:
    """One JSON object per line (UTF-8 kept unless ``ascii_only``), each line ending in
    ``\\n``: the format of every ``*.jsonl`` persyn writes."""
    return "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in rows)
