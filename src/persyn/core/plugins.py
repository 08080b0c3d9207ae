"""The plug-in tables: every engine, router kind, selection strategy, executor, synthesis generator and quality
scorer persyn knows, by name, as ``"module:attribute"``.

Adding one is one new file and one line here. The tables hold strings, not imports, so this
module imports nothing (config validates names against it, and no module imports its own
plug-ins back); ``load`` imports a plug-in only when a run asks for it, which keeps
``import persyn`` light and optional backends (Ray, llama.cpp) optional. Config validation
imports every engine, router kind and quality scorer module (their settings live there), so
those modules import lightly: torch and other backends only when they run (tested).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

#: Teacher engines (``teachers.N.engine``); each is a class built as ``Cls(teacher, seed)``.
ENGINES: dict[str, str] = {
    "transformers": "persyn.engines.transformers_engine:TransformersEngine",
    "reference": "persyn.engines.reference:ReferenceEngine",
    "openai": "persyn.engines.openai_engine:OpenAIEngine",
    "llamacpp": "persyn.engines.llamacpp_engine:LlamaCppEngine",
}

#: Router kinds (``router.kind``); each is a ``persyn.router.base.Router`` subclass (``fit``,
#: ``steps``, ``scores``, ``save``, ``load``, ``fingerprint``).
ROUTERS: dict[str, str] = {
    "prior": "persyn.router.prior:PriorRouter",
    "bt-linear": "persyn.router.bt_linear:BTLinearRouter",
    "knn": "persyn.router.knn:KNNRouter",
    "bt-encoder": "persyn.router.bt_encoder:BTEncoderRouter",
}

#: Selection strategies (``strategy``, ``persyn select -s``); each is a ``Strategy`` subclass
#: (see ``persyn.selection.base``). The order is the order of the docs and of ``--help``.
STRATEGIES: dict[str, str] = {
    "persyn": "persyn.selection.routed:PerSyn",
    "oracle": "persyn.selection.per_prompt_argmax:OracleStrategy",
    "strongest": "persyn.selection.single_teacher:Strongest",
    "family-strong": "persyn.selection.single_teacher:FamilyStrong",
    "random": "persyn.selection.random_teacher:RandomTeacher",
    "mix": "persyn.selection.mix:Mix",
    "car": "persyn.selection.single_teacher:CAR",
    "grape": "persyn.selection.per_prompt_argmax:Grape",
    "best-of-n": "persyn.selection.per_prompt_argmax:BestOfN",
}

#: Where generation and scoring run (``executor``); each is built as ``Cls(cfg)``.
EXECUTORS: dict[str, str] = {
    "local": "persyn.execution.local:LocalExecutor",
    "ray": "persyn.execution.ray_executor:RayExecutor",
}

#: Synthesis generators (``synthesis.generator``); each is a
#: ``persyn.synthesis.generator.Generator`` subclass, built with no arguments.
GENERATORS: dict[str, str] = {
    "self-instruct": "persyn.synthesis.self_instruct:SelfInstructGenerator",
    "nomad": "persyn.synthesis.nomad:NomadGenerator",
    "montessori": "persyn.synthesis.self_instruct:MontessoriGenerator",
}

#: Quality scorers (``quality.kind``); each is a ``persyn.scoring.quality.QualityScorer``
#: subclass, built as ``Cls.of(cfg, answers, notes, pool, tasks)``.
QUALITY_SCORERS: dict[str, str] = {
    "verifier": "persyn.scoring.quality:VerifierScorer",
    "majority": "persyn.scoring.quality:MajorityScorer",
    "reward_model": "persyn.scoring.quality:RewardModelScorer",
    "ifeval": "persyn.scoring.ifeval:IFEvalScorer",
}


def check(known: Iterable[str], name: str, what: str) -> str:
    """``name`` when it is one of ``known`` (a plug-in table, or any names: its keys are read
    in order), the one check of a plug-in name.

    Raises:
        ValueError: an unknown name, as ``unknown WHAT 'NAME' (known: A, B, ...)`` (a config
            validator turns it into a field error; callers outside one wrap it in their error).
    """
    known = list(known)
    if name not in known:
        raise ValueError(f"unknown {what} '{name}' (known: {', '.join(known)})")
    return name


def load(table: dict[str, str], name: str, what: str) -> Any:
    """The plug-in ``name`` of ``table``, imported now.

    Raises:
        KeyError: ``name`` is not in the table (the message of ``check``; callers validate
            names at config time, so this is a programming error).
    """
    try:
        check(table, name, what)
    except ValueError as exc:
        raise KeyError(str(exc)) from None
    module, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module), attr)
