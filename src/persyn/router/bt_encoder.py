"""Router kind ``bt-encoder``: the paper's router (PerSyn Eq. 3, after P2L): a text encoder
fine-tuned with a linear coefficient head, trained with binary cross-entropy on the pairwise
labels of the calibration rewards."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
from pydantic import Field

from persyn.core.hashing import stable_hash
from persyn.router.base import EncoderSettings, Router, RouterExample

if TYPE_CHECKING:  # torch loads when a router is trained or loaded (config validation imports this)
    from persyn.router.model import BTRouter


class BTEncoderSettings(EncoderSettings):
    """``bt-encoder``'s settings: the encoder (fine-tuned unless ``freeze_encoder``), its
    training (``epochs``, ``batch_size``, the encoder's and the head's learning rates)."""

    epochs: Annotated[int, Field(ge=1)] = 20
    batch_size: Annotated[int, Field(ge=1)] = 16
    encoder_lr: Annotated[float, Field(ge=0.0)] = 2e-5
    head_lr: Annotated[float, Field(gt=0.0)] = 1e-2
    freeze_encoder: bool = False


class BTEncoderRouter(Router):
    """The fine-tuned encoder router (see ``BTRouter`` for the network).

    Attributes:
        net: the encoder + head network.
        teachers: teacher names in head order.
    """

    Settings = BTEncoderSettings
    kind = "bt-encoder"
    uses_embeddings = False

    def __init__(self, net: BTRouter):
        self.net = net
        self.teachers = net.teachers

    @classmethod
    def fit(
        cls,
        cfg: BTEncoderSettings,
        teachers: list[str],
        examples: list[RouterExample],
        seed: int,
        progress=None,
    ) -> BTEncoderRouter:
        """Train a fresh router (see ``router.train.fit_bt_router``).

        Raises:
            ValueError: no example has a pair to learn from.
        """
        from persyn.router.train import fit_bt_router

        return cls(fit_bt_router(cfg, teachers, examples, seed, progress))

    @classmethod
    def steps(cls, cfg: BTEncoderSettings, n_examples: int) -> int:
        """Optimizer steps of one ``fit`` on ``n_examples`` prompts."""
        from persyn.router.train import steps_per_training

        return steps_per_training(cfg, n_examples)

    def scores(self, texts: list[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """π(x) per text, shape ``[len(texts), n_teachers]`` (float32; the encoder reads the
        texts, ``embeddings`` is not used)."""
        return self.net.coefficients(texts).numpy()

    def save(self, directory: str | Path) -> None:
        """Write the network (``encoder/``, ``head.pt``) and ``router.json`` with the kind."""
        self.net.save(directory, {"kind": self.kind})

    @classmethod
    def load(cls, directory: str | Path) -> BTEncoderRouter:
        """Load a router written by ``save``.

        Raises:
            PersynError: the directory is not a saved router.
        """
        from persyn.router.model import BTRouter

        return cls(BTRouter.load(directory))

    @classmethod
    def fingerprint(cls, directory: str | Path) -> str:
        """A hash of the trained head's bytes (the encoder's fine-tuned weights change with it)."""
        return stable_hash((Path(directory) / "head.pt").read_bytes().hex())
