"""Response generators behind one small interface (see ``engines.base.Engine``)."""

from persyn.core.records import Completion
from persyn.engines.base import Engine, make_engine

__all__ = ["Completion", "Engine", "make_engine"]
