"""Strategy ``mix``: Mix Distillation (arXiv 2502.12143): strong and weak teachers' data in a
fixed ratio, prompts assigned at random (seeded)."""

from __future__ import annotations

from persyn.selection.base import Picks, Strategy
from persyn.selection.rules import mix_assign, strongest, weakest


class Mix(Strategy):
    """``strategy_options.mix``: ``strong``/``weak`` teachers (by default the strongest and the
    weakest by mean calibration quality) and their ``ratio`` (1 : 4 by default)."""

    name = "mix"

    def needs_calibration(self, cfg) -> bool:
        mix = cfg.strategy_options.mix
        return mix.strong is None or mix.weak is None

    def pick(self, ctx, prompts, means, seed) -> Picks:
        mix, names = ctx.cfg.strategy_options.mix, ctx.cfg.teacher_names
        others = [n for n in names if n != mix.weak]
        strong = mix.strong or strongest(means, others)
        weak = mix.weak or weakest(means, names, strong)
        teachers = mix_assign([p.id for p in prompts], strong, weak, mix.ratio, seed)
        return Picks(teachers, {"strong": strong, "weak": weak, "ratio": list(mix.ratio)})
