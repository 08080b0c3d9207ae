"""Generate-then-Select strategies: every teacher answers every prompt, then one response is
kept per prompt by a per-prompt argmax."""

from __future__ import annotations

from persyn.selection.base import Picks, Strategy
from persyn.selection.rules import per_prompt_pick
from persyn.stages.generate_then_select import generate_then_select


class _PerPromptArgmax(Strategy):
    generate_then_select = True
    by = "reward"  # the Candidate attribute maximised

    def pick(self, ctx, prompts, means, seed) -> Picks:
        table, _ = generate_then_select(ctx)
        return Picks({pid: per_prompt_pick(cands, self.by) for pid, cands in table.items()})


class OracleStrategy(_PerPromptArgmax):
    """``oracle``: the highest combined reward (PerSyn Eq. 2) per prompt."""

    name, by = "oracle", "reward"


class Grape(_PerPromptArgmax):
    """``grape``: the highest student log-likelihood per token (α = 1; GRAPE, arXiv 2502.04194)."""

    name, by = "grape", "learnability"


class BestOfN(_PerPromptArgmax):
    """``best-of-n``: the highest quality per prompt (α = 0)."""

    name, by = "best-of-n", "quality"
