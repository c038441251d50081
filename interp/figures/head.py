"""One head as a mixture of experts: gate and firing heatmaps, the query's row, top experts, message norms,
the positional profile, the lens views (per-expert predictions, geometric pool) and the layer-0 splits.

Pure functions from ``decompose.HeadView`` / ``lenses.LensResult`` / ``decompose.CBOWSplit`` /
``decompose.GateScoreSplit`` to plotly figures and pandas tables. One head at a time: at most one n × n array
per figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from ..i18n import role_text, t
from .common import LINE_PX, OKABE_ITO, SEQUENTIAL, compact, fixed_margins, label_extent, style, token_axis

TICK_ANGLE = -60
TITLE_PX = LINE_PX + 14        # an axis title and its distance from the tick labels
TOKEN_TICKS = 24               # token labels per axis (the browser measures every label's text)


def gate_heatmap(hv, query: int | None = None, show: str = "gate", lang: str = "en") -> go.Figure:
    """Query × expert heatmap of the gates a_ij (``show="gate"``) or firing strengths f_ij (``"firing"``);
    the selected query row is outlined."""
    z = hv.gates if show == "gate" else hv.firing
    n = z.shape[0]
    title = t("head.gates_title", lang) if show == "gate" else t("head.firing_title", lang)
    fig = go.Figure(go.Heatmap(z=compact(z), colorscale=SEQUENTIAL, zmin=0.0,
                               zmax=1.0 if show == "gate" else None,
                               colorbar=dict(thickness=12, outlinewidth=0),
                               hovertemplate=f"{t('fig.query', lang)} %{{y}} · {t('fig.expert', lang)} "
                                             f"%{{x}}<br>%{{z:.4f}}<extra></extra>"))
    if query is not None:
        fig.add_shape(type="rect", x0=-0.5, x1=n - 0.5, y0=query - 0.5, y1=query + 0.5,
                      line=dict(color=OKABE_ITO[5], width=2))
    axis = token_axis(hv.tokens, TOKEN_TICKS)
    fig.update_xaxes(title_text=t("fig.expert_j", lang), **axis, tickangle=TICK_ANGLE, showgrid=False)
    fig.update_yaxes(title_text=t("fig.query_i", lang), **axis, autorange="reversed", showgrid=False)
    side = int(np.clip(260 + 9 * n, 380, 760))
    style(fig, title, height=side)
    return fixed_margins(fig, left=label_extent(axis["ticktext"]) + TITLE_PX,
                         bottom=label_extent(axis["ticktext"], TICK_ANGLE) + TITLE_PX)


def query_row(hv, query: int, lang: str = "en") -> go.Figure:
    """For the selected query: the gate a_ij and the firing strength f_ij of every expert j (two panels sharing
    the expert axis; laid out by hand rather than with make_subplots, which is slow)."""
    n = len(hv.tokens)
    x = np.arange(n)
    gate, firing = t("head.col.gate", lang), t("head.col.firing", lang)
    hover = f"{t('fig.expert', lang)} %{{x}}: %{{y:.4f}}<extra></extra>"
    data = [dict(type="bar", x=x, y=compact(hv.gates[query]), marker=dict(color=OKABE_ITO[4]), name=gate,
                 hovertemplate=hover, xaxis="x", yaxis="y"),
            dict(type="bar", x=x, y=compact(hv.firing[query]), marker=dict(color=OKABE_ITO[5]), name=firing,
                 hovertemplate=hover, xaxis="x", yaxis="y2")]
    axis = token_axis(hv.tokens, TOKEN_TICKS)
    layout = dict(showlegend=False, bargap=0.1,
                  xaxis=dict(anchor="y2", tickangle=TICK_ANGLE, **axis),
                  yaxis=dict(domain=[0.56, 1.0], title=dict(text=gate)),
                  yaxis2=dict(domain=[0.0, 0.44], title=dict(text=firing)))
    fig = go.Figure(data=data, layout=layout)
    style(fig, t("head.row_title", lang, token=hv.tokens[query], query=query), height=420)
    numbers = label_extent(["0.000"])                       # gate and firing ticks: short decimals
    return fixed_margins(fig, left=numbers + TITLE_PX, bottom=label_extent(axis["ticktext"], TICK_ANGLE))


def _steps(y, colour: str, name: str, hover: str, yaxis: str) -> dict:
    """Bars of width 1 centred on 0..n-1 drawn as one filled step line (one SVG path, where a bar trace draws one
    path per bar: the browser's work for n bars drops to that of one shape). The points are the bars' centres,
    with the first and last value repeated at −0.5 and n − 0.5 so that the end bars are whole; ``customdata``
    holds each point's expert j for the hover (``hover`` reads ``%{customdata}``)."""
    y = compact(y)
    n = len(y)
    return dict(type="scatter", mode="lines", x=np.concatenate([[-0.5], np.arange(n), [n - 0.5]]).astype(np.float32),
                y=np.concatenate([y[:1], y, y[-1:]]), customdata=np.concatenate([[0], np.arange(n), [n - 1]]).astype(np.int32),
                line=dict(shape="hvh", color=colour, width=1), fill="tozeroy", fillcolor=colour, name=name,
                hovertemplate=hover, xaxis="x", yaxis=yaxis)


ROW_PANEL_PX = 110             # the height of each of the two bar panels of :func:`head_figure`
ROW_GAP_PX = 52                # room between the panels for the row's title (and between the two bar panels)


def head_figure(hv, query: int, show: str = "gate", lang: str = "en") -> go.Figure:
    """The head page's one chart: the query × expert heatmap of the gates a_ij (``show="gate"``) or firing
    strengths f_ij (``"firing"``), the selected query's row outlined, and under it that row's gate a_ij and
    firing f_ij of every expert j as two bar panels (bars without gaps, drawn as filled steps). All three panels
    share the expert axis (column j of the heatmap stands over bar j), so the token labels are drawn once. The same numbers as :func:`gate_heatmap`
    and :func:`query_row` (which the report draws separately), in one chart: the browser mounts one chart per
    head switch instead of two."""
    z = hv.gates if show == "gate" else hv.firing
    n = z.shape[0]
    title = t("head.gates_title", lang) if show == "gate" else t("head.firing_title", lang)
    gate, firing = t("head.col.gate", lang), t("head.col.firing", lang)
    bar_hover = f"{t('fig.expert', lang)} %{{customdata}}: %{{y:.4f}}<extra></extra>"
    side = int(np.clip(260 + 9 * n, 380, 760))                    # the heatmap's own height, as in gate_heatmap
    heat_px = side - 120                                          # its plot area (the rest was margins and title)
    plot_px = heat_px + 2 * ROW_PANEL_PX + 2 * ROW_GAP_PX
    frac = lambda px: px / plot_px
    bar2_top = frac(ROW_PANEL_PX)                                 # firing: bottom panel
    bar1 = (bar2_top + frac(ROW_GAP_PX / 2), bar2_top + frac(ROW_GAP_PX / 2 + ROW_PANEL_PX))
    heat = (1.0 - frac(heat_px), 1.0)
    data = [dict(type="heatmap", z=compact(z), colorscale=SEQUENTIAL, zmin=0.0, zmax=1.0 if show == "gate" else None,
                 colorbar=dict(thickness=12, outlinewidth=0, len=heat[1] - heat[0], y=heat[1], yanchor="top"),
                 hovertemplate=f"{t('fig.query', lang)} %{{y}} · {t('fig.expert', lang)} %{{x}}<br>%{{z:.4f}}"
                               "<extra></extra>", xaxis="x", yaxis="y"),
            _steps(hv.gates[query], OKABE_ITO[4], gate, bar_hover, "y2"),
            _steps(hv.firing[query], OKABE_ITO[5], firing, bar_hover, "y3")]
    axis = token_axis(hv.tokens, TOKEN_TICKS)
    row_title = t("head.row_title", lang, token=hv.tokens[query], query=query)
    layout = dict(
        showlegend=False, hovermode="closest",
        xaxis=dict(anchor="y3", range=[-0.5, n - 0.5], tickangle=TICK_ANGLE, showgrid=False, zeroline=False,
                   title=dict(text=t("fig.expert_j", lang)), **axis),
        yaxis=dict(domain=list(heat), autorange="reversed", showgrid=False, title=dict(text=t("fig.query_i", lang)),
                   **axis),
        yaxis2=dict(domain=list(bar1), title=dict(text=gate)),
        yaxis3=dict(domain=[0.0, bar2_top], title=dict(text=firing)),
        shapes=[dict(type="rect", xref="x", yref="y", x0=-0.5, x1=n - 0.5, y0=query - 0.5, y1=query + 0.5,
                     line=dict(color=OKABE_ITO[5], width=2))],
        annotations=[dict(text=row_title, xref="paper", yref="paper", x=0.0, xanchor="left",
                          y=bar1[1] + frac(4), yanchor="bottom", showarrow=False, font=dict(size=14))])
    fig = go.Figure(data=data, layout=layout)
    style(fig, title)
    numbers = label_extent(["0.000"])                             # the bar panels' ticks: short decimals
    fixed_margins(fig, left=max(label_extent(axis["ticktext"]), numbers) + TITLE_PX,
                  bottom=label_extent(axis["ticktext"], TICK_ANGLE) + TITLE_PX)
    fig.layout.height = plot_px + fig.layout.margin.t + fig.layout.margin.b
    return fig


def head_figure_summary(hv, query: int, show: str = "gate", lang: str = "en") -> str:
    """A text alternative of :func:`head_figure` for screen readers: what is drawn, its size, and the numbers of
    the outlined query row that the chart's hover shows (largest gate and largest firing strength, 4 decimals)."""
    j, tok, gate, _ = hv.top_experts(query, 1)[0]
    fj, ftok, _, firing = hv.top_experts(query, 1, by="firing")[0]
    what = t("head.gates_title", lang) if show == "gate" else t("head.firing_title", lang)
    return t("head.figure_summary", lang, what=what, layer=hv.layer, head=hv.head, n=len(hv.tokens), query=query,
             token=hv.tokens[query], gate=gate, top=j, top_token=tok, firing=firing, f_top=fj, f_token=ftok)


def top_experts_table(hv, query: int, k: int = 8, lang: str = "en") -> pd.DataFrame:
    """The k experts with the largest gate for ``query``: position, token, gate, firing."""
    rows = hv.top_experts(query, min(k, len(hv.tokens)))
    return pd.DataFrame(rows, columns=[t("head.col.position", lang), t("head.col.token", lang),
                                       t("head.col.gate", lang), t("head.col.firing", lang)])


def message_norms_figure(hv, special=None, lang: str = "en") -> go.Figure:
    """‖c(o_j)‖ per expert; special tokens drawn in black."""
    n = len(hv.tokens)
    colours = [OKABE_ITO[7] if special is not None and bool(special[j]) else OKABE_ITO[2] for j in range(n)]
    fig = go.Figure(go.Bar(x=np.arange(n), y=compact(hv.message_norms), marker_color=colours,
                           hovertemplate=f"{t('fig.expert', lang)} %{{x}}: %{{y:.4f}}<extra></extra>"))
    fig.update_xaxes(**token_axis(hv.tokens), tickangle=-60)
    return style(fig, t("head.norms_title", lang), height=320)


def profile_figure(hv, lang: str = "en", window: int = 10) -> go.Figure:
    """Mean gate mass by offset j − i, all keys and special keys excluded, within ±``window``."""
    fig = go.Figure()
    for prof, name, colour in ((hv.profile, t("fig.all_keys", lang), OKABE_ITO[4]),
                               (hv.profile_nospecial, t("fig.no_special", lang), OKABE_ITO[0])):
        off = np.asarray(prof.offsets)
        keep = np.abs(off) <= window
        fig.add_trace(go.Bar(x=off[keep], y=compact(prof.mass[hv.head][keep]), name=name, marker_color=colour,
                             hovertemplate=f"{t('fig.offset', lang)} %{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.0, yanchor="bottom", x=1, xanchor="right"))
    fig.update_xaxes(title_text=t("fig.offset_axis", lang), dtick=1 if window <= 12 else 2)
    return style(fig, t("head.profile_title", lang), height=320)


def caption(hv, query: int, lang: str = "en") -> str:
    """Plain-language summary from the head's own numbers: role, strongest gate, spread, strongest firing."""
    j, tok, g, _ = hv.top_experts(query, 1)[0]
    fj, ftok, _, _ = hv.top_experts(query, 1, by="firing")[0]
    parts = [t("head.caption_role", lang, layer=hv.layer, head=hv.head, role=role_text(hv.role, lang)),
             t("head.caption_gate", lang, token=hv.tokens[query], query=query, gate=g, top_token=tok, top=j,
               eff=float(hv.effective_experts[query]))]
    parts.append(t("head.caption_firing", lang, f_token=ftok, f_pos=fj) if fj != j else t("head.caption_same", lang))
    return " ".join(parts)


# --- lenses -----------------------------------------------------------------------------------------------

@dataclass
class LensSummary:
    """The compact part of a ``LensResult`` that the page shows (no n × V arrays)."""
    lens: str
    exactness: str
    output_kind: str
    layer: int
    head: int
    query: int
    experts: pd.DataFrame                 # per expert j: position, token, gate, top token, p(top) or cosine
    model_top: list[tuple[str, float]]    # the model's own distribution (logits) at the query
    pool_top: list[tuple[str, float]]     # softmax(Σ_j a_ij z_j) = normalised geometric pool
    arith_top: list[tuple[str, float]]    # Σ_j a_ij softmax(z_j) (teaching contrast)
    compare: pd.DataFrame                 # token × (model, pool, arithmetic) probabilities
    mixture_max_abs_err: float
    mixture_max_rel_err: float
    pool_kl: float | None
    arithmetic_kl: float | None
    notes: list[str] = field(default_factory=list)


def _experts_frame(z: torch.Tensor, gates: torch.Tensor, positions: list[int], tokens: list[str],
                   output_kind: str, model_output: torch.Tensor, tokenizer, lang: str) -> pd.DataFrame:
    """One row per expert: position, token, gate, and its top token with p(top) (logit-like outputs) or its
    cosine to the model's output (embeddings)."""
    cols = [t("lens.col.expert", lang), t("lens.col.token", lang), t("lens.col.gate", lang)]
    base = {cols[0]: list(positions), cols[1]: [tokens[j] for j in positions], cols[2]: gates.tolist()}
    if output_kind in ("mlm-logits", "vocabulary-scores"):
        pv, pi = torch.softmax(z, -1).max(-1)
        return pd.DataFrame({**base, t("lens.col.top", lang): tokenizer.convert_ids_to_tokens(pi.tolist()),
                             t("lens.col.prob", lang): pv.tolist()})
    cos = torch.nn.functional.cosine_similarity(z, model_output.double()[None], dim=-1)
    return pd.DataFrame({**base, "cosine to output": cos.tolist()})


def partial_lens_summary(lens: str, exactness: str, output_kind: str, layer: int, head: int, query: int,
                         positions: list[int], experts: torch.Tensor, gates: torch.Tensor,
                         model_output: torch.Tensor, tokens: list[str], tokenizer, lang: str = "en") -> LensSummary:
    """The experts computed so far by a progressive lens (``positions``, their outputs ``experts``: len × out,
    their gates): the same per-expert rows as :func:`lens_summary` gives for those positions; the pool and the
    reconstruction errors need every expert, so they are left empty (nan) until the lens is complete."""
    df = _experts_frame(experts.double(), gates.double(), positions, tokens, output_kind, model_output,
                        tokenizer, lang)
    nan = float("nan")
    return LensSummary(lens, exactness, output_kind, layer, head, query, df, [], [], [], pd.DataFrame(), nan, nan,
                       None, None, [])


def lens_summary(res, tokens: list[str], tokenizer, top: int = 5, lang: str = "en") -> LensSummary:
    """Per-expert top-1 token and probability of softmax(z_j) (logit-like outputs) or cosine(z_j, y_i)
    (embeddings); the top tokens of the model, the geometric pool softmax(Σ_j a_ij z_j) and the arithmetic
    mixture Σ_j a_ij softmax(z_j); the lens's reconstruction errors as reported by the lens."""
    z = res.experts.double()
    gates = res.gates.double()
    logit_like = res.output_kind in ("mlm-logits", "vocabulary-scores")
    n = z.shape[0]
    experts = _experts_frame(z, gates, list(range(n)), tokens, res.output_kind, res.model_output, tokenizer, lang)
    if logit_like:
        p = torch.softmax(z, -1)

    def topk(prob: torch.Tensor) -> list[tuple[str, float]]:
        v, i = torch.topk(prob, min(top, prob.numel()))
        return list(zip(tokenizer.convert_ids_to_tokens(i.tolist()), v.tolist()))

    model_top = pool_top = arith_top = []
    compare = pd.DataFrame()
    if logit_like:
        pm = torch.softmax(res.model_output.double(), -1)
        pp = torch.softmax(res.mixture.double(), -1)
        pa = (gates[:, None] * p).sum(0)
        model_top, pool_top, arith_top = topk(pm), topk(pp), topk(pa)
        ids = []
        for prob in (pm, pp, pa):
            for i in torch.topk(prob, min(top, prob.numel())).indices.tolist():
                if i not in ids:
                    ids.append(i)
        compare = pd.DataFrame({"token": tokenizer.convert_ids_to_tokens(ids),
                                t("lens.pool_model", lang): pm[ids].tolist(),
                                t("lens.pool_pool", lang): pp[ids].tolist(),
                                t("lens.pool_arith", lang): pa[ids].tolist()})
    notes = []
    if res.output_kind == "vocabulary-scores":
        notes.append(t("lens.no_head_note", lang))
    return LensSummary(res.lens, res.exactness, res.output_kind, res.layer, res.head, res.query, experts,
                       model_top, pool_top, arith_top, compare, float(res.mixture_max_abs_err),
                       float(res.mixture_max_rel_err), res.pool_kl, res.arithmetic_kl, notes)


def lens_experts_figure(summary: LensSummary, k: int = 15, lang: str = "en") -> go.Figure:
    """The k experts with the largest gates: bar = gate, label = the expert's own top prediction
    (or 1 − its cosine to the model's output for embedding outputs)."""
    df = summary.experts
    gate_col = t("lens.col.gate", lang)
    top = df.sort_values(gate_col, ascending=False, kind="stable").head(k).iloc[::-1]
    ycol, tcol = t("lens.col.expert", lang), t("lens.col.token", lang)
    labels = [f"{int(j)}·{tok}" for j, tok in zip(top[ycol], top[tcol])]
    if t("lens.col.top", lang) in df:
        text = [f"→ {w} ({p:.0%})" for w, p in zip(top[t("lens.col.top", lang)], top[t("lens.col.prob", lang)])]
    else:
        # cosines of embeddings are all close to 1 (the head is one term in a residual sum): show 1 − cos,
        # which varies from expert to expert, in a format that keeps its digits
        text = [f"1−cos {1.0 - c:.2e}" for c in top["cosine to output"]]
    fig = go.Figure(go.Bar(x=compact(top[gate_col].to_numpy()), y=labels, orientation="h", text=text,
                           textposition="auto", marker_color=OKABE_ITO[4],
                           hovertemplate="%{y}: " + gate_col + " %{x:.4f}<br>%{text}<extra></extra>"))
    fig.update_xaxes(title_text=gate_col)
    fig.update_yaxes(type="category")
    return style(fig, t("lens.experts_title", lang), height=max(280, 26 * len(top) + 90))


def pool_figure(summary: LensSummary, lang: str = "en") -> go.Figure | None:
    """Probabilities of the leading tokens under the model, the geometric pool and the arithmetic mixture."""
    if summary.compare.empty:
        return None
    df = summary.compare
    fig = go.Figure()
    for col, colour in zip(df.columns[1:], (OKABE_ITO[7], OKABE_ITO[4], OKABE_ITO[0])):
        fig.add_trace(go.Bar(x=df["token"], y=compact(df[col].to_numpy()), name=col, marker_color=colour,
                             hovertemplate="%{x}: %{y:.4f}<extra>" + col + "</extra>"))
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text=t("fig.probability", lang))
    return style(fig, t("lens.pool_title", lang), height=360)


# --- layer 0 ------------------------------------------------------------------------------------------------

def cbow_split_figure(norms: dict[str, np.ndarray], tokens: list[str], lang: str = "en") -> go.Figure:
    """Per expert j, the norms of the word, position and segment+bias parts of its layer-0 message."""
    fig = go.Figure()
    n = len(tokens)
    for key, colour in (("word", OKABE_ITO[4]), ("position", OKABE_ITO[0]), ("segment_bias", OKABE_ITO[7])):
        fig.add_trace(go.Bar(x=np.arange(n), y=compact(norms[key]), name=t(f"l0.{key}", lang), marker_color=colour,
                             hovertemplate=f"{t('fig.expert', lang)} %{{x}}: %{{y:.4f}}<extra>" + t(f"l0.{key}", lang)
                             + "</extra>"))
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(**token_axis(tokens), tickangle=-60)
    return style(fig, t("l0.cbow_title", lang), height=340)


SCORE_PARTS = ("word–word", "word–position", "position–word", "position–position", "bias")
_PART_KEYS = {p: "l0.part." + p.replace("–", "-") for p in SCORE_PARTS}


def gate_score_split_figure(parts: dict[str, np.ndarray], total: np.ndarray, query: int, tokens: list[str],
                            lang: str = "en") -> go.Figure:
    """Row ``query`` of the layer-0 gate scores, stacked by part (relative stacking: parts may be negative),
    with the model's score as markers."""
    n = len(tokens)
    fig = go.Figure()
    colours = (OKABE_ITO[4], OKABE_ITO[1], OKABE_ITO[0], OKABE_ITO[5], OKABE_ITO[6])
    for name, colour in zip(SCORE_PARTS, colours):
        if name in parts:
            label = t(_PART_KEYS[name], lang)
            fig.add_trace(go.Bar(x=np.arange(n), y=compact(parts[name][query]), name=label, marker_color=colour,
                                 hovertemplate=f"{t('fig.expert', lang)} %{{x}}: %{{y:.4f}}<extra>{label}</extra>"))
    fig.add_trace(go.Scatter(x=np.arange(n), y=compact(total[query]), mode="markers", name=t("fig.score_model", lang),
                             marker=dict(symbol="diamond", color=OKABE_ITO[7], size=8)))
    fig.update_layout(barmode="relative", legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(**token_axis(tokens), tickangle=-60)
    return style(fig, t("l0.score_title", lang), height=360)


def score_split_table(parts: dict[str, np.ndarray], total: np.ndarray, query: int, tokens: list[str],
                      lang: str = "en") -> pd.DataFrame:
    """Row ``query`` of the gate-score split as a table (one row per expert)."""
    df = pd.DataFrame({t("fig.expert_j", lang): range(len(tokens)), t("fig.token", lang): tokens})
    for name in parts:
        df[t(_PART_KEYS[name], lang) if name in _PART_KEYS else name] = parts[name][query]
    df[t("fig.score", lang)] = total[query]
    return df
