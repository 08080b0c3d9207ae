"""Crash points for the crash-safety tests: ``PERSYN_CRASH_AT=POINT[:N]`` makes the process
SIGKILL itself the N-th time (default 1st) it reaches ``POINT``.

The points sit right after durable work (a stored batch, a saved router, a written file), i.e.
where a real crash would hurt most. Each stage module registers its points (``register``). Unset (the normal case), a crash point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

#: Every crash point, by name, with where it sits. Each stage registers its own (``register``)
#: when its module is imported; the kill-at-every-point test reads this table.
POINTS: dict[str, str] = {}


def register(name: str, where: str) -> str:
    """Declare crash point ``name`` (``where``: what durable work precedes it). Returns ``name``."""
    POINTS[name] = where
    return name


_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """SIGKILL this process if ``PERSYN_CRASH_AT`` names ``name`` and its count is reached."""
    spec = os.environ.get("PERSYN_CRASH_AT")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
