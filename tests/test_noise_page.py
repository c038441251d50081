"""The noise page headless (AppTest, tiny registry-style models): empty state, side-by-side texts with marks,
predictions and flip rates pinned to the library and the model's own outputs, settings, exports."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine_fixtures import model_folder
from interp.i18n import t
from interp.loader import load_model
from interp.noise.probe import NoiseSettings, probe
from ui.exports import escape_markdown

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/5_Noise.py"
TEXT = "the cat sat on the [MASK] near the river bank ."


@pytest.fixture(scope="module")
def folder():
    return str(model_folder("bert", True, 0, initializer_range=0.3))


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """The page in the app's navigation, as the entry the lead adds at merge time (see docs/noise.md)."""
    import streamlit as st

    import app_support as ui
    original = ui.navigation_pages

    def pages():
        have = original()
        if any(getattr(p, "url_path", "") == "Noise" for p in have):     # already registered in the app
            return have
        return have + [st.Page(PAGE, title=ui.tr("nav.noise"), icon=":material/blur_on:", url_path="Noise")]
    monkeypatch.setattr(ui, "navigation_pages", pages)


def page(**params):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for key, val in params.items():
        at.query_params[key] = str(val)
    at.run()
    at.switch_page(PAGE)
    return at.run()


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def test_empty_state():
    at = page()
    no_exception(at)
    assert any(t("noise.empty") == i.value for i in at.info)


def test_page_shows_marked_texts_predictions_rates_and_exports(folder):
    at = page(model=folder, text=TEXT, k=2)
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    at.number_input(key="nz_noise_seeds").set_value(2).run()
    at.number_input(key="nz_seeds").set_value(2).run()
    at.slider(key="nz_rate").set_value(0.3).run()
    no_exception(at)
    marked = [m.value for m in at.markdown if "<mark" in m.value]
    assert marked, "the noisy text shows its changed characters"
    # the numbers on the page are the library's, and its clean top-1 is the model's own
    lm = load_model(folder)
    st_ = NoiseSettings(perturbations=("typo",), rates=(0.0, 0.3), schemes=("A", "C"), ks=(2,), noise_seeds=2,
                        seeds=2, seed=0, n_boot=1000)
    ip, summary = probe(lm, TEXT, st_)
    rows = [r for r in summary.results() if r["rate"] == 0.3]
    lines = [m.value for m in at.markdown if m.value.startswith("Under typo")]
    assert len(lines) == 2
    for row, line in zip(rows, lines):
        assert f"dense flips {row['dense_flip_rate']:.0%}" in line and f"flips {row['sampled_flip_rate']:.0%}" in line
        assert f"McNemar p = {row['mcnemar_p']:.2g}" in line
    enc = lm.tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        logits = lm.model(**enc).logits[0]
    pos = enc["input_ids"][0].tolist().index(lm.tokenizer.mask_token_id)
    top = lm.tokenizer.convert_ids_to_tokens(int(logits[pos].argmax()))
    tables = [d.value for d in (*at.dataframe, *at.table)]
    # a one-row table is a static st.table, whose cells are shown Markdown-escaped (ui.exports): "##q" as "\\#\\#q"
    pred = [d.value for d in at.table if "clean top-1" in d.value.columns]
    assert len(pred) == 1 and pred[0]["clean top-1"].tolist() == [escape_markdown(top)]
    assert any("sampled flip" in d.columns for d in tables) and any("gate TV (word-aligned)" in d.columns
                                                                     for d in tables)
    assert len(at.get("plotly_chart")) == 1
    labels = [b.label for b in at.get("download_button")]
    assert labels.count(t("export.csv")) >= 3 and t("export.html") in labels
    at.selectbox(key="nz_pert").set_value("word-drop").run()
    no_exception(at)
    at.multiselect(key="nz_schemes").set_value([]).run()
    assert any(t("noise.schemes_empty") == i.value for i in at.info)


def test_text_without_mask_is_probed_word_by_word(folder):
    at = page(model=folder, text="the cat sat on the mat .", k=2)
    at.number_input(key="nz_noise_seeds").set_value(1).run()
    at.number_input(key="nz_seeds").set_value(1).run()
    no_exception(at)
    assert any("is masked in turn" in i.value for i in at.info)
    assert at.selectbox(key="nz_variant").options


def test_every_string_key_of_the_page_exists():
    import re

    from interp.i18n import EN
    keys = set()
    for path in (ROOT / PAGE, ROOT / "interp" / "figures" / "noise.py"):     # (noise.empty: via empty_state)
        keys |= set(re.findall(r"\bt[r]?\(\s*\"([a-z0-9_.]+)\"", path.read_text(encoding="utf-8")))
    assert len(keys) > 20
    assert not sorted(k for k in keys if k not in EN)
    assert not [k for k in EN if k.startswith("noise.") and k not in keys and k != "noise.empty"]
