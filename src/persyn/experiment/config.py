"""The experiment configuration: ``EvalConfig``, ``SweepConfig``, ``ExperimentConfig`` and the
functions that read and validate one (``load_experiment``, ``parse_experiment``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from persyn.config import (
    STRATEGIES,
    Dtype,
    PromptsConfig,
    RunConfig,
    StrictModel,
    format_validation_error,
    parse_config,
    read_yaml,
)
from persyn.config.loading import resolve_under
from persyn.core.errors import ConfigError
from persyn.core.plugins import check
from persyn.selection.verified import split_verified, verified_name
from persyn.training.sft_config import SFTSettings


class EvalConfig(StrictModel):
    """The held-out evaluation set (drawn with its own ``seed``; checked disjoint from every
    training prompt, or with ``exclude_training_prompts`` made so) and greedy decoding: a
    verifiable prompt set (``prompts``), or a benchmark (``benchmark: ifeval``: IFEval's 541
    prompts, or its first ``size``; accuracy is prompt-level strict accuracy, the primary
    figure, with the other three numbers in each evaluation's record). ``check``: how a
    ``prompts`` set's answers are checked: against each prompt's reference answer (``answer``,
    the default), or by the prompt's own IFEval instructions (``ifeval``: a set with
    ``instruction_id_list`` and ``kwargs``, e.g. ``source: ifeval_constrained``, scored as the
    benchmark is: a validation split for the instruction setting)."""

    prompts: PromptsConfig | None = None
    benchmark: Literal["ifeval"] | None = None
    check: Literal["answer", "ifeval"] | None = None  # None: answer (ifeval for the benchmark)
    size: Annotated[int, Field(ge=1)] | None = None
    seed: int = 12345
    max_new_tokens: Annotated[int, Field(ge=1)] = 128
    # Refused below the longest training response of the evaluated model's dataset plus this
    # margin (student tokens): a budget the data does not fit scores truncation, not learning.
    length_margin: Annotated[int, Field(ge=0)] = 16
    # Below that: refuse the run before any fine-tune, or go on and log how many responses of
    # each dataset exceed the budget ("report": copies of them are cut and counted in each
    # evaluation's truncated share). "report" is for a check that reads the whole answer, as
    # IFEval's do, where a teacher's looping responses can run past the student's budget.
    length_check: Literal["refuse", "report"] = "refuse"
    batch_size: Annotated[int, Field(ge=1)] = 32
    dtype: Dtype = "auto"  # the evaluated model's weights (resolved into the split's key)
    # Small task spaces (e.g. one-digit sums) repeat prompts across draws: drop the eval prompts
    # that a training set holds (counted in results.md) instead of failing the disjointness check.
    exclude_training_prompts: bool = False

    @model_validator(mode="after")
    def _one_set(self) -> EvalConfig:
        if (self.prompts is None) == (self.benchmark is None):
            raise ValueError("give 'prompts' (a verifiable prompt set) or 'benchmark' (ifeval), one of them")
        if self.size is not None and self.benchmark is None:
            raise ValueError("'size' is for a benchmark; a prompt set takes prompts.size")
        if self.benchmark is not None and self.check == "answer":
            raise ValueError(
                f"benchmark '{self.benchmark}' is checked by its instructions (got check='answer')"
            )
        return self

    def check_given(self) -> bool:
        """Whether ``check`` says more than what the split implies (``ifeval`` for the benchmark,
        ``answer`` for a prompt set): only then is it part of the split's key."""
        implied = "ifeval" if self.benchmark == "ifeval" else "answer"
        return self.check is not None and self.check != implied

    @property
    def checked_by_instructions(self) -> bool:
        """Whether answers are checked by each prompt's IFEval instructions (the benchmark, or
        ``check: ifeval``), not against a reference answer."""
        return self.benchmark == "ifeval" or self.check == "ifeval"


class SweepConfig(StrictModel):
    """Optional analyses. ``alpha``: values of α in Eq. 2: with a ``validation`` split, PerSyn's
    dataset per value fine-tuned (first seed) and scored by the student's validation accuracy,
    and with ``choose_alpha`` each student's main α is the best of them; without one, router
    top-1 / regret and routing per value. ``calibration_size``: calibration sizes (fractions or
    counts) for router top-1 and regret vs calibration size. ``train``: also fine-tune and
    evaluate PerSyn at each router point. ``sft_epochs``: the accuracy-vs-steps curve of
    ``sft_strategy``'s dataset (first student and seed) on the validation split."""

    alpha: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=list)
    calibration_size: list[float | int] = Field(default_factory=list)
    train: bool = False
    choose_alpha: bool = False
    sft_epochs: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)
    sft_strategy: str | list[str] = "persyn"
    choose_epochs: bool = False

    def curve_strategies(self) -> list[str]:
        """The strategies of the SFT-length curve."""
        return [self.sft_strategy] if isinstance(self.sft_strategy, str) else list(self.sft_strategy)


def known_strategy(known: list[str], name: str, where: str) -> str:
    """``name`` when it is one of ``known`` (the strategies and the variants).

    Raises:
        ValueError: an unknown name, the message prefixed with ``where`` (the field).
    """
    try:
        return check(known, name, "strategy")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


class ExperimentConfig(StrictModel):
    """An experiment: a base ``run`` (the pipeline's config, inline), strategies × seeds
    (a strategy's verified dataset is the arm ``NAME-verified``, e.g. ``car-verified``),
    fine-tuning settings (``persyn.training.sft_config.SFTSettings``), the evaluation set, sweeps.

    Each seed is a run of its own (``OUTPUT_DIR/run/seed-S``, its ``seed`` S): the calibration
    draw, router training, the random / mix draws and the SFT order all follow it, while the
    prompt set stays the one drawn with ``run.seed`` (``run.prompts.seed`` is pinned to it).
    A seed's store starts as a copy of the previous seed's, so no (teacher, prompt) response is
    generated twice across seeds."""

    output_dir: Path
    run: dict[str, Any]
    strategies: list[str] = Field(default_factory=lambda: list(STRATEGIES))
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    sft: SFTSettings = Field(default_factory=SFTSettings)
    eval: EvalConfig
    # A validation split for the choices made by measurement (α, SFT epochs): never the test
    # set; its prompts that are training or test prompts are always dropped.
    validation: EvalConfig | None = None
    sweeps: SweepConfig = Field(default_factory=SweepConfig)
    keep_models: bool = False
    # The comparisons named before the run (persyn − NAME), Holm-corrected across them; every
    # other difference is exploratory. Default: strongest and car, those among the strategies.
    primary: list[str] | None = None
    # Strategies fine-tuned only after every other (the first to go when time runs out).
    optional: list[str] = Field(default_factory=list)
    # A student's own seeds, a subset of ``seeds`` (e.g. fewer for a second student).
    student_seeds: dict[str, list[int]] = Field(default_factory=dict)
    # A strategy's own seeds, a subset of ``seeds`` (e.g. 8 for the primary arms, 3 for others).
    strategy_seeds: dict[str, list[int]] = Field(default_factory=dict)
    # The stop rule: when the first seed's (A − B) prompt-only interval is not above 0, the setting
    # has no headroom: the run stops after that seed and says so (e.g. [oracle, strongest]).
    headroom: list[str] | None = None
    # With ``run.students``: the strategies of a student other than the first, by name (default:
    # ``strategies``). Each student is also trained on every other student's PerSyn dataset.
    student_strategies: dict[str, list[str]] = Field(default_factory=dict)
    # PerSyn on a changed run, as strategies of their own, e.g. the paper's router:
    # {"persyn (bt-encoder)": {router: {kind: bt-encoder}}} (merged into the run section).
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # What ``--scale`` below 1 also changes, merged into this mapping (``deep_merge``; lists are
    # replaced): e.g. one seed, fewer strategies, no sweeps, so a look at the setting is quick.
    small: dict[str, Any] = Field(default_factory=dict)

    # ``sft`` as given (the mapping), for the sweep points' result keys made before it was typed.
    _sft_given: dict[str, Any] = PrivateAttr(default_factory=dict)
    # the experiment file's folder: the run's relative input paths resolve against it
    _base_dir: Path | None = PrivateAttr(default=None)

    def parse_run(self, data: dict[str, Any], source: str) -> RunConfig:
        """Validate a run mapping made from ``run`` (a seed's, a variant's, a sweep point's), its
        relative input paths resolved against the experiment file's folder (as a run config's
        are against its own file).

        Raises:
            ConfigError: naming ``source`` and each offending field path.
        """
        return parse_config(data, source, base_dir=self._base_dir)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_sft_as_given(cls, data: Any, handler) -> ExperimentConfig:
        exp = handler(data)
        if isinstance(data, dict) and isinstance(data.get("sft"), dict):
            exp._sft_given = dict(data["sft"])
        return exp

    def sft_as_given(self) -> dict[str, Any]:
        """The ``sft`` section as the config gave it (a mapping of the keys given, values as
        written), for the result keys that hashed it so."""
        return dict(self._sft_given)

    def strategies_for(self, student: str) -> list[str]:
        """The strategies built and fine-tuned for ``student``."""
        return self.student_strategies.get(student, self.strategies)

    def seeds_for(self, student: str) -> list[int]:
        """The seeds ``student`` is fine-tuned with (``student_seeds``, else ``seeds``)."""
        return self.student_seeds.get(student, self.seeds)

    def has_seed(self, strategy: str, seed: int) -> bool:
        """Whether ``strategy`` is built and fine-tuned with ``seed`` (``strategy_seeds``, else
        every seed)."""
        return seed in self.strategy_seeds.get(strategy, self.seeds)

    @field_validator("seeds")
    @classmethod
    def _check_seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("needs at least one seed")
        if len(set(v)) != len(v):
            raise ValueError("seeds are listed twice")
        return v

    @model_validator(mode="after")
    def _check_strategies(self) -> ExperimentConfig:
        # A strategy's verified dataset is an arm of its own: NAME-verified (selection.verified).
        builtin = [*STRATEGIES, *(verified_name(s) for s in STRATEGIES)]
        known = [*builtin, *self.variants]
        for where, names in [("strategies", self.strategies)] + [
            (f"student_strategies.{s}", v) for s, v in self.student_strategies.items()
        ]:
            for name in names:
                known_strategy(known, name, where)
            if len(set(names)) != len(names):
                raise ValueError(f"{where}: a strategy is listed twice")
        for name in self.variants:
            if name in builtin:
                raise ValueError(f"variants: '{name}' is a built-in strategy's name")
        for name in self.optional:
            known_strategy(known, name, "optional")
        for student, seeds in self.student_seeds.items():
            if not seeds or any(x not in self.seeds for x in seeds):
                raise ValueError(
                    f"student_seeds.{student}: {seeds} must be a non-empty subset of seeds {self.seeds}"
                )
        for name, seeds in self.strategy_seeds.items():
            known_strategy(known, name, "strategy_seeds")
            if not seeds or any(x not in self.seeds for x in seeds):
                raise ValueError(
                    f"strategy_seeds.{name}: {seeds} must be a non-empty subset of seeds {self.seeds}"
                )
        if self.headroom is not None and (
            len(self.headroom) != 2 or any(n not in self.strategies for n in self.headroom)
        ):
            raise ValueError(f"headroom: needs two of the strategies (A, B), got {self.headroom}")
        late = [n for n in self.headroom or [] if n in self.optional]
        if late:  # optional arms are fine-tuned after every seed of the others (runner.schedule)
            raise ValueError(
                f"headroom: '{late[0]}' is also optional, so it would be fine-tuned only after every seed "
                "of the other strategies and the stop rule could not stop the run after the first seed; "
                "take it out of optional"
            )
        for name in self.primary or []:
            if name == "persyn" or name not in self.strategies:
                raise ValueError(
                    f"primary: '{name}' is not a strategy to compare persyn with "
                    f"(strategies: {', '.join(s for s in self.strategies if s != 'persyn')})"
                )
        return self

    def primary_comparisons(self) -> list[str]:
        """The strategies of the primary comparisons persyn − NAME: ``primary``, or strongest
        and car where they are among the strategies."""
        if self.primary is not None:
            return list(self.primary)
        return [s for s in ("strongest", "car") if s in self.strategies]


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys set, mappings merged key by key (a variant's ``router:
    {kind: ...}`` keeps the run's other router settings); a key set to null in ``over`` is
    removed, so its default applies (``small: {student_seeds: null}``)."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
            continue
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_experiment_yaml(path: Path, chain: tuple[Path, ...] = ()) -> Any:
    """The experiment YAML at ``path`` with its ``extends: BASE.yaml`` resolved: the base
    (a path relative to ``path``'s folder, itself possibly extending another) deep-merged with
    this file's other keys (``deep_merge``: mappings merged key by key, lists and scalars
    replaced, null removes a key). A follow-up run is then its base plus the keys it changes.

    Raises:
        ConfigError: unreadable file or bad YAML (naming the file), ``extends`` not a string or
            naming a missing file (with the value given), or a cycle of ``extends``.
    """
    data = read_yaml(path, "experiment")
    if not isinstance(data, dict) or "extends" not in data:
        return data
    value = data.pop("extends")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: extends must be the path of a base experiment YAML, got {value!r}")
    base_path = path.parent / value
    if not base_path.is_file():
        raise ConfigError(f"{path}: extends: {value!r}: no such file ({base_path})")
    if base_path.resolve() in {p.resolve() for p in (*chain, path)}:
        names = " -> ".join(str(p) for p in (*chain, path, base_path))
        raise ConfigError(f"{path}: extends: {value!r} makes a cycle ({names})")
    base = read_experiment_yaml(base_path, (*chain, path))
    if not isinstance(base, dict):
        raise ConfigError(f"{base_path}: the top level must be a mapping (extended by {path})")
    return deep_merge(base, data)


def load_experiment(path: str | Path, scale: float = 1.0, output_dir: Path | None = None) -> ExperimentConfig:
    """Read and validate an experiment YAML (its ``extends:`` resolved, see
    ``read_experiment_yaml``); ``scale`` multiplies the prompt and evaluation set sizes
    (``--scale``).

    Raises:
        ConfigError: unreadable file, bad YAML, a bad ``extends``, or invalid fields (with their
            path).
    """
    data = read_experiment_yaml(Path(path))
    if isinstance(data, dict) and output_dir is not None:
        data["output_dir"] = str(output_dir)
    return parse_experiment(data, str(path), scale, base_dir=Path(path).parent)


def parse_experiment(
    data: Any, source: str = "<experiment>", scale: float = 1.0, base_dir: Path | None = None
) -> ExperimentConfig:
    """Validate a mapping into an ExperimentConfig (see ``load_experiment``): ``run`` gets
    ``output_dir`` ``OUTPUT_DIR/run/seed-S`` (S: the first seed) and ``prompts.seed`` (the run
    seed, unless given), and with ``scale`` != 1 its prompt set size (at least 4), a calibration
    count, and the evaluation and validation set sizes are multiplied; with ``scale`` < 1 the
    ``small`` overrides are merged in first. With ``base_dir`` (the experiment file's folder),
    relative input paths (the run's, the evaluation and validation prompt files) resolve
    against it.

    Raises:
        ConfigError: not a mapping, an invalid field (with its path), ``scale`` <= 0, a scale
            for a prompt file without ``size``, an invalid run section, a ``family-strong``
            strategy no teacher can serve, ``student_strategies`` naming no student,
            ``choose_alpha`` / ``sft_epochs`` without a validation split or ``sft_strategy``
            not among the strategies.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    if 0 < scale < 1 and isinstance(data.get("small"), dict):
        data = deep_merge({k: v for k, v in data.items() if k != "small"}, data["small"])
    try:
        exp = ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, ExperimentConfig)) from None
    if scale <= 0:
        raise ConfigError(f"--scale must be > 0, got {scale}")
    exp._base_dir = base_dir
    if base_dir is not None:
        for split in (exp.eval, exp.validation):
            if split is not None and split.prompts is not None and split.prompts.source != "synthetic":
                split.prompts.path = resolve_under(base_dir, split.prompts.path)
    run = dict(exp.run)
    run["output_dir"] = str(exp.output_dir / "run" / f"seed-{exp.seeds[0]}")
    prompts = dict(run.get("prompts") or {})
    if prompts.get("seed") is None:  # one prompt set for every seed: the one run.seed draws
        prompts["seed"] = run.get("seed", 0)
    run["prompts"] = prompts
    if scale != 1.0:
        prompts = dict(run.get("prompts") or {})
        base = prompts.get("size") or (
            120 if prompts.get("source", "reasoning_gym") == "reasoning_gym" else None
        )
        if base is None:  # a file without `size`: scaling would invent a size
            raise ConfigError(f"{source}: --scale needs run.prompts.size for a {prompts['source']} source")
        prompts["size"] = max(4, round(base * scale))
        if isinstance(prompts.get("sample"), int):  # each seed's draw from the pool, likewise
            prompts["sample"] = max(2, round(prompts["sample"] * scale))
        run["prompts"] = prompts
        cal = dict(run.get("calibration") or {})
        if isinstance(cal.get("size"), int) and cal["size"] > 1:  # a count, not a fraction
            cal["size"] = max(2, round(cal["size"] * scale))
            run["calibration"] = cal
        for split in (exp.eval, exp.validation):
            if split is not None and split.prompts is not None and split.prompts.size:
                split.prompts.size = max(4, round(split.prompts.size * scale))
            elif split is not None and split.benchmark is not None:
                split.size = max(4, round((split.size or 541) * scale))
    exp.run = run
    cfg = exp.parse_run(run, f"{source}: run")  # fail early on a bad run section
    sw = exp.sweeps
    if (sw.choose_alpha or sw.sft_epochs) and exp.validation is None:
        what = "sweeps.choose_alpha" if sw.choose_alpha else "sweeps.sft_epochs"
        raise ConfigError(f"{source}: {what} needs a validation split (validation: {{prompts: ...}})")
    if sw.choose_alpha and not sw.alpha:
        raise ConfigError(f"{source}: sweeps.choose_alpha needs values in sweeps.alpha")
    for name in sw.curve_strategies() if sw.sft_epochs else []:
        if name not in exp.strategies:
            raise ConfigError(
                f"{source}: sweeps.sft_strategy '{name}' is not one of strategies ({', '.join(exp.strategies)})"
            )
    if sw.choose_epochs and not sw.sft_epochs:
        raise ConfigError(f"{source}: sweeps.choose_epochs needs values in sweeps.sft_epochs")
    for name, over in exp.variants.items():
        exp.parse_run(deep_merge(run, over), f"{source}: variants.{name}")
    students = cfg.students or [cfg.student]
    names = [st.name or "student" for st in students]
    for name in [*exp.student_strategies, *exp.student_seeds]:
        if name not in names:
            raise ConfigError(
                f"{source}: student_strategies / student_seeds: no student named '{name}' (students: {', '.join(names)})"
            )
    for name, st in zip(names, students, strict=True):
        if "family-strong" in {split_verified(s)[0] for s in exp.strategies_for(name)}:
            from persyn.selection.rules import family_members

            family_members(cfg.teacher_names, {t.name: t.family for t in cfg.teachers}, st.family)
    return exp
