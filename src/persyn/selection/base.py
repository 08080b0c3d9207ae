"""The strategy contract, the registry lookup, and ``select``: run what a strategy needs on a
run's store and return its picks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from persyn.config import RunConfig
from persyn.core.errors import ConfigError
from persyn.core.plugins import STRATEGIES, check, load
from persyn.core.records import DatasetLine, Failure, Prompt
from persyn.runtime.context import RunContext
from persyn.runtime.prompts import prepare
from persyn.runtime.rewards import reward_table
from persyn.scoring.means import TeacherMeans, calibration_means
from persyn.stages import run_stages


@dataclass
class Picks:
    """What a strategy chose: ``teachers`` maps each prompt id to its teacher (None: no valid
    candidate), ``details`` holds the strategy's own figures (JSON-ready: CAR per teacher, the
    Mix teachers, ...)."""

    teachers: dict[str, str | None]
    details: dict[str, Any] = field(default_factory=dict)


class Strategy(ABC):
    """A selection strategy. Subclasses set ``name`` and implement ``pick``; those that choose
    from calibration scores return True from ``needs_calibration`` (then ``pick`` gets the
    calibration means), Generate-then-Select ones set ``generate_then_select``."""

    name: str = ""
    generate_then_select: bool = False
    #: Whether its dataset lines say ``calibration`` or ``routed`` as their ``source`` (the
    #: method's own split), instead of the strategy's name.
    sources_by_split: bool = False
    #: Whether it is Route-then-Generate itself: ``persyn run`` runs the stages and writes the
    #: run's own files, instead of building the strategy's dataset.
    is_route_then_generate: bool = False

    def needs_calibration(self, cfg: RunConfig) -> bool:
        """Whether the strategy chooses from calibration scores (then calibration is part of
        its cost)."""
        return False

    def check(self, cfg: RunConfig) -> None:
        """Refuse a config the strategy cannot serve, before anything is generated.

        Raises:
            ConfigError: names the field to set.
        """
        return  # most strategies serve every config

    def generations(self, ctx: RunContext, n_prompts: int, n_calibration: int) -> int:
        """Teacher generations its dataset took (``summary.json``'s ``generations``): by default
        what it needs on a fresh run (``generations_needed``)."""
        return generations_needed(ctx.cfg, self, n_prompts, n_calibration)

    def own_lines(self, ctx: RunContext) -> tuple[list[DatasetLine], list[Failure]] | None:
        """The dataset lines and failures of a strategy whose dataset is assembled elsewhere
        (``persyn``: the run's own, ``runtime.dataset``), read after ``pick``; None (the
        default): ``selection.build`` assembles the lines from the picks."""
        return None

    @abstractmethod
    def pick(
        self, ctx: RunContext, prompts: list[Prompt], means: dict[str, TeacherMeans] | None, seed: int
    ) -> Picks:
        """The teacher of each of ``prompts`` and the strategy's figures; may run stages.
        ``means``: the calibration means when ``needs_calibration``, else None; ``seed``: draws
        a random assignment."""


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``.

    Raises:
        ConfigError: an unknown name (the known ones are listed).
    """
    try:
        check(STRATEGIES, name, "strategy")
    except ValueError as exc:
        raise ConfigError(f"--strategy: {exc}") from None
    return load(STRATEGIES, name, "strategy")()


def select(ctx: RunContext, name: str, seed: int | None = None) -> tuple[dict[str, str], dict]:
    """Run whatever strategy ``name`` needs on the run's store (calibration, scoring, router,
    the Generate-then-Select responses; all reused when stored) and return
    ``({prompt_id: teacher}, details)``; ``details`` holds the strategy's own figures (e.g. CAR
    per teacher, the calibration means). A prompt with no valid candidate is left out (recorded
    by the caller). ``seed`` (default: the run seed) draws the ``random`` and ``mix``
    assignments.

    Raises:
        ConfigError: unknown strategy, or a config it cannot serve (e.g. a family no teacher has).
    """
    strategy = get_strategy(name)
    cfg = ctx.cfg
    seed = cfg.seed if seed is None else seed
    prepare(ctx)
    strategy.check(cfg)  # fail before any generation
    details: dict[str, Any] = {}
    means = None
    if strategy.needs_calibration(cfg):
        run_stages(ctx, through="score")
        _, table, _ = reward_table(ctx)
        means = calibration_means(table, cfg.teacher_names)
        details["calibration_means"] = {n: vars(m) for n, m in means.items()}
    picks = strategy.pick(ctx, ctx.store.prompts(), means, seed)
    details.update(picks.details)
    return {k: v for k, v in picks.teachers.items() if v is not None}, details


def generations_needed(cfg: RunConfig, strategy: Strategy, n_prompts: int, n_calibration: int) -> int:
    """Teacher generations ``strategy`` needs in total on a fresh run: every teacher on every
    prompt for Generate-then-Select; else the calibration set answered by every teacher when
    it chooses from calibration scores, plus one response per other prompt."""
    n_t = len(cfg.teacher_names)
    if strategy.generate_then_select:
        return n_prompts * n_t
    if strategy.needs_calibration(cfg):
        return n_calibration * n_t + (n_prompts - n_calibration)
    return n_prompts
