"""Teacher generation as every stage asks for it: the missing responses of some teachers to
some prompts, stored batch by batch; and the stored calibration responses read back."""

from __future__ import annotations

from contextlib import closing

from persyn.config import TeacherConfig
from persyn.core.errors import PersynError
from persyn.core.faults import crash_point, register
from persyn.core.records import Generation, Prompt
from persyn.execution.jobs import teacher_job
from persyn.runtime.context import RunContext, progress

PHASES = ("calibration", "routed", "generate-then-select", "synthesis")
for _phase in PHASES:
    register(f"{_phase}.batch", f"after a batch of {_phase} responses is stored")
STRATEGY_BATCH = register("strategy.batch", "after a batch of a selection strategy's responses is stored")


def generate_responses(
    ctx: RunContext, work: list[tuple[TeacherConfig, list[Prompt]]], phase: str, retry_failed: bool = True
) -> int:
    """Each teacher of ``work`` answers its prompts, except those answered in the store (failed
    items are retried, unless ``retry_failed`` is False: then any stored row counts as done);
    every batch is stored as soon as it is back. ``phase`` is recorded with each response
    (``calibration``, ``routed``, a strategy's name, ...).

    Returns the number of responses generated (failed ones included).

    Raises:
        PersynError: a teacher that answered in this call has no successful response among
            all its stored responses to ``work``'s prompts: the teacher, the count and the first
            reason are named, so a wrong ``base_url`` or model stops the run instead of
            becoming quality 0. What was generated is stored; the next run retries the failed
            items.
    """
    done = ctx.store.generation_keys(status="ok" if retry_failed else None)
    keys: dict[str, dict[str, str]] = {}
    jobs = []
    for teacher, prompts in work:
        keys[teacher.name] = {p.id: ctx.key_of(teacher, p) for p in prompts}
        todo = [p for p in prompts if keys[teacher.name][p.id] not in done]
        if todo:
            jobs.append(teacher_job(ctx.cfg, teacher, todo))
    if not jobs:
        return 0
    made = 0
    made_now: dict[str, list[Generation]] = {}  # this call's responses per teacher
    # One bar per teacher, opened at its first batch: its rate and ETA are its own (a slow
    # teacher and a fast one sharing a bar gave an ETA that meant nothing).
    bars: dict[str, object] = {}
    todo = {j.tag.name: len(j.items) for j in jobs}
    try:
        # closing(): a failed store write ends the Ray workers now, not at garbage collection
        with closing(ctx.executor.run(jobs)) as results:
            for job, batch in results:
                name = job.tag.name
                gens = [Generation.of(keys[name][pid], pid, name, c, phase) for pid, c in batch]
                ctx.store.add_generations(gens)
                made_now.setdefault(name, []).extend(gens)
                made += len(gens)
                if name in bars:
                    bars[name].update(len(gens))
                else:  # its first batch counts as done, not in the rate (its start is unknown)
                    bars[name] = progress(todo[name], f"{phase} · {name}", "response", len(bars), len(gens))
                crash_point(f"{phase}.batch" if phase in PHASES else STRATEGY_BATCH)
    finally:
        for bar in bars.values():
            bar.close()
    # judged on every stored response of the teacher, not only this call's: retrying the few
    # items that failed before (a prompt too long), or one synthesis round of a single failed
    # sample, is not a dead teacher when it answered anything before
    if any(not any(g.ok for g in gens) for gens in made_now.values()):
        answered = ctx.store.teachers_with_a_success()
        dead = {n: gens for n, gens in made_now.items() if not any(g.ok for g in gens) and n not in answered}
    else:
        dead = {}
    stop_if_a_teacher_always_failed(dead, phase)
    return made


def stop_if_a_teacher_always_failed(dead: dict[str, list[Generation]], phase: str) -> None:
    """Raise for the teachers of ``dead`` (teacher → this call's responses, all failed, with
    no successful response stored before).

    Raises:
        PersynError: names each such teacher with its count and first failure reason.
    """
    if not dead:
        return
    lines = "; ".join(
        f"teacher '{t}' failed on all {len(gens)} {phase} request(s) (first: {gens[0].error})"
        for t, gens in dead.items()
    )
    raise PersynError(
        f"{lines}. Check the teacher's settings (base_url, model, api_key_env); the responses "
        "made are stored and the next run retries the failed ones"
    )


def preflight(ctx: RunContext) -> None:
    """Connect to every served teacher (``SERVED``: ``engine: openai``) before any work: an unreachable
    server, a missing API key or an unknown model fails here, not hours in."""
    for t in ctx.cfg.teachers:
        if t.SERVED:
            ctx.executor.check(teacher_job(ctx.cfg, t, []))


def calibration_generations(ctx: RunContext) -> tuple[list[Prompt], dict[tuple[str, str], Generation]]:
    """The calibration prompts and every teacher's stored response to each, by
    ``(prompt id, teacher)``.

    Raises:
        PersynError: a response is missing (names the first; run ``persyn calibrate``).
    """
    cal = ctx.store.prompts(calibration=True)
    want = {(p.id, t.name): ctx.key_of(t, p) for p in cal for t in ctx.cfg.teachers}
    got = ctx.store.generations(want.values())
    missing = [k for k, key in want.items() if key not in got]
    if missing:
        raise PersynError(
            f"{len(missing)} calibration response(s) are missing (e.g. prompt {missing[0][0]}, "
            f"teacher {missing[0][1]}): run `persyn calibrate` first"
        )
    return cal, {k: got[key] for k, key in want.items()}
