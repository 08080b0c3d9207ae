"""Secrets kept out of messages and written files: URL credentials and secret fields masked."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from persyn.core.urls import redact_url

# Field names whose values are secrets (``api_key``, ``hf_token``, ``password``...; not
# ``max_new_tokens``). ``api_key_env`` holds a variable's name, which is not secret.
_SECRET_FIELD = re.compile(r"(^|_)(api_key|token|password|secret)$", re.IGNORECASE)


def redact(value: Any, field: str = "") -> str:
    """A value as an error message may show it: shortened to 80 characters, with credentials
    in a URL (``https://user:pass@host``) masked and the whole value masked when the field holds
    a secret (an ``api_key_env`` that is not an environment variable name is taken to be a key
    pasted by mistake)."""
    value = _scrub(value, field.rsplit(".", 1)[-1])
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _scrub(value: Any, key: str) -> Any:
    """``value`` with secrets masked, recursively through mappings and lists (see ``redact``)."""
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, key) for v in value]
    if not isinstance(value, str):
        return value
    if key == "api_key_env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return "<redacted: looks like a key, not the name of an environment variable>"
    if _SECRET_FIELD.search(key):
        return "<redacted>"
    return redact_url(value)


def public_config_json(cfg: BaseModel) -> str:
    """``cfg`` as JSON for files persyn writes (``run_config.json``): credentials in URLs and
    secret fields masked as ``redact`` masks them (a command given the output directory then
    runs without them: generating again needs the original config)."""
    return json.dumps(_scrub(cfg.model_dump(mode="json"), ""), indent=2) + "\n"
