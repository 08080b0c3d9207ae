"""The run config a command works on: a YAML file or a run's output directory (the
``run_config.json`` it was made with), with the command line's overrides."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from persyn.core.errors import PersynError
from persyn.core.plugins import EXECUTORS

#: ``--executor``: where the stages' jobs run (the names of ``persyn.core.plugins.EXECUTORS``).
Executor = StrEnum("Executor", {name: name for name in EXECUTORS})


def command_config(
    config: Path, output_dir: Path | None, executor: Executor | None = None, ray_address: str | None = None
):
    """The run config of ``config``: a YAML file, or an output directory (its
    ``run_config.json``, with ``output_dir`` set to that directory); then the command line's
    ``--output-dir``, ``--executor`` and ``--ray-address`` over it.

    Raises:
        ConfigError: the config does not validate.
        PersynError: ``config`` does not exist, an output directory without a readable
            ``run_config.json``, or
            ``--ray-address`` with ``--executor local``.
    """
    from persyn.config import load_config

    if not config.exists():
        raise PersynError(
            f"{config}: no such file or directory; give a config file (YAML) or a run's output "
            "directory (it holds run_config.json)"
        )
    cfg = config_of_dir(config) if config.is_dir() else load_config(config)
    if output_dir is not None:
        cfg.output_dir = output_dir
    override_executor(cfg, executor, ray_address)
    return cfg


def override_executor(cfg, executor: Executor | None, ray_address: str | None) -> None:
    """Set ``cfg.executor`` (and ``cfg.ray_address``) from ``--executor`` / ``--ray-address``.

    Raises:
        PersynError: ``--ray-address`` with ``--executor local``.
    """
    if ray_address is not None and executor == Executor.local:
        raise PersynError("--ray-address joins a Ray cluster: it cannot go with --executor local")
    if executor is not None:
        cfg.executor = executor.value
    if ray_address is not None:
        cfg.executor, cfg.ray_address = "ray", ray_address


def config_of_dir(output_dir: Path):
    """The config an output directory was made with (``run_config.json``), its ``output_dir``
    set to that directory.

    Raises:
        PersynError: the directory holds no readable ``run_config.json``.
    """
    from persyn.config import parse_config

    path = output_dir / "run_config.json"
    if not path.exists():
        raise PersynError(
            f"{path} not found: {output_dir} is not a persyn output directory (run `persyn run`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PersynError(f"{path}: unreadable ({exc})") from None
    cfg = parse_config(data, source=str(path))
    cfg.output_dir = output_dir
    return cfg
