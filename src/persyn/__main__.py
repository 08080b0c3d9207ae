"""``python -m persyn``: the same as the ``persyn`` command."""

from persyn.cli import app

app(prog_name="persyn")
