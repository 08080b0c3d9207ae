"""Experiment config merging (no model involved)."""

from persyn.experiment.config import deep_merge


def test_small_overrides_merge_mappings_and_a_null_restores_the_default():
    base = {"seeds": [0, 1], "student_seeds": {"gemma3": [0, 1]}, "run": {"alpha": 0.4, "seed": 0}}
    got = deep_merge(base, {"seeds": [0], "student_seeds": None, "run": {"alpha": 0.7}})
    assert got == {"seeds": [0], "run": {"alpha": 0.7, "seed": 0}}
    assert base["student_seeds"] == {"gemma3": [0, 1]}  # the base is not changed
