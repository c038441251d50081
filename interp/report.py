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


def _settings_text(settings: dict, lang: str = "en") -> str:
    """``name = value, …`` with each setting's name in ``lang`` (``report.setting.<name>`` when there is one)."""
    from .i18n import EN
    return ", ".join(f"{t('report.setting.' + k, lang) if 'report.setting.' + k in EN else k} = {v}"
                     for k, v in settings.items())


def _about(meta: dict, lang: str) -> str:
    rows = [(t("report.model", lang), meta.get("model")), (t("report.text", lang), meta.get("text")),
            (t("report.settings", lang), _settings_text(meta.get("settings") or {}, lang)),
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


def _plain(markdown: str) -> str:
    """A caption written for Markdown (``**bold**``), as plain text for the report."""
    return markdown.replace("**", "")


def _title(fig: go.Figure, fallback: str) -> str:
    """A section title: the figure's own title (unwrapped), else ``fallback``."""
    text = fig.layout.title.text if fig.layout.title and fig.layout.title.text else None
    return text.replace("<br>", " ") if text else fallback


# --- a head view ------------------------------------------------------------------------------------------------

def head_sections(hv, query: int, special=None, lang: str = "en", top: int = 8) -> list[Section]:
    """The head page's views of one head at one query, as report sections: the caption, the gate and firing
    heatmaps, the query's row, the top experts, the message norms and the positional profile (the same figure
    functions as the page, so the same numbers)."""
    from .figures import head as fh
    gate = fh.gate_heatmap(hv, query, "gate", lang)
    firing = fh.gate_heatmap(hv, query, "firing", lang)
    row = fh.query_row(hv, query, lang)
    norms = fh.message_norms_figure(hv, special, lang)
    profile = fh.profile_figure(hv, lang)
    return [Section(t("head.header", lang, layer=hv.layer, head=hv.head), None, [_plain(fh.caption(hv, query, lang))]),
            Section(_title(gate, t("head.show_gate", lang)), gate),
            Section(_title(firing, t("head.show_firing", lang)), firing),
            Section(_title(row, t("head.top", lang)), row),
            Section(t("head.top", lang), fh.top_experts_table(hv, query, top, lang)),
            Section(_title(norms, t("head.section.messages", lang)), norms),
            Section(_title(profile, t("head.section.messages", lang)), profile)]


def head_report(hv, query: int, model: str, text: str, special=None, lang: str = "en",
                versions: dict | None = None, created: str | None = None) -> str:
    """One head at one query as a self-contained HTML report."""
    meta = analysis_meta(model, {"layer": hv.layer, "head": hv.head, "query": query}, None, text, versions, created)
    return build_html(head_sections(hv, query, special, lang), meta, lang,
                      title=f"{t('report.title', lang)} — {t('head.header', lang, layer=hv.layer, head=hv.head)}")


# --- the sampled-vs-dense view ------------------------------------------------------------------------------------

def sampling_sections(*, tokens: list[str], rows, report, effect, flops: pd.DataFrame | None, scheme: str, k: int,
                      seeds: int, seed: int, layer: int, head: int, query: int, replicate: int = 0,
                      metric: str = "tv", nospecial: bool = False, n_layers: int | None = None,
                      n_heads: int | None = None, mask_positions: list[int] | None = None,
                      lang: str = "en") -> list[Section]:
    """The sampled-vs-dense page's results as report sections: the query's dense and sampled rows, the error
    heatmap over layers × heads with every per-head summary, the downstream effect, the variance and the error
    concentration of the selected head, and the FLOPs table (the page's figure functions and numbers)."""
    from .figures import sampling as fs
    from .i18n import plural
    dense, sampled = rows
    out = []
    fig = fs.rows_figure(dense, sampled, tokens, replicate, query, layer, head, seed, lang)
    out.append(Section(_title(fig, t("samp.header", lang)), fig))
    out.append(Section(t("samp.rows_table", lang), fs.row_table(dense, sampled, tokens, lang)))
    grid = fs.head_grid(report, metric, nospecial=nospecial, n_layers=n_layers, n_heads=n_heads)
    out.append(Section(t("samp.errors", lang), fs.error_heatmap(grid, metric, (layer, head), lang)))
    out.append(Section(t("samp.heads_table", lang), fs.heads_table(report)))
    if effect is not None:
        if effect.has_mlm_head:
            masks = list(mask_positions or [])
            where = (plural(len(masks), "samp.where_mask", lang, pos=", ".join(map(str, masks)))
                     if effect.positions[0] == "mask" and masks else t("samp.where_nonspecial", lang))
            line = t("samp.flip", lang, rate=float(effect.flip_rate[0]), where=where,
                     seeds_n=plural(seeds, "count.seed", lang))
        else:
            line = t("samp.cosine", lang, mean=float(effect.cosine_mean[0]), min=float(effect.cosine_min[0]))
        out.append(Section(t("samp.downstream", lang), fs.downstream_table(effect, lang), [_plain(line)]))
    li = report.layers.index(layer)
    var = fs.variance_figure(report.per_query["var_rel"][li, head], report.per_query["bias2_rel"][li, head],
                             tokens, lang)
    out.append(Section(_title(var, t("samp.variance", lang)), var))
    err = report.per_query["rel_err"][li, head]
    c = fs.concentration_stats(err)
    out.append(Section(t("samp.concentration", lang), fs.concentration_figure(err, tokens, lang),
                       [t("samp.conc_caption", lang, queries=c["queries"], mean=c["mean"], p95=c["p95"],
                          max=c["max"], share=c["worst5_share"])]))
    if flops is not None:
        out.append(Section(t("samp.flops", lang), flops,
                           [t("samp.flops_share", lang, share=flops.attrs["attention_share"])]))
    return out


def sampling_page_report(model: str, text: str, lang: str = "en", versions: dict | None = None,
                         created: str | None = None, where: str | None = None, **view) -> str:
    """The sampled-vs-dense view as a self-contained HTML report (``view``: the keywords of
    :func:`sampling_sections`; ``where``: where sampling was substituted for the downstream effect)."""
    settings = {"scheme": view["scheme"], "k": view["k"], "seeds": view["seeds"], "layer": view["layer"],
                "head": view["head"], "query": view["query"], "metric": view.get("metric", "tv"),
                "replicate": view.get("replicate", 0), "nospecial": view.get("nospecial", False)}
    if where:
        settings["where"] = where
    meta = analysis_meta(model, settings, view["seed"], text, versions, created)
    return build_html(sampling_sections(lang=lang, **view), meta, lang,
                      title=f"{t('report.title', lang)} — {t('samp.header', lang)}")


# --- a triage run -------------------------------------------------------------------------------------------------

def triage_sections(run_dir, lang: str = "en", order: str = "suspicion", top: int = 100, filters: dict | None = None,
                    time_range=None, by: str | None = None, link: dict | None = None) -> list[Section]:
    """A finished triage run (its folder) as report sections: the summary counts, the status of the lines, the
    suspicion distribution, the mean suspicion per slice (``by``), the ranked table (``order``, ``top`` rows,
    with explorer links when ``link`` gives model, scheme, k and seed) and the lines not analysed."""
    from pathlib import Path
    from .triage import ResultsQuery, row_url
    from .triage import figures as tf
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    counts = pd.DataFrame({
        t("report.triage.count", lang): [t("triage.m_lines", lang), t("triage.m_analysed", lang),
                                         t("triage.m_skipped", lang), t("triage.m_unreadable", lang),
                                         t("triage.m_failed", lang), t("triage.m_rate", lang)],
        t("report.triage.value", lang): [f"{summary['lines_total']:,}", f"{summary['analysed']:,}",
                                         f"{summary['skipped']:,}", f"{summary.get('unreadable', 0):,}",
                                         f"{summary['failed']:,}", f"{summary['inputs_per_second']:.1f}"]})
    out = [Section(t("report.triage.summary", lang), counts),
           Section(t("report.triage.lines", lang), tf.status_bar(summary["analysed"], summary["skipped"],
                                                                  summary["failed"], summary.get("unreadable", 0)))]
    q = ResultsQuery(run_dir)
    try:
        n_sel = q.count(filters or {}, time_range)
        edges, hist = q.histogram("suspicion", 40, filters or {}, time_range)
        out.append(Section(t("report.triage.distribution", lang), tf.score_histogram(edges, hist),
                           [t("triage.n_sel", lang, n=n_sel)]))
        if by:
            sl = q.by_slice(by, filters or {}, time_range)
            if len(sl):
                out.append(Section(t("triage.compare", lang) + f": {by}",
                                   tf.slice_bars(sl["value"].tolist(), sl["mean_suspicion"].tolist(),
                                                 sl["inputs"].tolist(), by)))
        table = q.ranked(order, top, filters or {}, time_range)
        if link:
            table["explorer"] = [row_url(r, link["model"], link["scheme"], link["k"], link["seed"])
                                 for r in table.to_dict("records")]
        keep = [c for c in ("rank", "line", "copies", "suspicion", "flip_rate", "kl", "cosine", "confidence",
                            "margin", "text", "explorer") if c in table.columns and table[c].notna().any()]
        out.append(Section(t("report.triage.ranked", lang, order=t("triage.rank_" + order, lang), n=len(table)),
                           _columns(table[keep], lang)))
        bad = q.not_analysed()
        if len(bad):
            out.append(Section(t("triage.bad_box", lang, n=len(bad)), _columns(bad.head(200), lang)))
    finally:
        q.close()
    return out


def _columns(df: pd.DataFrame, lang: str) -> pd.DataFrame:
    """A triage table with its column names in ``lang`` (``report.triage.col.<name>``)."""
    from .i18n import EN
    return df.rename(columns={c: t(f"report.triage.col.{c}", lang) for c in df.columns
                              if f"report.triage.col.{c}" in EN})


def triage_report(run_dir, lang: str = "en", versions: dict | None = None, created: str | None = None,
                  **view) -> str:
    """A finished triage run as a self-contained HTML report (``view``: the keywords of :func:`triage_sections`
    after the folder and language)."""
    from pathlib import Path
    summary = json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))
    settings = dict(summary.get("settings", {}))
    meta = analysis_meta(summary.get("model", ""), {k: v for k, v in settings.items() if k != "seed"},
                         settings.get("seed"), None, versions, created, run=str(run_dir))
    return build_html(triage_sections(run_dir, lang, **view), meta, lang,
                      title=f"{t('report.title', lang)} — {t('nav.triage', lang)}")
