"""A teacher behind any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp's
server, Ollama, hosted APIs).

Requests run concurrently (``concurrency`` at a time) on one asyncio loop, under optional
requests-per-minute and tokens-per-minute limits. A request is retried with exponential backoff
and full jitter on 429 (honouring ``Retry-After``), 5xx, timeouts, dropped connections and
malformed bodies; after ``max_retries`` retries, or at once on another 4xx, the prompt becomes a
failed item carrying the last error. Token usage comes from the response's ``usage``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from persyn.core.errors import BatchFilesNeeded, ConfigError, PersynError
from persyn.core.records import Completion, Prompt
from persyn.core.urls import redact_url
from persyn.engines.base import NOT_IN_KEY, Engine, ModelTeacher, teacher_messages
from persyn.engines.http import chat_completion, first_line, httpx_module
from persyn.engines.openai_batch import (
    EXPORT_TO,
    BatchJournal,
    BatchSettings,
    export_requests,
    generate_in_batches,
)


class OpenAITeacher(ModelTeacher):
    """``engine: openai``: ``model`` (a name on the server) behind ``base_url``, any
    OpenAI-compatible chat-completions server. ``api_key_env`` is the NAME of an environment
    variable holding the key, never the key itself (local servers need none). ``concurrency``
    requests at a time, under ``requests_per_minute`` / ``tokens_per_minute`` (None: unlimited),
    each with ``timeout`` seconds and up to ``max_retries`` retries. Other settings:
    ``ModelTeacher``; ``base_url`` enters the cache key, the rest does not. ``batch``
    (``persyn.engines.openai_batch.BatchSettings``): the requests go out as batch files instead
    (the Batch API, or files for ``vllm run-batch``); the same request gives the same response,
    so it does not enter the key either."""

    SERVED: ClassVar[bool] = True

    engine: Literal["openai"] = "openai"
    base_url: str | None = None
    api_key_env: Annotated[str | None, NOT_IN_KEY] = None
    concurrency: Annotated[int, Field(ge=1), NOT_IN_KEY] = 8
    requests_per_minute: Annotated[Annotated[float, Field(gt=0)] | None, NOT_IN_KEY] = None
    tokens_per_minute: Annotated[Annotated[float, Field(gt=0)] | None, NOT_IN_KEY] = None
    timeout: Annotated[float, Field(gt=0), NOT_IN_KEY] = 60.0
    max_retries: Annotated[int, Field(ge=0), NOT_IN_KEY] = 5
    batch: Annotated[BatchSettings | None, NOT_IN_KEY] = None

    def min_shard(self) -> int:
        """``concurrency``: a smaller Ray shard would leave requests of a worker idle."""
        return self.concurrency

    def batched(self) -> BatchSettings | None:
        """The batch settings when batch generation is on, else None."""
        return self.batch if self.batch is not None and self.batch.enabled else None

    def check_needs(self) -> None:
        """Raise ValueError without ``model``, or without ``base_url`` unless the teacher
        answers through batch files (``batch.mode: files``: persyn sends nothing)."""
        files = self.batched() is not None and self.batched().mode == "files"
        if not self.model or (not self.base_url and not files):
            raise ValueError("engine 'openai' needs 'base_url' (e.g. http://127.0.0.1:8000/v1) and 'model'")


RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def api_key(teacher: OpenAITeacher) -> str | None:
    """The API key from the environment variable ``api_key_env`` names (None when unset in the
    config: local servers need none).

    Raises:
        ConfigError: the variable is named but not set.
    """
    if not teacher.api_key_env:
        return None
    key = os.environ.get(teacher.api_key_env)
    if not key:
        raise ConfigError(
            f"teacher '{teacher.name}': api_key_env: environment variable {teacher.api_key_env} is not set"
        )
    return key


class RateLimiter:
    """Sliding 60-second windows over requests and tokens; ``acquire`` waits until one more
    request of ``tokens`` estimated tokens fits both limits (None = unlimited)."""

    def __init__(self, rpm: float | None, tpm: float | None):
        self.rpm, self.tpm = rpm, tpm
        self.events: deque[tuple[float, int]] = deque()
        self.lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        if self.rpm is None and self.tpm is None:
            return
        async with self.lock:
            while True:
                now = time.monotonic()
                while self.events and now - self.events[0][0] >= 60.0:
                    self.events.popleft()
                used = sum(t for _, t in self.events)
                ok_r = self.rpm is None or len(self.events) < self.rpm
                ok_t = self.tpm is None or not self.events or used + tokens <= self.tpm
                if ok_r and ok_t:
                    self.events.append((now, tokens))
                    return
                await asyncio.sleep(max(0.01, 60.0 - (now - self.events[0][0])))


class OpenAIEngine(Engine):
    """``engine: openai``: one chat completion per prompt from ``base_url`` (e.g.
    ``http://127.0.0.1:8000/v1``) for ``model``. See the module docstring for retries.

    Raises (at construction, before any work):
        ConfigError: a missing API key variable.
        PersynError: an unreachable ``base_url`` (with the URL), or a model the server does not
            list under ``/models``.
    """

    Settings: ClassVar[type[OpenAITeacher]] = OpenAITeacher
    #: Built with the run's output directory (its batch journal lives there).
    USES_WORKDIR: ClassVar[bool] = True

    def __init__(self, teacher: OpenAITeacher, seed: int, check: bool = True, workdir: Path | None = None):
        assert teacher.model
        self.teacher = teacher
        self.seed = seed
        self.workdir = Path(workdir) if workdir is not None else None
        batch = teacher.batched()
        self.files_only = batch is not None and batch.mode == "files"
        self.url = (teacher.base_url or "").rstrip("/")
        self.key = api_key(teacher)
        # What could be echoed back: the key, and URL credentials as httpx sends them (Basic).
        self._secrets = [self.key] if self.key else []
        userinfo = urllib.parse.urlsplit(self.url).netloc.rpartition("@")[0]
        if userinfo:
            raw = urllib.parse.unquote(userinfo)
            self._secrets += [base64.b64encode(raw.encode()).decode(), raw.partition(":")[2] or raw]
        self.shown_url = self.scrub(self.url)
        if check and not self.files_only:
            self.check()

    def scrub(self, text: str) -> str:
        """``text`` (an error, a URL) with the API key and URL credentials masked: a server's
        error body may echo the key, an HTTP error the URL with its ``user:password@``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_url(text)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def check(self) -> None:
        """GET ``/models``: the server answers and lists the teacher's model."""
        httpx = httpx_module()
        t = self.teacher
        try:
            r = httpx.get(f"{self.url}/models", headers=self._headers(), timeout=min(10.0, t.timeout))
        except httpx.HTTPError as exc:
            raise PersynError(
                f"teacher '{t.name}': base_url {self.shown_url} is unreachable "
                f"({self.scrub(f'{exc.__class__.__name__}: {exc}')})"
            ) from None
        if r.status_code in (401, 403):
            raise PersynError(
                f"teacher '{t.name}': {self.shown_url} refused the API key (HTTP {r.status_code})"
            )
        if r.status_code != 200:
            return  # some servers do not implement /models: let the requests tell
        try:
            ids = [m.get("id") for m in r.json().get("data", [])]
        except (ValueError, AttributeError):
            return
        if ids and t.model not in ids:
            raise PersynError(
                f"teacher '{t.name}': model '{t.model}' is not served by {self.shown_url} "
                f"(served: {self.scrub(', '.join(map(str, ids)))})"
            )

    def _body(self, p: Prompt) -> dict:
        t = self.teacher
        body = {
            "model": t.model,
            "messages": teacher_messages(self.teacher, p),
            "temperature": t.temperature,
            "top_p": t.top_p,
            "max_tokens": t.max_new_tokens,
            "seed": self.seed,
        }
        if t.stop:
            body["stop"] = t.stop
        return body

    async def _one(self, client, limiter: RateLimiter, p: Prompt) -> Completion:
        httpx = httpx_module()
        t = self.teacher
        estimate = len(p.text) // 4 + t.max_new_tokens
        error = "no attempt"
        wait = 0.0
        started = time.perf_counter()
        for attempt in range(t.max_retries + 1):
            if attempt:
                await asyncio.sleep(wait)
            await limiter.acquire(estimate)
            wait = random.uniform(0, min(30.0, 0.5 * 2**attempt))  # full jitter
            try:
                r = await client.post(
                    f"{self.url}/chat/completions", json=self._body(p), headers=self._headers()
                )
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                error = self.scrub(f"{exc.__class__.__name__}: {exc}".rstrip(": "))
                continue
            if r.status_code != 200:
                error = f"HTTP {r.status_code}: {self.scrub(first_line(r.text))}"
                if r.status_code not in RETRY_STATUS:
                    break
                after = r.headers.get("retry-after")
                if after:
                    try:
                        wait = max(wait, float(after))
                    except ValueError:
                        pass
                continue
            try:
                return chat_completion(r.json(), seconds=time.perf_counter() - started)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                error = f"malformed response body ({exc.__class__.__name__}: {self.scrub(str(exc))[:100]})"
                continue
        return Completion(
            "", error=f"failed after {attempt + 1} attempt(s): {error}", seconds=time.perf_counter() - started
        )

    async def _run(self, prompts: list[Prompt], out: asyncio.Queue) -> None:
        httpx = httpx_module()
        t = self.teacher
        limiter = RateLimiter(t.requests_per_minute, t.tokens_per_minute)
        sem = asyncio.Semaphore(t.concurrency)
        limits = httpx.Limits(max_connections=t.concurrency, max_keepalive_connections=t.concurrency)
        async with httpx.AsyncClient(timeout=t.timeout, limits=limits) as client:

            async def task(p: Prompt) -> None:
                async with sem:
                    await out.put((p.id, await self._one(client, limiter, p)))

            await asyncio.gather(*(task(p) for p in prompts))
        await out.put(None)

    def journal(self) -> BatchJournal:
        """This teacher's batch journal (``OUTPUT_DIR/batches/NAME.jsonl``).

        Raises:
            PersynError: the engine was built without the run's output directory (``workdir``).
        """
        if self.workdir is None:
            raise PersynError(
                f"teacher '{self.teacher.name}': batch generation keeps a journal in the run's output "
                "directory; build the engine with workdir= (make_engine does)"
            )
        return BatchJournal(self.workdir / "batches" / f"{self.teacher.name}.jsonl")

    def generate(self, prompts: list[Prompt]) -> Iterator[list[tuple[str, Completion]]]:
        """Yield completions ``batch_size`` at a time, in the order they finish, so the caller
        stores them as they arrive (a crash loses at most the requests in flight); with
        ``batch:``, one list per collected batch (``openai_batch.generate_in_batches``).

        Raises:
            BatchFilesNeeded: ``batch.mode: files`` and responses are missing (the message gives
                the export / import commands), or ``persyn batch export`` wrote the requests.
            BatchesInFlight: ``batch.wait: false`` and batches are still running.
        """
        if not prompts:
            return
        name = self.teacher.name
        if name in EXPORT_TO:  # `persyn batch export`: the requests, not the responses
            n = export_requests(self, prompts, EXPORT_TO[name])
            raise BatchFilesNeeded(f"teacher '{name}': wrote {n} request(s) to {EXPORT_TO[name]}")
        if self.files_only:
            raise BatchFilesNeeded(
                f"teacher '{name}' answers through batch files (batch.mode: files) and {len(prompts)} "
                f"response(s) are missing: write them with `persyn batch export CONFIG --teacher {name} "
                f"-o requests.jsonl`, answer them (e.g. `vllm run-batch -i requests.jsonl -o results.jsonl "
                f"--model MODEL`), then `persyn batch import CONFIG --teacher {name} results.jsonl` and run again"
            )
        if self.teacher.batched() is not None:
            yield from generate_in_batches(self, prompts, self.journal())
            return
        loop = asyncio.new_event_loop()
        try:
            queue: asyncio.Queue = asyncio.Queue()
            runner = loop.create_task(self._run(prompts, queue))
            batch: list[tuple[str, Completion]] = []
            while True:
                item = loop.run_until_complete(queue.get())
                if item is None:
                    break
                batch.append(item)
                if len(batch) >= self.teacher.batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            loop.run_until_complete(runner)
        finally:
            loop.close()
