"""persyn: personalised SFT data for one student model (PerSyn, arXiv 2510.10925).

A calibration set is answered by every teacher; each response is scored for quality and for
learnability by the student; a router learns which teacher suits each prompt; then only the
routed teacher answers each remaining prompt (Route-then-Generate).

The Python API, for notebooks and scripts::

    import persyn

    cfg = persyn.load_config("my_run.yaml")          # or a dict with the same fields
    summary = persyn.run(cfg)                         # every stage; a RunSummary
    with persyn.Pipeline(cfg) as pipe:                # or stage by stage, resumable
        pipe.calibrate(); pipe.score(); pipe.train_router()
    lines = persyn.read_dataset(cfg.output_dir)       # list[DatasetLine]

``import persyn`` stays light: these names load on first use, and torch and transformers only
when a stage needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from persyn.core.errors import ConfigError, InputError, MissingAssetError, PersynError

__version__ = "0.1.0"

# Public name → the module that defines it (imported on first access).
_API = {
    "load_config": "persyn.config",
    "RunConfig": "persyn.config",
    "Pipeline": "persyn.pipeline",
    "run": "persyn.api",
    "read_dataset": "persyn.api",
    "read_summary": "persyn.core.summary",
    "RunSummary": "persyn.core.summary",
    "StrategySummary": "persyn.core.summary",
    "DatasetLine": "persyn.core.records",
    "Prompt": "persyn.core.records",
    "STRATEGIES": "persyn.config",
}

__all__ = ["ConfigError", "InputError", "MissingAssetError", "PersynError", "__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'persyn' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
