"""The router's settings: its kind (or ``auto``), encoder and training."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from persyn.core.plugins import ROUTERS, check
from persyn.router.cv import CVSettings


def _kind_settings() -> tuple[type, ...]:
    """Every router kind's own settings model (``Router.Settings``, in its kind's file), in the
    plug-in table's order, without repeats: what ``RouterConfig`` is composed of."""
    from persyn.router.base import router_class

    return tuple(dict.fromkeys(router_class(k).Settings for k in ROUTERS))


class RouterConfig(*_kind_settings(), CVSettings):
    """The router: ``kind`` is a router kind of ``persyn.core.plugins.ROUTERS`` or ``auto``.

    - ``bt-encoder``: the paper's router (PerSyn Eq. 3): ``encoder`` fine-tuned with a linear
      coefficient head (``epochs``, ``batch_size``, ``encoder_lr``, ``head_lr``,
      ``freeze_encoder``);
    - ``bt-linear``: the same Bradley–Terry head on frozen ``encoder`` embeddings, L2 λ chosen
      among ``l2``;
    - ``knn``: mean reward of the k nearest calibration prompts, k chosen among ``knn_k``;
    - ``prior``: the best single teacher by mean calibration reward;
    - ``auto`` (default): ``cv_folds``-fold cross-validation over the calibration prompts,
      repeated ``cv_repeats`` times with other folds (per-prompt regrets averaged), picks,
      among ``auto_kinds``, the learned kind whose regret beats ``prior``'s with a paired
      bootstrap 95% interval (``bootstrap`` resamples) below 0, else ``prior``.

    Every kind's cross-validated figures are reported, whatever ``kind`` is. ``ties``: ``drop``
    tied pairs or count them as half a win. ``pooling``/``max_length``: how ``encoder`` turns a
    prompt into a vector.

    Each kind's settings live in its own file (``Router.Settings``: ``router/knn.py``'s
    ``knn_k``, ...; ``auto``'s in ``router/cv.py``) and this model is composed of all of them
    through the plug-in table, flat: ``auto`` trains several kinds on one config, and a kind's
    ``fit`` gets this config, which is an instance of its ``Settings``."""

    kind: str = "auto"
    ties: Literal["drop", "half"] = "drop"

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        return v if v == "auto" else check(ROUTERS, v, "router kind")

    @field_validator("auto_kinds")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        return [check(ROUTERS, k, "router kind") for k in v]

    def cv_kinds(self) -> list[str]:
        """The kinds cross-validated: ``prior`` first, then ``auto_kinds`` (for ``auto``) or
        ``kind``."""
        asked = self.auto_kinds if self.kind == "auto" else [self.kind]
        return list(dict.fromkeys(["prior", *asked]))
