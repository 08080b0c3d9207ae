"""Verified datasets of any strategy (``persyn select -s NAME --verified``, the experiment arm
``NAME-verified``): the strategy's lines whose quality passes the check, from what is stored.

The check is the verified cascade's (``config.verify.VerifyConfig.passes``): the run's
``verify:`` section, else its defaults (a 0/1 quality passes at 1.0). A Generate-then-Select
strategy (every teacher's scored response to every prompt) re-picks by its own criterion among
the responses that pass, so it drops only the prompts no teacher passed; every other strategy
keeps exactly its own lines that pass. Nothing is generated beyond what the strategy itself
needs; only quality scores that are missing are computed.
"""

from __future__ import annotations

from collections.abc import Callable

from persyn.config import RunConfig
from persyn.config.verify import VerifyConfig
from persyn.core.errors import ConfigError
from persyn.core.records import Generation, Prompt
from persyn.runtime.context import RunContext
from persyn.runtime.scores import score_generations
from persyn.scoring.quality import quality_scorer_class

SUFFIX = "-verified"


def verified_name(name: str) -> str:
    """The verified dataset's name (its folder under ``strategies/``, its experiment arm):
    ``NAME-verified``."""
    return f"{name}{SUFFIX}"


def split_verified(name: str) -> tuple[str, bool]:
    """``(strategy, verified)`` of an arm name: ``car-verified`` → ``("car", True)``, ``car`` →
    ``("car", False)``. The strategy part is not checked here."""
    if name.endswith(SUFFIX) and len(name) > len(SUFFIX):
        return name[: -len(SUFFIX)], True
    return name, False


def pass_threshold(cfg: RunConfig) -> float:
    """The quality a line needs to pass: ``verify.pass_quality`` of the run, else the
    ``VerifyConfig`` default (1.0 for a 0/1 quality).

    Raises:
        ConfigError: ``quality.kind: reward_model`` and no ``verify.pass_quality`` (a reward
            model's scale is its own: the threshold must be given).
    """
    verify = cfg.verify or VerifyConfig()
    try:
        return verify.threshold(cfg.quality.kind)
    except ValueError:
        raise ConfigError(
            f"a verified dataset with quality.kind '{cfg.quality.kind}' needs verify.pass_quality "
            "(e.g. verify: {pass_quality: 0.5})"
        ) from None


def pass_rule(cfg: RunConfig) -> Callable[[float | None], bool]:
    """``passes(quality)``: whether a response of that quality (None: unscored or failed)
    passes the run's check (``VerifyConfig.passes``, see ``pass_threshold``).

    Raises:
        ConfigError: see ``pass_threshold``.
    """
    pass_threshold(cfg)  # refuse a missing threshold now, before anything runs
    verify, kind = cfg.verify or VerifyConfig(), cfg.quality.kind
    return lambda quality: verify.passes(quality, kind)


def score_quality(
    ctx: RunContext, gens: list[Generation], prompts: dict[str, Prompt], scored: set[str]
) -> bool:
    """Score the quality of the valid responses among ``gens`` whose key is not in ``scored``
    (``runtime.scores.score_generations`` with ``kinds=("quality",)``; the verifier checks each
    against its prompt's gold answer). With ``quality.kind: majority`` every stored response to
    those prompts is handed in too, as the pseudo-gold is their majority answer. Returns whether
    anything was scored (then the caller reads the scores again).

    Raises:
        PersynError: the quality scorer cannot be built or run (e.g. a missing model).
    """
    todo = [g for g in gens if g.ok and g.key not in scored]
    if not todo:
        return False
    if quality_scorer_class(ctx.cfg.quality.kind).PEER_GOLD:
        ids = {g.prompt_id for g in todo}
        keys = [ctx.key_of(t, prompts[pid]) for pid in ids for t in ctx.cfg.teachers]
        todo = list(ctx.store.generations(keys).values())
    score_generations(ctx, todo, prompts, kinds=("quality",))
    return True
