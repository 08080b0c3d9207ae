"""What the engines that talk to an OpenAI-compatible server share: httpx, loaded when needed
(the ``serve`` extra), and the short reason a failed request gets."""

from __future__ import annotations

import json
import re

from persyn.core.deps import require
from persyn.core.records import Completion


def httpx_module():
    """The ``httpx`` module.

    Raises:
        MissingAssetError: it is not installed (the message gives the install line).
    """
    require("httpx", "engine 'openai'", "pip install 'persyn[serve]'")
    import httpx

    return httpx


def first_line(body: str, limit: int = 120) -> str:
    """A short reason from an error body: its first non-empty line of text, HTML tags removed
    (an error page's first line is its doctype), or an OpenAI-style JSON error's ``message``,
    cut at ``limit`` characters; ``(empty body)`` when there is none."""
    try:
        data = json.loads(body)
        err = data.get("error") if isinstance(data, dict) else None
        message = err.get("message") if isinstance(err, dict) else err if isinstance(err, str) else None
        message = message or (data.get("detail") if isinstance(data, dict) else None)
        if isinstance(message, str) and message.strip():
            body = message
    except ValueError:
        pass
    text = re.sub(r"<[^>]*>", "\n", body) if "<" in body else body
    line = next((x.strip() for x in text.splitlines() if x.strip()), "(empty body)")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def chat_completion(body: dict, seconds: float = 0.0) -> Completion:
    """The Completion of a chat-completions response body (synchronous, or one line of a batch
    result): the first choice's text (stripped; empty is a failed item, "empty response"), the
    ``usage`` token counts, ``finish_reason`` ``length`` or ``stop``.

    Raises:
        KeyError, IndexError, TypeError: a body without ``choices[0].message.content``.
    """
    choice = body["choices"][0]
    text = choice["message"]["content"] or ""
    usage = body.get("usage") or {}
    c = Completion(
        text.strip(),
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        "length" if choice.get("finish_reason") == "length" else "stop",
        seconds=seconds,
    )
    if not c.text:
        c.error = "empty response"
    return c
