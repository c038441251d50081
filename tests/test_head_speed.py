"""What keeps a head switch cheap, pinned to behaviour: the head page's figures carry margins computed from their
labels (no plotly automargin, no per-label overflow test), and those margins hold the labels they carry."""
from __future__ import annotations

import math

import numpy as np
import torch

import pytest

from engine_fixtures import loaded, long_text
from interp import decompose
from interp.figures import common
from interp.figures import head as fh
from interp.trace import trace_text

TEXT = "the cat sat on the [MASK] near the river bank ."


@pytest.fixture(scope="module")
def lm():
    return loaded("bert")


def test_label_extent_is_the_rotated_box():
    """w·|sin a| + h·|cos a| for a label w wide and one line high rotated by a; its width when horizontal."""
    w = 10 * common.CHAR_PX
    assert common.label_extent(["abcdefghij", "ab"]) == math.ceil(w)
    a = math.radians(60)
    assert common.label_extent(["abcdefghij"], -60) == math.ceil(w * math.sin(a) + common.LINE_PX * math.cos(a))
    assert common.label_extent([]) == 0
    # a wide (CJK) character takes about one em, more than a Latin letter
    assert common.label_extent(["日本"]) == math.ceil(2 * common.WIDE_PX) > common.label_extent(["ab"])


@pytest.mark.parametrize("text", [TEXT, long_text(60)])
def test_head_figures_have_fixed_margins_that_hold_their_labels(lm, text):
    trace = trace_text(lm, text)
    hv = decompose.head_view(lm, trace, 1, 0)
    heat, row, both = fh.gate_heatmap(hv, 2), fh.query_row(hv, 2), fh.head_figure(hv, 2)
    for fig in (heat, row, both):
        axes = [fig.layout[name] for name in fig.layout if name.startswith(("xaxis", "yaxis"))]
        assert axes and all(ax.automargin is False and ax.ticklabeloverflow == "allow" for ax in axes)
        ticks = list(fig.layout.xaxis.ticktext)
        assert len(ticks) <= fh.TOKEN_TICKS
        assert ticks[0] == f"0·{trace.tokens[0]}"
        # the bottom margin holds the rotated token labels (and the heatmap's left one its horizontal labels)
        assert fig.layout.margin.b >= common.label_extent(ticks, fh.TICK_ANGLE)
    assert heat.layout.margin.l >= common.label_extent(list(heat.layout.yaxis.ticktext)) + fh.TITLE_PX
    assert heat.layout.margin.b >= common.label_extent(list(heat.layout.xaxis.ticktext), fh.TICK_ANGLE) + fh.TITLE_PX
    for fig in (heat, both):
        assert fig.layout.margin.l >= common.label_extent(list(fig.layout.yaxis.ticktext)) + fh.TITLE_PX
        assert fig.layout.margin.b >= common.label_extent(list(fig.layout.xaxis.ticktext), fh.TICK_ANGLE) + fh.TITLE_PX


def test_head_figure_panels_share_the_expert_axis_without_overlap(lm):
    """One chart: the heatmap on top, the query's gate and firing bars under it, one expert axis (its token labels
    drawn once, under the lowest panel); the panels' domains are disjoint and ordered, the colour bar spans the
    heatmap's panel only, and the plot area keeps each bar panel ROW_PANEL_PX high."""
    for text in ("a b .", long_text(60)):
        trace = trace_text(lm, text)
        fig = fh.head_figure(decompose.head_view(lm, trace, 1, 0), 1)
        lay = fig.layout
        assert lay.xaxis.anchor == "y3" and "xaxis2" not in lay
        assert lay.xaxis.zeroline is False                # no vertical line at expert 0 through the bar panels
        assert list(lay.xaxis.range) == [-0.5, trace.n - 0.5]
        d1, d2, d3 = (list(getattr(lay, name).domain) for name in ("yaxis", "yaxis2", "yaxis3"))
        assert 0.0 == d3[0] < d3[1] < d2[0] < d2[1] < d1[0] < d1[1] == 1.0
        bar = fig.data[0].colorbar
        assert bar.y == pytest.approx(d1[1]) and bar.len == pytest.approx(d1[1] - d1[0])
        plot_px = lay.height - lay.margin.t - lay.margin.b
        assert (d3[1] - d3[0]) * plot_px == pytest.approx(fh.ROW_PANEL_PX)
        assert (d2[1] - d2[0]) * plot_px == pytest.approx(fh.ROW_PANEL_PX)
        assert (d1[1] - d1[0]) * plot_px >= 200                    # the heatmap keeps most of the height


def test_longer_tokens_get_wider_margins(lm):
    short, long = (fh.gate_heatmap(decompose.head_view(lm, trace_text(lm, text), 0, 0), 1)
                   for text in ("a b .", long_text(60)))
    width = lambda fig: max(map(len, fig.layout.yaxis.ticktext))
    assert width(long) > width(short)
    assert long.layout.margin.l > short.layout.margin.l


@pytest.mark.parametrize("arch", ["bert", "modernbert", "distilbert"])
def test_overview_from_a_padded_batch_equals_the_single_text(arch):
    """The entropy terms summed during the capture ignore padded keys: an example of a right-padded batch gives
    the overview of the same text traced alone (float32, rtol 1e-5), and both match the definition exp(H(a_i·))."""
    from interp.trace import capture
    lm = loaded(arch)
    short, longer = "the cat sat .", "the cat sat on the [MASK] near the river bank ."
    alone = decompose.overview(lm, trace_text(lm, short), with_checks=False)
    batch = capture(lm, [longer, short])
    assert batch.encoded.attention_mask[1].sum() < batch.encoded.attention_mask.shape[1]   # padded
    padded = decompose.overview(lm, batch.example(1), with_checks=False)
    for name in ("effective_experts", "effective_experts_nospecial", "special_mass", "firing_total"):
        a, b = getattr(alone, name), getattr(padded, name)
        assert a.shape == b.shape
        assert np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True), name
    p = batch.example(1).layers[0].probs.double()
    want = torch.exp(torch.special.entr(p).sum(-1)).numpy()
    assert np.allclose(padded.effective_experts[0], want, rtol=1e-5)


def test_message_gram_is_kept_per_weight_and_follows_a_change_of_the_weight():
    """G^h = W_O^hᵀ C W_O^h gives the message norms ‖c(o_j)‖ of the definition; it is computed once per weight and
    recomputed when the weight changes in place (a private copy of a model is changed here, never a shared one)."""
    from engine_fixtures import model_folder
    from interp.loader import load_model
    lm = loaded("bert")
    own = load_model(str(model_folder("bert")))                   # this test's own instance of the same weights
    assert own is not lm and own.adapter.layers[1].o.weight is not lm.adapter.layers[1].o.weight
    tr = trace_text(own, TEXT)
    lt = tr.layers[1]
    want = lambda: decompose.message_norms(own, lt, 1)           # from the n × d messages themselves
    got = lambda: decompose._norms_from_gram(lt.v, decompose.message_gram(own, 1))
    assert torch.allclose(got(), want(), rtol=1e-5, atol=1e-6)
    assert decompose.message_gram(own, 1) is decompose.message_gram(own, 1)
    with torch.no_grad():
        own.adapter.layers[1].o.weight.mul_(2.0)
    assert torch.allclose(got(), want(), rtol=1e-5, atol=1e-6)
    assert torch.allclose(got(), 2 * decompose._norms_from_gram(lt.v, decompose.message_gram(lm, 1)), rtol=1e-5)


def test_top_experts_as_one_markdown_table_shows_the_tokens_literally(lm):
    """The top-experts table is one Markdown element: a header, an alignment row (numbers right-aligned) and one
    line per expert; tokens that are Markdown syntax ("|", "#", "*") are escaped so they show as themselves, and
    gates/firings are the table's values rounded to 4 decimals."""
    import pandas as pd
    from ui.exports import escape_markdown, markdown_table
    df = pd.DataFrame({"expert position j": [3, 0], "token": ["|", "##ing*"], "gate a_ij": [0.123456, 2e-5],
                       "firing f_ij": [1.0, 0.5]})
    text = markdown_table(df, "Top experts")
    title, _, table = text.partition("\n\n")
    assert title == "**Top experts**"
    lines = table.splitlines()
    assert lines[0] == "| expert position j | token | gate a\\_ij | firing f\\_ij |"
    assert lines[1] == "|---:|---|---:|---:|"
    assert lines[2] == "| 3 | \\| | 0.1235 | 1.0000 |"
    assert lines[3] == "| 0 | \\#\\#ing\\* | 0.0000 | 0.5000 |"
    assert escape_markdown("|") == "\\|" and len(lines) == 2 + len(df)
    # on the head page: the same rows as the table function, whose values the CSV download holds unrounded
    trace = trace_text(lm, TEXT)
    hv = decompose.head_view(lm, trace, 1, 0)
    top = fh.top_experts_table(hv, 2, 8)
    rows = markdown_table(top).splitlines()[2:]
    assert len(rows) == len(top)
    for line, (_, r) in zip(rows, top.iterrows()):
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert int(cells[0]) == r.iloc[0]
        assert abs(float(cells[2]) - r.iloc[2]) <= 0.5e-4 + 1e-9 and abs(float(cells[3]) - r.iloc[3]) <= 0.5e-4 + 1e-9
