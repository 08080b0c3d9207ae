"""Helpers for the Ray tests: find and kill real Ray worker processes, clean up after a killed
driver."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_pids(task: str = "run") -> list[int]:
    """Pids of persyn's Ray workers busy with ``task`` (Ray titles them ``ray::PersynWorker.TASK``)."""
    return [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and _cmdline(pid).startswith(f"ray::PersynWorker.{task}")
    ]


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid``: what a killed driver's local Ray instance
    leaves behind (Ray's agents outlive a SIGKILLed driver)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            session = int(stat.rsplit(")", 1)[1].split()[3])
        except (OSError, ValueError, IndexError):
            continue
        if session == sid:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
