"""Shared styling and export for every figure: colour-blind-safe palettes, compact arrays, self-contained HTML.

Pure: plotly only, no Streamlit. Sequential data use viridis or cividis (perceptually uniform, readable with
every common colour-vision deficiency); categories use the Okabe–Ito palette (Okabe & Ito, "Color Universal
Design", 2008); signed data use the blue–orange diverging scale, which stays distinct under deuteranopia and
protanopia.
"""
from __future__ import annotations

import unicodedata

import numpy as np
import plotly.graph_objects as go

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
SEQUENTIAL = "Viridis"
SEQUENTIAL_ALT = "Cividis"
DIVERGING = [[0.0, "#0072B2"], [0.5, "#F7F7F7"], [1.0, "#D55E00"]]   # blue – white – orange (Okabe–Ito ends)
SPECIAL_COLOUR = OKABE_ITO[7]
FONT = dict(family="Inter, Source Sans Pro, Arial, sans-serif", size=13)


def compact(a, dtype=np.float32) -> np.ndarray:
    """A float32 copy of ``a``: plotly ships numpy arrays as base64 typed arrays, so float32 halves the bytes
    the browser receives compared with float64 (and is what every computation is checked in)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(a, dtype=dtype))


TITLE_CHARS = 34      # a chart in the narrow column of a 1280-px page has room for this many title characters
TITLE_FONT = dict(size=15)


def wrap_title(title: str, width: int = TITLE_CHARS) -> str:
    """``title`` broken into lines of at most ``width`` characters at spaces (plotly does not wrap titles; a
    long one is clipped at the chart's edge), joined with ``<br>``."""
    lines, line = [], ""
    for word in title.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "<br>".join(lines)


def style(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    """House layout: title (wrapped, with room for every line), font, tight margins, white background, no plotly
    logo in exports."""
    text = wrap_title(title) if title else None
    lines = text.count("<br>") + 1 if text else 0
    layout = dict(title=dict(text=text, x=0.0, xanchor="left", y=1.0, yanchor="top", pad=dict(t=12), font=TITLE_FONT)
                  if title else None, font=FONT,
                  margin=dict(l=10, r=10, t=24 + 20 * lines if title else 20, b=10), plot_bgcolor="white",
                  paper_bgcolor="white", hoverlabel=dict(font_size=13))
    if height and lines > 1:
        height += 20 * (lines - 1)
    if height:
        layout["height"] = height
    for name in fig.layout:                       # every x/y axis the figure has (one update, not one per axis)
        if name.startswith(("xaxis", "yaxis")):
            layout[name] = dict(automargin=True)
    layout.setdefault("xaxis", dict(automargin=True))
    layout.setdefault("yaxis", dict(automargin=True))
    fig.update_layout(layout)
    return fig


def chart_config(filename: str) -> dict:
    """plotly config: PNG export from the modebar camera at 2× scale under ``filename``; no logo, no links."""
    return {"displaylogo": False, "responsive": True,
            "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
            "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def to_html(fig: go.Figure, title: str = "ExpertLens figure") -> str:
    """A self-contained HTML page: plotly.js inlined (no CDN, opens offline), PNG export in its modebar."""
    return fig.to_html(include_plotlyjs=True, full_html=True, config=chart_config(safe_filename(title)),
                       div_id="expertlens-figure")


def safe_filename(name: str) -> str:
    """A file name made of letters, digits, '-', '_' and '.' only."""
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-") or "figure"


def token_labels(tokens: list[str]) -> list[str]:
    """Axis labels "j·token" (unique even when a token repeats)."""
    return [f"{j}·{tok}" for j, tok in enumerate(tokens)]


def tick_step(n: int, max_ticks: int = 40) -> int:
    """Show every step-th tick label so that at most ``max_ticks`` labels are drawn."""
    return max(1, int(np.ceil(n / max_ticks)))


CHAR_PX = 7.2          # the width of one character of FONT (13 px Inter/Arial: 6–7.5 px; taken generously)
WIDE_PX = 13.5         # a wide (CJK) character: one em
LINE_PX = 16           # the height of one line of FONT


def _text_px(text: str) -> float:
    return sum(WIDE_PX if unicodedata.east_asian_width(c) in "WF" else CHAR_PX for c in text)


def label_extent(labels: list[str], angle: float = 0.0) -> int:
    """Pixels that tick labels need across their axis: a label w wide and one line high, rotated by ``angle``
    degrees, spans w·|sin a| + h·|cos a| across a horizontal axis (``angle`` 0 means horizontal labels on a
    vertical axis: their width)."""
    w = max((_text_px(str(s)) for s in labels), default=0.0)
    if angle == 0:
        return int(np.ceil(round(w, 6)))
    a = np.deg2rad(abs(angle))
    return int(np.ceil(round(w * np.sin(a) + LINE_PX * np.cos(a), 6)))


def fixed_margins(fig: go.Figure, left: int, bottom: int) -> go.Figure:
    """Margins set from the labels' known sizes instead of plotly's automargin, which draws the figure, measures
    every label and draws it again (twice the browser's work on every new chart); tick labels are drawn without
    the per-label overflow test (one layout query per label), since the margins hold them. ``left``/``bottom``:
    pixels for the tick labels and axis titles on those sides."""
    axes = {name: dict(automargin=False, ticklabeloverflow="allow") for name in fig.layout
            if name.startswith(("xaxis", "yaxis"))}
    fig.update_layout(margin=dict(l=10 + left, b=10 + bottom), **axes)
    return fig


def token_axis(tokens: list[str], max_ticks: int = 40) -> dict:
    """A numeric axis labelled with tokens (numbers ship less than repeated category strings)."""
    step = tick_step(len(tokens), max_ticks)
    idx = list(range(0, len(tokens), step))
    return dict(tickmode="array", tickvals=idx, ticktext=[f"{j}·{tokens[j]}" for j in idx])
