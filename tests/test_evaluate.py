"""Held-out evaluation: Wilson interval, the disjointness check, accuracy on known answers."""

import json

import pytest

from persyn.engines.base import Completion
from persyn.errors import InputError
from persyn.evaluate import check_disjoint, evaluate, training_prompts, wilson_interval, write_eval
from persyn.prompts import Prompt

PROMPTS = [Prompt(f"e{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(1, 5)]


def test_wilson_interval_worked_example():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_overlap_with_training_prompts_is_refused(tmp_path):
    ds = tmp_path / "dataset.jsonl"
    line = {
        "id": "t",
        "messages": [{"role": "user", "content": "What is  3 + 3?"}, {"role": "assistant", "content": "6"}],
    }
    ds.write_text(json.dumps(line) + "\n")
    with pytest.raises(InputError, match="1 of 4.*e3"):
        check_disjoint(PROMPTS, training_prompts(ds))
    check_disjoint(PROMPTS, ["What is 9 + 9?"])  # disjoint: no error
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(line) + "\n" + '{"messages": []}\n')
    with pytest.raises(InputError, match="bad.jsonl:2"):
        training_prompts(bad)


def test_evaluate_counts_known_answers(tiny_models, monkeypatch, tmp_path):
    from persyn.engines import transformers_engine

    replies = {"e1": "1 + 1 = 2\n#### 2", "e2": "#### 5", "e3": "the answer is 6", "e4": ""}

    def fake_generate(self, prompts):
        yield [
            (p.id, Completion(replies[p.id]) if replies[p.id] else Completion("", error="empty response"))
            for p in prompts
        ]

    monkeypatch.setattr(transformers_engine.TransformersEngine, "generate", fake_generate)
    res = evaluate(tiny_models["chat"], PROMPTS, progress=False)
    assert (res.n, res.correct, res.accuracy) == (4, 2, 0.5)
    assert [r["correct"] for r in res.records] == [True, False, True, False]
    assert res.records[3]["error"] == "empty response"
    assert (res.ci_low, res.ci_high) == pytest.approx(wilson_interval(2, 4))
    write_eval(res, tmp_path / "e.json")
    assert json.loads((tmp_path / "e.json").read_text())["summary"]["correct"] == 2


def test_evaluate_real_generation_on_a_tiny_model(tiny_models):
    res = evaluate(tiny_models["chat"], PROMPTS, batch_size=2, max_new_tokens=6, progress=False)
    assert res.n == 4 and 0.0 <= res.accuracy <= 1.0 and len(res.records) == 4
    assert [r["id"] for r in res.records] == ["e1", "e2", "e3", "e4"]
    with pytest.raises(InputError, match="no gold answer"):
        evaluate(tiny_models["chat"], [Prompt("x", "q", None)], progress=False)
