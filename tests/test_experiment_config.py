"""Experiment config merging (no model involved)."""

import re
import sys
from pathlib import Path

import pytest
import yaml

from persyn.core.errors import ConfigError
from persyn.experiment.config import deep_merge, load_experiment, read_experiment_yaml


def test_small_overrides_merge_mappings_and_a_null_restores_the_default():
    base = {"seeds": [0, 1], "student_seeds": {"gemma3": [0, 1]}, "run": {"alpha": 0.4, "seed": 0}}
    got = deep_merge(base, {"seeds": [0], "student_seeds": None, "run": {"alpha": 0.7}})
    assert got == {"seeds": [0], "run": {"alpha": 0.7, "seed": 0}}
    assert base["student_seeds"] == {"gemma3": [0, 1]}  # the base is not changed


def _yaml(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_extends_merges_the_base_under_the_followups_keys(tmp_path):
    (tmp_path / "base").mkdir()
    base = {
        "output_dir": "runs/x",
        "strategies": ["persyn", "car"],
        "variants": {"persyn-prior": {"router": {"kind": "prior"}}},
        "optional": ["random"],
        "run": {"alpha": 0.4, "router": {"kind": "auto", "encoder": "minilm-l6"}},
    }
    _yaml(tmp_path / "base" / "a.yaml", base)
    _yaml(tmp_path / "b.yaml", {"extends": "base/a.yaml", "run": {"alpha": 0.7}})  # a chain of two
    follow = {
        "extends": "b.yaml",
        "strategies": ["persyn", "persyn-knn"],
        "variants": {"persyn-knn": {"router": {"kind": "knn"}}},
        "optional": None,
    }
    got = read_experiment_yaml(_yaml(tmp_path / "c.yaml", follow))
    assert got == {
        "output_dir": "runs/x",
        "strategies": ["persyn", "persyn-knn"],  # a list is replaced, not appended to
        "variants": {
            "persyn-prior": {"router": {"kind": "prior"}},
            "persyn-knn": {"router": {"kind": "knn"}},
        },
        "run": {"alpha": 0.7, "router": {"kind": "auto", "encoder": "minilm-l6"}},  # null removed optional
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [("missing.yaml", "extends: 'missing.yaml': no such file"), (3, "got 3"), ("c.yaml", "makes a cycle")],
)
def test_a_bad_extends_names_the_file_and_the_value(tmp_path, value, message):
    _yaml(tmp_path / "b.yaml", {"extends": "c.yaml"})
    path = _yaml(tmp_path / "c.yaml", {"extends": value} if value != "c.yaml" else {"extends": "b.yaml"})
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        read_experiment_yaml(path)
    assert str(path) in str(err.value)


PACKAGED = Path(__file__).resolve().parents[1] / "src" / "persyn" / "configs"


@pytest.mark.parametrize(
    "name", ["experiment", "personal", "evidence-demo", "evidence-models", "evidence-models-knn"]
)
def test_every_packaged_experiment_config_validates(name):
    exp = load_experiment(PACKAGED / f"{name}.yaml")
    assert exp.strategies and exp.seeds
    if name == "evidence-models-knn":  # its base's run, the one variant added, no primaries
        base = load_experiment(PACKAGED / "evidence-models.yaml")
        assert exp.run == base.run and exp.eval == base.eval and exp.output_dir == base.output_dir
        assert exp.variants == {**base.variants, "persyn-knn": {"router": {"kind": "knn"}}}
        assert exp.primary == [] and exp.headroom is None and exp.seeds == base.seeds[:3]


def test_the_instruction_run_config_is_the_probes_setting():
    """evidence-instruction.yaml keeps what the instruction probe chose (docs/instruction-probe.md):
    its four teachers with their limits and Gemma's few-shot template, IFEval's check as quality,
    training and validation prompts from disjoint base instructions, the primaries named."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import instruction_probe as probe

    exp = load_experiment(PACKAGED / "evidence-instruction.yaml")
    teachers = {t["name"]: t for t in exp.run["teachers"]}
    limits = {t["name"]: t.get("max_new_tokens", 256) for t in probe.TEACHERS}
    assert {n: t["max_new_tokens"] for n, t in teachers.items()} == limits
    assert teachers["gemma-fewshot"]["prompt_template"] == probe.GEMMA_FEWSHOT
    assert exp.run["quality"] == {"kind": "ifeval"} and exp.eval.benchmark == "ifeval"
    # the plan's 512-token budget, kept though looping teacher responses run past it (the log says why)
    assert exp.eval.max_new_tokens == 512 and exp.eval.length_check == "report"
    assert exp.validation.max_new_tokens == 512 and exp.validation.length_check == "report"
    train = exp.run["prompts"]["task_kwargs"]["bases"]
    held = exp.validation.prompts.task_kwargs["bases"]
    assert train[1] <= held[0] and exp.validation.check == "ifeval"
    assert exp.strategies[0] == "persyn" and exp.primary == ["car", "car-verified"]
    # strongest (the plan's first cut) was cut for time: docs/experiments.md, the log of 2026-12-08
    assert "strongest" not in exp.strategies and exp.optional == []
    assert exp.seeds == [0, 1, 2] and exp.strategy_seeds == {"oracle-verified": [0]}
    # the stop rule's arms are fine-tuned on seed 0 before any other seed
    from persyn.experiment.runner import schedule

    sets = {
        ("smollm2", n, s): None
        for s in exp.seeds
        for n in exp.strategies
        if s in exp.strategy_seeds.get(n, exp.seeds)
    }
    order = schedule(sets, exp.seeds, ["smollm2"], exp.optional)
    first_other_seed = next(i for i, k in enumerate(order) if k[2] != 0)
    assert {("smollm2", n, 0) for n in exp.headroom} <= set(order[:first_other_seed])
