"""Production-log triage: score every logged input, rank the rare fragile ones, open any one in the explorer.

Library API (no Streamlit): :func:`inspect_log` and :class:`ColumnMapping` to read a log, :func:`run_triage`
to score it into a run folder (resumable), :class:`ResultsQuery` to query the results with DuckDB,
:func:`explorer_url` for shareable links, :data:`SUSPICION_FORMULA` for the combined score.
"""
from .links import explorer_url, row_url  # noqa: F401
from .readers import (FORMATS, REASONS, ColumnMapping, LogError, LogInfo, LogReader, MappingError,  # noqa: F401
                      inspect_log)
from .runner import Progress, Triage, TriageConfig, format_seconds, run_triage  # noqa: F401
from .scores import (MASK_POLICIES, SUSPICION_FORMULA, TERMS, ConcentrationNorm, ScoreSettings,  # noqa: F401
                     example_key, score_batch)
from .store import RESERVED, ResultsQuery, RunFolder  # noqa: F401
