"""The stages of a run, one module each, in the order data flows through them (``prepare``,
which every stage runs first, is ``runtime.prompts``):

    (prepare →) calibrate → score → train_router → route → generate → export

plus ``generate_then_select`` (every teacher on every prompt, for the baselines) and
``synthesize`` (new prompts, before a run). Each stage is a function over a ``RunContext``
that skips what the store already holds, so a re-run after a crash resumes; it enters through
``runtime.context.stage`` (``prepare`` first, then its timing: what is decorated is what
``summary.json`` times, under ``seconds``). A stage calls the services of ``persyn.runtime``,
never another stage: ``ROUTE_THEN_GENERATE`` below is the one place their order is written, and
``run_stages`` the one loop that runs them (``Pipeline.run``, the strategies, the CLI and the
experiment all go through it).
"""

from __future__ import annotations

from persyn.runtime.context import RunContext

# the modules, not their functions: ``persyn.stages.route`` stays the module
from persyn.stages import calibrate, generate, route, score, train_router

#: Route-then-Generate (PerSyn, arXiv 2510.10925, Sec. 3), before the dataset is written
#: (``export``): each stage's name and function, in order.
ROUTE_THEN_GENERATE = {
    "calibrate": calibrate.calibrate,
    "score": score.score,
    "train_router": train_router.train_router,
    "route": route.route,
    "generate": generate.generate,
}
#: The stages that return the number of responses they generated.
GENERATING = ("calibrate", "generate")


def run_stages(ctx: RunContext, through: str, start: str = "calibrate") -> int:
    """Run the Route-then-Generate stages from ``start`` through ``through``, in order (each
    skips what the store holds); returns the responses generated.

    Raises:
        ValueError: ``start`` or ``through`` is not a stage of ``ROUTE_THEN_GENERATE``, or
            comes after the other.
    """
    names = list(ROUTE_THEN_GENERATE)
    for given in (start, through):
        if given not in names:
            raise ValueError(f"stage {given!r}: not one of {names}")
    i, j = names.index(start), names.index(through)
    if i > j:
        raise ValueError(f"stage {start!r} comes after {through!r}")
    made = 0
    for name in names[i : j + 1]:
        out = ROUTE_THEN_GENERATE[name](ctx)
        if name in GENERATING:
            made += out
    return made
