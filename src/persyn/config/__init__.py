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

The settings live in this package's modules, one per concern; this module names each public one
(``from persyn.config import RunConfig``) and imports its module on first use, so that a
plug-in's settings (an engine's, a trainer's) can build on ``persyn.config.base`` without
loading every other model first.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name → the module of this package that defines it (imported on first access).
_NAMES = {
    "StrictModel": "base",
    "Dtype": "base",
    "NAME_PATTERN": "naming",
    "check_name": "naming",
    "student_dir_name": "naming",
    "redact": "redaction",
    "redact_url": "redaction",
    "public_config_json": "redaction",
    "ResourcesConfig": "execution",
    "RayConfig": "execution",
    "TaskMix": "prompts",
    "PromptsConfig": "prompts",
    "StudentConfig": "scoring",
    "QualityConfig": "scoring",
    "TeacherConfig": "teachers",
    "make_teacher": "teachers",
    "CalibrationConfig": "calibration",
    "RouterConfig": "routing",
    "STRATEGIES": "selection",
    "MixConfig": "selection",
    "CarConfig": "selection",
    "StrategyOptions": "selection",
    "BudgetConfig": "selection",
    "NOMAD_HEADER": "synthesis",
    "MontessoriConfig": "synthesis",
    "SynthesisConfig": "synthesis",
    "InfluenceConfig": "synthesis",
    "VerifyConfig": "verify",
    "RunConfig": "run",
    "WHERE_IT_RUNS": "run",
    "format_validation_error": "loading",
    "parse_config": "loading",
    "read_yaml": "loading",
    "load_config": "loading",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"persyn.config.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'persyn.config' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
