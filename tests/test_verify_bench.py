"""benchmarks/verify.py: the verified Oracle picks as the pipeline does, the Eq. 2 argmax among
the responses that pass (``runtime.cascade.verified_pick``), not the argmax of all."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import verify  # noqa: E402

from persyn.scoring.combine import Candidate  # noqa: E402


def test_the_verified_oracle_picks_among_passing_responses():
    table = {
        # the most rewarded response fails; the one that passes is picked when verified
        "p0": [Candidate("a", 0.5, -1.0, reward=0.9), Candidate("b", 1.0, -2.0, reward=0.6)],
        # none passes: the Oracle still picks, the verified Oracle has no line
        "p1": [Candidate("a", 0.5, -1.0, reward=0.7), Candidate("b", 0.0, -2.0, reward=0.2)],
        # the most rewarded passes: both pick it
        "p2": [Candidate("a", 1.0, -1.0, reward=0.8), Candidate("b", 1.0, -3.0, reward=0.3)],
    }
    d = SimpleNamespace(
        prompts=[SimpleNamespace(id=k) for k in table],
        table=table,
        names=["a", "b"],
        passed=np.array([[False, True], [False, False], [True, True]]),
    )
    rows = np.arange(3)
    assert verify.oracle_lines(d, rows, verified=False) == {0: 0, 1: 0, 2: 0}
    assert verify.oracle_lines(d, rows, verified=True) == {0: 1, 2: 0}
