"""The engine contract: prompts in, one completion per prompt out, batch by batch.

Engines are plug-ins: each lives in its own module of this package and is listed by name in
``persyn.core.plugins.ENGINES``; ``make_engine`` builds the one a teacher names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from persyn.config import TeacherConfig
from persyn.core.plugins import ENGINES, load
from persyn.core.records import Completion, Prompt


class Engine(Protocol):
    """A response generator, built as ``Engine(teacher, seed)``. ``generate`` yields
    ``[(prompt_id, Completion), ...]`` one batch at a time so that the caller can store each
    batch as soon as it is done."""

    def generate(self, prompts: list[Prompt]) -> Iterator[list[tuple[str, Completion]]]: ...


def make_engine(teacher: TeacherConfig, seed: int) -> Engine:
    """Build the engine for ``teacher`` (model loading happens here).

    Raises:
        MissingAssetError: the teacher's model (or the engine's extra) is not installed.
    """
    return load(ENGINES, teacher.engine, "engine")(teacher, seed)
