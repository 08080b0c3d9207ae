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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persyn.core.errors import PersynError
from persyn.core.plugins import ROUTERS, load


@dataclass
class RouterExample:
    """One calibration prompt: its text and its pairs ``(a, b, C)`` over teacher indices, with
    C = P(b beats a) as given by the combined reward (see ``scoring.combine.pair_labels``)."""

    text: str
    pairs: list[tuple[int, int, float]]


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


def router_figures(picks: list[str], rewards: list[dict[str, float | None]]) -> dict[str, float]:
    """Top-1 agreement with the Oracle and regret of a list of picks.

    Args:
        picks: the chosen teacher per prompt.
        rewards: per prompt, ``{teacher: combined reward or None (failed)}``.

    Returns:
        ``{"top1": fraction of prompts where the pick's reward equals the Oracle's (ties count
        as agreement), "regret": mean(Oracle reward − pick's reward), "n": prompts counted}``.
        A pick whose response failed counts with the prompt's lowest valid reward; prompts with
        no valid response are not counted.
    """
    hits, regret, n = 0, 0.0, 0
    for pick, r in zip(picks, rewards, strict=True):
        valid = [v for v in r.values() if v is not None]
        if not valid:
            continue
        best = max(valid)
        got = r.get(pick)
        got = min(valid) if got is None else got
        hits += int(got >= best - 1e-12)
        regret += best - got
        n += 1
    return {
        "top1": hits / n if n else float("nan"),
        "regret": regret / n if n else float("nan"),
        "n": n,
    }
