"""Crash points for the crash-safety tests: ``PERSYN_CRASH_AT=POINT[:N]`` makes the process
SIGKILL itself the N-th time (default 1st) it reaches ``POINT``.

The points sit right after durable work (a stored batch, a saved router, a written file), i.e.
where a real crash would hurt most. Unset (the normal case), a crash point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

POINTS = (
    "calibration.batch",  # after a batch of calibration responses is stored
    "score.batch",  # after a batch of scores is stored
    "router.trained",  # after the router is trained, before it is saved
    "router.saved",  # after the router is saved, before its stage marker
    "route.chunk",  # after a chunk of routing decisions is stored
    "routed.batch",  # after a batch of routed responses is stored
    "export.dataset",  # after dataset.jsonl is written, before summary.json
)
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
