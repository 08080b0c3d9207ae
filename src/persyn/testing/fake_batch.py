"""A local OpenAI-compatible Batch API server, for tests of ``batch:`` teachers without a real
provider (loopback only).

It keeps uploaded files (``POST /v1/files``, multipart, ``purpose=batch``) and batches
(``POST /v1/batches``; ``GET /v1/batches/{id}``; ``GET /v1/batches`` listed newest first, paged
by ``limit`` and ``after``) and serves file contents (``GET /v1/files/{id}/content``). A batch is
a state machine that moves one step per poll: ``validating`` → ``in_progress`` →
``finalizing`` → ``completed`` (``polls_to_complete`` polls in all), or ``failed`` at
validation, or ``expired`` with only its first lines answered. Each answered line's reply is
that of ``FakeOpenAIServer`` (``#### <n>``, n = the characters of the last user turn), so a
batch run and a synchronous run give the same responses. It counts every request line it
accepted in a created batch (``submitted``, by request body), so a test can check that nothing
was submitted twice, and the synchronous chat requests it got (``sync_requests``).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from persyn.testing.fake_openai import answer_of

TERMINAL = ("completed", "failed", "expired", "cancelled")


def body_key(body: dict) -> str:
    """A request body as one canonical string (what ``submitted`` counts)."""
    return json.dumps(body, sort_keys=True)


class FakeBatchServer:
    """Serves the Batch API endpoints above, ``GET /v1/models`` and ``POST /v1/chat/completions``
    on 127.0.0.1 (a free port).

    Args:
        polls_to_complete: polls of a batch before it is terminal (at least 1).
        line_fault: ``(prompt, times) -> None | "error" | "drop"`` for each line when its batch
            completes: ``prompt`` is the last user turn, ``times`` how often an identical request
            was submitted before this one; ``error`` writes a 500 line to the error file,
            ``drop`` leaves the line out of both files.
        shuffle: write the output file's lines in a shuffled order (the Batch API does not keep
            input order).
        expire_after: each batch ends ``expired`` with only its first N lines answered.
        validation_failures: the first N batches created end ``failed`` at validation.
        model: the model id ``GET /v1/models`` lists.
        seed: seeds the shuffle.
        answer: the reply text to a prompt (the last user turn); default ``#### <n>`` with
            ``answer_of``, as ``FakeOpenAIServer``'s.

    Attributes:
        url: the base URL (``http://127.0.0.1:PORT/v1``).
        submitted: request body (``body_key``) → times accepted in a created batch.
        batches: batch id → the batch object (``metadata``, ``status``, ``request_counts``...).
        created: batch ids in creation order.
        uploads: files uploaded.
        sync_requests: synchronous chat requests received.
        polls: ``GET /v1/batches/{id}`` calls.
    """

    def __init__(
        self,
        polls_to_complete: int = 2,
        line_fault: Callable[[str, int], str | None] | None = None,
        shuffle: bool = False,
        expire_after: int | None = None,
        validation_failures: int = 0,
        model: str = "fake-teacher",
        seed: int = 0,
        answer: Callable[[str], str] | None = None,
    ):
        self.polls_to_complete = max(1, polls_to_complete)
        self.line_fault = line_fault
        self.shuffle = shuffle
        self.expire_after = expire_after
        self.validation_failures = validation_failures
        self.submitted: Counter[str] = Counter()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.created: list[str] = []
        self.uploads = 0
        self.sync_requests = 0
        self.polls = 0
        self._steps: dict[str, int] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._answer = answer or (lambda prompt: f"#### {answer_of(prompt)}")
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code: int, body, content_type: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _read(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self):
                parts = urlsplit(self.path)
                path, query = parts.path.rstrip("/"), parse_qs(parts.query)
                with server._lock:
                    if path == "/v1/models":
                        return self._send(200, {"data": [{"id": model}]})
                    if path == "/v1/batches":
                        return self._send(200, server._list(query))
                    if path.startswith("/v1/batches/"):
                        batch = server.batches.get(path.rsplit("/", 1)[1])
                        if batch is None:
                            return self._send(404, {"error": {"message": "no such batch"}})
                        server.polls += 1
                        server._advance(batch)
                        return self._send(200, batch)
                    if path.startswith("/v1/files/") and path.endswith("/content"):
                        data = server.files.get(path.split("/")[3])
                        if data is None:
                            return self._send(404, {"error": {"message": "no such file"}})
                        return self._send(200, data, "application/jsonl")
                return self._send(404, {"error": {"message": f"no route {path}"}})

            def do_POST(self):
                path = urlsplit(self.path).path.rstrip("/")
                raw = self._read()
                with server._lock:
                    if path == "/v1/files":
                        return self._send(200, server._upload(self.headers["Content-Type"], raw))
                    if path == "/v1/batches":
                        code, body = server._create(json.loads(raw))
                        return self._send(code, body)
                    if path == "/v1/chat/completions":
                        server.sync_requests += 1
                        return self._send(200, server._completion(json.loads(raw)))
                return self._send(404, {"error": {"message": f"no route {path}"}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    # -- what the endpoints do (under the lock) -----------------------------------------------
    def _upload(self, content_type: str, raw: bytes) -> dict:
        msg = BytesParser(policy=email_policy).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        fields = {part.get_param("name", header="content-disposition"): part for part in msg.iter_parts()}
        data = fields["file"].get_payload(decode=True)
        self.uploads += 1
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = data
        return {"id": file_id, "object": "file", "bytes": len(data), "purpose": "batch"}

    def _create(self, req: dict) -> tuple[int, dict]:
        data = self.files.get(req.get("input_file_id", ""))
        if data is None:
            return 400, {"error": {"message": f"unknown input_file_id {req.get('input_file_id')!r}"}}
        lines = [json.loads(x) for x in data.decode().splitlines() if x.strip()]
        batch_id = f"batch-{len(self.batches) + 1}"
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": req.get("endpoint"),
            "input_file_id": req["input_file_id"],
            "completion_window": req.get("completion_window"),
            "metadata": req.get("metadata") or {},
            "status": "validating",
            "created_at": int(time.time()),
            "output_file_id": None,
            "error_file_id": None,
            "errors": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
        }
        self.batches[batch_id] = batch
        self.created.append(batch_id)
        self._steps[batch_id] = 0
        if len(self.created) > self.validation_failures:  # accepted: its lines count as submitted
            for line in lines:
                self.submitted[body_key(line["body"])] += 1
        return 200, batch

    def _list(self, query: dict) -> dict:
        ids = list(reversed(self.created))  # newest first, as the Batch API lists
        if "after" in query and query["after"][0] in ids:
            ids = ids[ids.index(query["after"][0]) + 1 :]
        limit = int(query.get("limit", ["20"])[0])
        page = ids[:limit]
        return {
            "object": "list",
            "data": [self.batches[i] for i in page],
            "has_more": len(ids) > limit,
            "last_id": page[-1] if page else None,
        }

    def _completion(self, body: dict) -> dict:
        prompt = body["messages"][-1]["content"]
        return {
            "choices": [{"message": {"content": self._answer(prompt)}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 3},
        }

    def _advance(self, batch: dict) -> None:
        if batch["status"] in TERMINAL:
            return
        self._steps[batch["id"]] += 1
        step = self._steps[batch["id"]]
        if self.created.index(batch["id"]) < self.validation_failures:
            batch["status"] = "failed"
            batch["errors"] = {"data": [{"code": "invalid_request", "message": "the input file is invalid"}]}
            return
        if step < self.polls_to_complete:
            batch["status"] = "in_progress" if step < self.polls_to_complete - 1 else "finalizing"
            return
        self._finish(batch)

    def _finish(self, batch: dict) -> None:
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]].decode().splitlines() if x.strip()]
        out, err = [], []
        for i, line in enumerate(lines):
            if self.expire_after is not None and i >= self.expire_after:
                break
            key = body_key(line["body"])
            fault = (
                self.line_fault(line["body"]["messages"][-1]["content"], self.submitted[key] - 1)
                if self.line_fault
                else None
            )
            if fault == "drop":
                continue
            row = {"id": f"req-{batch['id']}-{i}", "custom_id": line["custom_id"]}
            if fault == "error":
                row["response"] = {
                    "status_code": 500,
                    "request_id": row["id"],
                    "body": {"error": {"message": "the server had an error"}},
                }
                row["error"] = None
                err.append(row)
            else:
                row["response"] = {
                    "status_code": 200,
                    "request_id": row["id"],
                    "body": self._completion(line["body"]),
                }
                row["error"] = None
                out.append(row)
        if self.shuffle:
            self._rng.shuffle(out)
        for rows, field in ((out, "output_file_id"), (err, "error_file_id")):
            if rows:
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[field] = file_id
        batch["status"] = (
            "expired" if self.expire_after is not None and len(lines) > self.expire_after else "completed"
        )
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}

    def close(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeBatchServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
