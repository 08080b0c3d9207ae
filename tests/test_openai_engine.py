"""engine: openai against the loopback OpenAI-compatible fake (persyn.testing), with injected faults:
429 with Retry-After, 500, a stalled response past the timeout, a dropped connection, a
malformed JSON body. Every prompt ends answered or recorded as failed."""

import time

import pytest
from conftest import PROBLEMS, tiny_config, tiny_teacher_server

from persyn.config import make_teacher, parse_config
from persyn.core.errors import ConfigError, PersynError
from persyn.core.records import Prompt
from persyn.engines.openai_engine import OpenAIEngine
from persyn.pipeline import Pipeline

ANSWERS = dict(PROBLEMS)


@pytest.fixture
def server():
    with tiny_teacher_server() as s:
        yield s


def teacher(url, **over):
    cfg = dict(name="served", engine="openai", base_url=url, model="tiny-teacher", timeout=0.5, max_retries=4)
    cfg.update(over)
    return make_teacher(**cfg)


def prompts(n=6):
    return [Prompt(f"p{i}", q, a) for i, (q, a) in enumerate(PROBLEMS[:n])]


def test_every_fault_is_retried_and_every_prompt_answered(server):
    server.script = ["429", "500", "stall", "drop", "badjson"]
    eng = OpenAIEngine(teacher(server.url, concurrency=2, batch_size=4), seed=0)
    start = time.perf_counter()
    out = [item for batch in eng.generate(prompts()) for item in batch]
    assert sorted(pid for pid, _ in out) == [f"p{i}" for i in range(6)]
    for pid, c in out:
        assert c.error is None, (pid, c.error)
        assert c.text == f"#### {ANSWERS[PROBLEMS[int(pid[1:])][0]]}"
        assert (c.prompt_tokens, c.completion_tokens) == (10, 3)
    assert server.requests == 6 + 5  # one retry per fault
    assert time.perf_counter() - start >= 0.2  # Retry-After honoured


def test_a_request_that_keeps_failing_is_a_failed_item(server):
    ps = prompts(2) + [Prompt("bad", "ALWAYS500 what?", "1")]
    eng = OpenAIEngine(teacher(server.url, max_retries=2), seed=0)
    out = dict(item for batch in eng.generate(ps) for item in batch)
    assert out["p0"].error is None and out["p1"].error is None
    assert out["bad"].error.startswith("failed after 3 attempt(s): HTTP 500")


def test_request_carries_the_teacher_settings(server):
    t = teacher(
        server.url, system_prompt="Be brief.", prompt_template="Q: {prompt}", stop=["\n\n"], temperature=0.0
    )
    list(OpenAIEngine(t, seed=7).generate(prompts(1)))
    body = server.bodies[-1]
    assert body["model"] == "tiny-teacher" and body["seed"] == 7 and body["stop"] == ["\n\n"]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"Q: {PROBLEMS[0][0]}"},
    ]


def test_bad_server_settings_fail_before_any_work(server, monkeypatch):
    with pytest.raises(PersynError, match="http://127.0.0.1:9/v1 is unreachable"):
        OpenAIEngine(teacher("http://127.0.0.1:9/v1"), seed=0)
    with pytest.raises(PersynError, match="model 'gpt-x' is not served by .*tiny-teacher"):
        OpenAIEngine(teacher(server.url, model="gpt-x"), seed=0)
    monkeypatch.delenv("PERSYN_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="PERSYN_TEST_KEY is not set"):
        OpenAIEngine(teacher(server.url, api_key_env="PERSYN_TEST_KEY"), seed=0)
    with pytest.raises(ConfigError, match="price_output_per_million"):
        parse_config(
            {
                "output_dir": "x",
                "student": {"model": "smollm2-135m-instruct"},
                "teachers": [
                    {"name": "a", "engine": "reference"},
                    {
                        "name": "b",
                        "engine": "openai",
                        "base_url": server.url,
                        "model": "m",
                        "price_output_per_million": -1,
                    },
                ],
            }
        )


def priced_run(tiny_models, tmp_path, url, **served):
    """A run on 8 prompts (4 calibration) whose second teacher is the served one, priced at
    $1 / $2 per million input / output tokens."""
    cfg = tiny_config(tiny_models, tmp_path, n=8)
    cfg["teachers"][1] = dict(
        name="served",
        engine="openai",
        base_url=url,
        model="tiny-teacher",
        price_input_per_million=1.0,
        price_output_per_million=2.0,
        **served,
    )
    cfg["calibration"] = {"size": 4}
    return cfg


def test_persyn_run_with_a_served_teacher(tiny_models, tmp_path, server):
    server.script = ["429", "drop", "500"]
    cfg = priced_run(tiny_models, tmp_path, server.url, timeout=0.5)
    with Pipeline(parse_config(cfg)) as p:
        summary = p.run().model_dump()
    assert summary["n_dataset"] == 8 and summary["failed"] == 0
    served = summary["tokens"]["served"]
    n_served = 4 + summary["routing_routed"]["served"]
    assert served == {"prompt": 10 * n_served, "completion": 3 * n_served}
    assert summary["cost_usd"]["served"] == pytest.approx((10 * 1.0 + 3 * 2.0) * n_served / 1e6)
    assert summary["cost_usd"]["a"] is None
    # The served teacher is always right here: the Oracle picks it or the reference.
    assert summary["calibration_means"]["served"]["quality"] == 1.0


def test_an_unreachable_server_stops_the_run_before_any_generation(tiny_models, tmp_path):
    cfg = tiny_config(tiny_models, tmp_path, n=6)
    cfg["teachers"][2] = {
        "name": "served",
        "engine": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "m",
    }
    with Pipeline(parse_config(cfg)) as p:
        with pytest.raises(PersynError, match="base_url http://127.0.0.1:9/v1 is unreachable"):
            p.run()
        assert p.store.generation_calls() == 0  # teacher 'a' (listed first) never started


def test_estimate_before_and_after_calibration(tiny_models, tmp_path, server):
    from typer.testing import CliRunner

    from persyn.cli import app
    from persyn.estimate import estimate

    cfg = priced_run(tiny_models, tmp_path, server.url, max_new_tokens=50)
    with Pipeline(parse_config(cfg)) as p:
        before = estimate(p)
        assert p.store.generation_calls() == 0  # nothing generated by estimating
        served = next(r for r in before.teachers if r.teacher == "served")
        assert served.source == "settings" and served.completion_tokens == 50
        assert before.totals.gts_generations == 8 * 3 and before.split == "even"
        assert served.rtg_generations == pytest.approx(4 + 4 / 3)
        assert served.seconds_per_response is None and before.totals.rtg_seconds is None
        p.calibrate()
        p.score()
        after = estimate(p)
        mine = [g for g in p.store.generations(p.store.generation_keys()).values() if g.teacher == "served"]
        # one expected-tokens model: the estimate's tokens and cost are the budget's cost model's
        import numpy as np

        from persyn.runtime.budget import cost_model

        model = cost_model(p.ctx)
        chars = np.array([len(q.text) for q in p.store.prompts()], dtype=np.float64)
        j = p.cfg.teacher_names.index("served")
        budget_in, budget_out = model.tokens(chars)
    served = next(r for r in after.teachers if r.teacher == "served")
    assert served.source == "calibration" and (served.prompt_tokens, served.completion_tokens) == (10, 3)
    # wall time from the measured throughput: seconds per response over the teacher's concurrency
    concurrency = parse_config(cfg).teachers[1].concurrency
    assert served.seconds_per_response == pytest.approx(
        sum(g.seconds for g in mine) / len(mine) / concurrency
    )
    assert served.rtg_seconds == pytest.approx(served.seconds_per_response * served.rtg_generations)
    model_rows = [r for r in after.teachers if r.source != "not a model"]
    assert after.totals.rtg_seconds == pytest.approx(sum(r.rtg_seconds for r in model_rows))
    assert after.split == "oracle on calibration"
    assert served.gts_cost == pytest.approx(8 * (10 * 1.0 + 3 * 2.0) / 1e6)
    assert (served.prompt_tokens, served.completion_tokens) == pytest.approx(
        (budget_in[:, j].mean(), budget_out[:, j].mean())
    )
    assert served.gts_cost == pytest.approx(model.costs(chars)[:, j].sum())  # estimate == budget
    ref = next(r for r in after.teachers if r.teacher == "reference")
    assert ref.source == "not a model" and ref.rtg_cost is None
    cfg_path = tmp_path / "cfg.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["estimate", str(cfg_path)])
    assert res.exit_code == 0, res.output
    assert "Generate-then-Select: 24 generations" in " ".join(res.output.split())
