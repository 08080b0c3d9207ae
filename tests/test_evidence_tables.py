"""experiments/evidence_tables.py: per-task accuracy, truncation and routing from records."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from evidence_tables import _cell, per_task, routing_per_task  # noqa: E402

TASK = {"1+1=": "chain_sum", "2+2=": "chain_sum", "gcd(4, 6)?": "gcd"}


def test_per_task_splits_accuracy_and_truncation_by_task():
    records = [
        {"prompt": "1+1=", "correct": True, "finish_reason": "stop"},
        {"prompt": "2+2=", "correct": False, "finish_reason": "length"},
        {"prompt": "gcd(4, 6)?", "correct": True, "finish_reason": "stop"},
    ]
    got = per_task(records, TASK)
    assert got["chain_sum"] == {"n": 2, "accuracy": 0.5, "truncated": 0.5}
    assert got["gcd"] == {"n": 1, "accuracy": 1.0, "truncated": 0.0}
    assert got["all"] == {"n": 3, "accuracy": pytest.approx(2 / 3), "truncated": pytest.approx(1 / 3)}
    with pytest.raises(KeyError):  # a prompt the evaluation set does not hold: not the run's config
        per_task([{"prompt": "3+3=", "correct": True}], TASK)


def _line(prompt, teacher):
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": "#### 2"}]
    return json.dumps({"id": prompt, "messages": msgs, "teacher": teacher}) + "\n"


def test_routing_per_task_reads_strategies_and_variants_of_a_students_run(tmp_path):
    base = tmp_path / "run" / "seed-1" / "students" / "smol"
    for rel, teachers in (
        ("strategies/car", ["a", "a", "b"]),
        ("variants/persyn-prior/strategies/persyn", ["b"] * 3),
    ):
        (base / rel).mkdir(parents=True)
        (base / rel / "dataset.jsonl").write_text(
            "".join(_line(p, t) for p, t in zip(TASK, teachers, strict=True))
        )
    car = routing_per_task(tmp_path, "smol", "car", 1, TASK)
    assert car == {"chain_sum": {"a": 2}, "gcd": {"b": 1}}
    prior = routing_per_task(tmp_path, "smol", "persyn-prior", 1, TASK)
    assert prior == {"chain_sum": {"b": 2}, "gcd": {"b": 1}}
    assert routing_per_task(tmp_path, "smol", "car", 0, TASK) == {}  # that seed was not built here


def test_cell_is_mean_and_sample_std_as_in_results_md():
    assert _cell([0.2, 0.4]) == "0.300 ± 0.141"
    assert _cell([0.25]) == "0.250 ± 0.000"
    assert _cell([]) == "–"
