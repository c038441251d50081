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
    label = METRICS.get(metric, metric)
    fig = go.Figure(go.Heatmap(z=compact(grid), colorscale=SEQUENTIAL_ALT, colorbar=dict(thickness=12, outlinewidth=0),
                               hovertemplate="layer %{y} · head %{x}<br>%{z:.4g}<extra></extra>", xgap=1, ygap=1))
    if selected is not None:
        l, h = selected
        fig.add_shape(type="rect", x0=h - 0.5, x1=h + 0.5, y0=l - 0.5, y1=l + 0.5,
                      line=dict(color=OKABE_ITO[5], width=3))
    fig.update_xaxes(title_text="head", dtick=1, showgrid=False)
    fig.update_yaxes(title_text="layer", dtick=1, autorange="reversed", showgrid=False)
    return style(fig, t("samp.err_title", lang, metric=label), height=max(260, 34 * L + 110))


def rows_figure(dense: np.ndarray, sampled: np.ndarray, tokens: list[str], seed_index: int, query: int,
                layer: int, head: int, seed: int, lang: str = "en") -> go.Figure:
    """Dense row P_i· beside the sampled row P̂_i· of one replicate, and the mean of P̂ over replicates."""
    n = len(tokens)
    x = np.arange(n)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=compact(dense), name=t("samp.dense", lang), marker_color=OKABE_ITO[7],
                         hovertemplate="expert %{x}: %{y:.4f}<extra>dense</extra>"))
    fig.add_trace(go.Bar(x=x, y=compact(sampled[seed_index]), name=f"{t('samp.sampled', lang)} (replicate {seed_index})",
                         marker_color=OKABE_ITO[0], hovertemplate="expert %{x}: %{y:.4f}<extra>sampled</extra>"))
    if sampled.shape[0] > 1:
        fig.add_trace(go.Scatter(x=x, y=compact(sampled.mean(0)), mode="markers",
                                 name=f"{t('samp.sampled', lang)}: mean of {sampled.shape[0]} replicates",
                                 marker=dict(symbol="diamond", color=OKABE_ITO[4], size=7)))
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(**token_axis(tokens), tickangle=-60)
    fig.update_yaxes(title_text="weight")
    title = t("samp.rows_title", lang, token=tokens[query], layer=layer, head=head, seed=seed)
    return style(fig, title, height=380)


def row_table(dense: np.ndarray, sampled: np.ndarray, tokens: list[str]) -> pd.DataFrame:
    """One row per expert: dense weight and the weight of every replicate."""
    df = pd.DataFrame({"expert j": range(len(tokens)), "token": tokens, "dense": dense})
    for s in range(sampled.shape[0]):
        df[f"sampled r{s}"] = sampled[s]
    return df


def variance_figure(var_rel: np.ndarray, bias2_rel: np.ndarray, tokens: list[str], lang: str = "en") -> go.Figure:
    """Per query of one head: variance and squared bias across seeds, stacked (their sum is the MSE), relative
    to ‖o_i‖²."""
    x = np.arange(len(tokens))
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=compact(var_rel), name="variance / ‖o‖²", marker_color=OKABE_ITO[1],
                         hovertemplate="query %{x}: %{y:.3g}<extra>variance</extra>"))
    fig.add_trace(go.Bar(x=x, y=compact(bias2_rel), name="squared bias / ‖o‖²", marker_color=OKABE_ITO[5],
                         hovertemplate="query %{x}: %{y:.3g}<extra>bias²</extra>"))
    fig.update_layout(barmode="stack", legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(**token_axis(tokens), tickangle=-60)
    fig.update_yaxes(title_text="relative to ‖o‖²")
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
    fig.add_trace(go.Bar(x=np.arange(len(order)), y=compact(e[order]), name="error", marker_color=OKABE_ITO[4],
                         customdata=labels, hovertemplate="%{customdata}: %{y:.4g}<extra></extra>"))
    fig.add_trace(go.Scatter(x=np.arange(len(order)), y=compact(cum), name="cumulative share of squared error",
                             yaxis="y2", mode="lines", line=dict(color=OKABE_ITO[5], width=2), cliponaxis=False))
    fig.update_layout(yaxis2=dict(overlaying="y", side="right", range=[0, 1], tickformat=".0%",
                                  showgrid=False, title=dict(text="share of Σ error²")),
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title_text="queries, worst first")
    fig.update_yaxes(title_text="error")
    return style(fig, t("samp.concentration", lang), height=340)


def flops_table(schemes, flops_fn, dense_fn, needs_full_qk: dict, n: int, n_v: int, d_head: int, d_model: int,
                k: int, h: int | None = None, m: int | None = None) -> pd.DataFrame:
    """FLOPs of one head per scheme (the engine's formulas), the ratio to dense 4·n·n_v·d, whether the scheme
    needs the full QKᵀ, and the attention core's share of a BERT layer, n/(n + 6·d_model) (Amdahl bound)."""
    dense = dense_fn(n, n_v, d_head)
    rows = [{"scheme": "dense", "FLOPs per head": dense, "ratio to dense": 1.0, "needs full QKᵀ": True}]
    for name in schemes:
        f = flops_fn(name, n, n_v, d_head, k, k if h is None else h, k if m is None else m)
        rows.append({"scheme": name, "FLOPs per head": f, "ratio to dense": f / dense,
                     "needs full QKᵀ": bool(needs_full_qk.get(name, True))})
    df = pd.DataFrame(rows)
    df.attrs["attention_share"] = n / (n + 6 * d_model)
    return df


def downstream_table(result, lang: str = "en") -> pd.DataFrame:
    """The effect on the model's output, one row per metric (example 0)."""
    rows = [("compared at", result.positions[0]), ("positions compared", int(result.n_positions[0]))]
    if result.has_mlm_head:
        rows += [("top-1 agreement", float(result.top1_agreement[0])), ("flip rate across seeds",
                 float(result.flip_rate[0])), ("KL(p ‖ p̂) mean", float(result.kl_mean[0])),
                 ("KL(p ‖ p̂) max", float(result.kl_max[0])), ("rank of dense top-1, mean", float(result.rank_mean[0])),
                 ("rank of dense top-1, max", float(result.rank_max[0]))]
    else:
        rows += [("cosine(dense, sampled) mean", float(result.cosine_mean[0])),
                 ("cosine(dense, sampled) min", float(result.cosine_min[0]))]
    worst = result.worst_head[0]
    if worst is not None:
        rows.append(("substituted head with the largest TV", f"layer {worst[0]}, head {worst[1]}"))
        rows.append(("its mean TV", float(result.worst_head_tv[0])))
    rows += [("seeds", int(result.seeds)), ("scheme", result.scheme), ("k", int(result.k))]
    text = [(name, val if isinstance(val, str) else (str(val) if isinstance(val, int) else f"{val:.6g}"))
            for name, val in rows]
    return pd.DataFrame(text, columns=["metric", "value"])


def heads_table(report) -> pd.DataFrame:
    """Every per-head summary of the report (one row per layer, head)."""
    return pd.DataFrame(report.heads)
