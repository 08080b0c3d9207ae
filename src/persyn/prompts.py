"""Prompt sources: built-in reasoning_gym task sets, JSONL and Parquet files, and Hugging Face
datasets (``save_to_disk`` directories or datasets in the local cache).

A prompt is a string, or a chat conversation (a ``messages`` list of ``{role, content}`` turns
ending with a user turn), or Alpaca's ``instruction`` + ``input``. Every prompt gets a stable id
(the ``id_field`` value, or a content hash of the prompt text; of the whole conversation for a
chat prompt).
Empty prompts and duplicate ids are not silently kept: they are skipped and reported in
``LoadReport`` (and from there in ``summary.json``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persyn.config import PromptsConfig, redact
from persyn.core.deps import require
from persyn.core.errors import InputError, MissingAssetError
from persyn.core.hashing import content_id
from persyn.core.io import jsonl_records
from persyn.core.records import Prompt, render_conversation
from persyn.core.seeds import derived_seed

ROLES = ("system", "user", "assistant")


@dataclass
class LoadReport:
    """What the loader skipped: ``empty`` as locations, ``duplicates`` as
    ``(location, first_location, id)``."""

    empty: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str, str]] = field(default_factory=list)
    renamed: list[tuple[str, str, str]] = field(default_factory=list)  # (location, id given, new id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "empty": self.empty,
            "duplicates": [{"at": a, "first_at": b, "id": i} for a, b, i in self.duplicates],
            "renamed": [{"at": a, "id": i, "renamed_to": n} for a, i, n in self.renamed],
        }


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    return (
        value
        if isinstance(value, str)
        else json.dumps(value)
        if isinstance(value, dict | list)
        else str(value)
    )


class _Collector:
    """Prompts in source order. A repeated id whose content (text, conversation, answer,
    solution) equals the first is skipped and reported; with different content it is an error
    (``on_duplicate: error``), skipped (``skip``) or kept under a new id ``ID~2``, ``ID~3``...
    (``rename``)."""

    def __init__(self, on_duplicate: str = "error") -> None:
        self.prompts: list[Prompt] = []
        self.report = LoadReport()
        self.on_duplicate = on_duplicate
        self._first: dict[str, tuple[str, Any]] = {}

    def add(self, where: str, text: str, pid: str | None, answer, solution, metadata, messages=None) -> None:
        if not text.strip():
            self.report.empty.append(where)
            return
        if pid is None:
            pid = content_id(text) if messages is None else content_id(json.dumps(messages, sort_keys=True))
        content = (text, messages, _as_text(answer), _as_text(solution))
        if pid in self._first:
            first_where, first_content = self._first[pid]
            if content == first_content or self.on_duplicate == "skip":
                self.report.duplicates.append((where, first_where, pid))
                return
            if self.on_duplicate == "error":
                raise InputError(
                    f"{where}: prompt id '{pid}' is also used at {first_where} by a different prompt "
                    f"({redact(text)!r} vs {redact(first_content[0])!r}); set prompts.on_duplicate: skip "
                    "(keep the first) or rename (keep both, the second as ID~2), or fix the ids"
                )
            n = 2
            while f"{pid}~{n}" in self._first:
                n += 1
            self.report.renamed.append((where, pid, f"{pid}~{n}"))
            pid = f"{pid}~{n}"
        self._first[pid] = (where, content)
        self.prompts.append(Prompt(pid, text, _as_text(answer), _as_text(solution), metadata, messages))


def conversation(value: list, where: str, field_name: str) -> list[dict[str, str]] | None:
    """A chat prompt's turns, checked: ``{role, content}`` dicts (role system, user or
    assistant; content a string), ending with a user turn. A lone user turn is a text prompt
    (None is returned: its text is the content).

    Raises:
        InputError: naming ``where`` (file and row), the field and the offending turn.
    """
    turns = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            raise InputError(
                f"{where}: field '{field_name}' turn {i} must be {{role, content}} with role "
                f"system, user or assistant and text content, got {redact(m)}"
            )
        turns.append({"role": m["role"], "content": m["content"]})
    if not turns:
        raise InputError(f"{where}: field '{field_name}' is an empty conversation")
    if turns[-1]["role"] != "user":
        raise InputError(
            f"{where}: field '{field_name}' ends with a turn of role '{turns[-1]['role']}'; a prompt "
            "conversation must end with the user turn the teachers answer"
        )
    if len(turns) == 1:
        return None
    return turns


def _from_records(records, cfg: PromptsConfig, source: str, require_answer: bool) -> _Collector:
    """records: iterable of (location, dict)."""
    out = _Collector(cfg.on_duplicate)
    for where, rec in records:
        if not isinstance(rec, dict):
            raise InputError(
                f"{where}: expected a JSON object, got {type(rec).__name__} (given: {redact(rec)})"
            )
        if cfg.prompt_field not in rec:
            raise InputError(
                f"{where}: missing prompt field '{cfg.prompt_field}' (prompts.prompt_field; the record "
                f"has: {redact(', '.join(map(str, rec)))})"
            )
        value = rec[cfg.prompt_field]
        messages = None
        if isinstance(value, list):
            messages = conversation(value, where, cfg.prompt_field)
            text = render_conversation(messages) if messages is not None else value[0]["content"]
        elif isinstance(value, str):
            text = value
        else:
            raise InputError(
                f"{where}: prompt field '{cfg.prompt_field}' must be a string or a list of "
                f"{{role, content}} turns, got {type(value).__name__} (given: {redact(value)})"
            )
        if cfg.input_field:
            extra = rec.get(cfg.input_field)
            if messages is not None or isinstance(value, list):
                raise InputError(
                    f"{where}: prompts.input_field is for a text prompt field, not a conversation"
                )
            if extra is not None and not isinstance(extra, str):
                raise InputError(
                    f"{where}: input field '{cfg.input_field}' must be a string, got "
                    f"{type(extra).__name__} (given: {redact(extra)})"
                )
            if extra and extra.strip():
                text = f"{text}\n\n{extra}"
        answer = None
        if cfg.answer_field:
            if cfg.answer_field not in rec and require_answer:
                raise InputError(
                    f"{where}: missing answer field '{cfg.answer_field}' (prompts.answer_field); "
                    "the verifier and the reference teacher need it"
                )
            answer = rec.get(cfg.answer_field)
        solution = answer
        if cfg.solution_field:
            if cfg.solution_field not in rec:
                raise InputError(
                    f"{where}: missing solution field '{cfg.solution_field}' (prompts.solution_field)"
                )
            solution = rec[cfg.solution_field]
        pid = None
        if cfg.id_field:
            if cfg.id_field not in rec:
                raise InputError(f"{where}: missing id field '{cfg.id_field}' (prompts.id_field)")
            pid = str(rec[cfg.id_field])
        used = {cfg.prompt_field, cfg.input_field, cfg.answer_field, cfg.solution_field, cfg.id_field}
        meta = {k: v for k, v in rec.items() if k not in used}
        out.add(where, text, pid, answer, solution, meta, messages)
    return out


def _parquet_records(path: Path):
    require("pyarrow", "reading Parquet", "pip install 'persyn[parquet]'")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise InputError(f"{path}: cannot read Parquet file: {exc}") from None
    for i, rec in enumerate(table.to_pylist()):
        yield f"{path}:row {i}", rec


def _hf_records(cfg: PromptsConfig):
    """``(location, record)`` of a Hugging Face dataset: a ``save_to_disk`` directory
    (``path``) or a dataset in the local cache (``name``, ``config_name``), one ``split``.

    Raises:
        MissingAssetError: ``datasets`` not installed, or ``name`` not in the local cache.
        InputError: ``path`` is not a saved dataset, or the split is unknown (the available
            splits are named).
    """
    require("datasets", "prompts.source 'hf'", "pip install 'persyn[hf]'")
    import datasets

    if cfg.path is not None:
        where = str(cfg.path)
        if not cfg.path.exists():
            raise InputError(f"{cfg.path}: dataset directory not found (prompts.path)")
        try:
            ds = datasets.load_from_disk(str(cfg.path))
        except Exception as exc:  # datasets raises several types for a directory it cannot read
            raise InputError(f"{cfg.path}: not a dataset saved with save_to_disk ({exc})") from None
    else:
        where = f"{cfg.name}" + (f" ({cfg.config_name})" if cfg.config_name else "")
        datasets.config.HF_HUB_OFFLINE = True  # the local cache only: persyn never downloads
        try:
            ds = datasets.load_dataset(cfg.name, cfg.config_name)
        except Exception as exc:  # offline misses surface as several exception types
            raise MissingAssetError(
                f"prompts.name '{cfg.name}': not in the local Hugging Face cache ({str(exc)[:200]}); "
                "persyn never downloads: load it once where a network is available, or give a "
                "save_to_disk directory as prompts.path"
            ) from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if cfg.split is None and len(splits) > 1:
            raise InputError(f"{where}: has splits {', '.join(splits)}: choose one with prompts.split")
        split = cfg.split if cfg.split is not None else splits[0]
        if split not in ds:
            raise InputError(
                f"{where}: unknown split '{split}' (prompts.split; available: {', '.join(splits)})"
            )
        ds = ds[split]
    elif cfg.split is not None and ds.split is not None and str(ds.split) != cfg.split:
        raise InputError(
            f"{where}: unknown split '{cfg.split}' (prompts.split; this dataset is '{ds.split}')"
        )
    split = cfg.split or (str(ds.split) if ds.split is not None else "")
    for i, rec in enumerate(ds):
        yield f"{where}{f'[{split}]' if split else ''}:row {i}", rec


def task_sizes(size: int, weights: list[float]) -> list[int]:
    """Each task's share of ``size`` prompts, in proportion to ``weights`` (rounded; at least 1
    each)."""
    total = sum(weights)
    return [max(1, round(size * w / total)) for w in weights]


def _reasoning_gym(cfg: PromptsConfig, seed: int) -> _Collector:
    require("reasoning_gym", "prompts.source 'reasoning_gym'", "pip install reasoning-gym", "reasoning-gym")
    out = _Collector()
    if cfg.tasks is None:
        _draw_task(out, cfg.task, cfg.size or 120, cfg.task_kwargs, seed, "prompts")
        return out
    sizes = task_sizes(cfg.size or 120, [t.weight for t in cfg.tasks])
    for i, (mix, n) in enumerate(zip(cfg.tasks, sizes, strict=True)):
        _draw_task(out, mix.task, n, mix.task_kwargs, seed, f"prompts.tasks.{i}")
    return out


# Metadata kept from a reasoning_gym entry: where it came from, and (``task_metadata``) what the
# task's own answer check and the reference teacher's worked steps may read.
_KEPT = ("source_dataset", "source_index", "difficulty", "expression")


def _draw_task(out: _Collector, task: str, size: int, kwargs: dict, seed: int, where: str) -> None:
    import reasoning_gym

    try:
        ds = reasoning_gym.create_dataset(task, size=size, seed=seed, **kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{where}: task '{task}' / task_kwargs {kwargs}: {exc}") from None
    for i, entry in enumerate(ds):
        meta = dict(entry.get("metadata") or {})
        answer = entry.get("answer")
        cot = meta.pop("answer_cot", None)
        # A worked solution that ends in the GSM8K-style final-answer line when the task has one.
        solution = f"{cot.rsplit('####', 1)[0].rstrip()}\n#### {answer}" if cot else answer
        full = meta
        meta = {k: v for k, v in full.items() if k in _KEPT}
        meta.setdefault("source_dataset", task)
        meta["task_metadata"] = _json_safe(full)
        out.add(f"reasoning_gym:{task}[{i}]", entry["question"], None, answer, solution, meta)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def load_prompts(
    cfg: PromptsConfig, seed: int, require_answer: bool = True
) -> tuple[list[Prompt], LoadReport]:
    """Load the prompt set described by ``cfg``.

    Args:
        cfg: the ``prompts`` section of the run config.
        seed: the run seed (draws reasoning_gym problems unless ``cfg.seed`` is set).
        require_answer: raise when a record lacks the answer field (verifier / reference need it).

    Returns:
        (prompts in source order, what was skipped).

    Raises:
        InputError: unreadable file, malformed JSON, non-UTF-8 line or missing field, naming the
            file and line; an empty prompt set.
        MissingAssetError: the package a source needs is not installed.
    """
    if cfg.source == "reasoning_gym":
        col = _reasoning_gym(cfg, seed if cfg.seed is None else cfg.seed)
        where = f"reasoning_gym task '{cfg.task}'"
    elif cfg.source == "hf":
        col = _from_records(_hf_records(cfg), cfg, str(cfg.path or cfg.name), require_answer)
        where = str(cfg.path or cfg.name)
    elif cfg.source == "ifeval_constrained":
        from persyn.ifeval_constraints import constrained_records

        assert cfg.size is not None
        records = constrained_records(cfg.size, seed if cfg.seed is None else cfg.seed, cfg.task_kwargs)
        col = _from_records(records, cfg, "ifeval_constrained", require_answer=False)
        where = "prompts.source 'ifeval_constrained'"
    else:
        assert cfg.path is not None
        if not cfg.path.exists():
            if cfg.source == "synthetic":
                raise InputError(f"{cfg.path}: no synthetic prompts yet: run `persyn synthesize` first")
            raise InputError(f"{cfg.path}: prompt file not found (prompts.path)")
        records = (
            _parquet_records(cfg.path) if cfg.source == "parquet" else jsonl_records(cfg.path, "prompt file")
        )
        col = _from_records(records, cfg, str(cfg.path), require_answer)
        where = str(cfg.path)
    if cfg.source not in ("reasoning_gym", "ifeval_constrained") and cfg.size is not None:
        col.prompts = col.prompts[: cfg.size]
    if not col.prompts:
        raise InputError(f"{where}: no usable prompts (empty: {len(col.report.empty)})")
    if cfg.sample is not None:
        col.prompts = sample_prompts(col.prompts, cfg.sample, seed)
    return col.prompts, col.report


def sample_prompts(prompts: list[Prompt], size: int, seed: int) -> list[Prompt]:
    """``prompts.sample``: a seeded random subset of ``size`` prompts (all when there are
    fewer), in source order, drawn with ``derived_seed(seed, "prompts.sample")`` from the run
    seed: an experiment's seeds then train on different draws from one pool whose responses
    they share."""
    if size >= len(prompts):
        return list(prompts)
    rng = random.Random(derived_seed(seed, "prompts.sample"))
    keep = set(rng.sample(range(len(prompts)), size))
    return [p for i, p in enumerate(prompts) if i in keep]
