"""The selection strategies' settings, and the spend limits of the routed generations."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from persyn.core.plugins import STRATEGIES as STRATEGY_TABLE
from persyn.core.settings import StrictModel

STRATEGIES = tuple(STRATEGY_TABLE)  # names, in the order of the docs


class MixConfig(StrictModel):
    """Mix Distillation (arXiv 2502.12143): ``strong`` and ``weak`` teachers (default: the
    highest and lowest mean calibration quality) in the ratio ``ratio`` = [strong, weak]."""

    strong: str | None = None
    weak: str | None = None
    ratio: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] = (1, 4)

    @field_validator("ratio")
    @classmethod
    def _check_ratio(cls, v: tuple[int, int]) -> tuple[int, int]:
        if sum(v) == 0:
            raise ValueError("ratio [strong, weak] must not be [0, 0]")
        return v


class CarConfig(StrictModel):
    """CAR (arXiv 2411.07133): CAR = mean quality / (1 + beta · mean student NLL)."""

    beta: Annotated[float, Field(ge=0.0)] = 1.0


class StrategyOptions(StrictModel):
    """Settings of the selection strategies that have any (see ``persyn.strategies``)."""

    mix: MixConfig = Field(default_factory=MixConfig)
    car: CarConfig = Field(default_factory=CarConfig)


class BudgetConfig(StrictModel):
    """Limits on what the routed generations spend (``persyn.budget``): ``max_cost`` in the
    currency of the teachers' prices (in tokens when no teacher has a price), ``max_output_tokens``
    in expected output tokens. The calibration's spend comes before the router and is reported
    beside these, not counted in them. ``solver``: ``auto``, ``lagrangian`` (one limit, no
    capacities) or ``lp`` (exact, HiGHS). Teachers' ``max_prompts`` are capacities."""

    max_cost: Annotated[float, Field(ge=0)] | None = None
    max_output_tokens: Annotated[float, Field(ge=0)] | None = None
    solver: Literal["auto", "lagrangian", "lp"] = "auto"
