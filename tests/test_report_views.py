"""The report of every view: the head page, the sampled-vs-dense page and a finished triage run each offer an HTML
report (and a PDF) next to their other exports; the HTML downloaded from the page (the deferred download run as a
browser would, after the script ends) holds that view's figures and numbers, pinned to the model's own forward
pass, the sampling library and closed forms; in headless Chromium with the network blocked every figure of a
view report renders. Tiny random models keep it fast."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import app_support as ui
from interp.i18n import t
from interp.loader import load_model
from interp.trace import trace_text

ROOT = Path(__file__).resolve().parent.parent
TEXT = "the cat sat on the [MASK] near the river bank ."
HEAD = "pages/2_Head.py"
SAMPLING = "pages/4_Sampling.py"
TRIAGE = "pages/3_Triage.py"


@pytest.fixture()
def recorded(monkeypatch):
    """AppTest factory whose media file managers are kept, so deferred downloads can be run after the script."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.media_file_manager import MediaFileManager
    managers = []

    class Recording(MediaFileManager):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            managers.append(self)
    monkeypatch.setattr(app_test, "MediaFileManager", Recording)

    def make(page: str = "app.py", **params):
        at = app_test.AppTest.from_file(str(ROOT / page), default_timeout=180)
        for key, val in params.items():
            at.query_params[key] = str(val)
        return at
    make.managers = managers
    return make


def download(at, managers, label: str) -> bytes:
    """The bytes a browser gets from the download button labelled ``label`` (a deferred one is generated now)."""
    found = [b for b in at.get("download_button") if b.proto.label == label]
    assert found, (label, [b.proto.label for b in at.get("download_button")])
    proto, mgr = found[0].proto, managers[-1]
    url = mgr.execute_deferred(proto.deferred_file_id) if proto.HasField("deferred_file_id") else proto.url
    return mgr._storage.get_file(url.rsplit("/", 1)[-1].split(".")[0]).content


def figures(page: str) -> list[dict]:
    """Every figure of a report as plotly JSON (data, layout), in order."""
    dec = json.JSONDecoder()
    out = []
    for m in re.finditer(r'Plotly\.newPlot\(\s*"(figure-\d+)",\s*', page):
        data, end = dec.raw_decode(page, m.end())
        layout, _ = dec.raw_decode(page, re.match(r",\s*", page[end:]).end() + end)
        out.append({"id": m.group(1), "data": data, "layout": layout})
    return out


def values(arr) -> np.ndarray:
    """A plotly array: a list, or a base64 typed array."""
    if isinstance(arr, dict) and "bdata" in arr:
        out = np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"]))
        shape = arr.get("shape")
        return out.reshape([int(x) for x in str(shape).split(",")]) if shape else out
    return np.asarray(arr, dtype=float)


def title(fig: dict) -> str:
    return fig["layout"]["title"]["text"].replace("<br>", " ")


def tables(page: str) -> list[pd.DataFrame]:
    """Every data table of a report, parsed with the standard library's HTML parser (cells as text; numbers
    converted where they parse)."""
    from html.parser import HTMLParser

    class Parser(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.row, self.cell, self.inside = [], None, None, False

        def handle_starttag(self, tag, attrs):
            if tag == "table" and "data" in (dict(attrs).get("class") or "").split():
                self.tables.append([])
                self.inside = True
            elif self.inside and tag == "tr":
                self.row = []
            elif self.inside and tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag == "table":
                self.inside = False
            elif self.inside and tag in ("td", "th") and self.cell is not None:
                self.row.append(self.cell.strip())
                self.cell = None
            elif self.inside and tag == "tr" and self.row is not None:
                self.tables[-1].append(self.row)
                self.row = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data
    p = Parser()
    p.feed(page)
    out = []
    for rows in p.tables:
        df = pd.DataFrame(rows[1:], columns=rows[0])
        for c in df.columns:
            try:
                df[c] = pd.to_numeric(df[c])
            except (ValueError, TypeError):
                pass
        out.append(df)
    return out


def meta_of(page: str) -> dict:
    return json.loads(re.search(r'id="expertlens-meta">(.*?)</script>', page, re.S).group(1))


# --- one head ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["en", "ja"])
def test_head_page_report_holds_the_heads_figures(recorded, tiny_bert_dir, lang):
    at = recorded(model=tiny_bert_dir, text=TEXT, layer=0, head=1, query=6).run()
    at.query_params["lang"] = lang     # (the model picker's labels are formatted test-side in English)
    at.switch_page(HEAD).run()
    assert not at.exception, [e.value for e in at.exception]
    assert t("report.export_pdf_make", lang) in [b.label for b in at.button]
    page = download(at, recorded.managers, t("report.export_html", lang)).decode("utf-8")
    assert f'<html lang="{lang}">' in page and page.count("<script") - page.count('type="application/json"') == 1 + 5
    figs = figures(page)
    assert [title(f) for f in figs[:2]] == [t("head.gates_title", lang), t("head.firing_title", lang)]
    lm = load_model(tiny_bert_dir)
    probs = trace_text(lm, TEXT).layers[0].probs[1].numpy()
    np.testing.assert_allclose(values(figs[0]["data"][0]["z"]).reshape(probs.shape), probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(values(figs[2]["data"][0]["y"]), probs[6], rtol=1e-5, atol=1e-7)  # the query's row
    top = tables(page)[0]
    order = np.argsort(-probs[6], kind="stable")[:len(top)]
    np.testing.assert_allclose(top[t("head.col.gate", lang)].to_numpy(), probs[6][order], rtol=1e-5, atol=1e-6)
    assert [title(f) for f in figs[3:]] == [t("head.norms_title", lang), t("head.profile_title", lang)]
    meta = meta_of(page)
    assert meta["model"] == tiny_bert_dir and meta["text"] == TEXT
    assert meta["settings"] == {"layer": 0, "head": 1, "query": 6} and meta["versions"]["torch"]
    assert t("head.header", lang, layer=0, head=1) in page and t("report.versions", lang) in page


# --- sampled vs dense --------------------------------------------------------------------------------------

def test_sampling_page_report_holds_the_views_numbers(recorded, tiny_bert_dir):
    from interp.sampling import downstream_effect
    from interp.sampling.schemes import dense_flops, scheme_flops
    from interp.trace import encode
    at = recorded(model=tiny_bert_dir, text=TEXT, scheme="C", k=2, seed=3, layer=1, head=2, query=6).run()
    at.switch_page(SAMPLING).run()
    at.radio(key="sp_where").set_value("all").run()
    assert not at.exception, [e.value for e in at.exception]
    page = download(at, recorded.managers, t("report.export_html")).decode("utf-8")
    figs = figures(page)
    assert len(figs) == 4                  # rows, error heatmap, variance, concentration
    lm = load_model(tiny_bert_dir)
    trace = trace_text(lm, TEXT)
    dense = trace.layers[1].probs[2, 6].numpy()
    np.testing.assert_allclose(values(figs[0]["data"][0]["y"]), dense, rtol=1e-5, atol=1e-7)
    want = downstream_effect(lm, encode(lm, [TEXT]), "C", 2, ui.DEFAULT_SEEDS, 3)          # all layers, all heads
    by_metric = next(df for df in tables(page) if "metric" in df.columns).set_index("metric")["value"]
    assert float(by_metric["flip rate across seeds"]) == pytest.approx(float(want.flip_rate[0]), abs=1e-6)
    assert float(by_metric["KL(p ‖ p̂) mean"]) == pytest.approx(float(want.kl_mean[0]), rel=1e-5)
    d_head = int(trace.layers[0].q.shape[-1])
    flops = next(df for df in tables(page) if "ratio to dense" in df.columns).set_index("scheme")
    ratio = scheme_flops("C", trace.n, trace.n, d_head, 2, 2, 2) / dense_flops(trace.n, trace.n, d_head)
    assert float(flops.loc["C", "ratio to dense"]) == pytest.approx(ratio, rel=1e-5)
    meta = meta_of(page)
    assert meta["seed"] == 3 and meta["settings"]["scheme"] == "C" and meta["settings"]["k"] == 2
    assert meta["settings"]["where"] == "all" and meta["settings"]["layer"] == 1


# --- a triage run -------------------------------------------------------------------------------------------

WORDS = ["river", "bank", "table", "house", "garden", "street", "window", "market", "school", "train"]


def test_triage_run_report_holds_the_runs_summary_and_ranking(recorded, tmp_path, monkeypatch, tiny_bert_dir):
    import pyarrow.parquet as pq
    monkeypatch.setenv("EXPERTLENS_CACHE", str(tmp_path / "cache"))
    log = tmp_path / "prod.jsonl"
    rows = [{"id": f"q{i}", "text": f"the {WORDS[i % 10]} [MASK] near the {WORDS[(3 * i) % 10]}"} for i in range(12)]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n{bad\n", encoding="utf-8")
    at = recorded(TRIAGE).run()
    at.radio(key="tri_source").set_value("path").run()
    at.text_input(key="tri_path").input(str(log)).run()
    at.selectbox(key="tri_model").set_value(ui.LOCAL).run()
    at.text_input(key="tri_model_path").input(tiny_bert_dir).run()
    at.number_input(key="tri_seeds").set_value(2).run()
    at.button(key="tri_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert t("report.export_pdf_make") in [b.label for b in at.button]
    page = download(at, recorded.managers, t("report.export_html")).decode("utf-8")
    out = Path(at.session_state["_tri_run"]["out"])
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert '<html lang="en">' in page and t("nav.triage") in page
    counts = tables(page)[0].set_index(t("report.triage.count"))[t("report.triage.value")].astype(float)
    assert counts[t("triage.m_lines")] == summary["lines_total"] == 13
    assert counts[t("triage.m_analysed")] == summary["analysed"] == 12
    assert counts[t("triage.m_skipped")] == summary["skipped"]
    figs = figures(page)
    assert len(figs) == 3         # lines by status, suspicion distribution, suspicion per slice (as on the page)
    res = pq.read_table(out / "results.parquet").to_pandas()
    an = res[res.status == "analysed"]
    hist = sum(int(values(tr["y"]).sum()) for tr in figs[1]["data"] if tr.get("type") == "bar")
    assert hist == len(an) == 12                       # every analysed line is counted once
    ranked = next(df for df in tables(page) if "suspicion" in df.columns)
    best = an.groupby("key")["suspicion"].max().sort_values(ascending=False)
    np.testing.assert_allclose(ranked["suspicion"].to_numpy(), best.to_numpy()[:len(ranked)], rtol=1e-5)
    assert ranked["explorer"].str.startswith("/?").all()
    meta = meta_of(page)
    assert meta["model"] == summary["model"] and meta["seed"] == summary["settings"]["seed"]
    from interp.report import triage_report                  # the same run reported in Japanese
    ja = triage_report(out, "ja", link={"model": summary["model"], "scheme": "A", "k": 8, "seed": 0})
    assert '<html lang="ja">' in ja and t("report.triage.summary", "ja") in ja and t("triage.m_lines", "ja") in ja
    assert len(figures(ja)) == 2
    ranked_ja = next(df for df in tables(ja) if t("report.triage.col.suspicion", "ja") in df.columns)
    np.testing.assert_allclose(ranked_ja[t("report.triage.col.suspicion", "ja")].to_numpy(),
                               ranked["suspicion"].to_numpy(), rtol=1e-12)


# --- real browser: a view report renders offline -----------------------------------------------------------

@pytest.mark.browser
def test_head_report_renders_offline(chromium, tiny_bert_dir):
    from interp import decompose
    from interp.report import head_report
    from test_report import DRAWN_JS, open_offline
    lm = load_model(tiny_bert_dir)
    trace = trace_text(lm, TEXT)
    hv = decompose.head_view(lm, trace, 1, 2)
    page_html = head_report(hv, 6, tiny_bert_dir, TEXT, trace.special.tolist(), "ja")
    page, attempted = open_offline(chromium, page_html)
    n = page.evaluate("() => document.querySelectorAll('.plotly-graph-div').length")
    assert n == 5
    page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= {n}",
                           timeout=60_000)
    drawn = page.evaluate(DRAWN_JS)
    assert len(drawn) == n and all(d["svg"] and d["w"] > 200 and d["h"] > 200 and d["marks"] >= 1 for d in drawn)
    assert attempted == []
    page.emulate_media(media="print")
    avoid = page.evaluate("() => Array.from(document.querySelectorAll('.section')).map("
                          "s => getComputedStyle(s).breakInside)")
    assert avoid and set(avoid) == {"avoid"}
    page.close()
    from interp.report import html_to_pdf                          # and its PDF: A4
    pdf = html_to_pdf(page_html)
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert pdf.startswith(b"%PDF") and boxes and all(abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2
                                                     for w, h in boxes)


# --- the story: its report completes the deferred noise step -----------------------------------------------

def test_story_report_from_step_1_holds_the_measured_noise_step(recorded, tmp_path, monkeypatch):
    """At step 1 the noise probe has not run; the report downloaded there runs it and tells step 5 as the
    library does (the same lines as the story built in one go)."""
    from interp import story as S
    monkeypatch.setenv("EXPERTLENS_CACHE", str(tmp_path / "cache"))
    text = "A small boat drifted past the [MASK] at noon."
    at = recorded("pages/0_Story.py", model="paper", text=text, step=1, lang="ja").run()
    assert not at.exception, [e.value for e in at.exception]
    page = download(at, recorded.managers, t("story.export_html", "ja")).decode("utf-8")
    whole = S.build_story(load_model("paper"), text, S.StorySettings("A", 8, 8, 0))
    import html as html_mod
    for line in whole.step("noise").text("ja") + whole.step("messages").text("ja"):
        assert html_mod.escape(line) in page, line
    assert t("story.s5.pending", "ja") not in page
