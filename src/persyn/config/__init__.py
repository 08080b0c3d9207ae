"""The run configuration: YAML in, validated by pydantic, errors that name the field.

Example (the packaged demo is ``persyn/configs/demo.yaml``)::

    output_dir: runs/demo
    seed: 0
    prompts: {source: reasoning_gym, task: gsm_symbolic, size: 120}
    student: {model: smollm2-135m-instruct}
    teachers:
      - {name: smollm2-cot, engine: transformers, model: smollm2-135m-instruct}
      - {name: reference, engine: reference}
    quality: {kind: verifier}
    alpha: 0.4
    normalize: minmax
    calibration: {size: 0.2}
    router: {encoder: minilm-l6}

The settings live in this package's modules, one per concern, and are named here
(``from persyn.config import RunConfig``). The bases they build on (``StrictModel``, ``Dtype``,
``ResourcesConfig``) and the naming rule are ``persyn.core``'s, so that the plug-ins whose
settings this package composes (an engine's, a trainer's) import nothing of it.
"""

from __future__ import annotations

from persyn.config.calibration import CalibrationConfig
from persyn.config.execution import RayConfig
from persyn.config.loading import format_validation_error, load_config, parse_config, read_yaml
from persyn.config.prompts import PromptsConfig, TaskMix
from persyn.config.quality import QualityConfig
from persyn.config.routing import RouterConfig
from persyn.config.run import WHERE_IT_RUNS, RunConfig
from persyn.config.selection import STRATEGIES, BudgetConfig, CarConfig, MixConfig, StrategyOptions
from persyn.config.synthesis import NOMAD_HEADER, InfluenceConfig, MontessoriConfig, SynthesisConfig
from persyn.config.teachers import TeacherConfig, make_teacher
from persyn.config.verify import VerifyConfig
from persyn.core.naming import NAME_PATTERN, check_name, student_dir_name
from persyn.core.redaction import public_config_json, redact, redact_url
from persyn.core.settings import Dtype, ResourcesConfig, StrictModel
from persyn.scoring.learnability import StudentConfig

__all__ = [
    "BudgetConfig",
    "CalibrationConfig",
    "CarConfig",
    "Dtype",
    "InfluenceConfig",
    "MixConfig",
    "MontessoriConfig",
    "NAME_PATTERN",
    "NOMAD_HEADER",
    "PromptsConfig",
    "QualityConfig",
    "RayConfig",
    "ResourcesConfig",
    "RouterConfig",
    "RunConfig",
    "STRATEGIES",
    "StrategyOptions",
    "StrictModel",
    "StudentConfig",
    "SynthesisConfig",
    "TaskMix",
    "TeacherConfig",
    "VerifyConfig",
    "WHERE_IT_RUNS",
    "check_name",
    "format_validation_error",
    "load_config",
    "make_teacher",
    "parse_config",
    "public_config_json",
    "read_yaml",
    "redact",
    "redact_url",
    "student_dir_name",
]
