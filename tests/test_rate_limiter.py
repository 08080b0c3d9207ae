"""The OpenAI engine's requests- and tokens-per-minute limiter, on a fake clock: a request
waits exactly until the oldest one in the 60-second window leaves it."""

import asyncio

import pytest

from persyn.engines import openai_engine
from persyn.engines.openai_engine import RateLimiter


@pytest.fixture
def clock(monkeypatch):
    """A fake ``time.monotonic`` that ``asyncio.sleep`` advances (no real waiting)."""
    now = [1000.0]
    real_sleep = asyncio.sleep

    async def sleep(seconds):
        now[0] += seconds
        await real_sleep(0)

    monkeypatch.setattr(openai_engine.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(openai_engine.asyncio, "sleep", sleep)
    return now


def admitted_at(limiter, tokens, clock):
    """The fake times at which each request of ``tokens`` is let through, in order."""

    async def go():
        times = []
        for n in tokens:
            await limiter.acquire(n)
            times.append(clock[0] - 1000.0)
        return times

    return asyncio.run(go())


def test_requests_per_minute_waits_for_the_window(clock):
    # 2 requests a minute: the 3rd waits until the 1st is 60 s old, the 5th until the 3rd is
    assert admitted_at(RateLimiter(rpm=2, tpm=None), [1] * 5, clock) == [0, 0, 60, 60, 120]


def test_tokens_per_minute_waits_until_the_tokens_fit(clock):
    # 100 tokens a minute: 60 + 30 fit, the next 30 waits for the first 60 to leave the window
    assert admitted_at(RateLimiter(rpm=None, tpm=100), [60, 30, 30, 50], clock) == [0, 0, 60, 60]


def test_one_request_above_the_token_limit_still_goes_alone(clock):
    # an estimate above the whole budget is let through on an empty window (never a deadlock)
    assert admitted_at(RateLimiter(rpm=None, tpm=10), [50, 5], clock) == [0, 60]


def test_no_limits_never_waits(clock):
    assert admitted_at(RateLimiter(rpm=None, tpm=None), [10**6] * 3, clock) == [0, 0, 0]


def test_a_request_waits_only_for_what_is_left_of_the_window(clock):
    # 1 request a minute: the first at 0; 40 s later the next waits the 20 s left of the window
    limiter = RateLimiter(rpm=1, tpm=None)

    async def go():
        await limiter.acquire(1)
        clock[0] += 40.0
        await limiter.acquire(1)
        return clock[0] - 1000.0

    assert asyncio.run(go()) == 60.0
