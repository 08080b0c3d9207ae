"""``persyn cache info|clear``: what the store holds for a config, and deleting it."""

from __future__ import annotations

from collections import Counter, defaultdict

from persyn.core.errors import PersynError
from persyn.core.summary import CacheInfo, ScoreCache, TeacherCache
from persyn.runtime.context import RunContext
from persyn.runtime.prompts import prepare


def cache_info(ctx: RunContext) -> CacheInfo:
    """What the store holds for this config: per teacher, responses for its current settings
    (``ok`` / ``failed``) and ``stale`` ones (other settings); per scorer kind, ``current`` and
    ``stale`` scores; the store's size in bytes and the generation counter."""
    prepare(ctx)
    prompts = ctx.store.prompts()
    by_teacher: dict[str, dict[str, str]] = defaultdict(dict)
    for key, teacher, status in ctx.store.generation_rows():
        by_teacher[teacher][key] = status
    teachers = {}
    for t in ctx.cfg.teachers:
        stored = by_teacher.get(t.name, {})
        current = {ctx.key_of(t, p) for p in prompts}
        statuses = Counter(stored[k] for k in current if k in stored)
        teachers[t.name] = TeacherCache(
            ok=statuses.get("ok", 0),
            failed=statuses.get("failed", 0),
            stale=sum(1 for k in stored if k not in current),
        )
    for name, stored in by_teacher.items():
        if name not in teachers:
            teachers[name] = TeacherCache(ok=0, failed=0, stale=len(stored), not_in_config=True)
    current_scorers = {ctx.learnability_key, ctx.quality_key}
    scores: dict[str, ScoreCache] = defaultdict(ScoreCache)
    for kind, scorer, n in ctx.store.score_counts():
        if scorer in current_scorers:
            scores[kind].current += n
        else:
            scores[kind].stale += n
    size = sum(f.stat().st_size for f in ctx.out.glob("store.sqlite*"))
    return CacheInfo(
        teachers=teachers,
        scores=dict(scores),
        store_bytes=size,
        generation_calls=ctx.store.generation_calls(),
    )


def cache_clear(ctx: RunContext, teacher: str | None = None) -> int:
    """Delete stored responses (and their scores) of ``teacher``, or everything computed when
    None. Returns the number of responses deleted.

    Raises:
        PersynError: ``teacher`` is neither in the config nor in the store.
    """
    if teacher is not None:
        known = set(ctx.cfg.teacher_names) | {t for _, t, _ in ctx.store.generation_rows()}
        if teacher not in known:
            raise PersynError(f"--teacher: unknown teacher '{teacher}' (known: {', '.join(sorted(known))})")
    return ctx.store.delete_generations(teacher)
