"""Real-browser tests: headless Debian Chromium (Playwright, never a downloaded browser) against
`streamlit run app.py` on a free local port. They type a sentence, open a head by clicking the overview, switch
to sampled vs dense, change k, export figures and tables, check that the charts really render (plotly SVG
present and non-empty), keep screenshots under tests/output/, and check that two sessions analysing different
texts at once get exactly what the same analyses give one after the other.

Skipped with a clear message when /usr/bin/chromium is missing, except with EXPERTLENS_REQUIRE_BROWSER=1 (CI),
where a missing browser fails."""
from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import copy_screenshot

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 2600}
TIMEOUT = 90_000
IDLE_JS = """() => {
  const running = document.querySelector('[data-testid="stStatusWidget"]');
  return !running && document.querySelectorAll('.stSpinner, [data-testid="stSpinner"]').length === 0;
}"""


def wait_idle(page, timeout: int = TIMEOUT) -> None:
    """Until the script run is over (no running indicator, no spinner) — twice, to ride over a rerun."""
    for _ in range(2):
        page.wait_for_timeout(300)
        page.wait_for_function(IDLE_JS, timeout=timeout)


# Every plotly chart of the page in document order: Streamlit's own, and the one inside each live-chart component
# (the head page's chart: a same-origin iframe that keeps its chart across head switches).
PLOTS_JS = """(() => Array.from(document.querySelectorAll('.js-plotly-plot, iframe[data-testid="stCustomComponentV1"]'))
    .flatMap(el => {
        if (el.tagName !== 'IFRAME') return [el];
        try { return Array.from(el.contentDocument.querySelectorAll('.js-plotly-plot')); } catch (e) { return []; }
    }))()"""


def wait_charts(page, count: int = 1, timeout: int = TIMEOUT) -> None:
    page.wait_for_function(f"() => {PLOTS_JS}.reduce((s, gd) => s + gd.querySelectorAll('.main-svg').length, 0)"
                           f" >= {count}", timeout=timeout)
    wait_idle(page, timeout)
    no_exception(page)


def no_exception(page) -> None:
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, shown.first.inner_text()


def rendered(page) -> dict:
    """What plotly really drew: per chart, the number of drawn marks (heatmap images, bar paths, points)."""
    return page.evaluate("""() => """ + PLOTS_JS + """.map(gd => {
        const box = gd.getBoundingClientRect();
        return {w: box.width, h: box.height,
                heat: gd.querySelectorAll('g.heatmaplayer image').length,
                bars: gd.querySelectorAll('g.barlayer path').length,
                points: gd.querySelectorAll('g.scatterlayer path.point').length,
                traces: (gd.data || []).length};
    })""")


def export_button(page, label: str):
    """The first of the app's own export buttons (not the dataframe toolbar's) with ``label``."""
    return page.locator("[data-testid=\"stDownloadButton\"]", has_text=label).first.locator("button").first


def overview_values(page) -> list:
    """The overview chart's data as the browser holds it (trace names, customdata, colours)."""
    return page.evaluate("""() => {
        const gd = document.querySelector('.js-plotly-plot');
        return gd.data.map(t => ({name: t.name || null,
            custom: t.customdata ? Array.from(t.customdata, r => Array.from(r)) : null,
            colour: t.marker && typeof t.marker.color === 'object' && t.marker.color !== null
                    ? Array.from(t.marker.color) : (t.marker ? t.marker.color : null)}));
    }""")


def url(server: str, path: str = "", **params) -> str:
    return f"{server}/{path}" + (("?" + urllib.parse.urlencode(params)) if params else "")


@pytest.fixture(scope="module")
def warm(server, chromium):
    """The server's first request is a deep link to a page (loads the model into the shared cache): it must
    open that page directly, with no "page not found" dialog."""
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(url(server, "Head", model="minilm", text="Warm up.", layer=1, head=2), timeout=TIMEOUT)
    wait_charts(page)
    assert page.get_by_role("heading", name="Layer 1, head 2").is_visible()
    assert page.locator('[data-testid="stDialog"]').count() == 0
    page.close()
    return server


def test_explore_head_sampling_export(warm, chromium, output_dir, tmp_path):
    server = warm
    page = chromium.new_page(viewport=VIEWPORT, accept_downloads=True)
    page.goto(url(server, model="minilm"), timeout=TIMEOUT)
    wait_idle(page)
    # type a sentence, insert [MASK], analyse
    box = page.get_by_label("Text", exact=True)
    box.fill("The quick brown fox jumps over the lazy dog")
    box.press("Control+Enter")
    wait_idle(page)
    page.get_by_role("button", name="Insert [MASK]").click()
    # the click's rerun can start after wait_idle's first look (the Ctrl+Enter rerun may still be running then):
    # wait for its result in the box itself, then for the page to settle
    expect(box).to_have_value(re.compile(r"^The quick brown fox jumps over the lazy dog\s*\[MASK\]$"), timeout=TIMEOUT)
    wait_idle(page)
    page.get_by_role("button", name="Analyze").click()
    wait_charts(page)
    assert "text=The+quick+brown+fox" in page.url or "text=The%20quick%20brown%20fox" in page.url
    drawn = rendered(page)
    assert drawn[0]["points"] >= 4 * 72 and drawn[0]["w"] > 300 and drawn[0]["h"] > 300    # 6 × 12 heads, 4 panels
    body = page.inner_text("body")
    assert "[MASK]" in body and "no MLM head" in body
    page.screenshot(path=str(output_dir / "explore.png"))
    copy_screenshot(output_dir / "explore.png", "explore_no_mlm.png")

    # open head (layer 2, head 5) by clicking its square in the effective-experts panel
    xy = page.evaluate("""() => {
        const gd = document.querySelector('.js-plotly-plot');
        const xa = gd._fullLayout.xaxis2, ya = gd._fullLayout.yaxis2, box = gd.getBoundingClientRect();
        return [box.left + xa._offset + xa.l2p(5), box.top + ya._offset + ya.l2p(2)];
    }""")
    page.mouse.click(xy[0], xy[1])
    page.wait_for_url(re.compile(r".*/Head\?.*"), timeout=TIMEOUT)
    wait_charts(page, 2)
    page.get_by_text("messages and positional profile").click()
    wait_charts(page, 4)
    assert "layer=2" in page.url and "head=5" in page.url
    assert page.get_by_role("heading", name="Layer 2, head 5").is_visible()
    drawn = rendered(page)
    assert drawn[0]["heat"] >= 1 and drawn[0]["w"] > 200                     # the gate heatmap image
    assert sum(d["bars"] for d in drawn) > 20
    page.screenshot(path=str(output_dir / "head.png"))
    copy_screenshot(output_dir / "head.png", "head.png")

    # export: self-contained HTML of the heatmap, and PNG from its modebar
    with page.expect_download(timeout=TIMEOUT) as dl:
        export_button(page, "HTML").click()
    html = Path(dl.value.path()).read_text(encoding="utf-8")
    assert "Plotly.newPlot" in html and len(html) > 1_000_000
    assert not re.search(r"<script[^>]+src=", html)
    live = page.frame_locator('iframe[data-testid="stCustomComponentV1"]').first    # the head chart, drawn live
    live.locator(".js-plotly-plot").first.hover()
    with page.expect_download(timeout=TIMEOUT) as dl:
        live.locator('.modebar-btn[data-title="Download the chart as PNG"]').first.click()
    assert Path(dl.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv_button = export_button(page, "CSV")
    csv_button.focus()                                          # keyboard: the export is reachable without a mouse
    with page.expect_download(timeout=TIMEOUT) as dl:
        page.keyboard.press("Enter")
    csv = Path(dl.value.path()).read_text(encoding="utf-8")
    assert csv.splitlines()[0].startswith("expert position j")

    # switch to sampled vs dense, change k
    page.get_by_role("link", name="Sampled vs dense").click()
    page.wait_for_url(re.compile(r".*/Sampling.*"), timeout=TIMEOUT)
    wait_charts(page, 4)
    assert "layer=2" in page.url and "head=5" in page.url and "k=8" in page.url
    k = page.get_by_role("spinbutton", name="k (keys per query)")
    k.fill("3")
    k.press("Enter")
    page.wait_for_url(re.compile(r".*[?&]k=3(&|$).*"), timeout=TIMEOUT)
    wait_charts(page, 4)
    drawn = rendered(page)
    assert sum(d["bars"] for d in drawn) > 20 and any(d["heat"] for d in drawn)
    assert "Cosine between the dense and sampled" in page.inner_text("body")
    page.evaluate("() => document.querySelectorAll('.plotly-notifier').forEach(e => e.remove())")
    page.screenshot(path=str(output_dir / "sampling.png"))
    copy_screenshot(output_dir / "sampling.png", "sampling.png")

    # the URL reproduces the view in a new browser context
    shared = page.url
    other = chromium.new_context(viewport=VIEWPORT).new_page()
    other.goto(shared, timeout=TIMEOUT)
    wait_charts(other, 4)
    assert other.get_by_role("spinbutton", name="k (keys per query)").input_value() == "3"
    first = page.evaluate("() => JSON.stringify(Array.from(document.querySelector('.js-plotly-plot').data[0].y))")
    second = other.evaluate("() => JSON.stringify(Array.from(document.querySelector('.js-plotly-plot').data[0].y))")
    assert first == second
    other.context.close()
    page.close()


def test_head_switch_keeps_the_url_and_the_deep_link(warm, chromium):
    """A head switch reruns only the head page's fragment: the URL still says the head shown, the sidebar stays,
    and the URL opened afresh shows that head with the same figures."""
    server = warm
    page = chromium.new_page(viewport=VIEWPORT)
    text = "The old river bank was covered in snow after the long winter storm."
    page.goto(url(server, "Head", model="minilm", text=text, layer=1, head=0), timeout=TIMEOUT)
    wait_charts(page, 2)
    assert len(rendered(page)) == 1                                   # heatmap and the query's row: one chart
    frame = page.locator('iframe[data-testid="stCustomComponentV1"]')
    live = page.frame_locator('iframe[data-testid="stCustomComponentV1"]').locator("#chart")
    assert frame.get_attribute("title") == "Heatmap of gate weights (or firing strengths): rows are query tokens, " \
        "columns are expert tokens; under it, the selected query's gate and firing strength for each expert as bars."
    frame.evaluate("f => { f.__kept = true; }")                        # marks this very iframe element
    for h in (4, 7):
        drawn = int(live.get_attribute("data-drawn"))
        page.get_by_role("combobox", name="Head", exact=True).click()
        page.get_by_role("option", name=str(h), exact=True).click()
        page.wait_for_url(re.compile(rf".*[?&]head={h}(&|$).*"), timeout=TIMEOUT)
        expect(live).to_have_attribute("data-drawn", str(drawn + 1), timeout=TIMEOUT)   # updated in place ...
        assert frame.evaluate("f => f.__kept === true")                # ... in the same, still mounted frame
        wait_charts(page, 2)
        assert page.get_by_role("heading", name=f"Layer 1, head {h}").is_visible()
        assert f"head {h}:" in page.frame_locator('iframe[data-testid="stCustomComponentV1"]').locator(
            "#summary").inner_text()                                  # the text alternative follows the chart
        assert "layer=1" in page.url
    assert page.locator('[data-testid="stSidebar"]').get_by_text("日本語").is_visible()   # the sidebar stays
    other = chromium.new_context(viewport=VIEWPORT).new_page()
    other.goto(page.url, timeout=TIMEOUT)
    wait_charts(other, 2)
    assert other.get_by_role("heading", name="Layer 1, head 7").is_visible()
    # the query's gate row: the bars under the heatmap in the page's one head chart
    first = page.evaluate("() => JSON.stringify(" + PLOTS_JS + "[0].data[1].y)")
    second = other.evaluate("() => JSON.stringify(" + PLOTS_JS + "[0].data[1].y)")
    assert first == second
    other.context.close()
    page.close()


def test_two_sessions_at_once_match_sequential_runs(warm, chromium):
    server = warm
    texts = ["The river bank was covered in [MASK] after the storm.",
             "Markets fell sharply when the central bank raised interest rates again."]

    def open_session(text):
        ctx = chromium.new_context(viewport=VIEWPORT)
        page = ctx.new_page()
        page.goto(url(server, model="minilm", text=text, query=3), timeout=TIMEOUT, wait_until="commit")
        return page

    concurrent = [open_session(t) for t in texts]      # both scripts run in the server at the same time
    results = []
    for page in concurrent:
        wait_charts(page)
        results.append(overview_values(page))
        page.context.close()
    sequential = []
    for text in texts:
        page = open_session(text)
        wait_charts(page)
        sequential.append(overview_values(page))
        page.context.close()
    assert results == sequential
    assert results[0] != results[1]


def test_bad_input_message_in_browser(warm, chromium):
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(url(warm, model="/no/such/folder", text="hello"), timeout=TIMEOUT)
    page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=TIMEOUT)
    assert "model folder not found" in page.inner_text("body")
    page.close()


# --- reliability: a long session, every export -------------------------------------------------------------

TRACEBACK_WORDS = ("Traceback", "File \"/", "site-packages", "streamlit/runtime", "Error:")


def assert_clean(page) -> None:
    """No exception box, and no traceback text anywhere on the page."""
    no_exception(page)
    body = page.inner_text("body")
    leaked = [w for w in TRACEBACK_WORDS if w in body and not (w == "Error:" and "Could not" in body)]
    assert not leaked, (leaked, body[:2000])
    assert "Something went wrong" not in body, body[:2000]


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` (the start of its visible text) in the selectbox labelled ``label``."""
    box = page.get_by_role("combobox", name=label, exact=True).first
    box.click()
    box.fill(option)                                   # long option lists are virtualised: filter first
    # the whole name: "minilm" must not pick "minilm-mlm"
    page.get_by_role("option").filter(has_text=re.compile("^" + re.escape(option) + r"(?![\w-])")).first.click()
    wait_idle(page)


def analyse(page, text: str) -> None:
    box = page.get_by_label("Text", exact=True)
    box.fill(text)
    page.get_by_role("button", name="Analyze").click()
    wait_idle(page)


def go_to(page, name: str) -> None:
    page.get_by_role("link", name=name).first.click()
    wait_idle(page)


SOAK_TEXTS = ["The meeting was moved to [MASK] morning.", "Please reset my [MASK] so I can log in.",
              "It rained all [MASK].", "Where is my [MASK]?", "東京は日本の[MASK]です。",
              "Good job 👍🎉 [MASK]!",
              "", "word " * 900 + "[MASK]", "- a list? * [MASK] # heading | pipe",
              "The bank raised its [MASK] rates.", "   ", "x" * 20_001]


def test_long_session_never_shows_a_traceback(warm, chromium, output_dir):
    """One browser session: 24 analyses of varied texts (Japanese, emoji, empty, over-long, Markdown-like) on
    three models, with page switches in between and every bound picker used."""
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(url(warm, model="mini-bert"), timeout=TIMEOUT)
    wait_idle(page)
    analyses = 0
    for model in ("mini-bert", "paper", "minilm"):
        choose(page, "Model", model)
        page.wait_for_url(re.compile(f".*[?&]model={model}(&|$).*"), timeout=TIMEOUT)
        for i, text in enumerate(SOAK_TEXTS[:8] if model != "paper" else SOAK_TEXTS[4:]):
            analyse(page, text)
            analyses += 1
            assert_clean(page)
            if not text.strip() or len(text) > 20_000:
                expected = "empty text" if not text.strip() else "at most 20,000"
                page.wait_for_function(f"() => document.body.innerText.includes({expected!r})", timeout=TIMEOUT)
                wait_idle(page)
                assert_clean(page)
                continue
            if i % 3 == 1:                                   # the head picker, then the head page
                lh = 0 if model == "paper" else 1            # the paper model has one layer and one head
                choose(page, "Open head (layer · head)", f"Layer {lh} · Head {lh}")
                page.get_by_role("button", name="Open this head").click()
                page.wait_for_url(re.compile(r".*/Head\?.*"), timeout=TIMEOUT)
                wait_charts(page, 2)
                assert_clean(page)
                assert f"layer={lh}" in page.url and f"head={lh}" in page.url
                choose(page, "Query token", "1:")
                assert_clean(page)
                go_to(page, "Explore")
            elif i % 3 == 2 and model != "minilm":
                go_to(page, "Sampled vs dense")
                wait_charts(page, 4)
                assert_clean(page)
                go_to(page, "Explore")
            assert_clean(page)
    assert analyses >= 20
    page.screenshot(path=str(output_dir / "soak-end.png"))
    page.close()


CSV_HEADERS = {   # file-name prefix → the table's columns
    "tokens": ["position", "token", "special", "segment"],
    "mask-predictions": ["position", "rank", "token", "probability"],
    "overview": ["layer", "head", "role"],
    "top-experts": ["expert position j", "token", "gate a_ij", "firing f_ij"],
    "lens-": ["expert j", "token", "gate"],
    "gate-score-split": None,
    "rows-": None,
    "sampling-heads": ["layer", "head"],
    "downstream": ["metric", "value"],
    "flops": None,
}


def check_download(dl, kind: str) -> str:
    name = dl.suggested_filename
    data = Path(dl.path()).read_bytes()
    if kind == "HTML":
        html = data.decode("utf-8")
        if name.startswith("report-"):           # the report of the view: plotly.js once, the analysis facts
            assert name.endswith(".html") and "Plotly.newPlot" in html and 'id="expertlens-meta"' in html, name
            assert not re.search(r"<script[^>]+src=", html), name
            return name
        assert name.endswith(".html") and "Plotly.newPlot" in html and 'id="expertlens-figure"' in html, name
        assert not re.search(r"<script[^>]+src=", html), name
        return name
    import csv
    import io
    assert name.endswith(".csv"), name
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert len(rows) >= 2 and all(len(r) == len(rows[0]) for r in rows), name
    prefix = [p for p in CSV_HEADERS if name.startswith(p)]
    assert prefix, f"unexpected CSV {name}: {rows[0]}"
    want = CSV_HEADERS[prefix[0]]
    if want is not None:
        assert rows[0][:len(want)] == want, (name, rows[0])
    return name


def download_all(page, tmp: set) -> list[str]:
    """Open every expander, then click every export button on the page and check each file."""
    page.wait_for_timeout(1000)
    wait_idle(page)
    expanders = page.locator('[data-testid="stExpander"] details:not([open]) summary')
    while expanders.count():
        expanders.first.click()
        page.wait_for_timeout(200)
    wait_idle(page)
    names = []
    buttons = page.locator('[data-testid="stDownloadButton"]')
    for i in range(buttons.count()):
        b = buttons.nth(i).locator("button:visible").first      # (each holds a hidden twin for sizing)
        kind = b.inner_text().strip().split()[-1].strip("()")     # "HTML", "CSV", "Report (HTML)"
        with page.expect_download(timeout=TIMEOUT) as dl:
            b.click()
        names.append(check_download(dl.value, kind))
        assert_clean(page)
    assert len(names) == buttons.count() and names
    return names


def test_every_export_button_downloads(warm, chromium):
    page = chromium.new_page(viewport=VIEWPORT, accept_downloads=True)
    seen: set = set()
    page.goto(url(warm, model="mini-bert", text="The cat sat on the [MASK] - or not.", layer=0, head=1),
              timeout=TIMEOUT)
    wait_charts(page)
    explore = download_all(page, seen)
    assert {n.split("-")[0].split(".")[0] for n in explore} >= {"tokens", "mask", "overview"}
    go_to(page, "One head")
    wait_charts(page, 2)
    head = download_all(page, seen)
    for section in ("messages and positional profile", "what each expert predicts (lenses)",
                    "layer 0: CBOW and gate-score splits"):
        page.get_by_text(section).click()
        wait_idle(page)
        head += download_all(page, seen)
    assert any(n.startswith("lens-") and n.endswith(".csv") for n in head)
    assert any(n.startswith("gate-score-split") and n.endswith(".csv") for n in head)
    assert any(n.startswith("report-head-") and n.endswith(".html") for n in head)           # the view's report
    go_to(page, "Sampled vs dense")
    wait_charts(page, 4)
    sampling = download_all(page, seen)
    csv_prefixes = {n.split("-")[0].split(".")[0] for n in sampling if n.endswith(".csv")}
    assert csv_prefixes >= {"rows", "sampling", "downstream", "flops"}
    assert any(n.startswith("report-sampling-") and n.endswith(".html") for n in sampling)
    page.close()


def test_first_view_on_the_default_model_predicts_the_first_example(warm, chromium, output_dir):
    """A newcomer's first analysis: the default model (no model in the URL) on the first built-in example shows
    its top prediction, and the probability on screen is the model's own softmax (to display rounding)."""
    import torch
    from interp.loader import default_model, load_model
    from ui.chrome import examples
    first = next(e for e in examples() if "[MASK]" in e)
    lm = load_model(default_model())
    enc = lm.tokenizer(first, return_tensors="pt")
    with torch.no_grad():
        logits = lm.model(**enc).logits[0]
    at = int((enc.input_ids[0] == lm.tokenizer.mask_token_id).nonzero()[0, 0])
    p = torch.softmax(logits[at].double(), -1)
    top_p, top_id = (float(x) for x in p.max(-1))
    top_word = lm.tokenizer.convert_ids_to_tokens(int(top_id))

    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(url(warm, text=first), timeout=TIMEOUT)
    wait_charts(page)
    from interp.i18n import EN
    table = page.locator('[data-testid="stTable"]', has_text=EN["pred.col.prob"]).first   # the predictions
    assert table.is_visible()
    first_row = table.locator("tbody tr").first.inner_text()
    assert top_word in first_row.split()
    shown = [float(x.rstrip("%")) for x in re.findall(r"\d+\.\d+%?", first_row)]
    assert any(abs(v - top_p) < 5e-4 or abs(v - 100 * top_p) < 5e-2 for v in shown), (first_row, top_p)
    page.screenshot(path=str(output_dir / "explore.png"))
    copy_screenshot(output_dir / "explore.png", "explore.png")
    page.close()
