"""Strategy ``random``: a uniformly random teacher per prompt (seeded)."""

from __future__ import annotations

from persyn.selection.base import Picks, Strategy
from persyn.selection.rules import random_pick


class RandomTeacher(Strategy):
    """Each prompt's teacher is a pure function of (seed, prompt id)."""

    name = "random"

    def pick(self, ctx, prompts, means, seed) -> Picks:
        return Picks({p.id: random_pick(p.id, ctx.cfg.teacher_names, seed) for p in prompts})
