"""The experiment's statistics: the seed-aware (two-stage) bootstrap, its p-value, Holm's
correction, the Oracle-gain ratio and the comparison table's primary rows."""

import numpy as np
import pytest

from persyn.experiment.comparisons import UNSEEDED, best_single, gain_arms, oracle_gain, pair, paired_table
from persyn.experiment.paired import bootstrap_p, gain_ratio, hierarchical_bootstrap, holm, paired_difference
from persyn.experiment.results import gain_line


def test_hierarchical_bootstrap_matches_a_direct_loop():
    rng = np.random.default_rng(3)
    d = rng.integers(-1, 2, size=(4, 30)).astype(float)
    got = hierarchical_bootstrap(d, n_boot=300, seed=11)
    # The same draws, done the slow way: seeds first, then prompts, one grid mean each.
    r = np.random.default_rng(11)
    seeds = r.integers(0, 4, size=(300, 4))
    prompts = r.integers(0, 30, size=(300, 30))
    direct = np.array([d[np.ix_(seeds[k], prompts[k])].mean() for k in range(300)])
    assert got == pytest.approx(direct)


def test_seed_aware_interval_counts_seed_variance_the_prompt_only_one_does_not():
    rng = np.random.default_rng(0)
    # Three seeds whose differences disagree in sign (training noise), many prompts.
    shift = np.array([0.25, 0.3, -0.2])[:, None]
    a = (rng.random((3, 400)) < 0.5 + shift).astype(float)
    b = (rng.random((3, 400)) < 0.5).astype(float)
    d = paired_difference(a, b, n_boot=2000, seed=1)
    assert d["prompt_low"] > 0  # the prompt-only interval calls it shown ...
    assert d["low"] < 0 < d["high"]  # ... the seed-aware one does not
    assert d["high"] - d["low"] > 2 * (d["prompt_high"] - d["prompt_low"])
    assert d["p"] > 0.05


def test_bootstrap_p_and_holm():
    assert bootstrap_p(np.array([1.0, 2.0, 3.0, -1.0])) == pytest.approx(2 * 2 / 5)
    assert bootstrap_p(np.ones(999)) == pytest.approx(2 / 1000)
    # Holm 1979: sorted p (0.01, 0.03, 0.04) x (3, 2, 1) = (0.03, 0.06, 0.04) -> monotone (0.03, 0.06, 0.06).
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


def test_gain_ratio_and_its_interval():
    rng = np.random.default_rng(2)
    best = (rng.random((3, 300)) < 0.3).astype(float)
    oracle = np.maximum(best, (rng.random((3, 300)) < 0.5).astype(float))
    # persyn: the best single teacher's answers, with half of the oracle's extra right answers.
    extra = (oracle - best) * (rng.random((3, 300)) < 0.5)
    a = best + extra
    g = gain_ratio(a, best, oracle, n_boot=500, seed=0)
    assert g["ratio"] == pytest.approx(extra.sum() / (oracle - best).sum())
    assert g["low"] < g["ratio"] < g["high"]
    assert g["positive_share"] == 1.0
    flat = gain_ratio(a, best, best, n_boot=200)
    assert flat["ratio"] is None and flat["low"] is None


def _found(**per_strategy):
    return {name: dict(enumerate(m)) for name, m in per_strategy.items()}


def test_paired_table_names_primary_rows_first_and_corrects_only_them():
    rng = np.random.default_rng(4)
    m = {
        n: (rng.random((3, 60)) < p).astype(float)
        for n, p in [("persyn", 0.6), ("car", 0.4), ("mix", 0.5), ("strongest", 0.3)]
    }
    rows = paired_table(_found(**m), "persyn", primary=["strongest", "car"])
    assert [(r["b"], r["role"]) for r in rows] == [
        ("strongest", "primary"),
        ("car", "primary"),
        ("mix", "exploratory"),
    ]
    firsts = rows[:2]
    assert [r["p_holm"] for r in firsts] == pytest.approx(holm([r["p"] for r in firsts]))
    assert rows[2]["p_holm"] is None


def test_pair_uses_shared_seeds_and_repeats_the_untouched_student():
    x = {0: np.ones(5), 1: np.zeros(5), 2: np.ones(5)}
    y = {1: np.ones(5), 2: np.zeros(5)}
    a, b = pair(x, y)
    assert a.tolist() == [[0.0] * 5, [1.0] * 5] and b.tolist() == [[1.0] * 5, [0.0] * 5]
    u, v = pair({UNSEEDED: np.full(5, 0.0)}, x)
    assert u.shape == v.shape == (3, 5)
    assert pair(x, {7: np.ones(5)})[0].shape == (0, 5)


def test_oracle_gain_takes_the_best_single_teacher_from_validation():
    ones, zeros = np.ones((2, 50)), np.zeros((2, 50))
    rng = np.random.default_rng(6)
    half = (rng.random((2, 50)) < 0.5).astype(float)
    test = _found(persyn=half, oracle=ones, strongest=zeros, car=half)
    # On the test set car is the better single teacher; validation says strongest.
    validation = _found(strongest=ones, car=zeros)
    assert best_single(test) == "car"
    g = oracle_gain(test, validation=validation)
    assert (g["best"], g["chosen_on"]) == ("strongest", "validation")
    assert g["recovered"] == pytest.approx(half.mean())
    without = oracle_gain(test)
    assert (without["best"], without["chosen_on"]) == ("car", "test")


def test_the_verified_oracles_gain_is_over_the_best_single_teacher_verified_or_not():
    ones, zeros = np.ones((2, 50)), np.zeros((2, 50))
    half = (np.random.default_rng(7).random((2, 50)) < 0.5).astype(float)
    assert gain_arms(["persyn", "oracle", "car", "car-verified"]) == ("oracle", ["car"])
    assert gain_arms(["persyn", "car-verified", "car", "oracle-verified"]) == (
        "oracle-verified",
        ["car", "car-verified"],
    )
    assert gain_arms(["persyn", "car"]) == (None, [])
    test = _found(persyn=half, **{"oracle-verified": ones, "car": zeros, "car-verified": zeros})
    # validation picks car-verified, a verified single teacher's dataset
    g = oracle_gain(test, validation=_found(car=zeros, **{"car-verified": ones}))
    assert (g["oracle"], g["best"], g["chosen_on"]) == ("oracle-verified", "car-verified", "validation")
    assert g["recovered"] == pytest.approx(half.mean())
    assert "(oracle-verified − best single)" in gain_line(
        g
    ) and "oracle-verified − car-verified = +1.000" in gain_line(g)


def test_no_share_of_an_oracle_gain_that_is_not_above_zero():
    # The Oracle's data below the best single teacher's (setting 1's case): no ratio, and the
    # sentence says the interval lies below 0 (it used to say it "does not exclude 0").
    ones, zeros = np.ones((2, 50)), np.zeros((2, 50))
    g = oracle_gain(_found(persyn=ones, oracle=zeros, car=ones), validation=_found(car=ones))
    assert g["recovered"] is None and g["oracle_minus_best"]["high"] < 0
    assert gain_line(g).endswith("; the interval is not above 0 (it lies below 0), so no share is reported.")
