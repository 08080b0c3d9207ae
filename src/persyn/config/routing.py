"""The router's settings: its kind (or ``auto``), encoder and training."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from persyn.core.plugins import ROUTERS, check
from persyn.core.settings import StrictModel


class RouterConfig(StrictModel):
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
    prompt into a vector."""

    kind: str = "auto"
    auto_kinds: list[str] = Field(default_factory=lambda: ["prior", "bt-linear", "knn"], min_length=1)
    encoder: str = "minilm-l6"
    pooling: Literal["mean", "cls"] = "mean"
    max_length: Annotated[int, Field(ge=8)] = 256
    epochs: Annotated[int, Field(ge=1)] = 20
    batch_size: Annotated[int, Field(ge=1)] = 16
    encoder_lr: Annotated[float, Field(ge=0.0)] = 2e-5
    head_lr: Annotated[float, Field(gt=0.0)] = 1e-2
    freeze_encoder: bool = False
    knn_k: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 3, 5, 9, 15, 25], min_length=1
    )
    l2: list[Annotated[float, Field(gt=0.0)]] = Field(
        default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0], min_length=1
    )
    cv_folds: Annotated[int, Field(ge=2)] = 5
    cv_repeats: Annotated[int, Field(ge=1)] = 5
    bootstrap: Annotated[int, Field(ge=100)] = 2000
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
