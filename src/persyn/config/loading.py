"""Reading a run configuration: YAML in, validated, errors that name the field."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from persyn.config.run import RunConfig
from persyn.core.errors import ConfigError
from persyn.core.redaction import redact


def format_validation_error(err: ValidationError, source: str, model: type | None = None) -> str:
    """The lines of a config validation error: per error the field path, what was wrong and
    the value given (through ``redact``); with ``model`` (the settings class validated), a
    misspelled key also gets the nearest known key at its place."""
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        # The value given, for a field (a whole section's mapping would only repeat the file).
        value = e.get("input")
        shown = e["type"] != "missing" and e["loc"] and not isinstance(value, dict)
        given = f" (given: {redact(value, loc)})" if shown else ""
        hint = _did_you_mean(e["loc"], model) if e["type"] == "extra_forbidden" and model is not None else ""
        lines.append(f"  {loc}: {msg}{given}{hint}")
    return "\n".join(lines)


def _fields_at(model: type, loc: tuple) -> list[str]:
    """The field names of the settings model at ``loc`` (the offending key's parent) under
    ``model``, following nested models through lists, dicts and optional fields; every field
    name of every model met when the path cannot be followed (a teacher's engine settings)."""
    from pydantic import BaseModel

    def models_in(annotation) -> list[type]:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return [annotation]
        return [m for a in typing.get_args(annotation) for m in models_in(a)]

    current = [model]
    for part in loc[:-1]:
        if isinstance(part, int) or not current:
            continue
        nxt = []
        for m in current:
            f = m.model_fields.get(str(part))
            if f is not None:
                nxt += models_in(f.annotation)
        current = nxt
    names = {n for m in current for n in m.model_fields}
    if not names or "engine" in names:  # a teacher: its settings model depends on its engine
        from persyn.core.plugins import ENGINES, load

        for engine in ENGINES:
            names |= set(load(ENGINES, engine, "engine").Settings.model_fields)
    return sorted(names)


def _did_you_mean(loc: tuple, model: type) -> str:
    """`` — did you mean 'NAME'?`` for a misspelled key, the nearest known key at its place."""
    key = str(loc[-1]) if loc else ""
    close = difflib.get_close_matches(key, _fields_at(model, tuple(loc)), n=1, cutoff=0.7)
    return f" — did you mean '{close[0]}'?" if close else ""


def parse_config(data: Any, source: str = "<config>", base_dir: Path | None = None) -> RunConfig:
    """Validate a mapping into a RunConfig.

    With ``base_dir`` (the config file's folder), the relative input paths of the config are
    resolved against it (``resolve_input_paths``); ``output_dir`` stays relative to the
    current directory, like a path given on the command line.

    Raises:
        ConfigError: naming ``source`` and each offending field path.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, RunConfig)) from None
    if base_dir is not None:
        resolve_input_paths(cfg, Path(base_dir))
    _check_model_refs(cfg, source)
    return cfg


def resolve_under(base: Path, value):
    """``value`` (a path, or a model reference) joined to ``base`` when it is a relative path;
    a model reference only when written as one (``./`` or ``../``): ``org/name`` is a hub id."""
    if value is None:
        return None
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if value.startswith(("./", "../")):
        return str(base / value)
    return value


def resolve_input_paths(cfg: RunConfig, base: Path) -> None:
    """Resolve, in place, the relative input paths of ``cfg`` against ``base`` (the folder of the
    config file): the prompt files (``prompts``, ``synthesis.seeds`` / ``target``), the influence
    files, and local model paths written ``./...`` or ``../...`` (student, GGUF, teachers,
    reward model, router encoder). ``output_dir`` and the synthetic prompt file (which lives in
    it) are left relative to the current directory."""
    if cfg.prompts.source != "synthetic":
        cfg.prompts.path = resolve_under(base, cfg.prompts.path)
    if cfg.synthesis is not None:
        for prompts in (cfg.synthesis.seeds, getattr(cfg.synthesis, "target", None)):
            if prompts is not None:
                prompts.path = resolve_under(base, prompts.path)
    if cfg.influence is not None:
        cfg.influence.warmup = resolve_under(base, cfg.influence.warmup)
        cfg.influence.reference = resolve_under(base, cfg.influence.reference)
    for slot in [s for s in [cfg.student, *(cfg.students or [])] if s is not None]:
        slot.model = resolve_under(base, slot.model)
        slot.gguf = resolve_under(base, slot.gguf)
    cfg.quality.model = resolve_under(base, cfg.quality.model)
    cfg.router.encoder = resolve_under(base, cfg.router.encoder)
    for t in [*cfg.teachers, *([cfg.synthesis.model] if cfg.synthesis is not None else [])]:
        if isinstance(getattr(t, "model", None), str) and t.local_model():
            t.model = resolve_under(base, t.model)


def _check_model_refs(cfg: RunConfig, source: str) -> None:
    from persyn.models.aliases import check_model_ref

    slots = [("student.model", cfg.student.model), ("router.encoder", cfg.router.encoder)]
    # The local models only (an openai teacher's model is a name on its server).
    slots += [(f"teachers.{i}.model", ref) for i, t in enumerate(cfg.teachers) if (ref := t.local_model())]
    if cfg.quality.model:
        slots.append(("quality.model", cfg.quality.model))
    for field, ref in slots:
        problem = check_model_ref(ref)
        if problem:
            raise ConfigError(f"{source}: {field}: {problem}")


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """The parsed YAML document at ``path``.

    Raises:
        ConfigError: a missing or unreadable file, or a YAML syntax error (with its line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "unknown line"
        raise ConfigError(f"{path}: YAML syntax error at {where}: {exc}") from None


def load_config(source: str | Path | dict) -> RunConfig:
    """Read and validate a run configuration: a YAML file's path, or the same content as a
    dict (e.g. built in a notebook).

    The relative input paths of a file's config (prompt files, local models written ``./...``)
    are taken relative to the file's folder (``resolve_input_paths``);
    ``output_dir`` relative to the current directory. A dict's paths stay as given.

    Raises:
        ConfigError: unreadable file, YAML syntax error (with line), or invalid fields (the
            field path is named).
    """
    if isinstance(source, dict):
        return parse_config(source, source="<dict>")
    return parse_config(read_yaml(source), source=str(source), base_dir=Path(source).parent)
