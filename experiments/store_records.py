"""Keep a long run's teacher responses and scores across a machine that comes back bare.

A run's store (``store.sqlite``) is not committed (stores never are), so a machine handed back
without the run's directory loses every response not yet in a finished dataset record, and a
seed whose datasets take longer than one stretch of work never finishes. This script writes the
rows that cost model time, the ``generations`` and ``scores`` tables of every store under a run's
directory, as gzipped JSON lines (small records, committed with the run's other records), and
loads them back into the stores of a fresh run directory. Rows are keyed by content (a response's
cache key; a score's response key, kind and scorer key), so a loaded row is a cache hit exactly
when the run would have found it in its own store, and a row the store already holds is kept.

    python experiments/store_records.py dump RUN_DIR RECORDS_DIR   # e.g. runs/evidence-verified
    python experiments/store_records.py load RECORDS_DIR RUN_DIR   # before restarting the run

Each store ``RUN_DIR/REL/store.sqlite`` becomes ``RECORDS_DIR/REL/{generations,scores}.jsonl.gz``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sqlite3
import sys
from pathlib import Path

from persyn.store import Store

TABLES = ("generations", "scores")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file and a rename (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def dump(run_dir: Path, records: Path) -> dict[str, int]:
    """Write every store's rows under ``run_dir`` to ``records``; returns rows per file."""
    counts = {}
    for store in sorted(run_dir.rglob("store.sqlite")):
        rel = store.parent.relative_to(run_dir)
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        try:
            for table in TABLES:
                cols = columns(db, table)
                rows = db.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid").fetchall()
                text = "".join(json.dumps(dict(zip(cols, r, strict=True))) + "\n" for r in rows)
                target = records / rel / f"{table}.jsonl.gz"
                target.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(target, gzip.compress(text.encode(), mtime=0))
                counts[str(rel / table)] = len(rows)
        finally:
            db.close()
    return counts


def load(records: Path, run_dir: Path) -> dict[str, int]:
    """Insert the recorded rows into the stores under ``run_dir`` (created when missing); a row
    whose key the store holds already is left as the store has it. Returns rows inserted per
    table and store."""
    counts = {}
    for folder in sorted({p.parent for p in records.rglob("*.jsonl.gz")}):
        rel = folder.relative_to(records)
        path = run_dir / rel / "store.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        Store(path).close()  # the schema, as the run creates it
        db = sqlite3.connect(path)
        try:
            for table in TABLES:
                source = folder / f"{table}.jsonl.gz"
                if not source.exists():
                    continue
                rows = [json.loads(x) for x in gzip.decompress(source.read_bytes()).decode().splitlines()]
                before = db.total_changes
                with db:
                    for row in rows:
                        cols = list(row)
                        db.execute(
                            f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) "
                            f"VALUES ({', '.join('?' * len(cols))})",
                            [row[c] for c in cols],
                        )
                counts[str(rel / table)] = db.total_changes - before
        finally:
            db.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="stores under RUN_DIR → records")
    d.add_argument("run_dir", type=Path)
    d.add_argument("records", type=Path)
    ld = sub.add_parser("load", help="records → the stores under RUN_DIR")
    ld.add_argument("records", type=Path)
    ld.add_argument("run_dir", type=Path)
    args = ap.parse_args(argv)
    if args.command == "dump":
        counts = dump(args.run_dir, args.records)
    else:
        counts = load(args.records, args.run_dir)
    for name, n in counts.items():
        print(f"{name}: {n} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
