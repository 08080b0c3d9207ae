"""The calibration set's settings: its size and how it is chosen."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator

from persyn.core.errors import ConfigError
from persyn.core.settings import StrictModel


class CalibrationConfig(StrictModel):
    """Calibration set X_cal: ``size``, a fraction of the prompts in (0, 1] (float) or a count
    >= 2, chosen by ``select``:

    - ``random``: drawn uniformly (seeded by the run seed);
    - ``diverse``: k-center greedy on the prompts' ``router.encoder`` embeddings, the first
      center drawn with the run seed, so the set covers the prompt distribution;
    - ``active``: a diverse seed set of ``seed_fraction`` of ``size``, then ``rounds`` rounds
      that each add the prompts on which routers trained on the set so far are least certain
      or disagree most.
    """

    size: float | int = 0.2
    select: Literal["random", "diverse", "active"] = "random"
    rounds: Annotated[int, Field(ge=1)] = 3
    seed_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5

    @field_validator("size")
    @classmethod
    def _check_size(cls, v: float | int) -> float | int:
        if isinstance(v, bool):
            raise ValueError("must be a fraction in (0, 1] or a count >= 2")
        if isinstance(v, float):
            if 0.0 < v <= 1.0:
                return v
            if not v.is_integer():
                raise ValueError(f"fraction {v} is outside (0, 1]")
            v = int(v)
        if v < 2:
            raise ValueError(f"count {v} is smaller than 2")
        return int(v)

    def count(self, n_prompts: int) -> int:
        """Number of calibration prompts for a set of ``n_prompts``.

        Raises:
            ConfigError: when the result is below 2 or above ``n_prompts``.
        """
        if isinstance(self.size, float):
            n = int(math.ceil(self.size * n_prompts - 1e-9))
        else:
            n = self.size
        if n > n_prompts:
            raise ConfigError(
                f"calibration.size: {self.size} asks for {n} calibration prompts, "
                f"but the prompt set has only {n_prompts}"
            )
        if n < 2:
            raise ConfigError(
                f"calibration.size: {self.size} gives {n} calibration prompt(s) of "
                f"{n_prompts}; at least 2 are needed"
            )
        return n

    def first_count(self, n_prompts: int) -> int:
        """Prompts chosen by ``prepare``: all ``count`` of them, or for ``active`` the seed
        set (at least 2)."""
        n = self.count(n_prompts)
        return n if self.select != "active" else min(n, max(2, round(self.seed_fraction * n)))
