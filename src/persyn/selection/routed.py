"""Strategy ``persyn``: the PerSyn router (Route-then-Generate), verified when the run says so."""

from __future__ import annotations

from persyn.runtime.cascade import read_cascades
from persyn.runtime.dataset import persyn_dataset
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

    def generations(self, ctx, n_prompts, n_calibration) -> int:
        # with verify, every try of a routed prompt's cascade is a generation (escalations too),
        # as the run's summary counts them; the plan's one response per routed prompt is a floor
        if ctx.cfg.verify is None:
            return super().generations(ctx, n_prompts, n_calibration)
        tries = sum(w.tries for w in read_cascades(ctx).walks.values())
        return n_calibration * len(ctx.cfg.teacher_names) + tries

    def own_lines(self, ctx):
        data = persyn_dataset(ctx)  # the one assembly of the persyn dataset (export's)
        return data.lines, data.failures

    def pick(self, ctx, prompts, means, seed) -> Picks:
        run_stages(ctx, start="train_router", through="generate")
        # the picks are the dataset's teachers: one rule (runtime.dataset), not a copy of it
        return Picks({x.id: x.teacher for x in persyn_dataset(ctx).lines})
