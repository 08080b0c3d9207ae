"""Held-out evaluation: the Wilson interval, the disjointness check, accuracy on known answers,
real greedy generation on the tiny models."""

import json
import warnings

import pytest

from persyn.core.errors import InputError
from persyn.core.records import Completion, Prompt
from persyn.evaluate import (
    EvalResult,
    check_disjoint,
    evaluate,
    training_prompts,
    wilson_interval,
    write_eval,
)

PROMPTS = [Prompt(f"e{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(1, 5)]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread on a busy 2-core machine (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_wilson_interval_worked_examples():
    lo, hi = wilson_interval(8, 10)  # p = 0.8, n = 10: (0.490, 0.943)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # z²/n / (1 + z²/n)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(0, -1)


def test_overlap_with_training_prompts_is_refused(tmp_path):
    ds = tmp_path / "dataset.jsonl"
    line = {
        "id": "t",
        "messages": [{"role": "user", "content": "What is  3 +\n3?"}, {"role": "assistant", "content": "6"}],
    }
    ds.write_text(json.dumps(line) + "\n\n")
    assert training_prompts(ds) == ["What is  3 +\n3?"]
    with pytest.raises(InputError, match=r"1 of 4 .*first: id e3: 'What is 3 \+ 3\?'"):
        check_disjoint(PROMPTS, training_prompts(ds))
    check_disjoint(PROMPTS, ["What is 9 + 9?"])  # disjoint: no error
    # evaluate checks before it loads anything (this model does not exist).
    with pytest.raises(InputError, match="e3"):
        evaluate("no-such/model", PROMPTS, train_prompts=training_prompts(ds), progress=False)
    long = Prompt("long", "x " * 200, "1")
    with pytest.raises(InputError, match=r"id long: 'x x .*\.\.\.'"):
        check_disjoint([long], [long.text])
    bad = tmp_path / "bad.jsonl"
    for second in ('{"messages": []}', "{oops", '{"id": 1}'):
        bad.write_text(json.dumps(line) + "\n" + second + "\n")
        with pytest.raises(InputError, match="bad.jsonl:2"):
            training_prompts(bad)
    with pytest.raises(InputError, match="not found"):
        training_prompts(tmp_path / "missing.jsonl")


def test_bad_evaluation_sets_are_refused():
    with pytest.raises(InputError, match="empty"):
        evaluate("no-such/model", [], progress=False)
    with pytest.raises(InputError, match="e1 appears twice"):
        evaluate("no-such/model", PROMPTS + PROMPTS[:1], progress=False)
    with pytest.raises(InputError, match="x: no gold answer"):
        evaluate("no-such/model", [Prompt("x", "q", None)], progress=False)


def test_evaluate_scores_known_answers(tiny_models, monkeypatch, tmp_path):
    """A stand-in for the model's generation with known responses: accuracy is what the
    verifier says, failures count as wrong."""
    from persyn.engines import transformers_engine

    replies = {
        "e1": Completion("1 + 1 = 2\n#### 2", 10, 8, "stop"),
        "e2": Completion("#### 5", 10, 3, "stop"),  # wrong
        "e3": Completion("so the answer is $6$", 10, 7, "length"),
        "e4": Completion("", 600, error="prompt too long: 600 tokens, teacher context is 512"),
    }

    def fake_generate(self, prompts):
        assert self.teacher.temperature == 0.0 and self.teacher.system_prompt is None
        yield [(p.id, replies[p.id]) for p in prompts[2:]]  # batches in any order
        yield [(p.id, replies[p.id]) for p in prompts[:2]]

    monkeypatch.setattr(transformers_engine.TransformersEngine, "generate", fake_generate)
    res = evaluate(tiny_models["chat"], PROMPTS, progress=False)
    assert (res.n, res.correct, res.accuracy, res.n_failed) == (4, 2, 0.5, 1)
    assert [r["id"] for r in res.records] == ["e1", "e2", "e3", "e4"]
    assert [r["correct"] for r in res.records] == [True, False, True, False]
    assert res.records[3]["error"].startswith("prompt too long") and res.records[3]["response"] == ""
    assert res.records[0] | {"prompt": None} == {
        "id": "e1",
        "prompt": None,
        "response": "1 + 1 = 2\n#### 2",
        "gold": "2",
        "correct": True,
        "error": None,
        "note": None,
        "finish_reason": "stop",
        "completion_tokens": 8,
    }
    assert (res.ci_low, res.ci_high) == pytest.approx(wilson_interval(2, 4))
    write_eval(res, tmp_path / "sub" / "e.json")
    saved = json.loads((tmp_path / "sub" / "e.json").read_text())
    assert saved["summary"] == res.summary() and "records" not in saved["summary"]
    assert saved["records"] == res.records and list(tmp_path.glob("sub/.*")) == []
    assert EvalResult(**saved["summary"], records=saved["records"]) == res

    replies["e1"] = Completion("I do not know", 10, 4, "stop")  # no parsable answer: wrong, noted
    res = evaluate(tiny_models["chat"], PROMPTS, progress=False)
    assert res.correct == 1 and res.records[0]["note"] == "no answer found in the response"


@pytest.mark.parametrize("kind", ["chat", "base"])
def test_evaluate_real_generation_on_a_tiny_model(tiny_models, kind):
    from persyn.models.loading import is_loaded, release_model

    release_model(tiny_models[kind])  # not in the shared cache (another test may have loaded it)
    prompts = PROMPTS[:3] + [Prompt("too-long", "1 + " * 400 + "1 = ?", "401")]  # > 512 tokens
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = evaluate(tiny_models[kind], prompts, batch_size=2, max_new_tokens=6, progress=False)
    assert not [w for w in caught if "evaluate:" in str(w.message)]  # prompt format = training's
    # the summary is the records' count, with its Wilson interval
    assert res.n == 4 and res.correct == sum(r["correct"] for r in res.records)
    assert res.accuracy == res.correct / 4
    assert (res.ci_low, res.ci_high) == pytest.approx(wilson_interval(res.correct, 4))
    assert [r["id"] for r in res.records] == ["e1", "e2", "e3", "too-long"]
    assert res.records[3]["correct"] is False and "too long" in res.records[3]["error"]
    assert res.n_failed >= 1 and all(r["completion_tokens"] <= 6 for r in res.records[:3])
    # loaded for the evaluation only, in the dtype `auto` resolved to (a slot of its own for bf16)
    assert not is_loaded(tiny_models[kind], "auto")
