"""Figures of the executive story: one simple chart per step, large type, every label through ``interp.i18n``.

Pure (data → plotly Figure), colour-blind-safe (Okabe–Ito), readable on a projector at 1280×720.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..i18n import t
from .common import OKABE_ITO, compact, style

FONT_SIZE = 18
HEIGHT = 340
DENSE, SAMPLED, ACCENT, MUTED = OKABE_ITO[4], OKABE_ITO[0], OKABE_ITO[5], "#BBBBBB"


def _big(fig: go.Figure, title: str) -> go.Figure:
    style(fig, title, height=HEIGHT)
    fig.update_layout(font=dict(size=FONT_SIZE), title=dict(font=dict(size=FONT_SIZE + 4)),
                      margin=dict(l=10, r=10, t=60, b=10), legend=dict(orientation="h", y=-0.25, font_size=16))
    return fig


def prediction_figure(step, lang: str = "en") -> go.Figure | None:
    """Top guesses at the blank, best on top (horizontal bars)."""
    if not step.top:
        return None
    tokens = [tok for tok, _ in step.top][::-1]
    probs = np.array([p for _, p in step.top][::-1])
    colours = [MUTED] * (len(tokens) - 1) + [DENSE]
    fig = go.Figure(go.Bar(x=compact(probs), y=tokens, orientation="h", marker_color=colours,
                           text=[f"{p:.0%}" for p in probs], textposition="outside",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_xaxes(title_text=t("story.axis.prob", lang), tickformat=".0%", range=[0, min(1.0, probs.max() * 1.3)])
    return _big(fig, t("story.s1.chart", lang))


def _word_axis(tokens: list[str]) -> dict:
    return dict(tickmode="array", tickvals=list(range(len(tokens))), ticktext=list(tokens), tickangle=-45)


def experts_figure(step, lang: str = "en") -> go.Figure:
    """The head's gate row at the query: one bar per word, the named experts highlighted."""
    named = {j for j, _, _ in step.experts}
    colours = [ACCENT if j == step.query else (DENSE if j in named else MUTED) for j in range(len(step.tokens))]
    fig = go.Figure(go.Bar(x=np.arange(len(step.tokens)), y=compact(step.gates), marker_color=colours,
                           customdata=step.tokens, hovertemplate="%{customdata}: %{y:.1%}<extra></extra>"))
    fig.update_xaxes(**_word_axis(step.tokens))
    fig.update_yaxes(title_text=t("story.axis.gate", lang), tickformat=".0%")
    return _big(fig, t("story.s2.chart", lang, query=step.tokens[step.query], layer=step.layer, head=step.head))


def baseline_figure(step, lang: str = "en") -> go.Figure | None:
    """Attention vs CBOW: share of words recovered on this sentence, and held-out top-1 (with the baseline)."""
    if not step.available:
        return None
    groups = [t("story.s3.sentence", lang), t("story.s3.held_out", lang)]
    n = max(step.n_words, 1)
    paper = [sum(step.paper_hits) / n if step.n_words else np.nan, step.heldout["paper"]]
    cbow = [sum(step.cbow_hits) / n if step.n_words else np.nan, step.heldout["cbow"]]
    fig = go.Figure()
    for name, ys, colour in ((t("story.s3.attention", lang), paper, DENSE), (t("story.s3.cbow", lang), cbow, SAMPLED)):
        fig.add_trace(go.Bar(x=groups, y=compact(ys), name=name, marker_color=colour,
                             text=[("" if np.isnan(y) else f"{y:.0%}") for y in ys], textposition="outside"))
    fig.add_trace(go.Bar(x=groups[1:], y=compact([step.heldout["baseline"]]), name=t("story.s3.baseline", lang),
                         marker_color=MUTED, text=[f"{step.heldout['baseline']:.0%}"], textposition="outside"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=t("story.axis.share", lang), tickformat=".0%", range=[0, 1.05])
    return _big(fig, t("story.s3.chart", lang))


def sampling_figure(step, lang: str = "en") -> go.Figure:
    """Dense row beside the first sampled draw, for the experts step's head and query."""
    x = np.arange(len(step.tokens))
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=compact(step.dense_row), name=t("samp.dense", lang), marker_color=DENSE,
                         customdata=step.tokens, hovertemplate="%{customdata}: %{y:.1%}<extra></extra>"))
    fig.add_trace(go.Bar(x=x, y=compact(step.sampled_rows[0]), name=t("samp.sampled", lang), marker_color=SAMPLED,
                         customdata=step.tokens, hovertemplate="%{customdata}: %{y:.1%}<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_xaxes(**_word_axis(step.tokens))
    fig.update_yaxes(title_text=t("story.axis.gate", lang), tickformat=".0%")
    return _big(fig, t("story.s4.chart", lang, query=step.tokens[step.query], layer=step.layer, head=step.head))


def noise_figure(step, lang: str = "en") -> go.Figure | None:
    """Flip rates: dense under noise, sampled under noise, sampled on clean text (the floor)."""
    if not step.measured:
        return None
    names = [t("story.s5.dense", lang), t("story.s5.sampled", lang), t("story.s5.floor", lang)]
    ys = [step.dense_flip_rate, step.sampled_flip_rate, step.floor_flip_rate]
    fig = go.Figure(go.Bar(x=names, y=compact(ys), marker_color=[DENSE, SAMPLED, MUTED],
                           text=[f"{y:.0%}" for y in ys], textposition="outside"))
    fig.update_yaxes(title_text=t("story.axis.share", lang), tickformat=".0%", range=[0, 1.05])
    return _big(fig, t("story.s5.chart", lang))


def break_figure(step, lang: str = "en") -> go.Figure | None:
    """The worst head's per-word sampling error, worst first (the error-concentration view)."""
    if step.errors is None:
        return None
    e = np.asarray(step.errors, dtype=np.float64)
    idx = np.where(~np.isnan(e))[0]
    order = idx[np.argsort(-e[idx], kind="stable")]
    labels = [step.tokens[j] for j in order]
    colours = [ACCENT if j == step.query else DENSE for j in order]
    fig = go.Figure(go.Bar(x=np.arange(len(order)), y=compact(e[order]), marker_color=colours, customdata=labels,
                           hovertemplate="%{customdata}: %{y:.0%}<extra></extra>"))
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(order))), ticktext=labels, tickangle=-45)
    fig.update_yaxes(title_text=t("story.axis.error", lang), tickformat=".0%")
    return _big(fig, t("story.s6.chart", lang, layer=step.layer, head=step.head))


FIGURES = {"prediction": prediction_figure, "experts": experts_figure, "baseline": baseline_figure,
           "sampling": sampling_figure, "noise": noise_figure, "break": break_figure}


def step_figure(step, lang: str = "en") -> go.Figure | None:
    """The figure of a story step (None for steps without one, or without data)."""
    fn = FIGURES.get(step.kind)
    return fn(step, lang) if fn else None
