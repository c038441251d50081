"""The live-chart component: served offline (plotly.js is the plotly package's own copy, next to index.html; no
script from the network), installed atomically into another folder when needed, and fed the figure's own JSON."""
from __future__ import annotations

import json
import re

import plotly.graph_objects as go

from ui import live_chart


def test_index_loads_only_local_scripts_and_speaks_the_component_protocol():
    html = (live_chart.HERE / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html)
    assert sources == ["plotly.min.js"]                                  # no CDN, no other file
    assert "http://" not in html and "https://" not in html
    for message in ("streamlit:componentReady", "streamlit:render", "streamlit:setFrameHeight"):
        assert message in html
    assert "apiVersion: 1" in html and "Plotly.react" in html


def test_served_plotly_is_the_packages_copy(tmp_path):
    folder = live_chart.component_folder()
    served = folder / live_chart.PLOTLY_JS
    assert served.read_bytes() == live_chart._bundled_plotly_js().read_bytes()
    other = tmp_path / "copy"
    live_chart._install(other, live_chart._bundled_plotly_js())
    assert (other / "index.html").read_text(encoding="utf-8") == (live_chart.HERE / "index.html").read_text(
        encoding="utf-8")
    assert (other / live_chart.PLOTLY_JS).stat().st_size == served.stat().st_size
    assert [p.name for p in other.iterdir() if p.name.startswith(".plotly-")] == []   # no temporary file left


def test_component_args_carry_the_figure_json_unchanged():
    fig = go.Figure(go.Heatmap(z=[[0.25, 0.75], [1.0, 0.0]]), layout=dict(height=300))
    args = live_chart.component_args(fig, {"displaylogo": False}, "title", "summary", "ja", "PNG")
    assert json.loads(args["spec"]) == json.loads(fig.to_json())
    assert live_chart.spec_of(json.dumps(args)) == json.loads(fig.to_json())
    assert (args["config"], args["title"], args["summary"], args["lang"], args["png_title"]) == (
        {"displaylogo": False}, "title", "summary", "ja", "PNG")
