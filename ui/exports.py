"""Every figure with a PNG modebar button and a self-contained HTML download; every table with a CSV download.

Tables are shown with Markdown switched off in their cells: a predicted token such as ``-``, ``*`` or ``#``
is shown as itself, never rendered as a bullet, emphasis or heading.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import streamlit as st

from interp.figures.common import chart_config, safe_filename, to_html
from ui.session import tr

_MARKDOWN_SPECIAL = "\\`*_{}[]<>()#+-.!|~$"


def escape_markdown(text: str) -> str:
    """``text`` with every Markdown-significant character backslash-escaped (shown literally)."""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in str(text))


def _display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The table as shown by ``st.table`` (which renders cell strings as Markdown): text cells escaped."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: escape_markdown(v) if isinstance(v, str) else v)
    return out


def show_figure(fig, name: str, key: str, alt: str | None = None, on_select: str | Callable | None = None,
                download: bool = True):
    """Render a plotly figure (PNG export from its modebar) with an HTML download (plotly.js inlined; with
    ``download=False`` the page places :func:`figure_download` itself). Returns the selection state when
    ``on_select`` is given."""
    filename = safe_filename(name)
    kwargs = dict(key=key, config=chart_config(filename), width="stretch", theme=None)
    if alt:
        kwargs["alt"] = alt
    if on_select is not None:
        event = st.plotly_chart(fig, on_select=on_select, selection_mode="points", **kwargs)
    else:
        event = st.plotly_chart(fig, **kwargs)
    if download:
        figure_download(fig, name, key)
    return event


def show_live_figure(fig, name: str, key: str, alt: str, summary: str, download: bool = True) -> None:
    """Like :func:`show_figure`, for a chart whose figure changes on every rerun under the same ``key`` (the head
    page's chart on a head switch): drawn by :mod:`ui.live_chart`, which keeps one chart mounted and updates it
    in place. ``alt`` titles the frame and the chart; ``summary`` is the chart's text alternative for screen
    readers. PNG export from the modebar and the HTML download as in :func:`show_figure`."""
    from ui.live_chart import live_chart
    from ui.session import lang
    live_chart(fig, key=key, config=chart_config(safe_filename(name)), title=alt, summary=summary, lang=lang(),
               png_title=tr("export.png_button"))
    if download:
        figure_download(fig, name, key)


def figure_download(fig, name: str, key: str) -> None:
    """The self-contained HTML download of a figure shown with ``show_figure(..., download=False)`` (the HTML is
    made when the button is clicked)."""
    st.download_button(tr("export.html"), data=lambda: to_html(fig, name), file_name=f"{safe_filename(name)}.html",
                       mime="text/html", key=f"{key}__html", on_click="ignore", help=tr("export.html_help"),
                       icon=":material/download:")


def table_download(df: pd.DataFrame, name: str, key: str) -> None:
    """The CSV download of a table (raw values, unescaped; made when the button is clicked)."""
    st.download_button(tr("export.csv"), data=lambda: df.to_csv(index=False), file_name=f"{safe_filename(name)}.csv",
                       mime="text/csv", key=f"{key}__csv", on_click="ignore", help=tr("export.csv_help"),
                       icon=":material/table:")


def markdown_table(df: pd.DataFrame, title: str | None = None, digits: int = 4) -> str:
    """``df`` as one Markdown table (numbers right-aligned, floats with ``digits`` decimals, text escaped so
    that it shows literally), under a bold ``title`` when given."""
    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{v:.{digits}f}"
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        return escape_markdown(v)

    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = ["| " + " | ".join(escape_markdown(c) for c in df.columns) + " |",
             "|" + "|".join("---:" if num else "---" for num in numeric) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return (f"**{title}**\n\n" if title else "") + "\n".join(lines)


def show_markdown_table(df, name: str, key: str, title: str | None = None, digits: int = 4,
                        download: bool = True) -> None:
    """A small table as one Markdown element (one element for the browser to draw, not one per cell), with a
    CSV download of the raw values (unrounded, unescaped; with ``download=False`` the page places
    :func:`table_download` itself)."""
    if df is None or len(df) == 0:
        st.caption(tr("empty.no_data"))
        return
    st.markdown(markdown_table(df, title, digits))
    if download:
        table_download(df, name, key)


def show_table(df, name: str, key: str, height: int | str = "auto") -> None:
    """A table with a CSV download (the CSV holds the raw values, unescaped)."""
    if df is None or len(df) == 0:
        st.caption(tr("empty.no_data"))
        return
    if len(df) <= 12 and height == "auto":      # small tables as plain HTML: much lighter for the browser
        st.table(_display_frame(df), hide_index=True)
    else:
        st.dataframe(df, hide_index=True, width="stretch", height=height, key=f"{key}__df")
    st.download_button(tr("export.csv"), data=lambda: df.to_csv(index=False), file_name=f"{safe_filename(name)}.csv",
                       mime="text/csv", key=f"{key}__csv", on_click="ignore", help=tr("export.csv_help"),
                       icon=":material/table:")
