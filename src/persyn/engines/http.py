"""What the engines that talk to an OpenAI-compatible server share: httpx, loaded when needed
(the ``serve`` extra), and the short reason a failed request gets."""

from __future__ import annotations

import json
import re

from persyn.core.errors import MissingAssetError


def httpx_module():
    """The ``httpx`` module.

    Raises:
        MissingAssetError: it is not installed (the message gives the install line).
    """
    try:
        import httpx
    except ImportError:
        raise MissingAssetError("engine 'openai' needs httpx: run `pip install 'persyn[serve]'`") from None
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
