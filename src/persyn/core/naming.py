"""Names that become directories, file names, store keys or HTML ids (teachers, students)."""

from __future__ import annotations

import re

#: Names that become directories, file names, store keys or HTML ids (teachers, students).
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"


def check_name(value: str, what: str) -> str:
    """``value`` when it matches ``NAME_PATTERN`` (a letter or digit, then up to 63 letters,
    digits, ``.``, ``_`` or ``-``), so it cannot escape a directory or break an id.

    Raises:
        ValueError: naming the value and suggesting a valid form (``org/model`` → ``org-model``).
    """
    if re.fullmatch(NAME_PATTERN, value):
        return value
    suggestion = re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip(".-_")[:64] or "name"
    raise ValueError(
        f"{what} '{value}' is not a valid name: use letters, digits, '.', '_' and '-', starting with a "
        f"letter or digit, at most 64 characters (e.g. '{suggestion}')"
    )


def student_dir_name(model: str) -> str:
    """A directory name for a student model reference: its last path part, with characters
    outside ``[A-Za-z0-9._-]`` replaced by ``-`` (``HuggingFaceTB/SmolLM2-135M`` → ``SmolLM2-135M``)."""
    tail = model.rstrip("/").split("/")[-1] or "student"
    return re.sub(r"[^A-Za-z0-9._-]", "-", tail).lstrip(".-_") or "student"
