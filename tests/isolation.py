"""A pytest plug-in: tests marked ``isolated`` run in a child process (a fresh interpreter, not a
fork: torch's and llama.cpp's thread pools do not survive a fork), so a native crash in one
(llama.cpp's segfault on CPUs with AMX, ggml-org/llama.cpp#20824) is one failed test that names
the signal, and the rest of the suite runs on.

The parent runs ``python -m pytest NODEID`` with ``PERSYN_ISOLATED_REPORTS`` naming a file; the
child, seeing it, appends each of the test's reports there as JSON (pytest's own report
serialisation) and the parent replays them. A child that dies before its last report leaves a
failed ``call`` report with the signal and the tail of its output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

REPORTS_ENV = "PERSYN_ISOLATED_REPORTS"
_config = None  # the session's config (a report does not carry it)


def pytest_configure(config):
    global _config
    _config = config
    config.addinivalue_line(
        "markers", "isolated: run in a child process, so a native crash fails this test only"
    )
    config.addinivalue_line(
        "markers", "serial: run after the parallel part of `make test`, alone (set by conftest)"
    )


def pytest_runtest_logreport(report):
    """In the child: every report of the test, one JSON line each, flushed at once (the next
    phase may crash the process)."""
    path = os.environ.get(REPORTS_ENV)
    if path and _config is not None:
        data = _config.hook.pytest_report_to_serializable(config=_config, report=report)
        with open(path, "a") as f:
            f.write(json.dumps(data) + "\n")


def signal_name(returncode: int) -> str:
    """``SIGSEGV (signal 11)`` for a child killed by a signal (negative return code), else
    ``exit code N``."""
    if returncode < 0:
        try:
            return f"{signal.Signals(-returncode).name} (signal {-returncode})"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def run_in_child(item) -> list:
    """The reports of ``item`` run by a child pytest, with a failed ``call`` report added when
    the child ended before its teardown report (a crash)."""
    config = item.config
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl", delete=False) as tmp:
        path = tmp.name
    env = {**os.environ, REPORTS_ENV: path}
    started = time.time()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header", item.nodeid],
            cwd=str(config.rootpath),
            env=env,
            capture_output=True,
            text=True,
        )
        with open(path) as f:
            lines = [json.loads(x) for x in f.read().splitlines() if x.strip()]
    finally:
        os.unlink(path)
    reports = [config.hook.pytest_report_from_serializable(config=config, data=d) for d in lines]
    reports = [r for r in reports if r.nodeid == item.nodeid]
    if any(r.when == "teardown" for r in reports):
        return reports
    tail = (proc.stdout + proc.stderr)[-4000:]
    crashed = pytest.TestReport(
        nodeid=item.nodeid,
        location=item.location,
        keywords={k: 1 for k in item.keywords},
        outcome="failed",
        longrepr=f"{item.nodeid}: the child process running this test died: {signal_name(proc.returncode)}\n"
        f"--- its last output ---\n{tail}",
        when="call",
        duration=time.time() - started,
        start=started,
        stop=time.time(),
    )
    return [r for r in reports if r.when == "setup"] + [crashed]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    if item.get_closest_marker("isolated") is None or os.environ.get(REPORTS_ENV):
        return None  # not marked, or already the child: run here
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in run_in_child(item):
        item.ihook.pytest_runtest_logreport(report=report)
    # What the parent set up for the tests before (a module's fixtures) is torn down as pytest's
    # own protocol would after this item, else the next item in another module finds it stale.
    item.session._setupstate.teardown_exact(nextitem)  # noqa: SLF001 - pytest's runner state
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
