"""Strategy ``persyn``: the PerSyn router (Route-then-Generate), verified when the run says so."""

from __future__ import annotations

from persyn.runtime.cascade import kept_attempts, read_cascades, verified_pick
from persyn.runtime.dataset import persyn_dataset
from persyn.runtime.rewards import reward_table
from persyn.selection.base import Picks, Strategy
from persyn.stages import run_stages


class PerSyn(Strategy):
    """Calibration prompts take the Oracle pick; every other prompt the router's teacher, and
    only that teacher answers it. With ``verify``: the Oracle pick among the calibration
    responses that pass, and each routed prompt the teacher its cascade accepted (a prompt no
    teacher passed is left out, or keeps its best attempt with ``on_fail: keep``)."""

    name = "persyn"
    sources_by_split = True
    is_route_then_generate = True

    def needs_calibration(self, cfg) -> bool:
        return True

    def own_lines(self, ctx):
        data = persyn_dataset(ctx)  # the one assembly of the persyn dataset (export's)
        return data.lines, data.failures

    def pick(self, ctx, prompts, means, seed) -> Picks:
        run_stages(ctx, start="train_router", through="generate")
        _, table, _ = reward_table(ctx)
        check = verified_pick(ctx)
        picks: dict[str, str | None] = {pid: check(cands) for pid, cands in table.items()}
        cascades = read_cascades(ctx)
        kept = kept_attempts(ctx, cascades, ctx.store.generations(cascades.keys.values()))
        for pid, w in cascades.walks.items():
            picks[pid] = w.accepted if w.accepted is not None else kept.get(pid, (None, None))[0]
        return Picks(picks)
