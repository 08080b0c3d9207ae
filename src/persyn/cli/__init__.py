"""The ``persyn`` command line (``[project.scripts] persyn = "persyn.cli:app"``, and
``python -m persyn``): the commands (``commands``), what they print (``render``), and the run
config they work on, from a YAML file or a run's output directory (``configs``)."""

from persyn.cli.commands import app

__all__ = ["app"]
