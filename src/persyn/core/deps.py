"""The one check of an optional dependency: whether a package can be imported, before a feature
that needs it runs, with the ``pip install`` line that fixes it."""

from __future__ import annotations

import importlib.util

from persyn.core.errors import MissingAssetError


def require(module: str, what: str, install: str, package: str | None = None) -> None:
    """Do nothing when ``module`` can be imported (found, not imported); else raise.

    Args:
        module: the import name (e.g. ``rouge_score``).
        what: the feature that needs it (e.g. ``prompt synthesis``).
        install: the command that installs it (e.g. ``pip install 'persyn[synth]'``).
        package: its distribution name when it differs from ``module`` (e.g. ``rouge-score``).

    Raises:
        MissingAssetError: ``WHAT needs the package 'PACKAGE': run `INSTALL```.
    """
    if importlib.util.find_spec(module) is None:
        raise MissingAssetError(f"{what} needs the package '{package or module}': run `{install}`")
