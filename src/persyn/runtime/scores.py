"""Scoring as the stages ask for it: the learnability (PerSyn Eq. 1) and quality of responses
not scored yet, stored batch by batch; and the stored scores read back."""

from __future__ import annotations

from contextlib import closing
from functools import partial

from persyn.core.faults import crash_point, register
from persyn.core.records import Generation, Prompt, ScoreItem
from persyn.execution.jobs import scorer_job
from persyn.runtime.context import RunContext, progress
from persyn.runtime.responses import calibration_generations
from persyn.scoring.learnability import LearnabilityScorer
from persyn.scoring.quality import make_quality_scorer, quality_scorer_class
from persyn.scoring.tasks import task_of

for _kind in ("learnability", "quality"):
    register(f"score.{_kind}", f"after a batch of {_kind} scores is stored")


def score_calibration(ctx: RunContext) -> None:
    """Score every calibration response (learnability, then quality) not scored yet: the
    ``score`` stage, and each round of ``active`` calibration.

    Raises:
        PersynError: a calibration response is missing (run ``persyn calibrate``).
    """
    cal, gens = calibration_generations(ctx)
    score_generations(ctx, list(gens.values()), {p.id: p for p in cal})


def score_generations(
    ctx: RunContext,
    gens: list[Generation],
    by_id: dict[str, Prompt],
    kinds: tuple[str, ...] = ("learnability", "quality"),
) -> None:
    """Score the valid responses among ``gens`` that the store does not hold yet (failed scores
    are retried) with the scorers ``kinds`` (``learnability``, ``quality``); each batch of
    scores is stored as it comes back."""
    items = [
        ScoreItem(g.key, by_id[g.prompt_id].text, g.response, by_id[g.prompt_id].messages)
        for g in gens
        if g.ok
    ]
    student, quality = ctx.cfg.student, ctx.cfg.quality
    notes: dict[str, str] = {}
    if quality_scorer_class(quality.kind).PEER_GOLD:
        answers, notes = majority_golds(gens)
    else:
        answers = {g.key: by_id[g.prompt_id].answer for g in gens}
    tasks = {g.key: t for g in gens if (t := task_of(by_id[g.prompt_id].metadata)) is not None}
    build_quality = partial(make_quality_scorer, quality, answers, notes, ctx.cfg.teacher_names, tasks)
    scorers = {
        "learnability": (partial(LearnabilityScorer, student), student.resources, "student"),
        "quality": (build_quality, quality.resources, None),
    }
    keys = {"learnability": ctx.learnability_key, "quality": ctx.quality_key}
    jobs = []
    for kind, (build, resources, cache) in scorers.items():
        if kind not in kinds:
            continue
        done = ctx.store.scores(kind, keys[kind])
        todo = [it for it in items if done.get(it.key, (None, None))[0] is None]  # retry failed
        if todo:
            jobs.append(scorer_job(kind, build, todo, resources, cache))
    desc = "score · " + ", ".join(j.tag for j in jobs)
    with progress(sum(len(j.items) for j in jobs), desc, "response") as bar:
        with closing(ctx.executor.run(jobs)) as results:
            for job, rows in results:
                ctx.store.add_scores(job.tag, keys[job.tag], rows)
                bar.update(len(rows))
                crash_point(f"score.{job.tag}")


def majority_golds(gens: list[Generation]) -> tuple[dict[str, str | None], dict[str, str]]:
    """``quality.kind: majority``: per generation key, the pseudo-gold of its prompt (the
    majority final answer over all of that prompt's valid responses among ``gens``), and per key
    without one, the reason (a tie, too few answers). The note of a scored item records the
    agreement."""
    from persyn.synthesis.answers import majority_answer

    by_prompt: dict[str, list[Generation]] = {}
    for g in gens:
        if g.ok:
            by_prompt.setdefault(g.prompt_id, []).append(g)
    answers: dict[str, str | None] = {}
    notes: dict[str, str] = {}
    for group in by_prompt.values():
        vote = majority_answer([g.response for g in group])
        note = (
            vote.note
            if vote.answer is None
            else (f"pseudo-gold {vote.answer}: {vote.votes} of {vote.voters} answers agree")
        )
        for g in group:
            answers[g.key] = vote.answer
            notes[g.key] = note or "no majority answer"
    return answers, notes


def stored_scores(ctx: RunContext) -> dict[str, tuple[float | None, float | None]]:
    """``{generation key: (quality, learnability)}`` for the current scorers (None where not
    scored or failed)."""
    lscores = ctx.store.scores("learnability", ctx.learnability_key)
    qscores = ctx.store.scores("quality", ctx.quality_key)
    return merge_scores(qscores, lscores)


def merge_scores(
    qscores: dict[str, tuple[float | None, str | None]], lscores: dict[str, tuple[float | None, str | None]]
) -> dict[str, tuple[float | None, float | None]]:
    """``{generation key: (quality, learnability)}`` from the two scorers' stored rows (as
    ``Store.scores`` gives them); None where a scorer has no row or failed."""
    keys = set(lscores) | set(qscores)
    return {k: (qscores.get(k, (None, None))[0], lscores.get(k, (None, None))[0]) for k in keys}
