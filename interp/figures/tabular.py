"""Tabular mode: which columns' experts a prediction listened to, the prediction itself, the paper form's
per-column experts, dense vs sampled gates for a row, and the experiment's results.

Pure functions from ``interp.tabular`` results to plotly figures and pandas tables (no Streamlit).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..i18n import t
from .common import OKABE_ITO, SEQUENTIAL, compact, style


def _head_labels(L: int, H: int) -> list[str]:
    return [f"L{l} H{h}" for l in range(L) for h in range(H)]


def listening_figure(ex, show: str = "gate", lang: str = "en") -> go.Figure:
    """Heads × columns: the gate a^h_{target,j} (or firing f^h_{target,j}) of the masked column's query."""
    arr = ex.gates if show == "gate" else ex.firing
    L, H, C = arr.shape
    z = compact(arr.reshape(L * H, C))
    x = [f"{name}{' (target)' if j == ex.target else ''}" for j, name in enumerate(ex.columns)]
    fig = go.Figure(go.Heatmap(z=z, x=x, y=_head_labels(L, H), colorscale=SEQUENTIAL, zmin=0.0,
                               zmax=1.0 if show == "gate" else None, colorbar=dict(thickness=12, outlinewidth=0),
                               hovertemplate=f"%{{y}} · {t('fig.column', lang)} %{{x}}<br>%{{z:.4f}}<extra></extra>"))
    fig.update_xaxes(title_text=t("tab.fig.columns", lang), tickangle=-30, showgrid=False)
    fig.update_yaxes(title_text=t("tab.fig.heads", lang), autorange="reversed", showgrid=False)
    key = "tab.fig.gates_title" if show == "gate" else "tab.fig.firing_title"
    return style(fig, t(key, lang, target=ex.columns[ex.target]), height=int(np.clip(200 + 28 * L * H, 260, 640)))


def importance_figure(ex, lang: str = "en") -> go.Figure:
    """Per column: gate and firing at the target query, summed over heads and layers."""
    g = ex.gates.sum(axis=(0, 1))
    f = ex.firing.sum(axis=(0, 1))
    fig = go.Figure([go.Bar(x=ex.columns, y=compact(g), name=t("tab.fig.gate", lang), marker_color=OKABE_ITO[4]),
                     go.Bar(x=ex.columns, y=compact(f), name=t("tab.fig.firing", lang), marker_color=OKABE_ITO[0])])
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(title_text=t("tab.fig.sum_heads", lang))
    return style(fig, t("tab.fig.importance_title", lang), height=360)


def prediction_figure(ex, lang: str = "en") -> go.Figure:
    """The model's probabilities over the target's values; the true value outlined."""
    colours = [OKABE_ITO[2] if k == ex.predicted else OKABE_ITO[1] for k in range(len(ex.domain))]
    widths = [3 if k == ex.truth else 0 for k in range(len(ex.domain))]
    fig = go.Figure(go.Bar(x=ex.domain, y=compact(ex.probs), marker=dict(color=colours,
                                                                          line=dict(color="#000000", width=widths)),
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_yaxes(title_text=t("tab.fig.probability", lang), range=[0, 1])
    fig.update_xaxes(title_text=ex.columns[ex.target])
    return style(fig, t("tab.fig.prediction_title", lang, target=ex.columns[ex.target]), height=320)


def experts_figure(ex, lang: str = "en") -> go.Figure:
    """Paper form: each column's expert z_j over the target's values (logits), with its gate a_ij."""
    z = compact(ex.experts)
    gates = ex.gates[0, 0]
    y = [f"{name} · gate {gates[j]:.2f}" for j, name in enumerate(ex.columns)]
    fig = go.Figure(go.Heatmap(z=z, x=ex.domain, y=y, colorscale=SEQUENTIAL, colorbar=dict(thickness=12, outlinewidth=0),
                               hovertemplate=f"%{{y}}<br>{t('fig.value', lang)} %{{x}}: logit %{{z:.3f}}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text=t("tab.fig.expert", lang))
    fig.update_xaxes(title_text=ex.columns[ex.target])
    return style(fig, t("tab.fig.experts_title", lang), height=int(np.clip(160 + 34 * len(ex.columns), 260, 600)))


def sampled_figure(dense: np.ndarray, sampled: np.ndarray, columns: list[str], label: str, lang: str = "en") -> go.Figure:
    """One head at the target query: the dense gate row beside the mean (± sd) of the sampled rows."""
    mean, sd = sampled.mean(0), sampled.std(0)
    fig = go.Figure([go.Bar(x=columns, y=compact(dense), name=t("samp.dense", lang), marker_color=OKABE_ITO[4]),
                     go.Bar(x=columns, y=compact(mean), name=t("tab.fig.sampled_mean", lang),
                            marker_color=OKABE_ITO[0], error_y=dict(type="data", array=compact(sd), visible=True))])
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(title_text=t("tab.fig.gate", lang), range=[0, 1])
    return style(fig, t("tab.fig.sampled_title", lang, head=label), height=340)


def results_figure(results: dict, lang: str = "en") -> go.Figure:
    """Test accuracy per model: mean ± std over seeds, the published figure as a diamond."""
    from ..tabular.experiment import results_table
    rows = results_table(results)
    names = [r["model"] for r in rows]
    fig = go.Figure(go.Bar(x=names, y=[r["acc_mean"] for r in rows], name=t("tab.fig.ours", lang),
                           marker_color=OKABE_ITO[4],
                           error_y=dict(type="data", array=[r["acc_std"] or 0 for r in rows], visible=True)))
    pub = [r["published_acc"] for r in rows]
    if any(p is not None for p in pub):
        fig.add_trace(go.Scatter(x=names, y=pub, mode="markers", name=t("tab.fig.published", lang),
                                 marker=dict(symbol="diamond", size=12, color=OKABE_ITO[5])))
    fig.update_yaxes(title_text=t("tab.fig.test_acc", lang), range=[0, 1])
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return style(fig, t("tab.fig.results_title", lang, seeds=results["seeds"]), height=380)


# --- tables ---------------------------------------------------------------------------------------------

def row_table(ex) -> pd.DataFrame:
    """Per column: its value, its word, and gate and firing at the target query for every head."""
    data = {"column": ex.columns, "value": [v if j != ex.target else "[MASK]" for j, v in enumerate(ex.values)],
            "word": ex.words}
    L, H, _ = ex.gates.shape
    for l in range(L):
        for h in range(H):
            data[f"gate L{l}H{h}"] = np.round(ex.gates[l, h].astype(float), 6)
            data[f"firing L{l}H{h}"] = np.round(ex.firing[l, h].astype(float), 6)
    return pd.DataFrame(data)


def prediction_table(ex) -> pd.DataFrame:
    return pd.DataFrame({"value": ex.domain, "probability": np.round(ex.probs.astype(float), 6),
                         "predicted": [k == ex.predicted for k in range(len(ex.domain))],
                         "true": [k == ex.truth for k in range(len(ex.domain))]})


def experts_table(ex) -> pd.DataFrame:
    data = {"column": ex.columns, "gate": np.round(ex.gates[0, 0].astype(float), 6)}
    for k, v in enumerate(ex.domain):
        data[f"logit {v}"] = np.round(ex.experts[:, k].astype(float), 6)
    return pd.DataFrame(data)


def results_frame(results: dict) -> pd.DataFrame:
    from ..tabular.experiment import results_table
    return pd.DataFrame(results_table(results))


def encoding_table(enc) -> pd.DataFrame:
    """Every kept column: kind, its values (bins / categories) and their words."""
    return pd.DataFrame({"column": enc.names, "kind": [c.kind for c in enc.columns],
                         "role": ["target" if c.name == enc.target else "feature" for c in enc.columns],
                         "values": [" · ".join(c.values) for c in enc.columns],
                         "words": [" ".join(c.words) for c in enc.columns],
                         "missing": [c.has_na for c in enc.columns]})
