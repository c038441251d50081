"""Triage figures: pure functions from query results to plotly figures (colour-blind-safe palette)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..figures.common import OKABE_ITO, style

STATUS_COLOURS = {"analysed": OKABE_ITO[4], "skipped": OKABE_ITO[0], "unreadable": OKABE_ITO[6 % len(OKABE_ITO)],
                  "failed": OKABE_ITO[5]}


def score_histogram(edges: np.ndarray, counts: np.ndarray, column: str = "suspicion",
                    marker: float | None = None, log_y: bool = True) -> go.Figure:
    """Bars of a score's distribution (``edges``: bins + 1 values, ``counts``: bins), optionally a dashed line
    at ``marker`` (e.g. the score of the selected input)."""
    fig = go.Figure()
    if len(counts):
        centres = (edges[:-1] + edges[1:]) / 2
        fig.add_bar(x=centres, y=counts, width=np.diff(edges), marker_color=OKABE_ITO[4],
                    hovertemplate=f"{column} %{{x:.3f}}<br>%{{y}} inputs<extra></extra>", name=column)
    if marker is not None and np.isfinite(marker):
        fig.add_vline(x=float(marker), line_dash="dash", line_color=OKABE_ITO[5])
    fig.update_xaxes(title=column)
    fig.update_yaxes(title="inputs", type="log" if log_y and len(counts) and counts.max() > 50 else "linear")
    return style(fig, f"Distribution of {column}", height=320)


def status_bar(analysed: int, skipped: int, failed: int, unreadable: int = 0) -> go.Figure:
    """One stacked bar: how every line of the log ended."""
    fig = go.Figure()
    for name, n in (("analysed", analysed), ("skipped", skipped), ("unreadable", unreadable), ("failed", failed)):
        fig.add_bar(y=["lines"], x=[n], name=f"{name} ({n:,})", orientation="h",
                    marker_color=STATUS_COLOURS[name], hovertemplate=f"{name}: %{{x:,}}<extra></extra>")
    fig.update_layout(barmode="stack", legend=dict(orientation="h", y=-0.4))
    fig.update_yaxes(visible=False)
    return style(fig, None, height=140)


def slice_bars(values: list, mean_suspicion: list, inputs: list, column: str) -> go.Figure:
    """Mean suspicion per value of a slice field, bar width labelled with the number of inputs."""
    fig = go.Figure(go.Bar(x=[str(v) for v in values], y=mean_suspicion, marker_color=OKABE_ITO[2],
                           customdata=inputs,
                           hovertemplate="%{x}<br>mean suspicion %{y:.3f}<br>%{customdata} inputs<extra></extra>"))
    fig.update_xaxes(title=column)
    fig.update_yaxes(title="mean suspicion")
    return style(fig, f"Suspicion by {column}", height=300)
