"""``persyn batch import``: a batch results file (``vllm run-batch``'s output, or the Batch API's
output and error files) stored as a teacher's responses, so that the run goes on as if the
teacher had answered (the requests came from ``persyn batch export``; each ``custom_id`` is a
prompt id of the run)."""

from __future__ import annotations

from pathlib import Path

from persyn.core.errors import InputError, PersynError
from persyn.core.io import jsonl_records
from persyn.core.records import Generation
from persyn.engines.openai_batch import parse_result_line, takes_batch_files
from persyn.runtime.context import RunContext


def batch_teacher(cfg, name: str):
    """The teacher ``name`` of run config ``cfg``, one whose engine takes batch files (its
    settings have ``batch``: engine ``openai``).

    Raises:
        PersynError: no such teacher, or its engine takes none.
    """
    teachers = {t.name: t for t in cfg.teachers}
    if name not in teachers:
        raise PersynError(f"no teacher '{name}' in the config (teachers: {', '.join(teachers)})")
    if not takes_batch_files(teachers[name]):
        raise PersynError(
            f"teacher '{name}' has engine '{teachers[name].engine}', which takes no batch files "
            "(an OpenAI-compatible teacher, engine 'openai', does)"
        )
    return teachers[name]


def import_results(ctx: RunContext, teacher_name: str, paths: list[Path]) -> dict[str, int]:
    """Store the result lines of ``paths`` (any order) as ``teacher_name``'s responses: each
    line's ``custom_id`` names a prompt of the run, its response is stored under the key the
    teacher's own request would have (phase ``calibration`` for a calibration prompt, else
    ``routed``); a failed line (an error, a status other than 200) is a failed item, which the
    next run retries. Returns ``{"ok", "failed"}`` counts.

    Raises:
        PersynError: no teacher ``teacher_name``, or one whose engine takes no batch files.
        InputError: a malformed line, or a ``custom_id`` that is not a prompt of this run
            (file and line named, with the value).
    """
    teacher = batch_teacher(ctx.cfg, teacher_name)
    calibration = set(ctx.store.prompt_ids(calibration=True))
    rows = []
    for path in paths:
        for where, row in jsonl_records(path, "batch results file"):
            try:
                cid, completion = parse_result_line(row)
            except ValueError as exc:
                raise InputError(f"{where}: {exc}") from None
            rows.append((where, cid, completion))
    prompts = {p.id: p for p in ctx.store.prompts_by_id(sorted({cid for _, cid, _ in rows}))}
    gens = []
    for where, cid, completion in rows:
        if cid not in prompts:
            raise InputError(
                f"{where}: custom_id {cid!r} is not a prompt of this run (was the file exported "
                "with `persyn batch export` from this config?)"
            )
        phase = "calibration" if cid in calibration else "routed"
        gens.append(Generation.of(ctx.key_of(teacher, prompts[cid]), cid, teacher_name, completion, phase))
    ctx.store.add_generations(gens)
    ok = sum(1 for g in gens if g.ok)
    return {"ok": ok, "failed": len(gens) - ok}
