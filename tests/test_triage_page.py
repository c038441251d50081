"""The triage page headless (AppTest): a log given by path, column mapping with a clear error for a wrong one,
a run, the ranked table and its explorer links, slicing, exports; and, with Chromium present, the same in a real
browser through to the explorer."""
from __future__ import annotations

import json
import random
import re
import urllib.parse
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine_fixtures import WORDS, model_folder

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/3_Triage.py"


@pytest.fixture()
def log(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPERTLENS_CACHE", str(tmp_path / "cache"))
    rng = random.Random(1)
    lines = []
    for i in range(24):
        words = [rng.choice(WORDS[:70]) for _ in range(rng.randint(3, 8))]
        words[rng.randrange(len(words))] = "[MASK]"
        lines.append(json.dumps({"id": f"q{i}", "ts": f"2025-03-{1 + i:02d}T10:00:00Z", "text": " ".join(words),
                                 "region": ["eu", "us"][i % 2], "label": rng.choice(WORDS[:20])}))
    lines += ["{not json", json.dumps({"text": ""})]
    path = tmp_path / "prod.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def folder():
    return str(model_folder("bert", True, 0, initializer_range=0.3))


def page(log_path):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=180)
    at.run()
    at.radio(key="tri_source").set_value("path").run()
    at.text_input(key="tri_path").input(str(log_path)).run()
    return at


def frame(at, column):
    """The table on the page that has ``column``."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def test_page_runs_ranks_links_and_exports(log, folder):
    import app_support as ui
    at = page(log)
    no_exception(at)
    assert at.selectbox(key="tri_map_text").value == "text"        # guessed from the column names
    assert at.selectbox(key="tri_map_id").value == "id"
    assert at.selectbox(key="tri_map_timestamp").value == "ts"
    at.multiselect(key="tri_map_slices").set_value(["region"]).run()
    at.selectbox(key="tri_model").set_value(ui.LOCAL).run()
    at.text_input(key="tri_model_path").input(folder).run()
    at.number_input(key="tri_seeds").set_value(2).run()
    at.number_input(key="tri_k").set_value(4).run()
    at.button(key="tri_run").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Lines read"] == "26" and metrics["Analysed"] == "24" and metrics["Skipped"] == "2"
    table = frame(at, "explorer")
    assert len(table) == 24 and list(table["rank"]) == list(range(1, 25))
    run_dir = Path(at.session_state["_tri_run"]["out"])
    res = pq.read_table(run_dir / "results.parquet").to_pandas()
    ranked = res[res.status == "analysed"].sort_values("rank")
    assert list(table["line"]) == list(ranked["line"])
    assert list(table["suspicion"]) == pytest.approx(list(ranked["suspicion"]))
    # the explorer link of the top row: same model and settings, the row's text, head and query
    top = ranked.iloc[0]
    url = table["explorer"].iloc[0]
    assert url.startswith("/?")
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert params["model"] == folder and params["text"] == top["text"]
    assert params["scheme"] == "A" and params["k"] == "4" and params["seed"] == "0"
    assert int(params["layer"]) == top["worst_layer"] and int(params["head"]) == top["worst_head"]
    assert int(params["query"]) == top["query"]
    assert set(params) <= set(ui.PARAMS)
    links = at.get("link_button")
    assert len(links) == 1 and links[0].proto.url == url             # "Open in explorer" of the top row
    # the formula is on the page
    assert any("suspicion = (" in c.value for c in at.code)
    # slicing by a mapped field
    at.multiselect(key="tri_slice_region").set_value(["eu"]).run()
    sliced = frame(at, "explorer")
    assert len(sliced) == 12 and set(sliced["region"]) == {"eu"}
    assert list(sliced["line"]) == list(ranked[ranked.region == "eu"]["line"])
    # exports: ranked table and the skipped lines with their line numbers
    labels = [d.label for d in at.get("download_button")]
    assert "Ranked table (CSV)" in labels and "Skipped and failed lines (CSV, 2)" in labels
    bad = frame(at, "reason code")
    assert list(bad["line"]) == [25, 26] and list(bad["reason code"]) == ["malformed-json", "empty-text"]


def test_wrong_mapping_and_bad_path_are_clear(log, tmp_path):
    at = page(tmp_path / "nope.jsonl")
    no_exception(at)
    assert at.error and "log file not found" in at.error[0].value
    at = page(log)
    at.selectbox(key="tri_map_text").set_value("—").run()
    assert at.error and "no text column chosen" in at.error[0].value
    assert not at.get("button") or "tri_run" not in [b.key for b in at.button]
    csv_log = tmp_path / "numbers.csv"
    csv_log.write_text("a,b\n1,2\n")
    at = page(csv_log)
    no_exception(at)
    at.selectbox(key="tri_map_text").set_value("a").run()
    assert not at.error                     # CSV text is text; the number-looking lines are still inputs


# --- the real browser ---------------------------------------------------------------------------------------

@pytest.mark.browser
def test_browser_upload_run_and_open_in_explorer(server, chromium, log, folder, output_dir):
    """Headless Chromium against `streamlit run app.py`: upload the log, map, run, then open the top suspect in
    the explorer (a new tab) and check that it lands on the analysed overview of that text."""
    from test_browser import TIMEOUT, VIEWPORT, wait_charts, wait_idle
    page = chromium.new_page(viewport=VIEWPORT)
    page.goto(server, timeout=TIMEOUT)
    wait_idle(page)
    page.get_by_role("link", name="Triage").click()                 # the sidebar navigation
    page.wait_for_url(re.compile(r"(?i).*/triage.*"), timeout=TIMEOUT)
    wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(log))
    page.get_by_text("Fields to slice by").wait_for(timeout=TIMEOUT)
    wait_idle(page)
    page.get_by_label("Model", exact=True).click()
    page.get_by_role("option").last.click()                       # the local-folder choice
    wait_idle(page)
    box = page.get_by_label("Model folder")
    box.fill(folder)
    box.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Run triage").click()
    page.get_by_text("Top suspects").wait_for(timeout=TIMEOUT)
    wait_charts(page, 2)
    body = page.inner_text("body")
    assert "Lines read" in body and "26" in body
    page.set_viewport_size({"width": 1400, "height": 4600})
    wait_idle(page)
    page.screenshot(path=str(output_dir / "triage.png"))
    link = page.get_by_role("link", name="Open in explorer")
    href = link.get_attribute("href")
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(href).query))
    assert params["model"] == folder and "[MASK]" in params["text"]
    with page.context.expect_page(timeout=TIMEOUT) as opened:
        link.click()
    explorer = opened.value
    explorer.wait_for_load_state()
    wait_charts(explorer)
    got = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(explorer.url).query))
    for key in ("model", "text", "layer", "head", "scheme", "k", "seed"):
        assert got[key] == params[key], key
    assert explorer.get_by_label("Text", exact=True).input_value() == params["text"]
    explorer.screenshot(path=str(output_dir / "triage-explorer.png"))
    explorer.close()
    page.close()


def test_try_it_on_a_sample_log(tmp_path, monkeypatch, folder):
    """One button loads the built-in sample log: its columns are mapped by themselves, a run accounts for every
    line, the malformed lines are skipped, the non-English ones unreadable and duplicates grouped."""
    import app_support as ui
    from interp.triage.demo import sample_log_records
    monkeypatch.setenv("EXPERTLENS_CACHE", str(tmp_path / "cache"))
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=300)
    at.run()
    at.button(key="tri_sample").click().run()
    no_exception(at)
    assert at.text_input(key="tri_path").value.endswith("support-sample.jsonl")
    assert at.selectbox(key="tri_map_text").value == "text" and at.selectbox(key="tri_map_id").value == "id"
    assert at.selectbox(key="tri_map_timestamp").value == "ts"
    assert not at.warning or all("looks like" not in w.value for w in at.warning)
    at.selectbox(key="tri_model").set_value(ui.LOCAL).run()
    at.text_input(key="tri_model_path").input(folder).run()
    at.number_input(key="tri_seeds").set_value(1).run()
    at.number_input(key="tri_k").set_value(2).run()
    at.number_input(key="tri_batch").set_value(64).run()
    at.button(key="tri_run").click().run()
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    lines = sample_log_records()
    assert metrics["Lines read"] == str(len(lines))
    assert int(metrics["Skipped"]) >= 3 and int(metrics["Unreadable"]) >= 2
    table = frame(at, "explorer")
    assert (table["copies"] > 1).any()


def test_ray_engine_choice_says_how_to_enable_ray_when_missing(log, monkeypatch):
    from interp.triage import ray_engine
    monkeypatch.setattr(ray_engine, "ray_available", lambda: False)
    at = page(log)
    at.radio(key="tri_engine").set_value("ray").run()
    no_exception(at)
    assert any("make scale" in i.value and "requirements-scale.txt" in i.value for i in at.info)


def test_the_page_has_no_hard_coded_english():
    """Every label, help, caption and message of the Triage page goes through interp/i18n.py keys, and every
    key it uses exists."""
    import ast
    from interp.i18n import EN
    tree = ast.parse((ROOT / PAGE).read_text(encoding="utf-8"))
    wording = ("title", "caption", "subheader", "info", "warning", "error", "success", "markdown", "button",
               "radio", "selectbox", "multiselect", "text_input", "number_input", "checkbox", "slider",
               "file_uploader", "download_button", "link_button", "expander", "metric", "spinner", "progress")
    bad, keys = [], []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "T" and node.args and isinstance(node.args[0], ast.Constant):
            keys.append(node.args[0].value)
        if isinstance(f, ast.Attribute) and f.attr in wording:
            args = list(node.args[:1]) + [k.value for k in node.keywords if k.arg in ("help", "text", "label",
                                                                                        "placeholder_text")]
            for a in args:
                if isinstance(a, ast.JoinedStr) or (isinstance(a, ast.Constant) and isinstance(a.value, str)
                                                    and sum(c.isalpha() for c in a.value) > 1):
                    bad.append((node.lineno, ast.unparse(a)[:60]))
    assert not bad, bad
    assert keys and all(k in EN for k in keys), [k for k in keys if k not in EN]
