"""The routing decisions read off the store: what route stored for every routed prompt."""

from __future__ import annotations

from persyn.core.errors import PersynError
from persyn.runtime.context import RunContext


def assignments(ctx: RunContext) -> dict[str, tuple[str, dict[str, float]]]:
    """The current routing decisions: ``{prompt id: (teacher, {teacher: π})}`` for every
    non-calibration prompt, in source order.

    Raises:
        PersynError: a prompt is not routed yet (run ``persyn route``).
    """
    key = ctx.store.route_key()
    got = ctx.store.assignments(key) if key else {}
    routed = ctx.store.prompts(calibration=False)
    missing = [p.id for p in routed if p.id not in got]
    if missing:
        raise PersynError(
            f"{len(missing)} prompt(s) are not routed (e.g. {missing[0]}): run `persyn route` first"
        )
    return {p.id: got[p.id] for p in routed}
