"""A local OpenAI-compatible chat server with latency and injected faults, for load tests and
benchmarks of ``engine: openai`` without a real server (loopback only).

Each chat request waits ``latency_s``, then either answers ``#### <n>`` (n = the number of
characters of the last user turn) or fails: a 429 with a ``Retry-After`` of ``retry_after_s``, a
500, a stall past the client's timeout, a dropped connection, a 401 that echoes the credentials
it got (a careless proxy), or a 200 whose body is not JSON. The fault comes from a script (one
per request, in order), else is drawn with the server's seeded RNG at the rates given; a
prompt-keyed rule can force one. It counts what it answered per prompt, so a test can check that
nothing was lost or answered twice, and keeps every request body.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def answer_of(prompt: str) -> str:
    """The fake server's answer to a prompt: the number of its characters."""
    return str(len(prompt))


class FakeOpenAIServer:
    """Serves ``GET /v1/models`` and ``POST /v1/chat/completions`` on 127.0.0.1 (a free port).

    Args:
        latency_s: seconds every chat request takes before its answer or fault.
        rates: fault → probability per request, faults ``429``, ``500``, ``stall``, ``drop``,
            ``echo`` (a 401 whose error carries the request's ``Authorization`` header),
            ``badjson`` (a 200 whose body is not JSON), ``501`` (an HTML error page, as a server
            that does not implement the path sends; not retried), ``length`` (the answer, with
            ``finish_reason: length``, as when cut at ``max_tokens``).
        script: faults (or None: answer) consumed one per chat request before any is drawn;
            ``script`` is a list attribute a test may also set after starting the server.
        fault_of: ``prompt -> fault | None``, a fault forced for a prompt (the last user turn)
            whatever the script or the draw gave.
        model: the model id ``GET /v1/models`` lists.
        retry_after_s: the ``Retry-After`` of a 429 (seconds; fractions allowed).
        stall_s: how long a stalled request hangs before answering.
        seed: seeds the fault draws.
        answer: the reply text to a prompt (the last user turn); default ``#### <n>`` with
            ``answer_of``.
        usage: ``(prompt, reply) -> (prompt_tokens, completion_tokens)`` reported per answer;
            default ``(len(prompt) // 4, 3)``.

    Attributes:
        url: the base URL (``http://127.0.0.1:PORT/v1``).
        answered: prompt (last user turn) → answers sent (200s).
        faults: fault → times injected.
        requests: chat requests received.
        bodies: every chat request's JSON body, in arrival order.
    """

    def __init__(
        self,
        latency_s: float = 0.0,
        rates: dict[str, float] | None = None,
        retry_after_s: float = 0.001,
        stall_s: float = 2.0,
        seed: int = 0,
        answer=None,
        usage=None,
        script=(),
        fault_of=None,
        model: str = "fake-teacher",
    ):
        self.rates = dict(rates or {})
        self.script: list[str | None] = list(script)
        self.bodies: list[dict] = []
        self._fault_of = fault_of
        self.answered: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.requests = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        server = self
        reply = answer or (lambda prompt: f"#### {answer_of(prompt)}")
        count = usage or (lambda prompt, text: (len(prompt) // 4, 3))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code, body, headers=()):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"data": [{"id": model}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                fault = server.draw(prompt, body)
                if latency_s:
                    time.sleep(latency_s)
                if fault == "429":
                    return self._send(429, {"error": "rate limited"}, [("Retry-After", str(retry_after_s))])
                if fault == "500":
                    return self._send(500, {"error": "internal error"})
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault == "echo":
                    return self._send(401, {"error": f"bad credentials: {self.headers.get('Authorization')}"})
                if fault == "badjson":
                    return self._send(200, "{not json")
                if fault == "501":
                    page = "<!DOCTYPE html>\n<html><head><title>501 Not Implemented</title></head>\n"
                    return self._send(501, page + "<body><h1>Not Implemented</h1></body></html>\n")
                if fault == "stall":
                    time.sleep(stall_s)
                with server._lock:
                    server.answered[prompt] += 1
                text = reply(prompt)
                n_in, n_out = count(prompt, text)
                self._send(
                    200,
                    {
                        "choices": [
                            {
                                "message": {"content": text},
                                "finish_reason": "length" if fault == "length" else "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": n_in, "completion_tokens": n_out},
                    },
                )

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def draw(self, prompt: str = "", body: dict | None = None) -> str | None:
        """The fault for the next request on ``prompt`` (None: answer), counted: the script's
        next entry, else a seeded draw at ``rates``; ``fault_of(prompt)`` overrides either.
        ``body`` (the request's JSON) is kept in ``bodies``."""
        with self._lock:
            self.requests += 1
            if body is not None:
                self.bodies.append(body)
            if self.script:
                fault = self.script.pop(0)
            else:
                fault, x, acc = None, self._rng.random(), 0.0
                for name, p in self.rates.items():
                    acc += p
                    if x < acc:
                        fault = name
                        break
            forced = self._fault_of(prompt) if self._fault_of else None
            fault = forced or fault
            if fault:
                self.faults[fault] += 1
            return fault

    def close(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
