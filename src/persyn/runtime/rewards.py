"""The combined reward (PerSyn Eq. 2) of every teacher's response to a prompt, from
the stored scores. One table builder serves the calibration set (strict: every response must
be scored) and every prompt that all teachers answered (lenient)."""

from __future__ import annotations

from persyn.core.errors import PersynError
from persyn.core.records import Generation, Prompt
from persyn.router.base import RouterExample
from persyn.router.embeddings import PromptEncoder
from persyn.runtime.context import RunContext
from persyn.runtime.embeddings import prompt_embeddings
from persyn.runtime.responses import calibration_generations
from persyn.runtime.scores import merge_scores, stored_scores
from persyn.scoring.combine import Candidate, combine, normalize, pair_labels

RewardTable = dict[str, list[Candidate]]  # prompt id → Eq. 2 candidates in teacher order


def reward_rows(ctx: RunContext, prompts: list[Prompt], require_all: bool) -> RewardTable:
    """Eq. 2 candidates for every prompt of ``prompts`` whose teachers have all answered (ok or
    failed); a failed response or score is an invalid candidate (reward None).

    Raises:
        PersynError: ``require_all`` and a prompt lacks a teacher's response.
    """
    keys = {(p.id, t.name): ctx.key_of(t, p) for p in prompts for t in ctx.cfg.teachers}
    gens = ctx.store.generations(keys.values())
    responses = {k: gens[key] for k, key in keys.items() if key in gens}
    return candidates_table(ctx, prompts, responses, stored_scores(ctx), require_all)


def candidates_table(
    ctx: RunContext,
    prompts: list[Prompt],
    responses: dict[tuple[str, str], Generation],
    scores: dict[str, tuple[float | None, float | None]],
    require_all: bool,
) -> RewardTable:
    """The Eq. 2 candidates of ``prompts`` from responses already read (by ``(prompt id,
    teacher)``) and scores already read (``runtime.scores.merge_scores``); prompts lacking a teacher's
    response are left out, or refused when ``require_all``.

    Raises:
        PersynError: ``require_all`` and a prompt lacks a teacher's response.
    """
    cfg = ctx.cfg
    table = {}
    for p in prompts:
        if not all((p.id, n) in responses for n in cfg.teacher_names):
            if require_all:
                raise PersynError(f"prompt {p.id} is missing a teacher's response")
            continue
        cands = []
        for n in cfg.teacher_names:
            g = responses[(p.id, n)]
            q, lv = scores.get(g.key, (None, None)) if g.ok else (None, None)
            cands.append(Candidate(n, q, lv))
        table[p.id] = combine(cands, cfg.alpha, cfg.normalize)
    return table


def stored_rewards(ctx: RunContext, prompts: list[Prompt]) -> dict[tuple[str, str], float]:
    """``{(prompt id, teacher): Eq. 2 reward}`` for the prompts that every teacher has answered
    (the calibration set, and every prompt after Generate-then-Select)."""
    table = reward_rows(ctx, prompts, require_all=False)
    return {(pid, c.teacher): c.reward for pid, cands in table.items() for c in cands if c.reward is not None}


def reward_table(ctx: RunContext) -> tuple[list[Prompt], RewardTable, dict[tuple[str, str], Generation]]:
    """The calibration prompts, their Eq. 2 candidates (teacher order) and the calibration
    generations by ``(prompt id, teacher)``.

    Raises:
        PersynError: a calibration response is missing or not scored (run ``persyn calibrate``).
    """
    cal, gens = calibration_generations(ctx)
    # Scored = a stored row from both scorers (a failed score is a row with value None).
    lscores = ctx.store.scores("learnability", ctx.learnability_key)
    qscores = ctx.store.scores("quality", ctx.quality_key)
    for p in cal:
        for t in ctx.cfg.teachers:
            g = gens[(p.id, t.name)]
            if g.ok and (g.key not in lscores or g.key not in qscores):
                raise PersynError(
                    f"calibration response of {t.name} to {p.id} is not scored: run `persyn calibrate`"
                )
    return cal, candidates_table(ctx, cal, gens, merge_scores(qscores, lscores), require_all=True), gens


def router_examples(ctx: RunContext, embed: bool) -> list[RouterExample]:
    """The calibration prompts as router examples (pairs, rewards and, with ``embed``, their
    stored embeddings), in source order.

    Raises:
        PersynError: calibration responses missing or not scored.
    """
    cal, table, _ = reward_table(ctx)
    vectors = (
        prompt_embeddings(ctx, [p.text for p in cal], PromptEncoder.of(ctx.cfg.router)) if embed else None
    )
    verify = ctx.cfg.verify
    out = []
    for i, p in enumerate(cal):
        if verify is not None and verify.router_target == "verified":
            rewards = verified_values(ctx, table[p.id])
        else:
            rewards = [c.reward for c in table[p.id]]
        emb = vectors[i] if vectors is not None else None
        out.append(RouterExample(p.text, pair_labels(rewards, ctx.cfg.router.ties), rewards, emb))
    return out


def verified_values(ctx: RunContext, cands: list) -> list[float | None]:
    """The verified router target of one calibration prompt's candidates (teacher order): 0
    for a response that fails the check (or failed), ``(1 − α) + α · learnability_norm`` for
    one that passes (``VerifyConfig``; the learnability min-max normalised over the prompt's
    valid responses, whatever ``normalize`` is); all None when no response is valid."""
    cfg = ctx.cfg
    valid = [c for c in cands if c.valid]
    if not valid:
        return [None] * len(cands)
    # min-max whatever ``normalize`` says: a z-scored term can be negative, and a passing
    # response must never be worth less than a failing one (0)
    norm = dict(zip(map(id, valid), normalize([c.learnability for c in valid], "minmax"), strict=True))
    return [
        (1.0 - cfg.alpha) + cfg.alpha * norm[id(c)]
        if c.valid and cfg.verify.passes(c.quality, cfg.quality.kind)
        else 0.0
        for c in cands
    ]
