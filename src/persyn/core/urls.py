"""URL credentials masked in anything persyn shows or writes (errors, logs, run_config.json)."""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it masked (``https://u:p@h`` →
    ``https://***@h``)."""
    return _CREDENTIALS.sub("***@", text)
