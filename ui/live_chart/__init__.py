"""A plotly chart that updates in place across reruns: a Streamlit component (``index.html`` in this folder, plain
JavaScript, no build step) keyed by a stable key, so that its iframe stays mounted and each new figure is drawn
with ``Plotly.react`` (an in-place update) instead of a new chart.

``st.plotly_chart`` in the installed Streamlit identifies its element by a hash of the figure, so every change of
figure unmounts the chart and mounts a new one (see docs/BENCHMARKS.md, "Head switch"). The component receives
the figure as plotly's own JSON (``fig.to_json()``: the same data, layout and hover templates that
``st.plotly_chart`` ships), the plotly config (PNG export from the modebar), a title for the frame and a text
summary for screen readers.

plotly.js is the copy bundled with the plotly Python package (``plotly/package_data/plotly.min.js``), copied
next to ``index.html`` on first use (it is not committed) so the component serves it itself: the app works
offline and never loads a CDN. Where this folder is not writable, the component is served from a copy in the
temporary directory.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import streamlit.components.v1 as components

HERE = Path(__file__).resolve().parent
PLOTLY_JS = "plotly.min.js"


def _bundled_plotly_js() -> Path:
    import plotly
    return Path(plotly.__file__).resolve().parent / "package_data" / PLOTLY_JS


def _install(folder: Path, source: Path) -> None:
    """``folder`` holds index.html and the same plotly.min.js as ``source`` (written atomically, so that two
    server processes starting at once never serve a half-written file)."""
    folder.mkdir(parents=True, exist_ok=True)
    if folder != HERE:
        shutil.copyfile(HERE / "index.html", folder / "index.html")
    target = folder / PLOTLY_JS
    if target.exists() and target.stat().st_size == source.stat().st_size:
        return
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".plotly-", suffix=".js")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def component_folder() -> Path:
    """The folder the component is served from (this one, or a copy in the temporary directory)."""
    source = _bundled_plotly_js()
    try:
        _install(HERE, source)
        return HERE
    except OSError:
        import plotly
        folder = Path(tempfile.gettempdir()) / f"expertlens-live-chart-{plotly.__version__}"
        _install(folder, source)
        return folder


_component = components.declare_component("live_chart", path=str(component_folder()))


def component_args(fig, config: dict, title: str, summary: str, lang: str, png_title: str) -> dict:
    """What the component receives: the figure as plotly JSON (a string, parsed in the browser), the plotly
    config (its PNG file name is read by the component's own PNG button, so that the config plotly sees stays
    the same across figures), the frame's title, the text alternative, the page language and the PNG button's
    tooltip."""
    return {"spec": fig.to_json(), "config": config, "title": title, "summary": summary, "lang": lang,
            "png_title": png_title}


def live_chart(fig, key: str, config: dict, title: str, summary: str, lang: str, png_title: str) -> None:
    """Draw ``fig`` in the live chart under ``key`` (the same key on every rerun keeps the chart mounted)."""
    _component(**component_args(fig, config, title, summary, lang, png_title), key=key, default=None, tab_index=0)


def spec_of(args_json: str) -> dict:
    """The figure inside a component's serialised arguments (what a test reads back from the page)."""
    return json.loads(json.loads(args_json)["spec"])


__all__ = ["component_args", "component_folder", "live_chart", "spec_of"]

