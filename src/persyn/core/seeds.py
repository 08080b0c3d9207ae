"""The seeds a run derives from its one ``seed``: written once here, used by the stages and
recorded in the store (``seeds`` meta, shown in ``summary.json``)."""

#: Offset of each use's seed from the run's ``seed``.
SEED_OFFSETS: dict[str, int] = {
    "prompts": 0,
    "calibration_draw": 0,
    "sampling": 0,
    "router_training": 0,
    "router_cv_folds": 1,
    "router_bootstrap": 2,
    "frontier_bootstrap": 3,
    "prompts.sample": 4,
}


def derived_seed(seed: int, use: str) -> int:
    """The seed of ``use`` (a key of ``SEED_OFFSETS``) in a run with ``seed``.

    Raises:
        KeyError: an unknown use.
    """
    return seed + SEED_OFFSETS[use]


def seed_table(seed: int) -> dict[str, int]:
    """Every use's seed in a run with ``seed`` (what the store records)."""
    return {use: seed + off for use, off in SEED_OFFSETS.items()}
