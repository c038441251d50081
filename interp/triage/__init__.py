"""Production-log triage: score every logged input, rank the rare fragile ones, open any one in the explorer.

Library API (no Streamlit): :func:`inspect_log` and :class:`ColumnMapping` to read a log, :func:`run_triage`
to score it into a run folder (resumable), :class:`ResultsQuery` to query the results with DuckDB,
:func:`explorer_url` for shareable links, :data:`SUSPICION_FORMULA` for the combined score.

Names are imported lazily, so that reading a log (``interp.triage.readers``) does not load the model stack.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "explorer_url": "links", "row_url": "links",
    "FORMATS": "readers", "REASONS": "readers", "ColumnMapping": "readers", "LogError": "readers",
    "LogInfo": "readers", "LogReader": "readers", "MappingError": "readers", "inspect_log": "readers",
    "Progress": "runner", "Triage": "runner", "TriageConfig": "runner", "format_seconds": "runner",
    "run_triage": "runner",
    "MASK_POLICIES": "scores", "SUSPICION_FORMULA": "scores", "TERMS": "scores", "ConcentrationNorm": "scores",
    "ScoreSettings": "scores", "example_key": "scores", "score_batch": "scores",
    "RESERVED": "store", "ResultsQuery": "store", "RunFolder": "store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
