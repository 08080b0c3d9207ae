"""Response generators behind one small interface (see ``engines.base.Engine``)."""

from persyn.engines.base import Completion, Engine, make_engine

__all__ = ["Completion", "Engine", "make_engine"]
