"""The PerSyn pipeline (Route-then-Generate) as one object: a thin facade over the stages.

    prepare → calibrate → score → train_router → route → generate → export

Each stage lives in its own module of ``persyn.stages`` and skips what the store
(``OUTPUT_DIR/store.sqlite``) already holds, so re-running a command after a crash resumes: a
generation or score is computed once per cache key, the router is retrained only when its
inputs changed, and exported files are rewritten atomically. With ``strategy`` other than
``persyn`` in the config, ``run`` builds that selection strategy's dataset instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from persyn.config import RunConfig, TeacherConfig
from persyn.core.errors import ConfigError
from persyn.core.io import write_atomic
from persyn.core.records import Prompt
from persyn.core.summary import CacheInfo, RunSummary, StrategySummary, SynthesisSummary
from persyn.runtime import cache, rewards, routing, scores
from persyn.runtime.context import RunContext
from persyn.runtime.prompts import prepare
from persyn.runtime.responses import preflight
from persyn.selection.base import get_strategy
from persyn.selection.build import build_strategy
from persyn.stages import generate_then_select, route, run_stages, score
from persyn.stages.calibrate import calibrate
from persyn.stages.export import export
from persyn.stages.generate import generate
from persyn.stages.synthesize import synthesize
from persyn.stages.train_router import train_router


class Pipeline:
    """One PerSyn run on one output directory (locked while open; use as a context manager).

    Args:
        cfg: the validated run configuration.
        console: a rich Console for the CLI's tables (unused by the stages).

    Attributes:
        ctx: the run context every stage takes (config, store, executor, lock, timing).
        new_generations: responses generated through this object so far.

    Raises:
        PersynError: ``output_dir`` is a file, or another live process holds it.
    """

    def __init__(self, cfg: RunConfig, console=None):
        if cfg.students is not None and len(cfg.students) > 1:
            raise ConfigError(
                f"students: {len(cfg.students)} students run with `persyn run` (persyn.run); "
                f"for one student's stages give its directory: -o {cfg.output_dir}/students/NAME "
                "with a config that has that one 'student'"
            )
        self.ctx = RunContext(cfg)
        self.console = console
        self.new_generations = 0

    @property
    def cfg(self) -> RunConfig:
        return self.ctx.cfg

    @property
    def out(self) -> Path:
        return self.ctx.out

    @property
    def store(self):
        return self.ctx.store

    def key_of(self, teacher: TeacherConfig, prompt: Prompt) -> str:
        """The cache key of ``teacher``'s response to ``prompt``."""
        return self.ctx.key_of(teacher, prompt)

    # -- stages, in order ---------------------------------------------------------------------
    def synthesize(self) -> SynthesisSummary:
        """Write new prompts from seed examples (``stages.synthesize``); returns its summary.
        ``generator: montessori`` first runs whole pipelines on its iterations' prompts."""
        return synthesize(self.ctx, answer=_run_pipeline)

    def prepare(self) -> None:
        """Load the prompts and draw the calibration set (``runtime.prompts.prepare``)."""
        prepare(self.ctx)

    def calibrate(self) -> None:
        """Every teacher answers every calibration prompt (``stages.calibrate``)."""
        self.new_generations += calibrate(self.ctx)

    def score(self) -> None:
        """Learnability and quality of every calibration response (``stages.score``)."""
        score.score(self.ctx)

    def train_router(self) -> dict:
        """Train, evaluate and save the router; returns its evaluation (``stages.train_router``)."""
        return train_router(self.ctx)

    def route(self, router_dir: str | Path | None = None) -> dict[str, str]:
        """Route every non-calibration prompt; returns ``{prompt id: teacher}`` (``stages.route``)."""
        return route.route(self.ctx, router_dir)

    def generate(self) -> None:
        """Only the routed teacher answers each routed prompt (``stages.generate``)."""
        self.new_generations += generate(self.ctx)

    def export(self) -> RunSummary:
        """Write the dataset and the run's files; returns the summary (``stages.export``)."""
        return export(self.ctx, self.new_generations)

    def run(self) -> RunSummary | StrategySummary:
        """All stages in order; returns the summary. With ``strategy`` other than ``persyn`` in
        the config, runs what that strategy needs and writes its dataset (in
        ``strategies/NAME`` and as the top-level ``dataset.jsonl``) instead. With
        ``prompts.source: synthetic``, synthesizes the prompts first (resumed from the store)."""
        if self.cfg.prompts.source == "synthetic":
            self.synthesize()
        self.prepare()
        preflight(self.ctx)
        if not get_strategy(self.cfg.strategy).is_route_then_generate:
            summary = self.build_strategy(self.cfg.strategy)
            shutil.copyfile(
                self.out / "strategies" / self.cfg.strategy / "dataset.jsonl", self.out / ".dataset.tmp"
            )
            os.replace(self.out / ".dataset.tmp", self.out / "dataset.jsonl")
            summary.seconds = self.ctx.seconds()
            write_atomic(self.out / "summary.json", summary.to_json())
            return summary
        self.run_stages(through="generate")
        return self.export()

    def run_stages(self, through: str, start: str = "calibrate") -> None:
        """The Route-then-Generate stages from ``start`` through ``through``, in their one order
        (``stages.ROUTE_THEN_GENERATE``); see ``stages.run_stages``."""
        self.new_generations += run_stages(self.ctx, through, start)

    # -- what the strategies and the report read ----------------------------------------------
    def build_strategy(
        self, name: str, out_dir: Path | None = None, seed: int | None = None, verified: bool = False
    ) -> StrategySummary:
        """Build selection strategy ``name``'s dataset, or with ``verified`` its verified one
        (``strategies/NAME-verified``: only the lines that pass the quality check); see
        ``selection.build.build_strategy``.

        Raises:
            ConfigError / PersynError: see ``selection.build.build_strategy``.
        """
        return build_strategy(self.ctx, name, out_dir, seed, verified)

    def reward_table(self):
        """Calibration prompts, their Eq. 2 candidates and generations (``runtime.rewards``)."""
        return rewards.reward_table(self.ctx)

    def full_reward_table(self):
        """Generate-then-Select: the reward table of every prompt (``stages.generate_then_select``)."""
        table, made = generate_then_select.generate_then_select(self.ctx)
        self.new_generations += made
        return table

    def stored_scores(self) -> dict[str, tuple[float | None, float | None]]:
        """``{generation key: (quality, learnability)}`` for the current scorers."""
        return scores.stored_scores(self.ctx)

    def stored_rewards(self, prompts: list[Prompt]) -> dict[tuple[str, str], float]:
        """``{(prompt id, teacher): Eq. 2 reward}`` where every teacher answered."""
        return rewards.stored_rewards(self.ctx, prompts)

    def assignments(self) -> dict[str, tuple[str, dict[str, float]]]:
        """The routing decisions of every routed prompt (``runtime.routing.assignments``)."""
        return routing.assignments(self.ctx)

    # -- cache commands -----------------------------------------------------------------------
    def cache_info(self) -> CacheInfo:
        """What the store holds for this config (``runtime.cache.cache_info``)."""
        return cache.cache_info(self.ctx)

    def cache_clear(self, teacher: str | None = None) -> int:
        """Delete stored responses of ``teacher`` or all; returns how many (``runtime.cache``)."""
        return cache.cache_clear(self.ctx, teacher)

    def close(self) -> None:
        """Release the executor, the store and the output directory's lock."""
        self.ctx.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _run_pipeline(cfg: RunConfig) -> RunSummary | StrategySummary:
    """Every stage of ``cfg``'s run (what a stage that needs a whole sub-run is handed)."""
    with Pipeline(cfg) as p:
        return p.run()
