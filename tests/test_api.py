"""The Python API: a config from a dict, a run, and the typed results read back."""

import json

import pytest
from conftest import tiny_config

import persyn
from persyn.core.errors import ConfigError, InputError


def test_run_from_a_dict_and_read_the_typed_results(tiny_models, tmp_path):
    cfg = persyn.load_config(tiny_config(tiny_models, tmp_path, n=8))
    summary = persyn.run(cfg)
    assert isinstance(summary, persyn.RunSummary)
    on_disk = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary.model_dump(mode="json") == on_disk
    assert persyn.read_summary(tmp_path / "run/summary.json") == summary
    lines = persyn.read_dataset(tmp_path / "run")
    raw = [json.loads(x) for x in (tmp_path / "run/dataset.jsonl").read_text().splitlines()]
    assert [x.to_dict() for x in lines] == raw
    assert len(lines) == summary.n_dataset == 8
    assert {x.source for x in lines} == {"calibration", "routed"}
    # A second run resumes: nothing is generated again.
    again = persyn.run(cfg)
    assert again.generations_new == 0 and again.generation_calls == summary.generation_calls


def test_api_errors_name_the_field_and_the_line(tiny_models, tmp_path):
    bad = tiny_config(tiny_models, tmp_path)
    bad["alpha"] = 2.0
    with pytest.raises(ConfigError, match=r"alpha"):
        persyn.load_config(bad)
    path = tmp_path / "dataset.jsonl"
    path.write_text(
        '{"id": "1", "messages": [{"role": "user", "content": "q"}], "teacher": "a"}\n{"id": 2}\n'
    )
    with pytest.raises(InputError, match=r"dataset.jsonl:2: not a dataset line"):
        persyn.read_dataset(path)
    (tmp_path / "summary.json").write_text('{"n_prompts": "many"}')
    with pytest.raises(InputError, match=r"summary.json: n_prompts"):
        persyn.read_summary(tmp_path / "summary.json")


def test_strategy_lines_say_which_strategy_chose_them(tiny_models, tmp_path):
    with persyn.Pipeline(persyn.load_config(tiny_config(tiny_models, tmp_path, n=6))) as pipe:
        summary = pipe.build_strategy("random")
    assert isinstance(summary, persyn.StrategySummary) and summary.strategy == "random"
    lines = persyn.read_dataset(tmp_path / "run/strategies/random/dataset.jsonl")
    assert len(lines) == 6 and {x.source for x in lines} == {"random"}


def test_the_router_evaluation_record_dumps_what_was_set_in_order():
    from persyn.core.summary import RouterEvaluation

    ev = RouterEvaluation(
        method="cross-validation", requested="auto", n=5, n_train=5, folds=0, repeats=0, n_eval=0,
        kinds={}, kind="prior", reason="r", note="r", top1=None, regret=None,
    )  # fmt: skip
    ev.train_seconds = 0.5
    dumped = ev.model_dump(mode="json")
    # the order and the keys of the dict train_router wrote before the record was typed
    assert list(dumped) == [
        "method", "requested", "folds", "repeats", "n", "n_train", "n_eval", "kinds", "kind",
        "reason", "note", "top1", "regret", "train_seconds",
    ]  # fmt: skip
    assert "frontier" not in dumped and RouterEvaluation.model_validate(dumped) == ev
