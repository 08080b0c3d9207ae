"""Batch generation for ``engine: openai`` teachers (``batch:``): the request lines of the
OpenAI Batch API and of ``vllm run-batch`` (one file format), the parsing of their result lines,
and the Batch API loop: split, upload, create, poll, download, join on ``custom_id``, retry.

What makes it resumable without paying twice: every id the server returns (the uploaded file's,
the batch's) is appended to a journal (``OUTPUT_DIR/batches/TEACHER.jsonl``, one fsynced JSON
line per event) before the next request, and every batch carries ``metadata`` naming the run,
the teacher and the content hash of its lines. A run that starts again takes up the batches in
the journal that were not collected yet whose requests it still needs (polling them, never
submitting them again); a batch created just before a kill, whose id never reached the journal,
is found by its content hash in the server's batch list. A batch is marked collected only after
its responses were handed to the caller (and so stored).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from persyn.core.errors import BatchesInFlight, PersynError
from persyn.core.faults import crash_point, register
from persyn.core.records import Completion, Prompt
from persyn.core.settings import StrictModel
from persyn.engines.http import chat_completion, first_line, httpx_module

UPLOADED = register("batch.uploaded", "a batch file uploaded, its id not journaled yet")
CREATED = register("batch.created", "a batch created on the server, its id not journaled yet")
POLLED = register("batch.polled", "a batch polled while it runs")
DOWNLOADED = register("batch.downloaded", "a batch's results downloaded, not stored yet")

#: Batch states after which nothing changes.
TERMINAL = ("completed", "failed", "expired", "cancelled")
#: The one endpoint batch files carry (``vllm run-batch`` takes no other for chat).
ENDPOINT = "/v1/chat/completions"


class BatchSettings(StrictModel):
    """``batch:`` on an ``engine: openai`` teacher: its requests go out as batch files.

    ``mode: api`` (default): the OpenAI Batch API at the teacher's ``base_url`` (upload, create,
    poll every ``poll_seconds``, download); files of at most ``max_requests`` lines and
    ``max_bytes`` bytes (the API's limits: 50,000 and 200 MB); failed, missing and expired lines
    go out again in a new batch up to ``max_retries`` times, then are failed items;
    ``wait: false`` submits, collects what has finished, and stops the run with a status (exit
    0): the next run collects the rest. ``mode: files``: persyn sends nothing; ``persyn batch
    export`` writes the requests, ``vllm run-batch`` (or any tool) answers them, and ``persyn
    batch import`` stores the results. ``price_factor``: the batch price as a share of the
    teacher's prices (the Batch API's is half).
    """

    enabled: bool = True
    mode: Literal["api", "files"] = "api"
    poll_seconds: Annotated[float, Field(gt=0)] = 60.0
    max_requests: Annotated[int, Field(ge=1, le=50_000)] = 50_000
    max_bytes: Annotated[int, Field(ge=100, le=200_000_000)] = 200_000_000
    wait: bool = True
    max_retries: Annotated[int, Field(ge=0)] = 2
    completion_window: str = "24h"
    price_factor: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5


def takes_batch_files(teacher) -> bool:
    """Whether ``teacher``'s engine can answer through batch files (its settings have
    ``batch``: engine ``openai``), whether or not ``batch`` is set."""
    return "batch" in type(teacher).model_fields


#: Teacher name → the file ``persyn batch export`` writes that teacher's next requests to (set by
#: the command for its own process; the local executor runs the engines in it).
EXPORT_TO: dict[str, Path] = {}


def export_requests(engine, prompts: list[Prompt], path: Path) -> int:
    """Write ``engine``'s requests for ``prompts`` to ``path`` as batch request lines (custom
    id: the prompt id), atomically; returns how many."""
    from persyn.core.io import write_atomic

    lines = [json.dumps(request_line(engine._body(p), p.id)) + "\n" for p in prompts]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(lines))
    return len(lines)


def request_line(body: dict, custom_id: str) -> dict:
    """One request line of a batch file (OpenAI Batch API and ``vllm run-batch``): the
    synchronous chat-completions request ``body`` under ``custom_id``."""
    return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}


def parse_result_line(row: dict, scrub=lambda s: s) -> tuple[str, Completion]:
    """``(custom_id, Completion)`` of one result line (``{"custom_id", "response":
    {"status_code", "body"}, "error"}``, the Batch API's output and error files and ``vllm
    run-batch``'s output alike); a failed line is a Completion with ``error`` set.

    Raises:
        ValueError: the line has no ``custom_id``.
    """
    cid = row.get("custom_id") if isinstance(row, dict) else None
    if not isinstance(cid, str):
        raise ValueError("a result line without custom_id")
    response = row.get("response") or {}
    status, body = response.get("status_code"), response.get("body")
    if row.get("error") or status != 200 or not isinstance(body, dict):
        err = row.get("error")
        reason = err.get("message") if isinstance(err, dict) else err
        if not reason:
            reason = first_line(json.dumps(body)) if body is not None else "no response body"
        return cid, Completion("", error=scrub(f"batch line failed (HTTP {status}): {reason}"))
    try:
        return cid, chat_completion(body)
    except (KeyError, IndexError, TypeError) as exc:
        return cid, Completion("", error=f"malformed batch response body ({exc.__class__.__name__})")


def split_lines(lines: list[str], max_requests: int, max_bytes: int) -> list[list[int]]:
    """Indices of ``lines`` (JSONL lines, newline excluded) grouped into files of at most
    ``max_requests`` lines and ``max_bytes`` bytes, in order.

    Raises:
        PersynError: one line alone is larger than ``max_bytes``.
    """
    groups: list[list[int]] = []
    size = 0
    for i, line in enumerate(lines):
        n = len(line.encode()) + 1
        if n > max_bytes:
            raise PersynError(f"a batch request line of {n} bytes exceeds batch.max_bytes ({max_bytes})")
        if not groups or len(groups[-1]) >= max_requests or size + n > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += n
    return groups


class BatchJournal:
    """The append-only record of one teacher's batches (see the module docstring): events
    ``uploaded`` (``hash``, ``file_id``, ``ids``), ``created`` (``hash``, ``batch_id``) and
    ``collected`` (``hash``). A torn last line (a kill mid-write) is ignored."""

    def __init__(self, path: Path):
        self.path = path

    def events(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # the torn tail of a killed write
        return out

    def append(self, **event) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def open_batches(self) -> dict[str, dict]:
        """Hash → ``{"ids", "file_id", "batch_id"}`` of the batches uploaded and not collected."""
        state: dict[str, dict] = {}
        for e in self.events():
            h = e.get("hash")
            if e.get("event") == "uploaded":
                state[h] = {"ids": e["ids"], "file_id": e["file_id"], "batch_id": None}
            elif e.get("event") == "created" and h in state:
                state[h]["batch_id"] = e["batch_id"]
            elif e.get("event") == "collected":
                state.pop(h, None)
        return state

    def times_collected(self, base: str) -> int:
        """How many batches of content ``base`` were collected (so that the same requests sent
        again, a retry, get a new hash)."""
        return sum(1 for e in self.events() if e.get("event") == "collected" and e.get("base") == base)


class BatchClient:
    """The Batch API calls of one teacher (``engine``: an ``OpenAIEngine``: its URL, headers,
    secrets scrubbing and timeout)."""

    def __init__(self, engine):
        self.engine = engine
        self.httpx = httpx_module()
        self.client = self.httpx.Client(timeout=engine.teacher.timeout, headers=engine._headers())

    def _call(self, method: str, path: str, **kw):
        t = self.engine.teacher
        try:
            r = self.client.request(method, f"{self.engine.url}{path}", **kw)
        except self.httpx.HTTPError as exc:
            raise PersynError(
                f"teacher '{t.name}': batch request {method} {path} failed "
                f"({self.engine.scrub(f'{exc.__class__.__name__}: {exc}')}); the batches in flight are "
                "in the journal: run again to resume"
            ) from None
        if r.status_code != 200:
            raise PersynError(
                f"teacher '{t.name}': batch request {method} {path}: HTTP {r.status_code}: "
                f"{self.engine.scrub(first_line(r.text))}"
            )
        return r

    def upload(self, content: bytes) -> str:
        files = {"file": ("batch.jsonl", content, "application/jsonl")}
        return self._call("POST", "/files", data={"purpose": "batch"}, files=files).json()["id"]

    def create(self, file_id: str, metadata: dict, window: str) -> dict:
        body = {
            "input_file_id": file_id,
            "endpoint": ENDPOINT,
            "completion_window": window,
            "metadata": metadata,
        }
        return self._call("POST", "/batches", json=body).json()

    def get(self, batch_id: str) -> dict:
        return self._call("GET", f"/batches/{batch_id}").json()

    def find(self, metadata: dict) -> dict | None:
        """The newest batch whose metadata holds every pair of ``metadata`` (persyn's run,
        teacher and content hash), searching every page."""
        after = None
        while True:
            params = {"limit": 100, **({"after": after} if after else {})}
            page = self._call("GET", "/batches", params=params).json()
            for b in page.get("data", []):
                meta = b.get("metadata") or {}
                if all(meta.get(k) == v for k, v in metadata.items()):
                    return b
            if not page.get("has_more") or not page.get("data"):
                return None
            after = page["data"][-1]["id"]

    def content(self, file_id: str) -> str:
        return self._call("GET", f"/files/{file_id}/content").text

    def close(self) -> None:
        self.client.close()


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def generate_in_batches(
    engine, prompts: list[Prompt], journal: BatchJournal
) -> Iterator[list[tuple[str, Completion]]]:
    """The responses of ``engine``'s teacher to ``prompts`` through the Batch API, one yielded
    list per collected batch (and a last one of the lines that failed every try).

    Raises:
        BatchesInFlight: ``wait: false`` and some batches are still running (what finished was
            yielded first).
        PersynError: a Batch API request failed (the journal keeps what is in flight).
    """
    t = engine.teacher
    settings: BatchSettings = t.batch
    client = BatchClient(engine)
    run = _hash(str(journal.path.resolve().parent))
    pending = {p.id: p for p in prompts}
    errors: dict[str, str] = {}
    try:
        for _ in range(settings.max_retries + 1):
            if not pending:
                break
            lines = {pid: json.dumps(request_line(engine._body(p), pid)) for pid, p in pending.items()}
            batches = _take_up_or_submit(client, journal, settings, lines, t.name, run)
            unfinished = []
            for h, info in batches.items():
                batch = client.get(info["batch_id"])
                while batch["status"] not in TERMINAL and settings.wait:
                    crash_point(POLLED)
                    time.sleep(settings.poll_seconds)
                    batch = client.get(info["batch_id"])
                if batch["status"] not in TERMINAL:
                    unfinished.append(batch)
                    continue
                got = _collect(client, batch, info["ids"], engine.scrub)
                crash_point(DOWNLOADED)
                done = [(pid, c) for pid, c in got.items() if c.error is None]
                for pid, c in got.items():
                    if c.error is not None:
                        errors[pid] = c.error
                if done:
                    yield done  # stored by the caller before the batch is marked collected
                for pid, _ in done:
                    pending.pop(pid, None)
                    errors.pop(pid, None)
                journal.append(event="collected", hash=h, base=info["base"], batch_id=info["batch_id"])
            if unfinished:
                counts = [b.get("request_counts") or {} for b in unfinished]
                total = sum(c.get("total", 0) for c in counts)
                raise BatchesInFlight(
                    f"teacher '{t.name}': {len(unfinished)} batch(es) in flight ({total} request(s); "
                    f"{', '.join(sorted({b['status'] for b in unfinished}))}); run again to collect them "
                    f"(batch.wait is false)"
                )
        if pending:
            tries = settings.max_retries + 1
            yield [
                (
                    pid,
                    Completion(
                        "", error=f"failed after {tries} batch(es): {errors.get(pid, 'not answered')}"
                    ),
                )
                for pid in pending
            ]
    finally:
        client.close()


def _take_up_or_submit(
    client: BatchClient,
    journal: BatchJournal,
    settings: BatchSettings,
    lines: dict[str, str],
    teacher: str,
    run: str,
) -> dict[str, dict]:
    """Hash → ``{"ids", "batch_id", "base"}`` of the batches that answer ``lines`` (custom id
    → request line): the journal's uncollected ones whose requests are all still wanted, as
    they are; the rest split, uploaded and created (each id journaled as soon as it is known)."""
    out: dict[str, dict] = {}
    left = dict(lines)
    for h, info in journal.open_batches().items():
        ids = info["ids"]
        if not ids or any(i not in left for i in ids):
            continue  # not all of its requests are wanted now: leave it
        base = _hash("".join(left[i] + "\n" for i in ids))
        if _hash(f"{base}#{journal.times_collected(base)}") != h:
            continue  # the requests changed (another setting): not these
        batch_id = info["batch_id"] or _find_or_create(
            client, journal, settings, h, info["file_id"], teacher, run
        )
        out[h] = {"ids": ids, "batch_id": batch_id, "base": base}
        for i in ids:
            del left[i]
    order = list(left)
    for group in split_lines([left[i] for i in order], settings.max_requests, settings.max_bytes):
        ids = [order[k] for k in group]
        content = "".join(left[i] + "\n" for i in ids)
        base = _hash(content)
        h = _hash(f"{base}#{journal.times_collected(base)}")
        found = client.find(_metadata(run, teacher, h))  # created before a kill lost its record
        if found is not None and found.get("status") not in ("failed", "cancelled"):
            journal.append(event="uploaded", hash=h, file_id=found.get("input_file_id"), ids=ids)
            journal.append(event="created", hash=h, batch_id=found["id"])
            out[h] = {"ids": ids, "batch_id": found["id"], "base": base}
            continue
        file_id = client.upload(content.encode())
        crash_point(UPLOADED)
        journal.append(event="uploaded", hash=h, file_id=file_id, ids=ids)
        out[h] = {
            "ids": ids,
            "batch_id": _create(client, journal, settings, h, file_id, teacher, run),
            "base": base,
        }
    return out


def _metadata(run: str, teacher: str, h: str) -> dict[str, str]:
    """What persyn writes in a batch's metadata, and finds it by."""
    return {"persyn_run": run, "persyn_teacher": teacher[:512], "persyn_hash": h}


def _find_or_create(client, journal, settings, h, file_id, teacher, run) -> str:
    found = client.find(_metadata(run, teacher, h))
    if found is not None:
        journal.append(event="created", hash=h, batch_id=found["id"])
        return found["id"]
    return _create(client, journal, settings, h, file_id, teacher, run)


def _create(client, journal, settings, h, file_id, teacher, run) -> str:
    batch = client.create(file_id, _metadata(run, teacher, h), settings.completion_window)
    crash_point(CREATED)
    journal.append(event="created", hash=h, batch_id=batch["id"])
    return batch["id"]


def _collect(client: BatchClient, batch: dict, ids: list[str], scrub) -> dict[str, Completion]:
    """Custom id → Completion for every id of a terminal batch: its output and error lines
    joined on ``custom_id`` (the Batch API's output order is not the input's); an id in neither
    is failed with the batch's status (a dropped line, an expired or failed batch)."""
    got: dict[str, Completion] = {}
    for field in ("output_file_id", "error_file_id"):
        if batch.get(field):
            for line in client.content(batch[field]).splitlines():
                if line.strip():
                    try:
                        cid, c = parse_result_line(json.loads(line), scrub)
                    except ValueError:
                        continue
                    if cid in ids:
                        got[cid] = c
    errs = ((batch.get("errors") or {}).get("data") or [{}])[0].get("message")
    why = f"batch {batch['status']}" + (f": {errs}" if errs else "") + "; no result line"
    return {i: got.get(i) or Completion("", error=why) for i in ids}
