"""The executor seam, without Ray: work units and shards give exactly the numbers of one pass
over all items (what makes ``executor: ray`` equal to ``executor: local``)."""

import functools
import os

import pytest

from persyn.config import QualityConfig, StudentConfig, make_teacher
from persyn.core.records import Prompt, ScoreItem
from persyn.engines import make_engine
from persyn.execution.jobs import Job
from persyn.execution.local import LocalExecutor
from persyn.execution.ray_executor import shards_of
from persyn.scoring.learnability import LearnabilityScorer
from persyn.scoring.quality import make_quality_scorer

QUESTIONS = [
    "What is 2 + 3?",
    "Tom has 3 boxes of 4 apples. How many apples are there in all?",
    "Hi",
    "What is 9 + 9?",
    "Anna has 5 pens and buys 4 more. How many pens does she have now?",
    "What is 7 * 3?",
    "How many wheels do 3 cars have?",
]
PROMPTS = [Prompt(str(i), q) for i, q in enumerate(QUESTIONS)] + [Prompt("long", "apples " * 600)]
ITEMS = [  # three teachers' responses to each prompt (the calibration case), and a too long one
    ScoreItem(f"{i}-{j}", q, ["5", "Let us compute step by step.\n#### 5", "The answer is " + "five " * j][j])
    for i, q in enumerate(QUESTIONS)
    for j in range(3)
] + [ScoreItem("long", "Hi", "apples " * 600)]


def rows_of(worker, items):
    return [row for rows in worker.run(items) for row in rows]


def sharded(worker, items, shard_size):
    """Every row of ``items`` computed shard by shard, as the Ray workers do."""
    units = worker.work_units(items)
    index = {id(it): i for i, it in enumerate(items)}
    out = []
    for shard in shards_of([[index[id(it)] for it in u] for u in units], shard_size):
        out += rows_of(worker, [items[i] for i in shard])
    return out


def as_dict(rows):
    """``{id: result}``; a generation's wall seconds are left out (they are not a result)."""
    out = {}
    for key, *rest in rows:
        if hasattr(rest[0], "seconds"):
            c = rest[0]
            rest = [(c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason, c.error)]
        out[key] = tuple(rest)
    return out


def test_shards_are_whole_consecutive_units():
    units = [[0, 1, 2], [3], [4, 5], [6, 7, 8, 9], [10]]
    assert shards_of(units, 3) == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9], [10]]
    assert shards_of(units, 100) == [list(range(11))]
    assert shards_of(units, 1) == units
    assert shards_of([], 4) == []


def test_work_units_cover_every_item_once(tiny_models):
    engine = make_engine(
        make_teacher(name="a", engine="transformers", model=tiny_models["chat"], batch_size=3), 0
    )
    units = engine.work_units(PROMPTS)
    assert sorted(p.id for u in units for p in u) == sorted(p.id for p in PROMPTS)
    assert [p.id for p in units[0]] == ["long"]  # too long for the context: one group, first
    assert [len(u) for u in units[1:]] == [3, 3, 1]  # batch_size, shortest prompts first
    scorer = LearnabilityScorer(StudentConfig(model=tiny_models["chat"], batching="per_prompt"))
    groups = scorer.work_units(ITEMS)
    assert [it.key for it in groups[0]] == ["long"]
    assert all(len({it.prompt for it in g}) == 1 for g in groups[1:])  # one prompt per group
    assert sorted(it.key for g in groups for it in g) == sorted(it.key for it in ITEMS)
    reference = make_engine(make_teacher(name="r", engine="reference"), 0)
    assert reference.work_units(PROMPTS) == [[p] for p in PROMPTS]  # no batches: one by one


@pytest.mark.parametrize("temperature", [0.0, 0.8])
@pytest.mark.parametrize("shard_size", [1, 4])
def test_sharded_generation_equals_one_pass(tiny_models, temperature, shard_size):
    t = make_teacher(
        name="a",
        engine="transformers",
        model=tiny_models["chat"],
        max_new_tokens=12,
        batch_size=3,
        temperature=temperature,
    )
    engine = make_engine(t, 0)
    whole = as_dict(rows_of(engine, PROMPTS))
    parts = as_dict(sharded(engine, PROMPTS, shard_size))
    assert parts == whole  # texts, token counts, finish reasons, errors: all equal
    assert whole["long"][0][4].startswith("prompt too long")


@pytest.mark.parametrize("batching", ["per_prompt", "padded"])
def test_sharded_learnability_equals_one_pass_exactly(tiny_models, batching):
    scorer = LearnabilityScorer(StudentConfig(model=tiny_models["chat"], batching=batching, batch_tokens=64))
    whole = as_dict(rows_of(scorer, ITEMS))
    for shard_size in (1, 2, 5):
        assert as_dict(sharded(scorer, ITEMS, shard_size)) == whole  # bit for bit
    assert whole["long"][0] is None and whole["long"][1].startswith("too long for the student")


def test_sharded_reward_model_equals_one_pass_exactly(tiny_models):
    scorer = make_quality_scorer(
        QualityConfig(kind="reward_model", model=tiny_models["reward"], batch_size=1), {}
    )
    items = [ScoreItem(str(i), "What is 2 + 3?", "5 apples " * (i + 1)) for i in range(7)]
    whole = as_dict(rows_of(scorer, items))
    assert as_dict(sharded(scorer, items, 2)) == whole
    # Batches differ from one pass over the items one at a time (padding), so the shards
    # must follow the batches: this is what the equality above protects.
    assert len(scorer.work_units(items)) < len(items)


def test_local_executor_runs_jobs_in_order_and_keeps_cached_workers():
    built = []

    def build(name):
        built.append(name)
        return make_engine(make_teacher(name=name, engine="reference", style="answer"), 0)

    prompts = [Prompt("p", "What is 2 + 3?", answer="5")]
    fail = lambda items, error: []  # noqa: E731
    jobs = [
        Job("x", functools.partial(build, "x"), prompts, fail, cache="x"),
        Job("y", functools.partial(build, "y"), prompts, fail, cache=None),
        Job("empty", functools.partial(build, "z"), [], fail, cache="z"),
    ]
    ex = LocalExecutor()
    got = [(job.name, [(pid, c.text) for pid, c in rows]) for job, rows in ex.run(jobs)]
    assert got == [("x", [("p", "#### 5")]), ("y", [("p", "#### 5")])]
    list(ex.run(jobs))
    assert built == ["x", "y", "y"]  # x kept, y rebuilt, nothing built for a job with no items


def test_a_ray_worker_that_asked_for_no_gpu_sees_none(monkeypatch):
    from persyn.execution.ray_executor import PersynWorker

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    PersynWorker(object, num_gpus=0.5)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # Ray set it for its GPU share
    PersynWorker(object, num_gpus=0)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # Ray leaves every GPU visible: hidden


def test_served_teachers_get_shards_of_at_least_their_concurrency(tiny_models, tmp_path):
    from conftest import tiny_config

    from persyn.config import parse_config
    from persyn.execution.jobs import teacher_job

    cfg = tiny_config(tiny_models, tmp_path)
    cfg["teachers"].append(
        {
            "name": "served",
            "engine": "openai",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "m",
            "concurrency": 48,
        }
    )
    run = parse_config(cfg)
    assert teacher_job(run, run.teachers[3], []).min_shard == 48  # a worker runs one shard at a time
    assert teacher_job(run, run.teachers[0], []).min_shard == 1
    assert teacher_job(run, run.teachers[3], []).resources_field == "teachers.3.resources"


def test_every_executor_is_an_executor_and_make_executor_builds_it(tmp_path):
    from conftest import tiny_config

    from persyn.config import parse_config
    from persyn.core.plugins import EXECUTORS, load
    from persyn.execution import make_executor
    from persyn.execution.base import Executor

    for name in EXECUTORS:
        assert issubclass(load(EXECUTORS, name, "executor"), Executor), name
    fake = {"chat": "org/chat", "chat2": "org/chat2", "encoder": "org/encoder"}  # never loaded
    ex = make_executor(parse_config(tiny_config(fake, tmp_path)))
    assert isinstance(ex, LocalExecutor)
    ex.close()

    class Incomplete(Executor):
        def run(self, jobs):
            yield from ()

    with pytest.raises(TypeError, match="check"):
        Incomplete()
