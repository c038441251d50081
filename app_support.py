"""Compatibility name for the dashboard's Streamlit layer, now the :mod:`ui` package (state, session, engine,
exports, chrome). ``import app_support as ui`` keeps working for pages written against it."""
from ui import *  # noqa: F401,F403
from ui import DEFAULT_SEEDS, LOCAL, PARAMS  # noqa: F401
from ui.state import INT_RANGES  # noqa: F401

__all__ = [name for name in dir(__import__("ui")) if not name.startswith("_")]
