"""Reports anyone can open offline: one self-contained HTML file, and a PDF rendered from it by headless Chromium.

``build_html(sections, meta, lang)`` takes a list of :class:`Section` — a title and a plotly figure, a table
(pandas DataFrame) or paragraphs of text — and writes one HTML file: plotly.js inlined **once** in the head,
every figure interactive, the model, text, settings, seed, versions and time of the analysis in an "about"
block, everything labelled in the chosen language. ``html_to_pdf`` prints it to A4 with Debian's Chromium
(``/usr/bin/chromium`` through Playwright's ``executable_path``; a browser is never downloaded); no figure or
table is split across pages (CSS ``break-inside: avoid``).

Usable from any view: ``story_sections(story, lang)`` for the story; for a head view, the sampled-vs-dense view
or a triage run, pass that view's figures and tables as sections. UI-free (no Streamlit).
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import platform
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from .i18n import t

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
A4_LAYOUT_PX = 751         # A4 less 12 mm margins = 186 mm = 703 px at 96 px/in, plus the 24 px screen padding
                           # on each side: figures are laid out at the printed width (print drops the padding)
FIGURE_HEIGHT = 420

CSS = """
:root { --ink: #1a1a1a; --muted: #5a5a5a; --rule: #d9d9d9; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK JP", "Noto Sans JP", "Source Sans Pro", "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0 auto; padding: 24px; max-width: 1100px; line-height: 1.5; }
h1 { font-size: 28px; margin: 0 0 8px; }
h2 { font-size: 20px; margin: 0 0 8px; }
.about { border: 1px solid var(--rule); border-radius: 6px; padding: 12px 16px; margin: 12px 0 24px; }
.about table { border-collapse: collapse; font-size: 13px; }
.about th { text-align: left; color: var(--muted); font-weight: 600; padding: 2px 16px 2px 0; vertical-align: top; }
.about td { padding: 2px 0; word-break: break-word; }
.section { margin: 0 0 28px; break-inside: avoid; page-break-inside: avoid; }
.section p { margin: 4px 0; font-size: 15px; }
.figure { width: 100%; }
table.data { border-collapse: collapse; font-size: 13px; margin-top: 6px; }
table.data th, table.data td { border-bottom: 1px solid var(--rule); padding: 3px 10px 3px 0; text-align: left; }
footer { color: var(--muted); font-size: 12px; border-top: 1px solid var(--rule); padding-top: 8px; }
@page { size: A4; margin: 12mm; }
@media print {
  body { max-width: none; padding: 0; }
  .section, .about, .js-plotly-plot, table { break-inside: avoid; page-break-inside: avoid; }
  .modebar-container { display: none !important; }
}
"""


@dataclass
class Section:
    """One block of the report: a title, then a figure, a table or text (or several paragraphs)."""
    title: str
    content: go.Figure | pd.DataFrame | str | list[str] | None = None
    paragraphs: list[str] = field(default_factory=list)      # text shown under the title, before the content


def analysis_meta(model: str, settings: dict | None = None, seed: int | None = None, text: str | None = None,
                  versions: dict | None = None, created: str | None = None, **extra) -> dict:
    """The facts written into every report: model, text, settings, seed, versions and time (UTC)."""
    if versions is None:
        import numpy
        import plotly
        import torch
        import transformers
        versions = {"python": platform.python_version(), "torch": torch.__version__,
                    "transformers": transformers.__version__, "numpy": numpy.__version__,
                    "plotly": plotly.__version__}
    meta = {"model": model, "text": text, "settings": dict(settings or {}), "seed": seed, "versions": versions,
            "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    meta.update(extra)
    return meta


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in settings.items())


def _about(meta: dict, lang: str) -> str:
    rows = [(t("report.model", lang), meta.get("model")), (t("report.text", lang), meta.get("text")),
            (t("report.settings", lang), _settings_text(meta.get("settings") or {})),
            (t("report.seed", lang), meta.get("seed")),
            (t("report.versions", lang), ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items())),
            (t("report.created", lang), meta.get("created")), (t("report.language", lang), lang)]
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in rows if v not in (None, ""))
    return (f'<section class="about" aria-label="{html.escape(t("report.about", lang))}"><h2>'
            f'{html.escape(t("report.about", lang))}</h2><table>{body}</table></section>')


def _figure_html(fig: go.Figure, index: int) -> str:
    fig = go.Figure(fig)                                  # a copy: the caller's figure is left as it was
    if fig.layout.height is None:
        fig.update_layout(height=FIGURE_HEIGHT)
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"figure-{index}",
                       config={"displaylogo": False, "responsive": True})


def _content_html(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, go.Figure):
        return f'<div class="figure">{_figure_html(content, index)}</div>'
    if isinstance(content, pd.DataFrame):
        return content.to_html(index=False, classes="data", border=0, escape=True, na_rep="–")
    paragraphs = [content] if isinstance(content, str) else list(content)
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def build_html(sections: list[Section], meta: dict, lang: str = "en", title: str | None = None) -> str:
    """One self-contained HTML page (UTF-8): plotly.js inlined once, then the about block and the sections."""
    from plotly.offline import get_plotlyjs
    title = title or t("report.title", lang)
    parts = []
    for i, sec in enumerate(sections):
        paras = "".join(f"<p>{html.escape(p)}</p>" for p in sec.paragraphs)
        parts.append(f'<section class="section"><h2>{html.escape(sec.title)}</h2>{paras}'
                     f"{_content_html(sec.content, i)}</section>")
    if not parts:
        parts.append(f"<p>{html.escape(t('report.empty', lang))}</p>")
    meta_json = json.dumps(meta, ensure_ascii=False, default=str).replace("</", "<\\/")
    return (f'<!DOCTYPE html>\n<html lang="{html.escape(lang)}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script>'
            f'<script type="application/json" id="expertlens-meta">{meta_json}</script></head>'
            f"<body><h1>{html.escape(title)}</h1>{_about(meta, lang)}{''.join(parts)}"
            f"<footer>{html.escape(t('report.footer', lang))}</footer></body></html>")


def html_to_pdf(page_html: str, chromium: str = CHROMIUM, timeout_ms: int = 60_000) -> bytes:
    """A4 PDF of a report page, printed by headless Chromium with every network request refused (the page needs
    none). Raises ``RuntimeError`` with one line when Chromium or Playwright is missing."""
    from pathlib import Path
    if not Path(chromium).exists():
        raise RuntimeError(f"Chromium not found at {chromium}: install it with `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:  # pragma: no cover - playwright is pinned in requirements.txt
        raise RuntimeError("the playwright package is not installed") from err

    def render() -> bytes:
        with sync_playwright() as p:
            return _print(p, page_html, chromium, timeout_ms)

    # Playwright's sync API refuses to run inside a running event loop (a server, a test's browser): print
    # from a thread of its own.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(render).result()


def _print(p, page_html: str, chromium: str, timeout_ms: int) -> bytes:
    browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": A4_LAYOUT_PX, "height": 1123})
        page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(("data:", "about:"))
                   else route.continue_())
        page.set_content(page_html, wait_until="load", timeout=timeout_ms)
        n = page.evaluate("() => document.querySelectorAll('.plotly-graph-div').length")
        if n:
            page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n}",
                                   timeout=timeout_ms)
        page.emulate_media(media="print")
        return page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
    finally:
        browser.close()


# --- sections of the views ------------------------------------------------------------------------------------

def story_sections(story, lang: str = "en") -> list[Section]:
    """One section per story step: its title, its caption lines, its figure (when it has one)."""
    from .figures.story import step_figure
    out = []
    for i, step in enumerate(story.steps, start=1):
        title = f"{i}. {t(step.title_key, lang)}"
        out.append(Section(title, step_figure(step, lang), step.text(lang)))
    return out


def story_report(story, lang: str = "en") -> str:
    """The story as one self-contained HTML report."""
    meta = analysis_meta(story.model, story.meta.get("settings"), story.meta.get("seed"), story.text,
                         story.meta.get("versions"), story.meta.get("created"))
    return build_html(story_sections(story, lang), meta, lang, title=f"{t('report.title', lang)} — "
                                                                    f"{t('story.nav', lang)}")
