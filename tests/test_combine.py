import math

import pytest

from persyn.scoring.combine import Candidate, combine, normalize, oracle_pick, pair_labels


def test_normalize_minmax_and_zscore():
    assert normalize([1.0, 3.0, 2.0]) == [0.0, 1.0, 0.5]
    z = normalize([1.0, 3.0], "zscore")
    assert z == pytest.approx([-1.0, 1.0])


@pytest.mark.parametrize("how,value", [("minmax", 0.5), ("zscore", 0.0)])
def test_ties_give_equal_finite_values(how, value):
    out = normalize([0.0, 0.0, 0.0], how)
    assert out == [value] * 3 and not any(math.isnan(v) for v in out)
    assert normalize([7.0], how) == [value]


def test_combined_reward_eq2():
    # quality: 1, 0, 1 → minmax 1, 0, 1; learnability: -1, -2, -3 → 1, 0.5, 0
    cands = [Candidate("a", 1.0, -1.0), Candidate("b", 0.0, -2.0), Candidate("c", 1.0, -3.0)]
    combine(cands, alpha=0.4)
    assert [c.reward for c in cands] == pytest.approx([1.0, 0.2, 0.6])
    assert oracle_pick(cands) == "a"
    combine(cands, alpha=0.0)  # quality only: a and c tie, the more learnable a wins
    assert oracle_pick(cands) == oracle_pick(cands[::-1]) == "a"
    combine(cands, alpha=1.0)  # GRAPE: learnability only
    assert [c.reward for c in cands] == pytest.approx([1.0, 0.5, 0.0])


def test_all_wrong_answers_fall_back_to_learnability():
    cands = [Candidate("a", 0.0, -2.0), Candidate("b", 0.0, -1.0)]
    combine(cands, alpha=0.4)
    assert [c.reward for c in cands] == pytest.approx([0.3, 0.7])
    assert oracle_pick(cands) == "b"


def test_failed_candidates_get_no_reward_and_are_not_picked():
    cands = [Candidate("a", None, None), Candidate("b", 0.0, -1.0), Candidate("c", 1.0, -5.0)]
    combine(cands, alpha=0.4)
    assert cands[0].reward is None
    assert oracle_pick(cands) == "c"
    assert oracle_pick([Candidate("x", None, None)]) is None


def test_alpha_is_checked():
    with pytest.raises(ValueError, match="alpha"):
        combine([Candidate("a", 1.0, -1.0)], alpha=1.2)


def test_pair_labels_ties_and_failures():
    r = [0.5, 0.9, 0.5, None]
    assert pair_labels(r, "drop") == [(0, 1, 1.0), (0, 3, 0.0), (1, 2, 0.0), (1, 3, 0.0), (2, 3, 0.0)]
    half = pair_labels(r, "half")
    assert (0, 2, 0.5) in half and len(half) == 6
    assert pair_labels([None, None], "half") == []
