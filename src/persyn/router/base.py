"""The router contract and its registry (``router.kind``, ``persyn.core.plugins.ROUTERS``).

A router kind gives per-teacher scores π(x) ∈ R^N for each prompt and is routed by argmax
(PerSyn Eq. 3 for the Bradley–Terry kinds). Every kind is a class with:

- ``fit(cfg, teachers, examples, seed, progress) -> Router`` (classmethod): train on calibration
  ``RouterExample``s;
- ``steps(cfg, n_examples) -> int`` (classmethod): progress units of one ``fit``;
- ``scores(texts) -> Tensor [len(texts), N]`` and ``teachers`` (head order);
- ``save(directory)``, and ``load(directory)`` / ``fingerprint(directory)`` (classmethods).

``save`` writes ``router.json`` with at least ``{"kind", "teachers"}``; ``load_router`` reads a
saved router of any kind back through the registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from persyn.core.errors import PersynError
from persyn.core.plugins import ROUTERS, load


def router_class(kind: str) -> Any:
    """The class of router kind ``kind``.

    Raises:
        KeyError: an unknown kind (config validation names it before this).
    """
    return load(ROUTERS, kind, "router kind")


def router_meta(directory: str | Path) -> dict:
    """``router.json`` of a saved router (a router saved before kinds existed is a
    ``bt-encoder``).

    Raises:
        PersynError: ``directory`` holds no saved router.
    """
    path = Path(directory) / "router.json"
    if not path.exists():
        raise PersynError(f"{Path(directory)}: no trained router: run `persyn train-router` first")
    meta = json.loads(path.read_text())
    meta.setdefault("kind", "bt-encoder")
    return meta


def load_router(directory: str | Path) -> Any:
    """The saved router in ``directory``, of whatever kind it is.

    Raises:
        PersynError: no saved router there.
    """
    return router_class(router_meta(directory)["kind"]).load(directory)
