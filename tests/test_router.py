import pytest
import torch

from persyn.config import RouterConfig
from persyn.router.base import RouterExample, router_figures
from persyn.router.model import BTRouter
from persyn.router.train import bt_loss, fit_bt_router
from persyn.scoring.combine import pair_labels


def test_bt_loss_is_bce_of_coefficient_difference():
    coef = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])
    pairs = [(0, 0, 1, 1.0), (0, 1, 2, 0.0), (1, 0, 2, 0.5)]
    d = torch.tensor([1.0 - 0.0, -1.0 - 1.0, 0.0 - 2.0])
    c = torch.tensor([1.0, 0.0, 0.5])
    p = torch.sigmoid(d)
    expected = -(c * p.log() + (1 - c) * (1 - p).log()).mean()
    assert float(bt_loss(coef, pairs)) == pytest.approx(float(expected), rel=1e-5)


def synthetic(n=24):
    # Prompts about apples are best answered by teacher "b", about cars by "c".
    ex = []
    for i in range(n):
        if i % 2:
            ex.append((f"How many apples are in box {i}?", [0.1, 0.9, 0.3]))
        else:
            ex.append((f"What is 2 + {i}? cars wheels", [0.2, 0.1, 0.8]))
    return ex


def test_router_learns_which_teacher_suits_which_prompt(tiny_models, tmp_path):
    cfg = RouterConfig(encoder=tiny_models["encoder"], epochs=30, batch_size=8, encoder_lr=1e-3, head_lr=2e-2)
    data = [RouterExample(t, pair_labels(r)) for t, r in synthetic()]
    router = fit_bt_router(cfg, ["a", "b", "c"], data, seed=0)
    texts = ["How many apples are in box 99?", "What is 2 + 77? cars wheels"]
    picks = router.coefficients(texts).argmax(-1).tolist()
    assert picks == [1, 2]
    router.save(tmp_path / "r")
    again = BTRouter.load(tmp_path / "r")
    assert again.teachers == ["a", "b", "c"]
    assert torch.allclose(again.coefficients(texts), router.coefficients(texts), atol=1e-5)


def test_untrained_router_is_indifferent(tiny_models):
    r = BTRouter.from_encoder(tiny_models["encoder"], ["a", "b"])
    assert torch.equal(r.coefficients(["x", "y y"]), torch.zeros(2, 2))


def test_router_without_pairs_is_an_error(tiny_models):
    cfg = RouterConfig(encoder=tiny_models["encoder"], epochs=1)
    with pytest.raises(ValueError, match="no calibration prompt"):
        fit_bt_router(cfg, ["a", "b"], [RouterExample("x", [])], seed=0)


def test_load_rejects_a_directory_that_is_not_a_router(tmp_path):
    from persyn.core.errors import PersynError

    with pytest.raises(PersynError, match="not a persyn router"):
        BTRouter.load(tmp_path)


def test_router_figures_top1_and_regret():
    rewards = [{"a": 1.0, "b": 0.0}, {"a": 0.2, "b": 0.6}, {"a": None, "b": 0.5}, {"a": None, "b": None}]
    figs = router_figures(["a", "a", "a", "b"], rewards)
    # prompt 1 hit (regret 0); prompt 2 miss (0.4); prompt 3: failed pick counts as the lowest
    # valid reward (0.5 = the only one, so a hit); prompt 4 has no valid response: not counted.
    assert figs["n"] == 3
    assert figs["top1"] == pytest.approx(2 / 3)
    assert figs["regret"] == pytest.approx(0.4 / 3)


# -- router kinds on frozen embeddings, cross-validation and auto -----------------------------
import numpy as np  # noqa: E402

from persyn.router.base import fold_of, load_router, router_class  # noqa: E402
from persyn.router.cv import choose_kind, cross_validate, kind_figures  # noqa: E402


def embedded(n, signal, seed=0):
    """Examples with random unit embeddings: with ``signal`` the best of 3 teachers is a
    function of the embedding's first coordinate; without, rewards are drawn independently of
    the prompt."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        e = rng.normal(size=16)
        e /= np.linalg.norm(e)
        if signal:
            r = [0.9, 0.1, 0.5] if e[0] > 0 else [0.1, 0.9, 0.5]
        else:
            r = [float(v) for v in rng.uniform(size=3)]
        out.append(RouterExample(f"prompt {i}", pair_labels(r), r, e.astype(np.float32)))
    return out


def auto_choice(examples):
    cfg = RouterConfig()
    idx, cv = cross_validate(cfg.cv_kinds(), cfg, ["a", "b", "c"], examples, seed=1)
    figures = kind_figures(cv, 2000, seed=2)
    return choose_kind(figures), figures, len(idx)


def test_auto_keeps_prior_when_rewards_do_not_depend_on_the_prompt():
    (kind, reason), figures, n = auto_choice(embedded(60, signal=False))
    assert n == 60 and set(figures) == {"prior", "bt-linear", "knn"}
    assert kind == "prior" and "no learned kind beats prior" in reason
    for k in ("bt-linear", "knn"):
        assert figures[k]["regret_vs_prior"]["high"] >= 0


def test_auto_picks_a_learned_kind_when_the_best_teacher_is_a_function_of_the_prompt():
    (kind, reason), figures, _ = auto_choice(embedded(60, signal=True))
    assert kind in ("bt-linear", "knn") and reason.startswith(f"{kind} beats prior")
    assert figures[kind]["regret_vs_prior"]["high"] < 0
    # The prior picks one teacher for two kinds of prompt: about half its picks are wrong.
    assert figures["prior"]["top1"] < 0.7 and figures[kind]["top1"] > 0.8
    gain = figures[kind]["gain"]
    assert gain["low"] <= gain["mean"] <= gain["high"] and gain["mean"] > 0.5


def test_folds_hold_each_prompt_out_exactly_once():
    folds = fold_of(23, 5, seed=3)
    assert sorted(np.bincount(folds).tolist()) == [4, 4, 5, 5, 5]
    assert not np.array_equal(folds, fold_of(23, 5, seed=4))


def test_gain_is_none_when_the_prior_has_no_regret():
    ex = [
        RouterExample(f"p{i}", pair_labels([0.1, 0.9]), [0.1, 0.9], np.eye(4, dtype=np.float32)[i % 4])
        for i in range(8)
    ]
    cfg = RouterConfig()
    _, cv = cross_validate(cfg.cv_kinds(), cfg, ["a", "b"], ex, seed=0)
    figures = kind_figures(cv, 500, seed=0)
    assert all(f["gain"] is None and f["regret"] == 0.0 for f in figures.values())
    assert choose_kind(figures)[0] == "prior"


@pytest.mark.parametrize("kind", ["prior", "bt-linear", "knn"])
def test_embedding_kinds_save_and_load_the_same_scores(kind, tmp_path):
    ex = embedded(30, signal=True)
    router = router_class(kind).fit(RouterConfig(), ["a", "b", "c"], ex, seed=0)
    x = np.stack([e.embedding for e in ex[:5]])
    texts = [e.text for e in ex[:5]]
    router.save(tmp_path / kind)
    again = load_router(tmp_path / kind)
    assert type(again) is type(router) and again.teachers == ["a", "b", "c"]
    np.testing.assert_allclose(again.scores(texts, x), router.scores(texts, x), rtol=1e-6)
    # the fingerprint names what was saved: the same fit saved elsewhere has it, another fit not
    router.save(tmp_path / "copy")
    fp = router_class(kind).fingerprint(tmp_path / kind)
    assert router_class(kind).fingerprint(tmp_path / "copy") == fp
    other = router_class(kind).fit(RouterConfig(), ["a", "b", "c"], embedded(30, signal=False), seed=1)
    other.save(tmp_path / "other")
    assert router_class(kind).fingerprint(tmp_path / "other") != fp


def test_knn_scores_are_the_neighbours_mean_reward():
    x = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]], dtype=np.float32)
    ex = [
        RouterExample(str(i), [], r, v)
        for i, (r, v) in enumerate(zip([[1, 0], [0.5, 0.5], [0, 1], [0, 1]], x, strict=True))
    ]
    router = router_class("knn").fit(RouterConfig(knn_k=[2]), ["a", "b"], ex, seed=0)
    assert router.k == 2
    got = router.scores(["q"], np.array([[1.0, 0.1]], dtype=np.float32) / np.hypot(1, 0.1))
    # The two nearest are rows 0 and 1: mean rewards (0.75, 0.25), plus a tiny prior tie-break.
    np.testing.assert_allclose(got[0], [0.75, 0.25], atol=1e-5)


def test_bt_linear_with_huge_l2_orders_teachers_like_the_prior():
    # Teacher b is better on average (its rewards shifted up) whatever the prompt: with W held
    # at 0 by λ, the Bradley–Terry bias alone routes every prompt to it, as the prior does.
    ex = embedded(40, signal=False, seed=5)
    for e in ex:
        e.rewards[1] += 0.4
        e.pairs = pair_labels(e.rewards)
    cfg = RouterConfig(l2=[1e4])
    lin = router_class("bt-linear").fit(cfg, ["a", "b", "c"], ex, seed=0)
    prior = router_class("prior").fit(cfg, ["a", "b", "c"], ex, seed=0)
    x = np.stack([e.embedding for e in ex])
    assert lin.l2 == 1e4
    assert set(lin.scores([], x).argmax(1).tolist()) == {int(prior.means.argmax())} == {1}
    assert np.abs(lin.w).max() < 1e-2
