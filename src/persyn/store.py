"""The run's SQLite store (``OUTPUT_DIR/store.sqlite``): prompts, generations, scores,
prompt embeddings, router assignments and stage markers.

Everything expensive is keyed by a cache key that hashes what changes its output, so a re-run
skips what is stored and a changed setting recomputes only what it affects. Each batch is
committed in its own transaction (WAL mode), so a crash loses at most the batch in flight.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from persyn.core.errors import PersynError
from persyn.core.records import Generation, Prompt
from persyn.core.summary import RouterEvaluation

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS prompts (
    id TEXT PRIMARY KEY, position INTEGER, text TEXT, answer TEXT, solution TEXT,
    metadata TEXT, calibration INTEGER NOT NULL DEFAULT 0, messages TEXT);
CREATE TABLE IF NOT EXISTS generations (
    key TEXT PRIMARY KEY, prompt_id TEXT, teacher TEXT, response TEXT, status TEXT, error TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, finish_reason TEXT, seconds REAL,
    phase TEXT, created REAL);
CREATE INDEX IF NOT EXISTS generations_prompt ON generations (prompt_id, teacher);
CREATE TABLE IF NOT EXISTS scores (
    gen_key TEXT, kind TEXT, scorer TEXT, value REAL, status TEXT, error TEXT, created REAL,
    PRIMARY KEY (gen_key, kind, scorer));
CREATE TABLE IF NOT EXISTS assignments (
    prompt_id TEXT PRIMARY KEY, teacher TEXT, coefficients TEXT, router TEXT);
CREATE TABLE IF NOT EXISTS stages (name TEXT PRIMARY KEY, key TEXT, finished REAL, info TEXT);
CREATE TABLE IF NOT EXISTS embeddings (
    encoder TEXT, text_hash TEXT, vector BLOB, PRIMARY KEY (encoder, text_hash));
"""


class RunRecords:
    """What the stages record for each other in the store's ``meta`` table, one typed accessor
    per record. The keys and JSON encodings are written here only, so no stage spells another's
    key and a stored run from before stays readable. ``Store`` is one; it gives ``db`` and
    ``_tx``."""

    db: sqlite3.Connection

    def _get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def prompt_set_fingerprint(self) -> str | None:
        """The fingerprint of the stored prompt set and calibration draw (``prepare``)."""
        return self._get_meta("prompt_set")

    def mark_prompt_set(self, fingerprint: str) -> None:
        """Make ``fingerprint`` the stored prompt set's and start its ``active`` rounds afresh
        (after ``replace_prompts``)."""
        self._set_meta("calibration_rounds", "[]")
        self._set_meta("prompt_set", fingerprint)

    def calibration_rounds(self) -> list[list[str]]:
        """The prompt ids each ``active`` calibration round added, in round order."""
        return json.loads(self._get_meta("calibration_rounds") or "[]")

    def add_calibration_round(self, ids: list[str]) -> None:
        """Record an ``active`` round's prompts (``add_calibration`` adds them to the set)."""
        self._set_meta("calibration_rounds", json.dumps([*self.calibration_rounds(), ids]))

    def load_report(self) -> dict:
        """What loading the prompts skipped (``LoadReport.as_dict()``; {} before ``prepare``)."""
        return json.loads(self._get_meta("load_report") or "{}")

    def set_load_report(self, report: dict) -> None:
        self._set_meta("load_report", json.dumps(report))

    def seeds(self) -> dict[str, int]:
        """The seed each stage derives its randomness from (``core.seeds.seed_table``)."""
        return json.loads(self._get_meta("seeds") or "{}")

    def set_seeds(self, seeds: dict[str, int]) -> None:
        self._set_meta("seeds", json.dumps(seeds))

    def route_key(self) -> str | None:
        """The key of the routing the run routes by (``route``; None before it ran)."""
        return self._get_meta("route_key")

    def set_route_key(self, key: str) -> None:
        self._set_meta("route_key", key)

    def budget_route(self, key: str) -> dict | None:
        """The budgeted routing stored under routing key ``key`` (``{"figures", "per_prompt"}``),
        or None."""
        stored = self._get_meta(f"budget_route:{key}")
        return None if stored is None else json.loads(stored)

    def set_budget_route(self, key: str, figures: dict, per_prompt: dict) -> None:
        self._set_meta(f"budget_route:{key}", json.dumps({"figures": figures, "per_prompt": per_prompt}))

    def stage_seconds(self, stage: str) -> float:
        """Wall seconds recorded for ``stage`` on this store, summed over runs (0.0: none)."""
        return float(self._get_meta(f"seconds.{stage}") or 0.0)

    def set_stage_seconds(self, stage: str, seconds: float) -> None:
        self._set_meta(f"seconds.{stage}", f"{seconds:.3f}")


class Store(RunRecords):
    """A run's SQLite store. Open with ``Store(path)``; every write method commits."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30.0)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(prompts)")}
        if "messages" not in columns:  # a store made before chat prompts
            self.db.execute("ALTER TABLE prompts ADD COLUMN messages TEXT")
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def checkpoint(self) -> None:
        """Write the write-ahead log into the database file and truncate it, so that the file
        alone holds everything (before it is renamed or copied on its own)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def clone_to(self, target: str | Path) -> None:
        """Copy this store to ``target`` (SQLite online backup through a temporary file and a
        rename), so that another output directory reuses every stored response and score; an
        existing ``target`` is kept as it is."""
        target = Path(target)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.clone")
        tmp.unlink(missing_ok=True)
        with closing(sqlite3.connect(tmp)) as copy:
            self.db.backup(copy)
        tmp.rename(target)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One transaction; a failed write (disk full, I/O error) rolls back and becomes a
        PersynError that says nothing stored before is lost."""
        try:
            with self.db:
                yield
        except sqlite3.Error as exc:
            raise PersynError(
                f"{self.path}: cannot write to the store ({exc}); everything stored before is kept: "
                "fix the cause (e.g. free disk space) and re-run to resume"
            ) from exc

    # -- prompts ------------------------------------------------------------------------------
    def replace_prompts(self, prompts: list[Prompt], calibration_ids: Iterable[str]) -> None:
        """Store the prompt set and its calibration subset (replacing a previous set).

        Generations and scores are kept: they are keyed by content, not by prompt set.
        """
        cal = set(calibration_ids)
        with self._tx():
            self.db.execute("DELETE FROM prompts")
            self.db.executemany(
                "INSERT INTO prompts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        p.id,
                        i,
                        p.text,
                        p.answer,
                        p.solution,
                        json.dumps(p.metadata),
                        int(p.id in cal),
                        None if p.messages is None else json.dumps(p.messages),
                    )
                    for i, p in enumerate(prompts)
                ],
            )

    def add_calibration(self, prompt_ids: Iterable[str]) -> None:
        """Add prompts to the calibration subset (``active`` calibration rounds)."""
        with self._tx():
            self.db.executemany("UPDATE prompts SET calibration=1 WHERE id=?", [(i,) for i in prompt_ids])

    def prompts(self, calibration: bool | None = None) -> list[Prompt]:
        """Stored prompts in source order; ``calibration`` filters on membership of X_cal."""
        sql = "SELECT * FROM prompts"
        args: tuple = ()
        if calibration is not None:
            sql += " WHERE calibration=?"
            args = (int(calibration),)
        rows = self.db.execute(sql + " ORDER BY position", args).fetchall()
        return [self._prompt(r) for r in rows]

    def prompt_ids(self, calibration: bool | None = None) -> list[str]:
        """Ids of the stored prompts in source order (``calibration`` as in ``prompts``)."""
        sql, args = "SELECT id FROM prompts", ()
        if calibration is not None:
            sql, args = sql + " WHERE calibration=?", (int(calibration),)
        return [r[0] for r in self.db.execute(sql + " ORDER BY position", args)]

    def prompts_by_id(self, ids: list[str]) -> list[Prompt]:
        """The stored prompts of ``ids``, in the order given (unknown ids left out)."""
        out = {r["id"]: self._prompt(r) for r in self._rows_in("SELECT * FROM prompts WHERE id", (), ids)}
        return [out[i] for i in ids if i in out]

    def _rows_in(self, sql: str, args: tuple, keys: list[str]) -> Iterator[sqlite3.Row]:
        """The rows of ``sql + " IN (keys)"`` (``args`` bound first), queried 500 keys at a time
        (SQLite's bound-parameter limit)."""
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            yield from self.db.execute(f"{sql} IN ({','.join('?' * len(part))})", (*args, *part))

    @staticmethod
    def _prompt(r: sqlite3.Row) -> Prompt:
        return Prompt(
            r["id"],
            r["text"],
            r["answer"],
            r["solution"],
            json.loads(r["metadata"]),
            None if r["messages"] is None else json.loads(r["messages"]),
        )

    # -- generations --------------------------------------------------------------------------
    def generation_keys(self, status: str | None = None) -> set[str]:
        """Keys of the stored generations (only those with ``status`` when given)."""
        if status is None:
            return {r[0] for r in self.db.execute("SELECT key FROM generations")}
        return {r[0] for r in self.db.execute("SELECT key FROM generations WHERE status=?", (status,))}

    def teachers_with_a_success(self) -> set[str]:
        """Names of the teachers with at least one stored response of status ``ok``."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT teacher FROM generations WHERE status='ok'")}

    def generation_calls(self) -> int:
        """Responses generated in this store so far, retries included."""
        return int(self._get_meta("generation_calls") or 0)

    def add_generations(self, gens: Iterable[Generation]) -> None:
        """Store a batch of generations in one transaction (a retried key replaces its failed
        row) and add their number to the ``generation_calls`` counter."""
        now = time.time()
        gens = list(gens)
        with self._tx():
            self.db.execute(
                "INSERT INTO meta VALUES ('generation_calls', ?) ON CONFLICT(key) DO UPDATE "
                "SET value = CAST(value AS INTEGER) + excluded.value",
                (len(gens),),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        g.key,
                        g.prompt_id,
                        g.teacher,
                        g.response,
                        g.status,
                        g.error,
                        g.prompt_tokens,
                        g.completion_tokens,
                        g.finish_reason,
                        g.seconds,
                        g.phase,
                        now,
                    )
                    for g in gens
                ],
            )

    def generations(self, keys: Iterable[str]) -> dict[str, Generation]:
        """The stored generations among ``keys``, by key."""
        out: dict[str, Generation] = {}
        for r in self._rows_in("SELECT * FROM generations WHERE key", (), list(keys)):
            out[r["key"]] = Generation(
                r["key"],
                r["prompt_id"],
                r["teacher"],
                r["response"],
                r["status"],
                r["error"],
                r["prompt_tokens"],
                r["completion_tokens"],
                r["finish_reason"],
                r["seconds"],
                r["phase"],
            )
        return out

    def count_generations(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def generation_rows(self) -> list[tuple[str, str, str]]:
        """``(key, teacher, status)`` of every stored generation."""
        return [tuple(r) for r in self.db.execute("SELECT key, teacher, status FROM generations")]

    def delete_generations(self, teacher: str | None = None) -> int:
        """Delete the generations of ``teacher`` (all of them when None) and their scores;
        with None, also routing decisions and stage markers. Returns generations deleted."""
        with self._tx():
            if teacher is None:
                n = self.db.execute("DELETE FROM generations").rowcount
                for table in ("scores", "assignments", "stages"):
                    self.db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
                return n
            self.db.execute(
                "DELETE FROM scores WHERE gen_key IN (SELECT key FROM generations WHERE teacher=?)",
                (teacher,),
            )
            return self.db.execute("DELETE FROM generations WHERE teacher=?", (teacher,)).rowcount

    def score_counts(self) -> list[tuple[str, str, int]]:
        """``(kind, scorer key, count)`` of the stored scores."""
        return [tuple(r) for r in self.db.execute("SELECT kind, scorer, COUNT(*) FROM scores GROUP BY 1, 2")]

    # -- scores -------------------------------------------------------------------------------
    def add_scores(
        self, kind: str, scorer: str, rows: Iterable[tuple[str, float | None, str | None]]
    ) -> None:
        """Insert ``(gen_key, value, error)`` rows for one scorer; value None means failed."""
        now = time.time()
        with self._tx():
            self.db.executemany(
                "INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?)",
                [(k, kind, scorer, v, "ok" if v is not None else "failed", e, now) for k, v, e in rows],
            )

    def scores(self, kind: str, scorer: str) -> dict[str, tuple[float | None, str | None]]:
        """``gen_key -> (value or None, error)`` for one scorer."""
        rows = self.db.execute(
            "SELECT gen_key, value, error FROM scores WHERE kind=? AND scorer=?", (kind, scorer)
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    # -- assignments --------------------------------------------------------------------------
    def set_assignments(self, router_key: str, rows: Iterable[tuple[str, str, dict[str, float]]]) -> None:
        with self._tx():
            self.db.executemany(
                "INSERT OR REPLACE INTO assignments VALUES (?,?,?,?)",
                [(pid, t, json.dumps(c), router_key) for pid, t, c in rows],
            )

    def assignment_ids(self, router_key: str) -> set[str]:
        """Ids of the prompts routed by ``router_key``."""
        return {
            r[0] for r in self.db.execute("SELECT prompt_id FROM assignments WHERE router=?", (router_key,))
        }

    def assigned_teachers(self, router_key: str) -> dict[str, str]:
        """``{prompt id: teacher}`` routed by ``router_key`` (without the coefficients)."""
        rows = self.db.execute("SELECT prompt_id, teacher FROM assignments WHERE router=?", (router_key,))
        return {r[0]: r[1] for r in rows}

    def assignments(self, router_key: str) -> dict[str, tuple[str, dict[str, float]]]:
        rows = self.db.execute(
            "SELECT prompt_id, teacher, coefficients FROM assignments WHERE router=?", (router_key,)
        )
        return {r[0]: (r[1], json.loads(r[2])) for r in rows}

    # -- embeddings ---------------------------------------------------------------------------
    def add_embeddings(self, encoder: str, rows: Iterable[tuple[str, bytes]]) -> None:
        """Insert ``(text hash, float32 vector bytes)`` rows of one encoder key."""
        with self._tx():
            self.db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?,?,?)", [(encoder, h, v) for h, v in rows]
            )

    def embeddings(self, encoder: str, text_hashes: Iterable[str]) -> dict[str, bytes]:
        """``text hash -> vector bytes`` of the stored embeddings among ``text_hashes``."""
        sql = "SELECT text_hash, vector FROM embeddings WHERE encoder=? AND text_hash"
        return {r[0]: r[1] for r in self._rows_in(sql, (encoder,), list(dict.fromkeys(text_hashes)))}

    # -- stages -------------------------------------------------------------------------------
    def stage_done(self, name: str, key: str) -> dict | None:
        """The info recorded when stage ``name`` finished with input key ``key``, else None."""
        row = self.db.execute("SELECT key, info FROM stages WHERE name=?", (name,)).fetchone()
        if row is None or row[0] != key:
            return None
        return json.loads(row[1])

    def mark_stage(self, name: str, key: str, info: dict | None = None) -> None:
        with self._tx():
            self.db.execute(
                "INSERT OR REPLACE INTO stages VALUES (?,?,?,?)",
                (name, key, time.time(), json.dumps(info or {})),
            )


# Typed accessors of what the stages store for each other.


def save_router_evaluation(store: Store, key: str, evaluation: RouterEvaluation) -> None:
    """Record the router trained on inputs ``key`` and its evaluation (stage
    ``train_router``), and make it the run's router."""
    store.mark_stage("train_router", key, evaluation.model_dump(mode="json"))
    store._set_meta("router_key", key)


def read_router_evaluation(store: Store, key: str | None = None) -> RouterEvaluation | None:
    """The evaluation of the router trained on inputs ``key`` (default: the run's router),
    None when there is none."""
    done = store.stage_done("train_router", key if key is not None else store._get_meta("router_key") or "")
    return RouterEvaluation.model_validate(done) if done else None
