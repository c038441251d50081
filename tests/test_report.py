"""The self-contained report: plotly.js inlined once, no network reference, the analysis facts written in, in the
chosen language; in headless Chromium with every network request refused, every figure renders; the PDF is A4
and keeps each figure on one page (CSS break-inside: avoid, as the print engine computes it)."""
from __future__ import annotations

import json
import re

import pandas as pd
import plotly.graph_objects as go
import pytest

from interp import story as S
from interp.i18n import t
from interp.loader import load_model
from interp.report import Section, analysis_meta, build_html, html_to_pdf, story_report

TEXT = "She put the book on the [MASK] and left the room."


@pytest.fixture(scope="module")
def story():
    return S.build_story(load_model("paper"), TEXT, S.StorySettings("A", 4, 4, 7), noise_module=None)


def sections():
    figs = [go.Figure(go.Bar(x=["a", "b"], y=[1, 2])), go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])),
            go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], mode="lines+markers"))]
    table = pd.DataFrame({"token": ["<b>x</b>", "y"], "gate": [0.25, 0.75]})
    return [Section("Bars", figs[0], ["A caption."]), Section("Heat", figs[1]), Section("Table", table),
            Section("Line", figs[2]), Section("Words", ["one", "two"])]


def meta():
    return analysis_meta("paper", {"scheme": "A", "k": 4}, 7, TEXT)


def test_plotly_inlined_once_and_no_network_reference():
    page = build_html(sections(), meta(), "en")
    assert page.count("<script") - page.count('type="application/json"') == 1 + 3      # plotly.js + one per figure
    from plotly.offline import get_plotlyjs
    assert page.count(get_plotlyjs()[:200]) == 1 and page.count(get_plotlyjs()) == 1
    outside = page.replace(get_plotlyjs(), "")              # the report's own markup, plotly.js's source aside
    assert not re.search(r"""(src|href)=["']https?://""", outside)
    assert "cdn.plot.ly" not in outside
    assert page.count('class="plotly-graph-div"') == 3


def test_facts_of_the_analysis_are_written_in_in_the_chosen_language():
    m = meta()
    page = build_html(sections(), m, "ja")
    assert '<html lang="ja">' in page
    for key in ("report.model", "report.settings", "report.seed", "report.versions", "report.created"):
        assert t(key, "ja") in page
    settings = f"{t('report.setting.scheme', 'ja')} = A, {t('report.setting.k', 'ja')} = 4"      # names in Japanese
    for v in (m["created"], m["versions"]["torch"], m["versions"]["transformers"], settings):
        assert str(v) in page
    embedded = json.loads(re.search(r'id="expertlens-meta">(.*?)</script>', page).group(1))
    assert embedded["seed"] == 7 and embedded["model"] == "paper"
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page                  # table cells escaped


def test_story_report_has_one_section_per_step(story):
    page = story_report(story, "ja")
    for i, step in enumerate(story.steps, start=1):
        assert f"{i}. {t(step.title_key, 'ja')}" in page
    n_figs = sum(1 for s in story.steps if s.kind in ("prediction", "experts", "baseline", "sampling", "break"))
    assert page.count('class="plotly-graph-div"') == n_figs
    assert f"{t('report.setting.seed', 'ja')} = 7" in page


# --- real browser -------------------------------------------------------------------------------------------

def open_offline(chromium, page_html: str, width: int = 1000):
    """A page holding ``page_html`` with every network request aborted (and recorded)."""
    page = chromium.new_page(viewport={"width": width, "height": 900})
    attempted = []

    def block(route):
        attempted.append(route.request.url)
        route.abort()
    page.route("**/*", block)
    page.set_content(page_html, wait_until="load")
    return page, attempted


DRAWN_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
    const svg = gd.querySelector('svg.main-svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {svg: !!svg, w: box.width, h: box.height,
            marks: gd.querySelectorAll('g.barlayer path, g.heatmaplayer image, g.scatterlayer path.point, '
                                       + 'g.scatterlayer path.js-line').length};
})"""


@pytest.mark.browser
def test_every_figure_renders_offline(chromium, story):
    for page_html, expected in ((build_html(sections(), meta(), "en"), 3), (story_report(story, "ja"), None)):
        page, attempted = open_offline(chromium, page_html)
        n = page.evaluate("() => document.querySelectorAll('.plotly-graph-div').length")
        assert n == (expected if expected is not None else n) and n >= 3
        page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= {n}",
                               timeout=60_000)
        drawn = page.evaluate(DRAWN_JS)
        assert len(drawn) == n
        assert all(d["svg"] and d["w"] > 200 and d["h"] > 200 and d["marks"] >= 1 for d in drawn), drawn
        assert attempted == [], attempted                         # nothing was fetched: it works offline
        page.emulate_media(media="print")
        avoid = page.evaluate("() => Array.from(document.querySelectorAll('.section')).map("
                              "s => getComputedStyle(s).breakInside)")
        assert avoid and set(avoid) == {"avoid"}
        page.close()


@pytest.mark.browser
def test_pdf_is_a4_with_japanese_drawn_in_a_cjk_font(chromium, story):
    from conftest import need_chromium
    need_chromium()
    pdf = html_to_pdf(story_report(story, "ja"))
    assert pdf.startswith(b"%PDF")
    fonts = set(re.findall(rb"/FontName\s*/[A-Z]{6}\+([A-Za-z0-9\-]+)", pdf))
    assert any(b"CJK" in f for f in fonts), f"no CJK font embedded (install fonts-noto-cjk): {fonts}"
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert boxes and all(abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2 for w, h in boxes), boxes[:3]
    assert len(boxes) >= 3                                         # seven steps with figures need several pages


def test_pdf_without_chromium_is_one_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="Chromium not found"):
        html_to_pdf("<html></html>", chromium=str(tmp_path / "no-chromium"))
