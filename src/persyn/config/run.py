"""A whole run's settings (``RunConfig``), made of the other modules' sections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from persyn.config.calibration import CalibrationConfig
from persyn.config.execution import RayConfig
from persyn.config.prompts import PromptsConfig
from persyn.config.quality import QualityConfig
from persyn.config.routing import RouterConfig
from persyn.config.selection import STRATEGIES, BudgetConfig, StrategyOptions
from persyn.config.synthesis import InfluenceConfig, SynthesisConfig
from persyn.config.teachers import TeacherConfig, flat_dump
from persyn.config.verify import VerifyConfig
from persyn.core.errors import ConfigError
from persyn.core.naming import check_name, student_dir_name
from persyn.core.plugins import EXECUTORS, check
from persyn.core.settings import StrictModel
from persyn.scoring.learnability import StudentConfig
from persyn.scoring.quality import quality_scorer_class
from persyn.synthesis.generator import generator_class


class RunConfig(StrictModel):
    """A whole PerSyn run. See the module docstring for the YAML shape."""

    output_dir: Path
    seed: int = 0
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    # One student (``student``), or several sharing one calibration (``students``: the first is
    # also ``student``; see ``persyn.students``).
    student: StudentConfig | None = None
    students: list[StudentConfig] | None = None
    teachers: list[TeacherConfig]
    quality: QualityConfig = Field(default_factory=QualityConfig)
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.4
    normalize: Literal["minmax", "zscore"] = "minmax"
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    # Route under spend limits (see BudgetConfig); teachers' max_prompts apply with or without it.
    budget: BudgetConfig | None = None
    # Verified Route-then-Generate: check each routed response, escalate a failed one.
    verify: VerifyConfig | None = None
    strategy: str = "persyn"
    strategy_options: StrategyOptions = Field(default_factory=StrategyOptions)
    # Also write the dataset as Parquet (dataset.parquet) and/or a Hugging Face dataset
    # (dataset_hf/, save_to_disk), with dataset.jsonl's columns: they load straight into TRL.
    dataset_formats: list[Literal["parquet", "hf"]] = Field(default_factory=list)
    # Where the heavy stages run (a name of persyn.core.plugins.EXECUTORS): in this process
    # (local), or as Ray tasks (ray, persyn[ray]).
    executor: str = "local"
    ray_address: str | None = None  # a cluster to join; else $RAY_ADDRESS; else a local instance
    ray: RayConfig = Field(default_factory=RayConfig)
    # persyn synthesize: new prompts from seed examples (prompts.source: synthetic reads them).
    synthesis: SynthesisConfig | None = None
    # persyn influence: local data influence of examples on the student (Montessori-Instruct).
    influence: InfluenceConfig | None = None

    @model_validator(mode="after")
    def _montessori_needs_influence(self) -> RunConfig:
        syn = self.synthesis
        if syn is not None and generator_class(syn.generator).ADAPTS_TO_STUDENT and self.influence is None:
            raise ValueError(
                f"synthesis.generator '{syn.generator}' needs an 'influence' section (warmup, reference): "
                "the signal is measured on the student"
            )
        return self

    @model_validator(mode="after")
    def _synthetic_source(self) -> RunConfig:
        if self.prompts.source == "synthetic":
            if self.synthesis is None:
                raise ValueError("prompts.source 'synthetic' needs a 'synthesis' section")
            if self.prompts.path is None:  # what ``persyn synthesize`` writes
                self.prompts.path = Path(self.output_dir) / "synthetic" / "prompts.jsonl"
            self.prompts.id_field = self.prompts.id_field or "id"
            self.prompts.solution_field = self.prompts.solution_field or "solution"
        return self

    @model_validator(mode="after")
    def _verify_needs_a_check(self) -> RunConfig:
        v = self.verify
        if v is None:
            return self
        kind = self.quality.kind
        scorer = quality_scorer_class(kind)
        if scorer.DEFAULT_PASS is None and v.pass_quality is None:
            raise ValueError(
                f"verify.pass_quality: required with quality.kind '{kind}' (got none): a "
                "reward model's scale is its own, so say which score passes"
            )
        if scorer.PEER_GOLD:
            raise ValueError(
                f"verify: quality.kind '{kind}' cannot check a routed response (one teacher "
                "answers it, so there is no majority): use 'verifier' with the prompts' answers, "
                "or 'reward_model' with verify.pass_quality"
            )
        if (
            scorer.NEEDS_GOLD_ANSWER
            and self.prompts.source != "reasoning_gym"
            and self.prompts.answer_field is None
        ):
            raise ValueError(
                "verify: quality.kind 'verifier' checks each routed response against the prompt's "
                "gold answer, but prompts.answer_field is null (set the answer column)"
            )
        return self

    @model_validator(mode="after")
    def _reference_needs_a_solution(self) -> RunConfig:
        # Without a solution column a prompt's solution is its answer, so style 'solution' would
        # teach the bare answer ("12") and score 1.0 every time: refuse it, unless asked for.
        p = self.prompts
        if p.source not in ("jsonl", "parquet", "hf") or p.solution_field or p.answer_field is None:
            return self  # solutions given, or no answers to fall back to
        for t in self.teachers:
            if t.answers_with_solution():
                raise ValueError(
                    f"teacher '{t.name}': engine 'reference' with style 'solution' answers with the "
                    "prompts' solution_field, but prompts.solution_field is not set (the prompt file "
                    f"gives answers only: answer_field {self.prompts.answer_field!r}), so it would "
                    "answer with the bare answer. Set prompts.solution_field to a worked-solution "
                    "column, or style: answer to train on bare answers on purpose, or drop the teacher"
                )
        return self

    @field_validator("strategy")
    @classmethod
    def _check_strategy(cls, v: str) -> str:
        return check(STRATEGIES, v, "strategy")

    @field_validator("executor")
    @classmethod
    def _check_executor(cls, v: str) -> str:
        return check(EXECUTORS, v, "executor")

    @model_validator(mode="after")
    def _check_students(self) -> RunConfig:
        if (self.student is None) == (self.students is None):
            raise ValueError(
                "give either 'student' (one student) or 'students' (a list), not both or neither"
            )
        if self.students is not None:
            if not self.students:
                raise ValueError("students: the list is empty")
            seen: dict[str, int] = {}
            for i, st in enumerate(self.students):
                st.name = st.name or student_dir_name(st.model)
                check_name(st.name, f"students.{i}.name:")
                if st.name in seen:
                    raise ValueError(
                        f"students: duplicate name '{st.name}' (students {seen[st.name]} and {i})"
                    )
                seen[st.name] = i
            self.student = self.students[0]
        return self

    @model_validator(mode="after")
    def _check_strategy_teachers(self) -> RunConfig:
        names = [t.name for t in self.teachers]
        mix = self.strategy_options.mix
        for field in ("strong", "weak"):
            name = getattr(mix, field)
            if name is not None and name not in names:
                raise ValueError(
                    f"strategy_options.mix.{field}: unknown teacher '{name}' (known: {', '.join(names)})"
                )
        if mix.strong is not None and mix.strong == mix.weak:
            raise ValueError("strategy_options.mix: strong and weak must be different teachers")
        return self

    @field_validator("teachers")
    @classmethod
    def _check_teachers(cls, v: list[TeacherConfig]) -> list[TeacherConfig]:
        if len(v) < 2:
            raise ValueError(f"needs at least 2 teachers, got {len(v)}")
        seen: dict[str, int] = {}
        for i, t in enumerate(v):
            if t.name in seen:
                raise ValueError(f"duplicate teacher name '{t.name}' (teachers {seen[t.name]} and {i})")
            seen[t.name] = i
        return v

    def teacher(self, name: str) -> TeacherConfig:
        """The teacher called ``name``. Raises ConfigError for an unknown name."""
        for t in self.teachers:
            if t.name == name:
                return t
        raise ConfigError(f"unknown teacher '{name}' (known: {', '.join(self.teacher_names)})")

    def key_dump(self) -> dict:
        """The config as JSON for result keys that hash a whole run: without where it runs
        (``WHERE_IT_RUNS``), teachers (the synthesis generator too) in the flat shape of
        before (``persyn.config.teachers.flat_dump``), so that older keys stay valid."""
        data = self.model_dump(mode="json", exclude=WHERE_IT_RUNS)
        if data.get("verify") is None:  # runs that do not verify keep the keys they had before
            data.pop("verify", None)
        data["teachers"] = [flat_dump(t, exclude={"resources"}) for t in self.teachers]
        if self.synthesis is not None:
            data["synthesis"]["model"] = flat_dump(self.synthesis.model)
        return data

    @property
    def teacher_names(self) -> list[str]:
        return [t.name for t in self.teachers]


# The settings that say where a run's work runs, not what it computes: left out of result keys.
WHERE_IT_RUNS: dict = {
    "executor": True,
    "ray_address": True,
    "ray": True,
    "student": {"resources"},
    "quality": {"resources"},
    "teachers": {"__all__": {"resources"}},
}
