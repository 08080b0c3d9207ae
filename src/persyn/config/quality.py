"""Quality r_q's settings: the scorer's kind and every kind's own settings, composed."""

from __future__ import annotations

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from persyn.core.plugins import QUALITY_SCORERS, check
from persyn.core.settings import ResourcesConfig, StrictModel
from persyn.scoring.quality import quality_scorer_class


def _kind_settings() -> tuple[type[StrictModel], ...]:
    """Every quality kind's own settings model (``QualityScorer.Settings``, in its kind's file),
    in the plug-in table's order, without repeats: what ``QualityConfig`` is composed of."""
    return tuple(dict.fromkeys(quality_scorer_class(k).Settings for k in QUALITY_SCORERS))


def _owners() -> dict[str, list[str]]:
    """Field name → the quality kinds whose ``Settings`` declare it."""
    owners: dict[str, list[str]] = {}
    for kind in QUALITY_SCORERS:
        for name in quality_scorer_class(kind).Settings.model_fields:
            owners.setdefault(name, []).append(kind)
    return owners


class QualityConfig(*_kind_settings()):
    """Quality r_q. ``verifier``: 1 if the final answer matches the reference (math-verify),
    else 0. ``majority``: the same check against a pseudo-gold, the final answer most of the
    calibration teachers give for the prompt (for prompts without answers; wrong when most
    teachers are wrong alike; a tie or fewer than 2 parsable answers leaves the prompt's
    responses unscored). ``reward_model``: the scalar of a sequence classifier (``model``).
    ``ifeval``: the share of the prompt's IFEval instructions (its record's
    ``instruction_id_list`` and ``kwargs``) the response follows, checked strictly, or with
    ``loose`` by IFEval's loose check (``persyn[ifeval]``).

    Each kind's settings live in its own file (``QualityScorer.Settings``: the reward model's in
    ``scoring/quality.py``, ``loose`` in ``scoring/ifeval.py``) and this model is composed of all
    of them through the plug-in table, flat, so the ``quality:`` keys, dumps and hashes are as
    before. A field of a kind other than ``kind`` set away from its default is refused (it would
    be ignored), and the kind checks its own (``QualityScorer.check_settings``)."""

    kind: str = "verifier"  # a name of persyn.core.plugins.QUALITY_SCORERS
    # executor: ray (the quality scorer's workers)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        return check(QUALITY_SCORERS, v, "quality kind")

    @model_validator(mode="after")
    def _check_settings(self) -> QualityConfig:
        scorer = quality_scorer_class(self.kind)
        own = scorer.Settings.model_fields
        for name, kinds in _owners().items():
            if name in own or name not in self.model_fields_set:
                continue
            if getattr(self, name) != _default(name):
                wanted = " or ".join(f"'{k}'" for k in kinds)
                raise ValueError(
                    f"'{name}' is a setting of quality kind {wanted}, not of '{self.kind}' "
                    f"(got {name}={getattr(self, name)!r})"
                )
        scorer.check_settings(self)
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        for settings in _kind_settings():
            for name in getattr(settings, "DUMP_ONLY_WHEN_SET", ()):
                if getattr(self, name) == _default(name):
                    data.pop(name, None)
        # kind first, the kinds' settings, resources last (hashes sort keys; this is for readers)
        order = ["kind", *(n for n in data if n not in ("kind", "resources")), "resources"]
        return {n: data[n] for n in order if n in data}


def _default(name: str):
    """A ``QualityConfig`` field's default (its factory's value for a factory)."""
    return QualityConfig.model_fields[name].get_default(call_default_factory=True)


def _check_shared_defaults() -> None:
    """Two kinds may declare the same field only with the same default (the composed model keeps
    one). Raises AssertionError naming the field, at import."""
    for name, kinds in _owners().items():
        defaults = {
            repr(quality_scorer_class(k).Settings.model_fields[name].get_default(call_default_factory=True))
            for k in kinds
        }
        assert len(defaults) == 1, f"quality field {name!r} has different defaults in kinds {kinds}"


_check_shared_defaults()
