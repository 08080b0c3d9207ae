"""Stage 1: every teacher answers every calibration prompt."""

from __future__ import annotations

from persyn.core.errors import PersynError
from persyn.core.records import Generation, Prompt
from persyn.stages.context import RunContext, stage
from persyn.stages.generation import generate_responses, preflight
from persyn.stages.prepare import prepare


@stage("calibrate", 1, before=prepare)
def calibrate(ctx: RunContext) -> int:
    """Every teacher answers every calibration prompt (what is stored is skipped). Returns the
    number of responses generated."""
    preflight(ctx)
    cal = ctx.store.prompts(calibration=True)
    return generate_responses(ctx, [(t, cal) for t in ctx.cfg.teachers], "calibration")


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
