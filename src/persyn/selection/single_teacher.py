"""Strategies that give every prompt to one teacher chosen from the calibration means:
``strongest``, ``family-strong`` and ``car``."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from persyn.core.errors import PersynError
from persyn.core.ranking import best
from persyn.scoring.quality import quality_scorer_class
from persyn.selection.base import Picks, Strategy
from persyn.selection.rules import (
    car_scores,
    family_members,
    family_strongest,
    rescaled_quality,
    strongest,
)


class _SingleTeacher(Strategy):
    def needs_calibration(self, cfg) -> bool:
        return True

    @abstractmethod
    def teacher(self, cfg, means) -> tuple[str, dict[str, Any]]:
        """The one teacher, and the figures it was chosen by."""

    def pick(self, ctx, prompts, means, seed) -> Picks:
        teacher, figures = self.teacher(ctx.cfg, means)
        return Picks({p.id: teacher for p in prompts}, {**figures, "teacher": teacher})


class Strongest(_SingleTeacher):
    """``strongest``: the teacher with the highest mean calibration quality."""

    name = "strongest"

    def teacher(self, cfg, means) -> tuple[str, dict[str, Any]]:
        return strongest(means, cfg.teacher_names), {}


class FamilyStrong(_SingleTeacher):
    """``family-strong``: the strongest teacher of the student's ``family``."""

    name = "family-strong"

    def check(self, cfg) -> None:
        family_members(cfg.teacher_names, {t.name: t.family for t in cfg.teachers}, cfg.student.family)

    def teacher(self, cfg, means) -> tuple[str, dict[str, Any]]:
        families = {t.name: t.family for t in cfg.teachers}
        best_of_family = family_strongest(means, cfg.teacher_names, families, cfg.student.family)
        return best_of_family, {"family": cfg.student.family}


class CAR(_SingleTeacher):
    """``car``: the highest Compatibility-Adjusted Reward (arXiv 2411.07133; see
    ``rules.car_scores``)."""

    name = "car"

    def teacher(self, cfg, means) -> tuple[str, dict[str, Any]]:
        if not quality_scorer_class(cfg.quality.kind).BOUNDED:
            # Raw reward-model scores can be negative, where r̄ / (1 + β·L̄) would favour a
            # *higher* NLL: rescale the teachers' mean quality to [0, 1] first.
            means = rescaled_quality(means)
        beta = cfg.strategy_options.car.beta
        car = car_scores(means, beta)
        # Ties: mean quality, then mean learnability, then the name (``core.ranking``).
        teacher = best(
            cfg.teacher_names,
            car,
            {n: m.quality for n, m in means.items()},
            {n: m.learnability for n, m in means.items()},
        )
        if teacher is None:
            raise PersynError("strategy 'car': no teacher has a scored calibration response")
        return teacher, {"car": car, "beta": beta}
