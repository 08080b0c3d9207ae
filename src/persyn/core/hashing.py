"""Cache keys: one canonical hash for everything that changes an output."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any) -> str:
    """sha256 (hex, 24 digits) of the canonical JSON of ``obj`` (keys sorted, non-JSON values
    through ``str``): the cache-key function of the store, the router and the experiment."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def content_id(text: str) -> str:
    """A stable id for a prompt without one: the first 16 hex digits of sha256(text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
