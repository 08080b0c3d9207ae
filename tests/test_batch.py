"""Batch generation (``batch:`` on openai teachers) against the fake Batch API server: the same
responses as the synchronous path, joined on custom_id whatever the output order, failed,
dropped and expired lines retried and recorded, files split at the limits, no request submitted
twice when a run stops at any step and starts again (kills for real: tests/test_crash_safety.py,
scenario "batch"), ``wait: false``, and export then import."""

import json
from pathlib import Path

import pytest

from persyn.config import make_teacher
from persyn.core.errors import BatchesInFlight
from persyn.core.faults import POINTS
from persyn.core.records import Prompt
from persyn.engines.openai_batch import BatchJournal, split_lines
from persyn.engines.openai_engine import OpenAIEngine
from persyn.testing.fake_batch import FakeBatchServer
from persyn.testing.fake_openai import FakeOpenAIServer

PROMPTS = [Prompt(f"p{i}", f"What is {i} plus {i * 3}?" + " and more" * i) for i in range(7)]


def teacher(url: str, **batch):
    return make_teacher(
        name="served",
        engine="openai",
        model="fake-teacher",
        base_url=url,
        max_new_tokens=16,
        batch={"poll_seconds": 0.001, **batch} if batch is not None else None,
    )


def answers(engine, prompts=PROMPTS) -> dict:
    out = {}
    for rows in engine.generate(prompts):
        for pid, c in rows:
            assert pid not in out  # each prompt answered once
            out[pid] = c
    return out


def sync_answers() -> dict:
    with FakeOpenAIServer() as server:
        eng = OpenAIEngine(
            make_teacher(
                name="served", engine="openai", model="fake-teacher", base_url=server.url, max_new_tokens=16
            ),
            0,
        )
        return answers(eng)


def test_batch_responses_equal_the_synchronous_ones_and_no_request_is_sent_twice(tmp_path):
    with FakeBatchServer(shuffle=True) as server:
        got = answers(OpenAIEngine(teacher(server.url), 0, workdir=tmp_path))
        assert server.sync_requests == 0 and len(server.created) == 1
        assert set(server.submitted.values()) == {1} and len(server.submitted) == len(PROMPTS)
    want = sync_answers()
    assert {k: (c.text, c.prompt_tokens, c.completion_tokens, c.error is None) for k, c in got.items()} == {
        k: (c.text, c.prompt_tokens, c.completion_tokens, c.error is None) for k, c in want.items()
    }
    # the request lines carry exactly the synchronous request bodies
    with FakeOpenAIServer() as sync, FakeBatchServer() as batch:
        eng = OpenAIEngine(
            make_teacher(
                name="served", engine="openai", model="fake-teacher", base_url=sync.url, max_new_tokens=16
            ),
            0,
        )
        answers(eng)
        answers(OpenAIEngine(teacher(batch.url), 0, workdir=tmp_path / "b"))
        assert sorted(json.dumps(b, sort_keys=True) for b in sync.bodies) == sorted(batch.submitted)


@pytest.mark.parametrize("fault", ["error", "drop"])
def test_failed_and_dropped_lines_are_retried_then_recorded(tmp_path, fault):
    # p1 fails its first submission only; p2 fails every time
    def line_fault(prompt, times):
        if prompt == PROMPTS[2].text or (prompt == PROMPTS[1].text and times == 0):
            return fault
        return None

    with FakeBatchServer(line_fault=line_fault) as server:
        got = answers(OpenAIEngine(teacher(server.url, max_retries=2), 0, workdir=tmp_path))
        # three batches: everything, then the two failed lines, then p2 alone (p1 passed)
        assert [server.batches[b]["request_counts"]["total"] for b in server.created] == [7, 2, 1]
    assert got["p1"].error is None and got["p1"].text == sync_answers()["p1"].text
    assert got["p2"].error is not None and "failed after 3 batch(es)" in got["p2"].error
    assert ("HTTP 500" in got["p2"].error) == (fault == "error")
    assert ("no result line" in got["p2"].error) == (fault == "drop")
    assert all(got[p.id].error is None for p in PROMPTS if p.id != "p2")


def test_an_expired_batch_keeps_its_finished_lines_and_resubmits_the_rest(tmp_path):
    with FakeBatchServer(expire_after=4) as server:
        got = answers(OpenAIEngine(teacher(server.url, max_retries=1), 0, workdir=tmp_path))
        assert [server.batches[b]["status"] for b in server.created] == ["expired", "completed"]
        assert [server.batches[b]["request_counts"]["total"] for b in server.created] == [7, 3]
        # the four finished lines went out once; only the three unfinished ones again
        assert sorted(server.submitted.values()) == [1, 1, 1, 1, 2, 2, 2]
    assert all(c.error is None for c in got.values()) and len(got) == 7


def test_a_failed_validation_is_retried(tmp_path):
    with FakeBatchServer(validation_failures=1) as server:
        got = answers(OpenAIEngine(teacher(server.url, max_retries=1), 0, workdir=tmp_path))
        assert [server.batches[b]["status"] for b in server.created] == ["failed", "completed"]
    assert all(c.error is None for c in got.values())
    with FakeBatchServer(validation_failures=5) as server:
        got = answers(OpenAIEngine(teacher(server.url, max_retries=1), 0, workdir=tmp_path / "again"))
    assert all(c.error is not None and "the input file is invalid" in c.error for c in got.values())


def test_files_split_at_the_request_and_byte_limits(tmp_path):
    assert split_lines(["a" * 9] * 5, 2, 10_000) == [[0, 1], [2, 3], [4]]
    assert split_lines(["a" * 9] * 5, 100, 30) == [[0, 1, 2], [3, 4]]  # 10 bytes a line
    with pytest.raises(Exception, match="exceeds batch.max_bytes"):
        split_lines(["a" * 50], 100, 30)
    with FakeBatchServer() as server:
        got = answers(OpenAIEngine(teacher(server.url, max_requests=3), 0, workdir=tmp_path))
        assert [server.batches[b]["request_counts"]["total"] for b in server.created] == [3, 3, 1]
        sizes = [len(server.files[server.batches[b]["input_file_id"]]) for b in server.created]
    assert len(got) == 7 and all(c.error is None for c in got.values())
    with FakeBatchServer() as server:
        answers(OpenAIEngine(teacher(server.url, max_bytes=max(sizes)), 0, workdir=tmp_path / "b"))
        assert all(
            len(server.files[server.batches[b]["input_file_id"]]) <= max(sizes) for b in server.created
        )
        assert len(server.created) >= 3


class Stop(Exception):
    pass


@pytest.mark.parametrize("step", ["uploaded", "created", "polled", "downloaded"])
def test_a_stop_at_any_step_resumes_without_submitting_again(tmp_path, monkeypatch, step):
    """An exception at each step stands in for the kill (the real SIGKILLs: test_crash_safety);
    the next engine, on the same journal, submits no request a second time."""
    import persyn.engines.openai_batch as ob

    assert f"batch.{step}" in POINTS

    def stop_at(name):
        if name == f"batch.{step}":
            raise Stop

    with FakeBatchServer(polls_to_complete=3) as server:
        monkeypatch.setattr(ob, "crash_point", stop_at)
        with pytest.raises(Stop):
            answers(OpenAIEngine(teacher(server.url), 0, workdir=tmp_path))
        monkeypatch.undo()
        got = answers(OpenAIEngine(teacher(server.url), 0, workdir=tmp_path))
        assert set(server.submitted.values()) == {1} and len(server.created) == 1
        assert server.sync_requests == 0
    assert len(got) == 7 and all(c.error is None for c in got.values())


def test_the_journal_ignores_a_torn_last_line(tmp_path):
    j = BatchJournal(tmp_path / "j.jsonl")
    j.append(event="uploaded", hash="h", file_id="f", ids=["a"])
    with open(j.path, "a") as f:
        f.write('{"event": "created", "ha')
    assert j.open_batches() == {"h": {"ids": ["a"], "file_id": "f", "batch_id": None}}


def test_wait_false_submits_then_collects_on_the_next_call(tmp_path):
    with FakeBatchServer(polls_to_complete=2) as server:
        eng = OpenAIEngine(teacher(server.url, wait=False), 0, workdir=tmp_path)
        with pytest.raises(BatchesInFlight, match="1 batch\\(es\\) in flight \\(7 request"):
            answers(eng)
        got = answers(OpenAIEngine(teacher(server.url, wait=False), 0, workdir=tmp_path))
        assert len(server.created) == 1 and set(server.submitted.values()) == {1}
    assert len(got) == 7 and all(c.error is None for c in got.values())


def served_config(tiny_models, tmp_path, url, batch=None, out="run"):
    from conftest import tiny_config

    cfg = tiny_config(tiny_models, tmp_path, n=10, output_dir=str(tmp_path / out))
    served = {
        "name": "served",
        "engine": "openai",
        "model": "fake-teacher",
        "base_url": url,
        "max_new_tokens": 16,
    }
    if batch is not None:
        served["batch"] = {"poll_seconds": 0.001, **batch}
    cfg["teachers"] = [cfg["teachers"][0], served]
    cfg["router"]["kind"] = "knn"  # quick: no cross-validated choice among kinds
    return cfg


def dataset_rows(out):
    rows = [json.loads(x) for x in (out / "dataset.jsonl").read_text().splitlines()]
    return sorted(rows, key=lambda r: r["id"])


def right(prompt: str) -> str:
    """The served teacher's reply: always right, so its lines are in the dataset."""
    from conftest import PROBLEMS

    return f"Let us see.\n#### {dict(PROBLEMS)[prompt]}"


@pytest.fixture(scope="module")
def sync_rows(tiny_models, tmp_path_factory):
    """The dataset of the run whose served teacher answers synchronously."""
    from persyn.config import parse_config
    from persyn.pipeline import Pipeline

    tmp = tmp_path_factory.mktemp("sync")
    with FakeOpenAIServer(answer=right) as sync:
        with Pipeline(parse_config(served_config(tiny_models, tmp, sync.url, out="sync"))) as p:
            p.run()
    return dataset_rows(tmp / "sync")


def test_a_batch_run_gives_the_synchronous_runs_dataset_and_wait_false_stops_with_a_status(
    tiny_models, tmp_path, sync_rows
):
    import yaml
    from typer.testing import CliRunner

    from persyn.cli import app

    with FakeBatchServer(polls_to_complete=2, answer=right) as server:
        path = tmp_path / "batch.yaml"
        path.write_text(yaml.safe_dump(served_config(tiny_models, tmp_path, server.url, {"wait": False})))
        outputs = []
        for _ in range(6):  # each run collects what finished and submits the next stage's batch
            res = CliRunner().invoke(app, ["run", str(path)])
            assert res.exit_code == 0, res.output
            outputs.append(res.output)
            if "batches in flight" not in res.output:
                break
        assert server.sync_requests == 0 and set(server.submitted.values()) == {1}
        assert "in flight" in outputs[0] and "teacher 'served'" in outputs[0]
        assert len(outputs) == 1 + len(server.created)  # a run to submit, the next collects
    rows = dataset_rows(tmp_path / "run")
    assert rows == sync_rows
    assert {r["source"] for r in rows if r["teacher"] == "served"} == {"calibration", "routed"}


def answer_file(requests: Path, results: Path, fail: set[str] = frozenset()) -> int:
    """Answer a request file as ``vllm run-batch`` does (one result line per request, in order;
    a failed one with status 400 and ``error`` set); returns the lines written."""
    rows = []
    for i, line in enumerate(requests.read_text().splitlines()):
        req = json.loads(line)
        q = req["body"]["messages"][-1]["content"]
        row = {"id": f"vllm-{i}", "custom_id": req["custom_id"]}
        if req["custom_id"] in fail:
            row.update(
                response={"status_code": 400, "request_id": row["id"], "body": None}, error="bad request"
            )
        else:
            body = {
                "choices": [{"message": {"content": right(q)}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(q) // 4, "completion_tokens": 3},
            }
            row.update(response={"status_code": 200, "request_id": row["id"], "body": body}, error=None)
        rows.append(row)
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def test_export_then_import_gives_the_synchronous_runs_dataset(tiny_models, tmp_path, sync_rows):
    import yaml
    from typer.testing import CliRunner

    from persyn.cli import app

    cfg = served_config(tiny_models, tmp_path, None, {"mode": "files"})
    del cfg["teachers"][1]["base_url"]  # persyn sends nothing: no server needed
    path = tmp_path / "files.yaml"
    path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(path)])
    assert res.exit_code == 0 and "persyn batch export" in res.output, res.output
    failed_once: set[str] = set()
    for round_ in range(6):
        req, out = tmp_path / f"req-{round_}.jsonl", tmp_path / f"res-{round_}.jsonl"
        res = runner.invoke(app, ["batch", "export", str(path), "-t", "served", "-o", str(req)])
        assert res.exit_code == 0, res.output
        if "nothing to export" in res.output:
            break
        ids = [json.loads(x)["custom_id"] for x in req.read_text().splitlines()]
        assert f"wrote {len(ids)} request(s)" in " ".join(res.output.split())
        fail = {ids[0]} - failed_once  # the first request of a file fails once
        failed_once |= fail
        answer_file(req, out, fail)
        res = runner.invoke(app, ["batch", "import", str(path), str(out), "-t", "served"])
        assert res.exit_code == 0, res.output
        assert f"stored {len(ids) - len(fail)} response(s)" in res.output
        assert ("1 failed" in res.output) == bool(fail)
    else:
        raise AssertionError("the export/import loop did not finish")
    res = runner.invoke(app, ["run", str(path)])
    assert res.exit_code == 0 and "in flight" not in res.output, res.output
    assert dataset_rows(tmp_path / "run") == sync_rows


def test_import_names_the_line_of_an_unknown_custom_id(tiny_models, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from persyn.cli import app

    cfg = served_config(tiny_models, tmp_path, None, {"mode": "files"})
    del cfg["teachers"][1]["base_url"]
    path = tmp_path / "files.yaml"
    path.write_text(yaml.safe_dump(cfg))
    bad = tmp_path / "res.jsonl"
    bad.write_text(json.dumps({"custom_id": "nope", "response": {"status_code": 200, "body": {}}}) + "\n")
    res = CliRunner().invoke(app, ["batch", "import", str(path), str(bad), "-t", "served"])
    assert res.exit_code == 2 and f"{bad}:1: custom_id 'nope' is not a prompt" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["batch", "import", str(path), str(bad), "-t", "a"])
    assert res.exit_code == 2 and "which takes no batch files" in res.output


def test_estimate_shows_the_synchronous_and_batch_cost_side_by_side(tiny_models, tmp_path):
    from persyn.config import parse_config
    from persyn.estimate import estimate
    from persyn.pipeline import Pipeline

    cfg = served_config(tiny_models, tmp_path, "http://127.0.0.1:9/v1", {"price_factor": 0.5})
    cfg["teachers"][1].update(price_input_per_million=1.0, price_output_per_million=4.0)
    with Pipeline(parse_config(cfg)) as p:
        tot = estimate(p).totals
    assert tot.rtg_cost_sync > 0 and tot.gts_cost_sync > tot.rtg_cost_sync
    assert tot.rtg_cost_batch == pytest.approx(tot.rtg_cost_sync / 2)
    assert tot.gts_cost_batch == pytest.approx(tot.gts_cost_sync / 2)
    assert tot.rtg_cost == pytest.approx(tot.rtg_cost_batch)  # the teacher runs in batches
