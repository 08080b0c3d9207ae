"""Strategy ``persyn``: the PerSyn router (Route-then-Generate)."""

from __future__ import annotations

from persyn.scoring.combine import oracle_pick
from persyn.selection.base import Strategy
from persyn.stages.generate import generate
from persyn.stages.rewards import reward_table
from persyn.stages.route import assignments, route
from persyn.stages.train_router import train_router


class PerSyn(Strategy):
    """Calibration prompts take the Oracle pick; every other prompt the router's teacher, and
    only that teacher answers it."""

    name = "persyn"

    def needs_calibration(self, cfg) -> bool:
        return True

    def pick(self, ctx, prompts, means, seed, details):
        train_router(ctx)
        route(ctx)
        generate(ctx)
        _, table, _ = reward_table(ctx)
        picks: dict[str, str | None] = {pid: oracle_pick(cands) for pid, cands in table.items()}
        picks.update({pid: t for pid, (t, _) in assignments(ctx).items()})
        return picks
