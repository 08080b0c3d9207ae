"""The synthesis generator contract (``synthesis.generator``, ``core.plugins.GENERATORS``): what
one generator writes to its model and how it reads the answer back, and what the rest of persyn
asks of it. A generator is chosen by name and built with no arguments."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar


class Generator(ABC):
    """One prompt generator.

    Attributes:
        ADAPTS_TO_STUDENT: whether its model is first tuned to the student (Montessori-Instruct:
            the run then needs ``influence:`` and the ``montessori:`` settings).
        NEEDS_TRAINABLE_MODEL: whether its model must be one persyn fine-tunes in-process.
    """

    ADAPTS_TO_STUDENT: ClassVar[bool] = False
    NEEDS_TRAINABLE_MODEL: ClassVar[bool] = False

    @abstractmethod
    def request(self, syn: Any, seeds: list[str], kept: list[str], rng: random.Random) -> str:
        """The text of one request to the generator model (``syn``: the ``synthesis`` settings;
        ``seeds`` and ``kept`` the seed prompts and those kept so far; ``rng`` the round's
        seeded draw, used only by a generator that samples its request)."""

    def sample_id(self, round_no: int, request: int, sample: int) -> str | int:
        """What numbers sample ``sample`` of request ``request`` of round ``round_no`` in its
        cache key: by default the sample number (each request's text differs already)."""
        return sample

    @abstractmethod
    def parse(self, text: str) -> tuple[str, str | None] | None:
        """``(prompt, answer or None)`` read from the model's ``text``; None when unusable."""


def generator_class(name: str) -> type[Generator]:
    """The generator registered as ``name`` (its module imported now).

    Raises:
        ValueError: an unknown name (config validation names it first).
    """
    from persyn.core.plugins import GENERATORS, load

    return load(GENERATORS, name, "generator")
