import pytest
import torch

from persyn.config import RouterConfig
from persyn.router.base import RouterExample, router_figures
from persyn.router.model import BTRouter
from persyn.router.train import bt_loss, train_router
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
    router = train_router(cfg, ["a", "b", "c"], data, seed=0)
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
        train_router(cfg, ["a", "b"], [RouterExample("x", [])], seed=0)


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
