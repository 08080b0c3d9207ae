"""The best single teacher has one rule everywhere (``core.ranking.best_single_teacher``): the
highest mean reward, a tie to the alphabetically first name, never to the teacher listed
first."""

import numpy as np
import pytest
from conftest import best_single_teacher_of_rows

from persyn.config import RouterConfig
from persyn.core.ranking import best_single_teacher
from persyn.router.base import RouterExample, router_class
from persyn.router.cv import cross_validate

# Per prompt, the rewards of "alpha", "beta" and "gamma": alpha and gamma tie on the mean
# (0.6), beta is lower (0.4), and a failed response (None) counts as the prompt's lowest.
REWARDS = {
    "alpha": [0.9, 0.3, 0.6, 0.6],
    "beta": [0.4, 0.4, 0.4, None],
    "gamma": [0.3, 0.9, 0.6, 0.6],
}
ORDERS = [["gamma", "beta", "alpha"], ["alpha", "beta", "gamma"], ["beta", "gamma", "alpha"]]


def rows(names):
    return [[REWARDS[t][i] for t in names] for i in range(4)]


def examples(names):
    return [RouterExample(f"prompt {i}", [], r) for i, r in enumerate(rows(names))]


@pytest.mark.parametrize("names", ORDERS)
def test_the_shared_function_breaks_a_tie_alphabetically(names):
    m = [0.6 if t != "beta" else 0.4 for t in names]
    assert best_single_teacher(names, m) == "alpha"
    assert best_single_teacher(names, np.array(m)) == "alpha"
    assert (
        best_single_teacher(names, [None if t == "alpha" else v for t, v in zip(names, m, strict=True)])
        == "gamma"
    )
    assert best_single_teacher(names, [0.0, 0.0, 0.0]) == "alpha"


def test_the_shared_function_edges():
    assert best_single_teacher([], []) is None
    assert best_single_teacher(["a", "b"], [None, None]) is None
    assert best_single_teacher(["b", "a"], [0.7, 0.5]) == "b"  # a higher mean wins, of course
    with pytest.raises(ValueError):
        best_single_teacher(["a", "b"], [0.5])


@pytest.mark.parametrize("names", ORDERS)
def test_the_test_helper_uses_the_same_rule(names):
    assert best_single_teacher_of_rows(names, rows(names)) == "alpha"


@pytest.mark.parametrize("names", ORDERS)
def test_the_prior_router_picks_the_same_teacher_whatever_the_config_order(names, tmp_path):
    cfg = RouterConfig()
    prior = router_class("prior").fit(cfg, names, examples(names), seed=0)
    assert prior.best == "alpha"
    s = prior.scores(["any prompt", "another"])
    assert s.shape == (2, 3)
    # The scores are the means (alpha and gamma tie); routing goes to alpha all the same.
    assert np.array_equal(s[0], prior.means) and s[0][names.index("gamma")] == s[0][names.index("alpha")]
    assert {names[int(i)] for i in prior.route(["any prompt", "another"])} == {"alpha"}
    assert {names[int(i)] for i in prior.pick(s)} == {"alpha"}  # what routing and the CV take
    # Saved and loaded, it picks the same.
    prior.save(tmp_path / "r")
    again = router_class("prior").load(tmp_path / "r")
    assert again.best == "alpha" and np.array_equal(again.scores(["x"]), prior.scores(["x"]))
    assert names[int(again.route(["x"])[0])] == "alpha"


@pytest.mark.parametrize("names", ORDERS)
def test_the_prior_cross_validation_picks_do_not_depend_on_the_config_order(names):
    # 12 prompts (each of the 4 thrice) in 3 folds: a fold's training prompts may tie alpha and
    # gamma or not; either way the out-of-fold picks are the same teachers in every order.
    cfg = RouterConfig(cv_folds=3, cv_repeats=1)
    _, cv = cross_validate(["prior"], cfg, names, examples(names) * 3, seed=0)
    base = ORDERS[1]
    _, ref = cross_validate(["prior"], cfg, base, examples(base) * 3, seed=0)
    assert [names[int(i)] for i in cv["prior"].picks] == [base[int(i)] for i in ref["prior"].picks]
    # On all 12 prompts the two tie: what the evaluation names as the best single teacher.
    assert router_class("prior").fit(cfg, names, examples(names) * 3, seed=0).best == "alpha"


def test_the_prior_router_with_no_valid_example_picks_the_alphabetical_first():
    names = ["zeta", "eta"]
    prior = router_class("prior").fit(RouterConfig(), names, [], seed=0)
    assert prior.best == "eta" and names[int(prior.route(["x"])[0])] == "eta"


def test_the_budget_frontier_names_the_same_best_single_teacher():
    from persyn.budget.frontier import frontier

    # Two teachers tied on mean reward (0.5 each), listed both ways: the alphabetical first wins.
    R = np.array([[1.0, 0.0], [0.0, 1.0]])
    C = np.array([[1.0, 2.0], [1.0, 2.0]])
    for order in (["b-teacher", "a-teacher"], ["a-teacher", "b-teacher"]):
        perm = [["b-teacher", "a-teacher"].index(n) for n in order]
        out = frontier(R[:, perm], R[:, perm], C[:, perm], order, "tokens", n_boot=10)
        assert out["best_single"]["name"] == "a-teacher"
