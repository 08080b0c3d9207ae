"""benchmarks/verify.py: the verified Oracle picks as the pipeline does, the Eq. 2 argmax among
the responses that pass (``runtime.cascade.verified_pick``), not the argmax of all, both in
``oracle_lines`` and in ``one_draw``'s oracle-verified row."""

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


def _pool(n: int = 24, seed: int = 0):
    """A ``PoolData`` without a store (``PoolData.from_table``): 3 teachers, graded quality (an
    IFEval-like share), the student finding the failing responses easier, so the Eq. 2 argmax
    often fails."""
    from importlib.resources import files

    import yaml

    from persyn.config import parse_config
    from persyn.scoring.combine import combine

    cfg = parse_config(yaml.safe_load(files("persyn.configs").joinpath("demo.yaml").read_text()), "demo")
    rng = np.random.default_rng(seed)
    prompts = [SimpleNamespace(id=f"p{i}", text=f"prompt {i} " + "x" * i, metadata={}) for i in range(n)]
    table = {}
    for p in prompts:
        q = rng.choice([0.0, 0.5, 1.0], size=3, p=[0.3, 0.4, 0.3])
        cands = [
            Candidate(t, float(qi), float(-1.0 - qi + rng.normal(0, 0.1)))
            for t, qi in zip(cfg.teacher_names, q, strict=True)
        ]
        table[p.id] = combine(cands, 0.9)  # α high: learnability dominates Eq. 2
    return verify.PoolData.from_table(cfg, prompts, table, rng.normal(size=(n, 8)).astype(np.float32))


def test_one_draws_verified_oracle_row_keeps_only_passing_lines():
    d = _pool()
    out = verify.one_draw(d, n_cal=8, seed=0)
    some_pass = float(d.passed.any(axis=1).mean())
    # the data discriminates: the unverified Oracle's argmax fails on some prompts that have a passing response
    assert out["oracle"]["right_per_prompt"] < some_pass
    # the verified Oracle has a line, a passing one, on every prompt some teacher passes
    assert out["oracle-verified"]["right_share"] == 1.0
    assert out["oracle-verified"]["right_per_prompt"] == some_pass
    assert out["oracle-verified"]["lines"] == int(d.passed.any(axis=1).sum())
