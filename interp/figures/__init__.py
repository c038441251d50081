"""Pure figures and tables for the dashboard: engine results → plotly ``Figure`` / pandas ``DataFrame``.

Nothing here imports Streamlit; every figure can be built in a test or a script and exported with
:func:`common.to_html` (self-contained, plotly.js inlined) or as PNG from the chart's modebar.
"""
from .common import OKABE_ITO, SEQUENTIAL, SEQUENTIAL_ALT, chart_config, compact, safe_filename, to_html

__all__ = ["OKABE_ITO", "SEQUENTIAL", "SEQUENTIAL_ALT", "chart_config", "compact", "safe_filename", "to_html"]
