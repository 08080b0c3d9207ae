"""Crash isolation (tests/isolation.py): a test marked ``isolated`` that dies of SIGSEGV in its
child process is one failed test naming the test and the signal; the tests after it still run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

PLANTED = """
import os, signal
import pytest

@pytest.mark.isolated
def test_dies_of_sigsegv():
    os.kill(os.getpid(), signal.SIGSEGV)

@pytest.mark.isolated
def test_isolated_and_fine():
    assert 1 + 1 == 2

@pytest.mark.isolated
def test_isolated_and_wrong():
    assert 1 + 1 == 3

def test_runs_after_the_crash():
    assert True
"""


def test_a_planted_segfault_fails_one_test_and_the_suite_runs_on(tmp_path):
    (tmp_path / "test_planted.py").write_text(PLANTED)
    # wired in as tests/conftest.py wires it
    (tmp_path / "conftest.py").write_text(
        "from isolation import pytest_configure, pytest_runtest_logreport, pytest_runtest_protocol\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.pop("PERSYN_ISOLATED_REPORTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # tests failed; pytest itself did not die
    assert "2 failed, 2 passed" in out, out
    assert "FAILED test_planted.py::test_dies_of_sigsegv" in out, out
    assert "the child process running this test died: SIGSEGV (signal 11)" in out, out
    assert "PASSED test_planted.py::test_runs_after_the_crash" in out, out
    assert "PASSED test_planted.py::test_isolated_and_fine" in out, out
    # an ordinary failure in a child keeps its own assertion report, not a crash report
    assert "FAILED test_planted.py::test_isolated_and_wrong" in out and "assert (1 + 1) == 3" in out, out


@pytest.mark.isolated
def test_an_isolated_test_runs_in_another_process():
    assert os.environ.get("PERSYN_ISOLATED_REPORTS")  # set only in the child
