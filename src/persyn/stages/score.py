"""Stage 2: learnability (the student's log-likelihood, PerSyn Eq. 1) and quality of every
calibration response (``runtime.scores``)."""

from __future__ import annotations

from persyn.runtime.context import RunContext, stage
from persyn.runtime.prompts import prepare
from persyn.runtime.scores import score_calibration


@stage("score", 2, before=prepare)
def score(ctx: RunContext) -> None:
    """Score every calibration response (learnability, then quality) not scored yet.

    Raises:
        PersynError: a calibration response is missing (run ``persyn calibrate``).
    """
    score_calibration(ctx)
