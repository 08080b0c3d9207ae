"""Router kind ``bt-encoder``: the paper's router (PerSyn Eq. 3, after P2L): a text encoder
fine-tuned with a linear coefficient head, trained with binary cross-entropy on the pairwise
labels of the calibration rewards."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from persyn.config import RouterConfig
from persyn.core.hashing import stable_hash
from persyn.router.base import Router, RouterExample
from persyn.router.model import BTRouter
from persyn.router.train import fit_bt_router, steps_per_training


class BTEncoderRouter(Router):
    """The fine-tuned encoder router (see ``BTRouter`` for the network).

    Attributes:
        net: the encoder + head network.
        teachers: teacher names in head order.
    """

    kind = "bt-encoder"
    uses_embeddings = False

    def __init__(self, net: BTRouter):
        self.net = net
        self.teachers = net.teachers

    @classmethod
    def fit(
        cls, cfg: RouterConfig, teachers: list[str], examples: list[RouterExample], seed: int, progress=None
    ) -> BTEncoderRouter:
        """Train a fresh router (see ``router.train.fit_bt_router``).

        Raises:
            ValueError: no example has a pair to learn from.
        """
        return cls(fit_bt_router(cfg, teachers, examples, seed, progress))

    @classmethod
    def steps(cls, cfg: RouterConfig, n_examples: int) -> int:
        """Optimizer steps of one ``fit`` on ``n_examples`` prompts."""
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
        return cls(BTRouter.load(directory))

    @classmethod
    def fingerprint(cls, directory: str | Path) -> str:
        """A hash of the trained head's bytes (the encoder's fine-tuned weights change with it)."""
        return stable_hash((Path(directory) / "head.pt").read_bytes().hex())
