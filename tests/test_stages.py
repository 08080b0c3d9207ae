"""The stage entry (``runtime.context.stage``): what is decorated is prepared first, timed and
reported in ``summary.json``'s ``seconds``; what is not decorated is not."""

import time

import pytest
from conftest import tiny_config

import persyn.pipeline  # noqa: F401 - imports every stage, as a run does
from persyn.config import parse_config
from persyn.runtime import context
from persyn.runtime.context import RunContext, stage, timed_stages

#: The keys of ``summary.json``'s ``seconds``, in order (the report shows them in this order).
REPORTED = [
    "synthesize",
    "prepare",
    "calibrate",
    "score",
    "train_router",
    "route",
    "generate",
    "export",
    "generate_then_select",
]


@pytest.fixture
def ctx(tmp_path):
    fake = {"chat": "org/chat", "chat2": "org/chat2", "encoder": "org/encoder"}  # never loaded
    c = RunContext(parse_config(tiny_config(fake, tmp_path)))
    yield c
    c.close()


@pytest.fixture
def registry(monkeypatch):
    """A copy of the stage registry, so stages defined in a test do not outlive it."""
    monkeypatch.setattr(context, "STAGES", dict(context.STAGES))


def test_the_timed_stages_are_the_decorated_ones_in_run_order(ctx):
    assert timed_stages() == REPORTED
    assert list(ctx.seconds()) == REPORTED and set(ctx.seconds().values()) == {0.0}


def test_a_decorated_stage_is_prepared_first_timed_and_reported(ctx, registry):
    calls = []

    @stage("fake", 3, before=lambda c: calls.append(("before", c.store.stage_seconds("fake"))))
    def fake(c, x, y=0):
        calls.append(("fake", x, y))
        return x + y

    def not_a_stage(c):
        return 1

    assert fake(ctx, 1, y=2) == 3 and fake.stage == "fake" and fake.__name__ == "fake"
    assert calls == [("before", 0.0), ("fake", 1, 2)]  # before runs first: nothing timed yet
    not_a_stage(ctx)
    seconds = ctx.seconds()
    assert list(seconds) == [*REPORTED[:4], "fake", *REPORTED[4:]]  # step 3: after score
    assert "not_a_stage" not in seconds
    assert ctx.store.stage_seconds("fake") >= 0.0


def test_a_stage_times_its_call_even_when_it_raises(ctx, registry):
    @stage("fails", 9)
    def fails(c):
        time.sleep(0.01)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fails(ctx)
    assert ctx.store.stage_seconds("fails") >= 0.01


def test_two_functions_cannot_share_a_stage_name(registry):
    with pytest.raises(ValueError, match="'score': already the stage of persyn.stages.score.score"):

        @stage("score", 2)
        def other(c):
            return None
