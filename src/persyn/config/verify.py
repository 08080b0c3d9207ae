"""The verified Route-then-Generate settings (``verify:``): check each routed response, ask the
next teacher of the prompt's ranking when it fails."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from persyn.core.settings import StrictModel
from persyn.scoring.quality import quality_scorer_class


class VerifyConfig(StrictModel):
    """Verified Route-then-Generate (docs/method.md, "The verified cascade").

    Each routed response is scored for quality as soon as it is stored; one whose quality is
    below ``pass_quality`` goes to the next teacher in the prompt's ranking, until one passes
    or ``max_tries`` teachers have answered (``max_tries: 1`` only checks). A prompt no teacher
    passes is dropped (``on_fail: drop``) or keeps its best attempt by Eq. 2 reward among its
    attempts (``keep``). Calibration prompts keep their Oracle pick among the responses that
    pass (dropped or kept alike when none passes), so every line of a verified, dropping
    dataset passes.

    ``pass_quality``: a response passes when its quality is at least this (default 1.0 for
    the 0/1 ``verifier``; required for ``reward_model``, whose scale is the model's own).

    ``router_target``: what the router learns on the calibration set. ``verified`` (default):
    a response's target is 0 when it fails and ``(1 − α) + α · learnability_norm`` when it
    passes, so a teacher's expected target is its pass probability times the value of a
    passing answer (what a cascade gets from it); ``reward``: the Eq. 2 reward as without
    ``verify``, which credits a wrong answer with ``α · learnability_norm``.
    """

    max_tries: Annotated[int, Field(ge=1)] = 2
    on_fail: Literal["drop", "keep"] = "drop"
    pass_quality: float | None = None
    router_target: Literal["verified", "reward"] = "verified"

    def threshold(self, quality_kind: str) -> float:
        """The quality a response needs to pass: ``pass_quality``, else 1.0 for 0/1 scorers.

        Raises:
            ValueError: a ``reward_model`` quality without ``pass_quality`` (config validation
                refuses this first).
        """
        threshold = pass_threshold(self, quality_kind)
        if threshold is None:
            raise ValueError("verify.pass_quality is required with quality.kind 'reward_model'")
        return threshold

    def passes(self, quality: float | None, quality_kind: str) -> bool:
        """Whether a response of quality ``quality`` (None: failed or unscored) passes."""
        return quality is not None and quality >= self.threshold(quality_kind) - 1e-12


def pass_threshold(verify: VerifyConfig | None, quality_kind: str) -> float | None:
    """The quality a response needs to pass: ``verify.pass_quality`` when set, else 1.0 for the
    0/1 and share scorers (``verifier``, ``ifeval``, ...), None for a ``reward_model`` (its scale
    is the model's own, so there is no default)."""
    if verify is not None and verify.pass_quality is not None:
        return verify.pass_quality
    return quality_scorer_class(quality_kind).DEFAULT_PASS
