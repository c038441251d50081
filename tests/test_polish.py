"""Small defects a careful reader of the dashboard finds, each pinned: Markdown in table cells, counts with
the right plural, titles that fit, percentage axes that stop at 100 %, lens labels that vary, the downstream
sentence naming the token position, JSON errors without a doubled word."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from interp.figures import head as fh
from interp.figures import sampling as fs
from interp.figures.common import TITLE_CHARS, style, wrap_title
from interp.i18n import plural, t


def test_markdown_is_escaped_in_static_tables():
    from ui.exports import _display_frame, escape_markdown
    df = pd.DataFrame({"token": ["-", "*", "# x", "1.", "`a`", "[MASK]", "ok"], "p": np.arange(7) / 10})
    shown = _display_frame(df)
    assert list(shown["token"]) == ["\\-", "\\*", "\\# x", "1\\.", "\\`a\\`", "\\[MASK\\]", "ok"]
    assert shown["p"].equals(df["p"]) and df["token"][0] == "-"      # numbers and the CSV's frame untouched
    assert escape_markdown("a_b|c") == "a\\_b\\|c"


def test_insert_mask_says_where_it_inserts():
    """Streamlit's text area does not report the caret, so the button appends; its help says so."""
    import inspect

    import streamlit as st
    assert not {"selection", "cursor", "caret"} & set(inspect.signature(st.text_area).parameters)
    assert "at the end" in t("input.insert_mask_help") and "cursor" in t("input.insert_mask_help")


@pytest.mark.parametrize("n, want", [(0, "0 layers"), (1, "1 layer"), (2, "2 layers")])
def test_counts_have_the_right_plural(n, want):
    assert plural(n, "count.layer") == want
    assert plural(1, "count.head") == "1 head" and plural(1, "count.token") == "1 token"


def test_model_card_of_a_one_layer_one_head_model(app):
    from engine_fixtures import model_folder
    folder = str(model_folder("bert", True, 3, num_hidden_layers=1, num_attention_heads=1, hidden_size=16,
                              intermediate_size=32))
    at = app(model=folder, text="the cat sat .").run()
    assert not at.exception
    card = [str(c.value) for c in at.caption if str(c.value).startswith("Model:")]
    assert len(card) == 1 and "1 layer × 1 head ·" in card[0], card


def test_long_titles_wrap_and_get_room():
    import plotly.graph_objects as go
    long = "Query 12·[MASK]: gate and firing per expert and some more words"
    wrapped = wrap_title(long)
    assert wrapped.replace("<br>", " ") == long
    assert all(len(line) <= TITLE_CHARS for line in wrapped.split("<br>"))
    one = style(go.Figure(), "short title", height=300)
    two = style(go.Figure(), long, height=300)
    assert two.layout.margin.t > one.layout.margin.t and two.layout.height > one.layout.height


def test_percentage_axis_stops_at_100_percent():
    err = np.array([0.3, 0.1, np.nan, 0.2, 0.05])
    fig = fs.concentration_figure(err, ["a", "b", "c", "d", "e"])
    assert fig.layout.yaxis2.tickformat == ".0%" and list(fig.layout.yaxis2.range) == [0, 1]
    cum = np.asarray(fig.data[1].y, dtype=float)
    assert cum[-1] == pytest.approx(1.0, abs=1e-6)                   # the curve ends at the top, not beyond


def test_embedding_lens_labels_show_one_minus_cosine(tiny_encoder_dir):
    from interp.lenses import LENSES
    from interp.loader import load_model
    from interp.trace import trace_text
    lm = load_model(tiny_encoder_dir)
    trace = trace_text(lm, "the cat sat on the mat .")
    res = LENSES["counterfactual"](lm, trace, 1, 0, 2)
    summary = fh.lens_summary(res, trace.tokens, lm.tokenizer)
    fig = fh.lens_experts_figure(summary)
    labels = list(fig.data[0].text)
    cos = summary.experts.set_index(t("lens.col.expert"))["cosine to output"]
    experts = [int(y.split("·")[0]) for y in fig.data[0].y]
    assert labels == [f"1−cos {1.0 - cos[j]:.2e}" for j in experts]
    assert len(set(labels)) > 1                                      # a quantity that varies between experts


def test_json_error_message_has_no_doubled_word(tmp_path):
    from test_triage_readers import read
    try:
        json.loads('{"text": "unterminated')
    except json.JSONDecodeError as err:
        assert err.msg.endswith(" at")                               # json's own message ends in "at"
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "unterminated\n')
    reasons = [rec.reason for rec in read(path) if rec.fields is None]
    assert reasons and all(" at at " not in r and "column" in r for r in reasons), reasons
