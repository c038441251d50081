"""Input and overview views: the token table, masked-token predictions, and the all-layers × heads grid.

Pure functions from engine results (``Trace``, ``decompose.Overview``) to pandas tables and plotly figures.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from ..i18n import role_text, t
from .common import OKABE_ITO, SEQUENTIAL, SEQUENTIAL_ALT, compact, style

ROLE_ORDER = ("previous-token", "next-token", "self", "delimiter sink", "broad (CBOW-like)", "content-driven")
ROLE_COLOURS = dict(zip(ROLE_ORDER, (OKABE_ITO[5], OKABE_ITO[4], OKABE_ITO[3], OKABE_ITO[7], OKABE_ITO[1],
                                     OKABE_ITO[2])))
ROLE_SHORT = dict(zip(ROLE_ORDER, ("P", "N", "S", "D", "B", "C")))   # letters: the role is not told by colour alone


def tokens_table(trace, lang: str = "en") -> pd.DataFrame:
    """One row per token: position, token, whether it is special, segment id."""
    seg = trace.token_type_ids.tolist() if trace.token_type_ids is not None else [0] * trace.n
    return pd.DataFrame({t("tokens.col.position", lang): range(trace.n),
                         t("tokens.col.token", lang): trace.tokens,
                         t("tokens.col.special", lang): [bool(s) for s in trace.special.tolist()],
                         t("tokens.col.segment", lang): seg})


def tokens_markdown(tokens: list[str], special, selected: int | None = None) -> str:
    """The tokens on one line; special tokens as ⟨…⟩ in grey, the selected query in bold."""
    out = []
    for j, tok in enumerate(tokens):
        safe = tok.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_").replace("[", "\\[") \
                  .replace("]", "\\]").replace("`", "\\`").replace("$", "\\$").replace(":", "\\:")
        if bool(special[j]):
            safe = f":gray[⟨{safe}⟩]"
        if selected is not None and j == selected:
            safe = f"**:blue-background[{safe}]**"
        out.append(safe)
    return " ".join(out)


def mask_predictions(trace, tokenizer, top: int = 5, lang: str = "en") -> pd.DataFrame:
    """Top-``top`` tokens at each mask position: softmax over the model's own MLM logits (exact)."""
    cols = [t("pred.col.position", lang), t("pred.col.rank", lang), t("pred.col.token", lang),
            t("pred.col.prob", lang)]
    rows = []
    if trace.has_mlm_head:
        for i in trace.mask_positions(getattr(tokenizer, "mask_token_id", None)):
            p = torch.softmax(trace.output[i].double(), -1)
            val, idx = torch.topk(p, min(top, p.numel()))
            for r, (v, tok) in enumerate(zip(val.tolist(), tokenizer.convert_ids_to_tokens(idx.tolist()))):
                rows.append((i, r + 1, tok, v))
    return pd.DataFrame(rows, columns=cols)


def default_query(trace, mask_token_id: int | None = None) -> int:
    """The first mask position, else the first non-special token, else 0."""
    masks = trace.mask_positions(mask_token_id)
    if masks:
        return masks[0]
    special = trace.special.tolist()
    return next((j for j, s in enumerate(special) if not s), 0)


def _grid_geometry(L: int, H: int) -> tuple[int, int]:
    """(marker size px, panel height px) so that squares nearly touch in a half-width panel."""
    cell = int(np.clip(300 / max(H, 1), 9, 26))
    return cell - 3, max(140, cell * L + 40)


def overview_figure(ov, query: int, selected: tuple[int, int] | None = None, lang: str = "en") -> go.Figure:
    """2 × 2 small multiples over layers (rows) × heads (columns): role (categorical), mean effective experts,
    mean mass on special tokens, firing at ``query``. Every point carries customdata = (layer, head) so a click
    selects that head. Ships O(L·H) numbers only."""
    roles = np.array(ov.role, dtype=object)
    L, H = roles.shape
    size, panel = _grid_geometry(L, H)
    ll, hh = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    ll, hh = ll.ravel(), hh.ravel()
    custom = np.stack([ll, hh], 1)   # rows are passed as plain lists: a typed-array row reaches the click event
                                     # as an object {"0": l, "1": h}
    eff = compact(ov.mean_effective_experts).ravel()
    spec = compact(ov.mean_special_mass).ravel()
    fire = compact(ov.firing_total[:, :, query]).ravel()
    titles = (t("ov.role", lang), t("ov.eff", lang), t("ov.special", lang), t("ov.firing", lang))
    # four panels laid out by hand (as make_subplots would: axes 1–4 row by row), built as plain dicts and
    # validated once — several times faster than make_subplots, which matters for the time to first draw
    xdom, ydom = ((0.0, 0.43), (0.57, 1.0)), ((0.6, 1.0), (0.0, 0.4))
    axis_of = {(1, 1): "", (1, 2): "2", (2, 1): "3", (2, 2): "4"}
    hover = (f"{t('ov.layer', lang)} %{{customdata[0]}}, {t('ov.head', lang)} %{{customdata[1]}}<br>"
             "%{text}<extra></extra>")
    data = []
    role_flat = roles.ravel()
    for role in ROLE_ORDER:
        m = role_flat == role
        if not m.any():
            continue
        data.append(dict(type="scatter", x=hh[m], y=ll[m], mode="markers+text", name=role_text(role, lang),
                         legendgroup="role",
                         marker=dict(symbol="square", size=size, color=ROLE_COLOURS[role], line=dict(width=0)),
                         text=[ROLE_SHORT[role]] * int(m.sum()),
                         textfont=dict(size=max(8, size // 2), color="white" if role in (
                             "delimiter sink", "next-token", "previous-token") else "black"),
                         customdata=custom[m].tolist(), xaxis="x", yaxis="y",
                         hovertemplate=f"{t('ov.layer', lang)} %{{customdata[0]}}, {t('ov.head', lang)} "
                                       f"%{{customdata[1]}}<br>{role_text(role, lang)}<extra></extra>"))
    panels = (((1, 2), eff, SEQUENTIAL, t("ov.eff", lang), ".1f"), ((2, 1), spec, SEQUENTIAL_ALT, t("ov.special", lang), ".0%"),
              ((2, 2), fire, SEQUENTIAL, t("ov.firing", lang), ".3g"))
    for (r, c), vals, scale, label, fmt in panels:
        a = axis_of[(r, c)]
        data.append(dict(type="scatter", x=hh, y=ll, mode="markers", showlegend=False, name=label,
                         xaxis="x" + a, yaxis="y" + a,
                         marker=dict(symbol="square", size=size, color=vals, colorscale=scale, line=dict(width=0),
                                     colorbar=dict(x=xdom[c - 1][1] + 0.015, y=sum(ydom[r - 1]) / 2, len=0.36,
                                                   thickness=10, tickformat=fmt, outlinewidth=0)),
                         text=[f"{label}: {v:{fmt}}" for v in vals], customdata=custom.tolist(), hovertemplate=hover))
    if selected is not None:
        for a in axis_of.values():
            data.append(dict(type="scatter", x=[selected[1]], y=[selected[0]], mode="markers", showlegend=False,
                             hoverinfo="skip", customdata=[list(selected)], xaxis="x" + a, yaxis="y" + a,
                             marker=dict(symbol="square-open", size=size + 5, color=OKABE_ITO[5],
                                         line=dict(width=3, color=OKABE_ITO[5]))))
    layout = dict(legend=dict(orientation="h", y=-0.08, x=0, title=None), clickmode="event+select", dragmode=False,
                  annotations=[])
    for (r, c), a in axis_of.items():
        name = ("xaxis" + a, "yaxis" + a)
        layout[name[0]] = dict(domain=xdom[c - 1], anchor="y" + a, range=[-0.7, H - 0.3], dtick=1 if H <= 16 else 2,
                               showgrid=False, zeroline=False, fixedrange=True,
                               title=dict(text=t("ov.head", lang), standoff=4) if r == 2 else None)
        layout[name[1]] = dict(domain=ydom[r - 1], anchor="x" + a, range=[L - 0.3, -0.7], dtick=1 if L <= 16 else 2,
                               showgrid=False, zeroline=False, fixedrange=True,
                               title=dict(text=t("ov.layer", lang), standoff=4) if c == 1 else None)
        layout["annotations"].append(dict(text=titles[(r - 1) * 2 + (c - 1)], x=sum(xdom[c - 1]) / 2,
                                          y=ydom[r - 1][1], xref="paper", yref="paper", xanchor="center",
                                          yanchor="bottom", showarrow=False, font=dict(size=15)))
    fig = go.Figure(data=data, layout=layout)
    return style(fig, None, height=2 * panel + 140)


def overview_table(ov, query: int, lang: str = "en") -> pd.DataFrame:
    """One row per head: role, means over queries, and the values at ``query``."""
    roles = np.array(ov.role, dtype=object)
    L, H = roles.shape
    rows = []
    for l in range(L):
        for h in range(H):
            j = int(ov.top_expert[l, h, query])
            rows.append({t("ov.layer", lang): l, t("ov.head", lang): h, t("ov.role", lang): role_text(roles[l, h], lang),
                         t("ov.eff", lang): float(ov.mean_effective_experts[l, h]),
                         t("ov.special", lang): float(ov.mean_special_mass[l, h]),
                         t("ov.firing", lang): float(ov.firing_total[l, h, query]),
                         t("ov.col.eff_query", lang): float(ov.effective_experts[l, h, query]),
                         t("ov.col.special_query", lang): float(ov.special_mass[l, h, query]),
                         t("ov.col.top_expert", lang): f"{j}·{ov.tokens[j]}"})
    return pd.DataFrame(rows)


def selected_head(event) -> tuple[int, int] | None:
    """The (layer, head) of the first clicked point in a plotly selection event (``st.plotly_chart`` state)."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(cd, dict):            # a typed-array row arrives as {"0": l, "1": h}
            cd = [cd.get("0"), cd.get("1")]
        if isinstance(cd, (list, tuple)) and len(cd) >= 2 and cd[0] is not None and cd[1] is not None:
            return int(cd[0]), int(cd[1])
    return None
