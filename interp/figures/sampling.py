"""Sampled vs dense views: the selected query's rows side by side, error heatmaps over layers × heads, the
downstream effect, variance across seeds, error concentration and the FLOPs table.

Pure functions from ``interp.sampling`` results (``SamplingReport``, ``DownstreamResult``) and plain arrays to
plotly figures and pandas tables. The heatmaps ship L × H numbers; the per-query views one head's n numbers.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..i18n import t
from .common import OKABE_ITO, SEQUENTIAL_ALT, compact, style, token_axis

# metric key in the report → label
METRICS = {
    "tv": "total variation ½Σ|P − P̂|",
    "kl": "KL(P̂ ‖ P)",
    "js": "Jensen–Shannon",
    "dropped": "dropped mass",
    "rel_err": "head-output error ‖ô − o‖/‖o‖",
    "rel_err_o": "error after W_O",
    "z": "calibrated error ‖ô − o‖/σ",
    "mse_rel": "MSE across seeds / ‖o‖²",
    "var_rel": "variance across seeds / ‖o‖²",
    "worst5": "share of squared error in the worst 5% of queries",
}


def metric_label(metric: str, lang: str = "en") -> str:
    """A metric's label in ``lang`` (``METRICS`` holds the English ones)."""
    return t(f"samp.metric.{metric}", lang) if metric in METRICS else metric


def head_key(metric: str, stat: str = "mean", nospecial: bool = False) -> str:
    """The key of a per-head summary in ``SamplingReport.heads`` (e.g. ``tv_mean_nospecial``)."""
    base = "worst5_share" if metric == "worst5" else (f"{metric}_mean" if metric in ("mse_rel", "var_rel", "bias2_rel")
                                                      else f"{metric}_{stat}")
    return base + ("_nospecial" if nospecial else "")


def head_grid(report, metric: str = "tv", stat: str = "mean", nospecial: bool = False,
              n_layers: int | None = None, n_heads: int | None = None) -> np.ndarray:
    """L × H matrix of one per-head summary (NaN for layers not in the report)."""
    key = head_key(metric, stat, nospecial)
    L = n_layers if n_layers is not None else max(r["layer"] for r in report.heads) + 1
    H = n_heads if n_heads is not None else max(r["head"] for r in report.heads) + 1
    grid = np.full((L, H), np.nan)
    for row in report.heads:
        grid[row["layer"], row["head"]] = row.get(key, np.nan)
    return grid


def error_heatmap(grid: np.ndarray, metric: str, selected: tuple[int, int] | None = None,
                  lang: str = "en") -> go.Figure:
    """Layers × heads heatmap of a sampling error (cividis; NaN cells blank), selected head outlined."""
    L, H = grid.shape
    label = metric_label(metric, lang)
    layer_w, head_w = t("ov.layer", lang), t("ov.head", lang)
    fig = go.Figure(go.Heatmap(z=compact(grid), colorscale=SEQUENTIAL_ALT, colorbar=dict(thickness=12, outlinewidth=0),
                               hovertemplate=f"{layer_w} %{{y}} · {head_w} %{{x}}<br>%{{z:.4g}}<extra></extra>",
                               xgap=1, ygap=1))
    if selected is not None:
        l, h = selected
        fig.add_shape(type="rect", x0=h - 0.5, x1=h + 0.5, y0=l - 0.5, y1=l + 0.5,
                      line=dict(color=OKABE_ITO[5], width=3))
    fig.update_xaxes(title_text=head_w, dtick=1, showgrid=False)
    fig.update_yaxes(title_text=layer_w, dtick=1, autorange="reversed", showgrid=False)
    return style(fig, t("samp.err_title", lang, metric=label), height=max(260, 34 * L + 110))


def rows_figure(dense: np.ndarray, sampled: np.ndarray, tokens: list[str], seed_index: int, query: int,
                layer: int, head: int, seed: int, lang: str = "en") -> go.Figure:
    """Dense row P_i· beside the sampled row P̂_i· of one replicate, and the mean of P̂ over replicates."""
    n = len(tokens)
    x = np.arange(n)
    fig = go.Figure()
    expert, dense_w, sampled_w = t("fig.expert", lang), t("samp.dense", lang), t("samp.sampled", lang)
    fig.add_trace(go.Bar(x=x, y=compact(dense), name=dense_w, marker_color=OKABE_ITO[7],
                         hovertemplate=f"{expert} %{{x}}: %{{y:.4f}}<extra>{dense_w}</extra>"))
    fig.add_trace(go.Bar(x=x, y=compact(sampled[seed_index]), name=t("samp.sampled_rep", lang, i=seed_index),
                         marker_color=OKABE_ITO[0],
                         hovertemplate=f"{expert} %{{x}}: %{{y:.4f}}<extra>{sampled_w}</extra>"))
    if sampled.shape[0] > 1:
        fig.add_trace(go.Scatter(x=x, y=compact(sampled.mean(0)), mode="markers",
                                 name=t("samp.sampled_mean", lang, n=sampled.shape[0]),
                                 marker=dict(symbol="diamond", color=OKABE_ITO[4], size=7)))
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(**token_axis(tokens), tickangle=-60)
    fig.update_yaxes(title_text=t("fig.weight", lang))
    title = t("samp.rows_title", lang, token=tokens[query], layer=layer, head=head, seed=seed)
    return style(fig, title, height=380)


def row_table(dense: np.ndarray, sampled: np.ndarray, tokens: list[str], lang: str = "en") -> pd.DataFrame:
    """One row per expert: dense weight and the weight of every replicate."""
    df = pd.DataFrame({t("fig.expert_j", lang): range(len(tokens)), t("fig.token", lang): tokens,
                       t("samp.dense", lang): dense})
    for s in range(sampled.shape[0]):
        df[t("samp.sampled_col", lang, i=s)] = sampled[s]
    return df


def variance_figure(var_rel: np.ndarray, bias2_rel: np.ndarray, tokens: list[str], lang: str = "en") -> go.Figure:
    """Per query of one head: variance and squared bias across seeds, stacked (their sum is the MSE), relative
    to ‖o_i‖²."""
    x = np.arange(len(tokens))
    fig = go.Figure()
    query = t("fig.query", lang)
    fig.add_trace(go.Bar(x=x, y=compact(var_rel), name=t("fig.variance", lang), marker_color=OKABE_ITO[1],
                         hovertemplate=f"{query} %{{x}}: %{{y:.3g}}<extra>{t('fig.variance_short', lang)}</extra>"))
    fig.add_trace(go.Bar(x=x, y=compact(bias2_rel), name=t("fig.bias2", lang), marker_color=OKABE_ITO[5],
                         hovertemplate=f"{query} %{{x}}: %{{y:.3g}}<extra>{t('fig.bias2_short', lang)}</extra>"))
    fig.update_layout(barmode="stack", legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(**token_axis(tokens), tickangle=-60)
    fig.update_yaxes(title_text=t("fig.relative", lang))
    return style(fig, t("samp.variance", lang), height=340)


def concentration_stats(err: np.ndarray) -> dict[str, float]:
    """Over the defined queries of one head: mean, p95 (linear), max of the error, and the share of Σ err²
    carried by the worst ⌈5%⌉ of queries (the seed's "errors are spread out" claim, tested directly)."""
    e = np.asarray(err, dtype=np.float64)
    e = e[~np.isnan(e)]
    if e.size == 0:
        return {"mean": math.nan, "p95": math.nan, "max": math.nan, "worst5_share": math.nan, "queries": 0}
    sq = np.sort(e ** 2)[::-1]
    top = max(1, math.ceil(0.05 * e.size))
    total = sq.sum()
    return {"mean": float(e.mean()), "p95": float(np.quantile(e, 0.95)), "max": float(e.max()),
            "worst5_share": float(sq[:top].sum() / total) if total > 0 else 0.0, "queries": int(e.size)}


def concentration_figure(err: np.ndarray, tokens: list[str], lang: str = "en") -> go.Figure:
    """Queries sorted by error (bars) and the cumulative share of squared error (line): a steep start means the
    error is concentrated in a few queries."""
    e = np.asarray(err, dtype=np.float64)
    idx = np.where(~np.isnan(e))[0]
    order = idx[np.argsort(-e[idx], kind="stable")]
    sq = e[order] ** 2
    cum = np.cumsum(sq) / sq.sum() if sq.size and sq.sum() > 0 else np.zeros_like(sq)
    labels = [f"{j}·{tokens[j]}" for j in order]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=np.arange(len(order)), y=compact(e[order]), name=t("fig.error", lang),
                         marker_color=OKABE_ITO[4],
                         customdata=labels, hovertemplate="%{customdata}: %{y:.4g}<extra></extra>"))
    fig.add_trace(go.Scatter(x=np.arange(len(order)), y=compact(cum), name=t("fig.cum_share", lang),
                             yaxis="y2", mode="lines", line=dict(color=OKABE_ITO[5], width=2), cliponaxis=False))
    fig.update_layout(yaxis2=dict(overlaying="y", side="right", range=[0, 1], tickformat=".0%",
                                  showgrid=False, title=dict(text=t("fig.share_axis", lang))),
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title_text=t("fig.worst_first", lang))
    fig.update_layout(yaxis_title_text=t("fig.error", lang))     # the left axis only (the right one is the share)
    return style(fig, t("samp.concentration", lang), height=340)


def flops_table(schemes, flops_fn, dense_fn, needs_full_qk: dict, n: int, n_v: int, d_head: int, d_model: int,
                k: int, h: int | None = None, m: int | None = None, lang: str = "en") -> pd.DataFrame:
    """FLOPs of one head per scheme (the engine's formulas), the ratio to dense 4·n·n_v·d, whether the scheme
    needs the full QKᵀ, and the attention core's share of a BERT layer, n/(n + 6·d_model) (Amdahl bound)."""
    dense = dense_fn(n, n_v, d_head)
    c_scheme, c_flops, c_ratio, c_full = (t("flops.scheme", lang), t("flops.per_head", lang),
                                          t("flops.ratio", lang), t("flops.full_qk", lang))
    rows = [{c_scheme: t("flops.dense", lang), c_flops: dense, c_ratio: 1.0,
             c_full: True}]
    for name in schemes:
        f = flops_fn(name, n, n_v, d_head, k, k if h is None else h, k if m is None else m)
        rows.append({c_scheme: name, c_flops: f, c_ratio: f / dense, c_full: bool(needs_full_qk.get(name, True))})
    df = pd.DataFrame(rows)
    df.attrs["attention_share"] = n / (n + 6 * d_model)
    return df


def downstream_table(result, lang: str = "en") -> pd.DataFrame:
    """The effect on the model's output, one row per metric (example 0)."""
    pos = result.positions[0]
    pos_key = {"mask": "down.pos.mask", "non-special": "down.pos.nonspecial"}.get(pos)
    rows = [(t("down.compared_at", lang), t(pos_key, lang) if pos_key and lang != "en" else pos),
            (t("down.positions", lang), int(result.n_positions[0]))]
    if result.has_mlm_head:
        rows += [(t("down.agreement", lang), float(result.top1_agreement[0])),
                 (t("down.flip", lang), float(result.flip_rate[0])), (t("down.kl_mean", lang), float(result.kl_mean[0])),
                 (t("down.kl_max", lang), float(result.kl_max[0])), (t("down.rank_mean", lang), float(result.rank_mean[0])),
                 (t("down.rank_max", lang), float(result.rank_max[0]))]
    else:
        rows += [(t("down.cos_mean", lang), float(result.cosine_mean[0])),
                 (t("down.cos_min", lang), float(result.cosine_min[0]))]
    worst = result.worst_head[0]
    if worst is not None:
        rows.append((t("down.worst", lang), t("down.worst_value", lang, layer=worst[0], head=worst[1])))
        rows.append((t("down.worst_tv", lang), float(result.worst_head_tv[0])))
    rows += [(t("down.seeds", lang), int(result.seeds)), (t("down.scheme", lang), result.scheme),
             (t("down.k", lang), int(result.k))]
    text = [(name, val if isinstance(val, str) else (str(val) if isinstance(val, int) else f"{val:.6g}"))
            for name, val in rows]
    return pd.DataFrame(text, columns=[t("down.metric", lang), t("down.value", lang)])


def heads_table(report) -> pd.DataFrame:
    """Every per-head summary of the report (one row per layer, head)."""
    return pd.DataFrame(report.heads)
