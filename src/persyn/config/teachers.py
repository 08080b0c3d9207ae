"""A teacher's settings: one model per engine, beside the engine (``persyn.engines.*``), picked
by the teacher's ``engine``.

``TeacherConfig`` is the type of a teacher setting (``RunConfig.teachers``,
``SynthesisConfig.model``): a mapping is validated by the settings model of the engine it
names (``ENGINE_CLASS.Settings``, a ``persyn.engines.base.TeacherSettings``), so each engine
accepts its own settings only. A setting of another engine is an error naming the teacher, the
setting and the engines that have it, unless it holds that setting's default (None, or the
owning engine's default: the flat dumps of teachers in a ``run_config.json`` written before
teachers had per-engine settings), which means nothing and is dropped. ``make_teacher`` builds
one from keyword arguments.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import SerializeAsAny, TypeAdapter, ValidationError, WrapValidator
from pydantic_core import InitErrorDetails, PydanticCustomError

from persyn.core.plugins import ENGINES, load
from persyn.engines.base import TeacherSettings


def settings_class(engine: str) -> type[TeacherSettings]:
    """The settings model of ``engine`` (a name of ``persyn.core.plugins.ENGINES``; its module is
    imported now)."""
    return load(ENGINES, engine, "engine").Settings


def _foreign_errors(data: dict, cls: type[TeacherSettings]) -> list[InitErrorDetails]:
    """Errors for the keys of ``data`` that are another engine's settings with a meaningful
    value; such keys with a default value are removed from ``data``."""
    errors: list[InitErrorDetails] = []
    for key in [k for k in data if k not in cls.model_fields]:
        owners = [e for e in ENGINES if key in settings_class(e).model_fields]
        if not owners:
            continue  # a typo: the engine's model rejects it as an unknown key
        defaults = [
            settings_class(e).model_fields[key].get_default(call_default_factory=True) for e in owners
        ]
        if data[key] is None or data[key] in defaults:
            del data[key]
            continue
        errors.append(
            InitErrorDetails(
                type=PydanticCustomError(
                    "wrong_engine",
                    "teacher '{teacher}' has engine '{engine}', which has no setting '{field}' "
                    "(a setting of {owners})",
                    {
                        "teacher": str(data.get("name")),
                        "engine": cls.model_fields["engine"].default,
                        "field": key,
                        "owners": ("engine " if len(owners) == 1 else "engines ")
                        + ", ".join(f"'{e}'" for e in owners),
                    },
                ),
                loc=(key,),
                input=data[key],
            )
        )
    return errors


def _by_engine(value: Any, handler) -> TeacherSettings:
    """Validate ``value`` with the settings model of the engine it names (see the module
    docstring); without a known engine, only ``name`` and ``engine`` are checked (their
    errors say what is wrong)."""
    if isinstance(value, TeacherSettings):
        return value
    engine = value.get("engine") if isinstance(value, dict) else None
    if not isinstance(engine, str) or engine not in ENGINES:
        if not isinstance(value, dict):
            return handler(value)
        return handler({k: value[k] for k in ("name", "engine") if k in value})
    cls = settings_class(engine)
    data = dict(value)
    errors = _foreign_errors(data, cls)
    if errors:
        raise ValidationError.from_exception_data(cls.__name__, errors)
    return cls.model_validate(data)


#: One teacher's settings: the ``TeacherSettings`` subclass of its ``engine`` (dumped with that
#: subclass's fields: ``SerializeAsAny``).
TeacherConfig = Annotated[SerializeAsAny[TeacherSettings], WrapValidator(_by_engine)]

_ADAPTER: TypeAdapter = TypeAdapter(TeacherConfig)


def make_teacher(data: dict[str, Any] | None = None, **fields: Any) -> TeacherSettings:
    """The settings of one teacher from a mapping and/or keyword arguments (``name``,
    ``engine`` and that engine's settings), e.g. ``make_teacher(name="t", engine="reference")``.

    Raises:
        pydantic.ValidationError: an invalid setting, an unknown engine or another engine's
            setting (each error names the field).
    """
    return _ADAPTER.validate_python({**(data or {}), **fields})


#: The teacher settings of the one flat teacher model of before (every engine's, pinned): the
#: shape ``flat_dump`` keeps, so that whole-run result keys made then stay valid.
FLAT_FIELDS_V1: tuple[str, ...] = (
    "name", "engine", "family", "batch_size", "price_input_per_million",
    "price_output_per_million", "price_per_second", "max_prompts", "resources", "model",
    "system_prompt", "prompt_template", "temperature", "top_p", "max_new_tokens", "stop", "dtype",
    "style", "base_url", "api_key_env", "concurrency", "requests_per_minute",
    "tokens_per_minute", "timeout", "max_retries",
)  # fmt: skip


def flat_dump(teacher: TeacherSettings, exclude: set[str] | None = None) -> dict[str, Any]:
    """``teacher`` as JSON in the shape of the one flat teacher model of before, for the result
    keys that hash a whole run config (``RunConfig.key_dump``), so that those made before
    teachers had per-engine settings stay valid: every field of ``FLAT_FIELDS_V1`` (another
    engine's at its default), then the teacher's own settings; a setting added since
    (not in ``FLAT_FIELDS_V1``) only when it differs from its default, so that a new engine, or
    a new setting left unset, changes no existing config's key."""
    flat: dict[str, Any] = {}
    for engine in ENGINES:
        for name, field in settings_class(engine).model_fields.items():
            if name in FLAT_FIELDS_V1 and name not in flat:
                flat[name] = field.get_default(call_default_factory=True)
    own = teacher.model_dump(mode="json")
    fields = type(teacher).model_fields
    for name in [n for n in own if n not in FLAT_FIELDS_V1]:
        default = fields[name].get_default(call_default_factory=True)
        if own[name] == (default.model_dump(mode="json") if hasattr(default, "model_dump") else default):
            del own[name]
    # The other engines' defaults are plain JSON values (None, numbers, strings, []).
    merged = {**{k: v for k, v in flat.items() if k not in own}, **own}
    return {k: v for k, v in merged.items() if k not in (exclude or set())}
