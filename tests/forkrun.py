"""Run the ``persyn`` CLI in a process of its own without paying for a fresh interpreter each time.

A crash-safety test starts ~40 runs, and a new ``python -m persyn`` spends ~3.5 s of CPU importing
torch and transformers before it does anything. Here the runs are forked from one
``multiprocessing`` fork server that imported them once (``set_forkserver_preload``). Each run is
still its own process: it is SIGKILLed for real at a crash point, and it starts with none of the
test process's state (the server has imported modules and run nothing). ``tests/test_kill.py``
keeps a real ``python -m persyn`` subprocess, so the entry point itself stays covered.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_PRELOAD = ["torch", "transformers", "persyn.cli"]
_context = None


def _fork_context():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(_PRELOAD)
    return _context


def _main(args: list[str], env: dict[str, str], out: str, cwd: str) -> None:
    """The forked child: the environment the run asked for, output to a file, then the CLI."""
    for key in set(os.environ) - set(env):
        del os.environ[key]
    os.environ.update(env)
    os.chdir(cwd)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from persyn.cli import app

    try:
        app(args=args, prog_name="persyn")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def persyn(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``persyn ARGS`` in a forked process and wait for it.

    ``env`` is the whole environment of the run (default: this process's), and it runs in this
    process's current directory (the fork server's is the one it started in); the result is what
    ``subprocess.run(..., capture_output=True, text=True)`` would give: ``returncode`` is ``-9``
    for a SIGKILLed run, ``stdout`` holds stdout and stderr together, ``stderr`` the same text.
    Raises ``subprocess.TimeoutExpired`` (after killing the run) past ``timeout`` seconds.
    """
    env = dict(os.environ if env is None else env)
    fd, out = tempfile.mkstemp(prefix="persyn-run-", suffix=".log")
    os.close(fd)
    proc = _fork_context().Process(target=_main, args=(list(args), env, out, os.getcwd()))
    proc.start()
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise subprocess.TimeoutExpired(["persyn", *args], timeout)
    text = Path(out).read_text(errors="replace")
    os.unlink(out)
    return subprocess.CompletedProcess(["persyn", *args], proc.exitcode, text, text)
