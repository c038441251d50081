"""Noise-probe views: flip rates under noise (dense, sampled, floor) with intervals, the result table, the clean
and noisy texts with the changed characters marked, the predictions, and the heads whose gates moved.

Pure functions from ``interp.noise`` results (``NoiseSummary.results()`` rows, ``InputProbe``) to plotly figures,
pandas tables and escaped HTML.
"""
from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from ..i18n import t
from ..noise.perturb import marked_spans
from .common import OKABE_ITO, style

DENSE_COLOUR = OKABE_ITO[7]


def _err(rate, ci):
    if rate is None or ci is None or ci[0] is None:
        return 0.0, 0.0
    return max(0.0, ci[1] - rate), max(0.0, rate - ci[0])


def flip_figure(rows: list[dict], perturbation: str, lang: str = "en") -> go.Figure:
    """Flip rate against noise rate for one perturbation: dense (black), each scheme and k (Okabe–Ito colours,
    with its floor dotted), 95% cluster-bootstrap intervals as error bars."""
    rows = [r for r in rows if r["perturbation"] == perturbation and r.get("dense_flip_rate") is not None]
    fig = go.Figure()
    if not rows:
        return style(fig, t("noise.fig_title", lang, perturbation=perturbation))
    rates = sorted({r["rate"] for r in rows})
    dense = {}
    for r in rows:
        dense.setdefault(r["rate"], r)
    ys = [dense[x]["dense_flip_rate"] for x in rates]
    errs = [_err(dense[x]["dense_flip_rate"], dense[x].get("dense_flip_ci")) for x in rates]
    fig.add_trace(go.Scatter(x=rates, y=ys, mode="lines+markers", name=t("noise.dense", lang),
                             line=dict(color=DENSE_COLOUR, width=3), marker=dict(symbol="square", size=9),
                             error_y=dict(type="data", array=[e[0] for e in errs], arrayminus=[e[1] for e in errs])))
    configs = list(dict.fromkeys((r["scheme"], r["k"]) for r in rows if r["scheme"] != "dense"))
    symbols = ("circle", "diamond", "triangle-up", "x", "star", "cross")
    for i, (scheme, k) in enumerate(configs):
        colour = OKABE_ITO[i % 7]
        sel = {r["rate"]: r for r in rows if (r["scheme"], r["k"]) == (scheme, k)}
        xs = [x for x in rates if x in sel]
        errs = [_err(sel[x]["sampled_flip_rate"], sel[x].get("sampled_flip_ci")) for x in xs]
        fig.add_trace(go.Scatter(x=xs, y=[sel[x]["sampled_flip_rate"] for x in xs], mode="lines+markers",
                                 name=t("noise.sampled_label", lang, scheme=scheme, k=k),
                                 line=dict(color=colour, width=2), marker=dict(symbol=symbols[i % 6], size=9),
                                 error_y=dict(type="data", array=[e[0] for e in errs],
                                              arrayminus=[e[1] for e in errs])))
        floor = sel[xs[0]].get("floor_flip_rate") if xs else None
        if floor is not None:
            fig.add_trace(go.Scatter(x=[rates[0], rates[-1]], y=[floor, floor], mode="lines",
                                     name=t("noise.floor_label", lang, scheme=scheme, k=k),
                                     line=dict(color=colour, dash="dot", width=1.5)))
    fig.update_xaxes(title_text=t("noise.axis_rate", lang, perturbation=perturbation))
    fig.update_yaxes(title_text=t("noise.axis_flip", lang), range=[0, 1], tickformat=".0%")
    return style(fig, t("noise.fig_title", lang, perturbation=perturbation), height=420)


def results_table(rows: list[dict]) -> pd.DataFrame:
    """The result rows as a table (rates as shares; intervals as "low – high")."""
    def ci(pair):
        return "" if not pair or pair[0] is None else f"{pair[0]:+.3f} – {pair[1]:+.3f}"
    out = []
    for r in rows:
        out.append({"perturbation": r["perturbation"], "rate": r["rate"], "scheme": r["scheme"], "k": r["k"],
                    "dense flip": r.get("dense_flip_rate"), "sampled flip": r.get("sampled_flip_rate"),
                    "floor": r.get("floor_flip_rate"), "sampled − dense": r.get("difference"),
                    "95% interval": ci(r.get("difference_ci")), "McNemar p": r.get("mcnemar_p"),
                    "KL dense": r.get("dense_kl"), "KL sampled": r.get("sampled_kl"), "units": r.get("units")})
    return pd.DataFrame(out)


def markdown_table(rows: list[dict], model: str, n_inputs: int) -> str:
    """A markdown table of the result rows (for README and docs)."""
    lines = ["| model | perturbation | rate | scheme | k | dense flip | sampled flip | floor | sampled − dense "
             "[95% CI] | McNemar p |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("dense_flip_rate") is None:
            continue
        lo, hi = r["difference_ci"]
        lines.append(f"| {model} (n={n_inputs}) | {r['perturbation']} | {r['rate']:g} | {r['scheme']} | {r['k']} | "
                     f"{r['dense_flip_rate']:.1%} | {r['sampled_flip_rate']:.1%} | {r['floor_flip_rate']:.1%} | "
                     f"{r['difference']:+.1%} [{lo:+.1%}, {hi:+.1%}] | {r['mcnemar_p']:.2g} |")
    return "\n".join(lines)


def marked_html(text: str, marks: list[bool]) -> str:
    """``text`` as escaped HTML with the marked characters in ``<mark>`` (bold, underlined: not colour alone)."""
    out = []
    for piece, marked in marked_spans(text, marks):
        esc = html.escape(piece)
        out.append(f"<mark style='background:#F0E442;font-weight:700;text-decoration:underline'>{esc}</mark>"
                   if marked else esc)
    return "<span style='font-family:monospace;white-space:pre-wrap'>" + "".join(out) + "</span>"


def texts_table(ip, perturbation: str, rate: float) -> pd.DataFrame:
    """Every noisy version of every variant: noise seed, clean text, noisy text, edits / eligible units."""
    rows = []
    for nu, per_var in enumerate(ip.noisy.get((perturbation, float(rate)), [])):
        for v, nz in enumerate(per_var):
            rows.append({"noise seed": nu, "variant": v, "clean": nz.clean, "noisy": nz.text, "edits": nz.edits,
                         "units": nz.units})
    return pd.DataFrame(rows)


def predictions_table(ip, perturbation: str, rate: float) -> pd.DataFrame:
    """Dense top-1 at each compared position: clean, and for every noise seed noisy, and whether it flipped."""
    rows = []
    tops = ip.noisy_top.get((perturbation, float(rate)), [])
    for v, clean in enumerate(ip.clean_top):
        for p, tok in enumerate(clean):
            row = {"variant": v, "position": p, "clean top-1": tok}
            if ip.variants[v].masked_word:
                row["masked word"] = ip.variants[v].masked_word
            for nu, per_var in enumerate(tops):
                got = per_var[v][p] if p < len(per_var[v]) else None
                row[f"noisy top-1 (seed {nu})"] = got if got == tok else f"{got} ✗"
            rows.append(row)
    return pd.DataFrame(rows)


def heads_table(heads: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"layer": h["layer"], "head": h["head"], "gate TV (word-aligned)": h["gate_tv"]}
                         for h in heads])


def pivot_markdown(runs: list[dict]) -> str:
    """A compact markdown table over several runs (CLI JSON objects): one row per model × perturbation × rate
    (plus a floor row per model), one column per scheme and k with the sampled flip rate, marked ▲ / ▼ when its
    95% interval of sampled − dense lies wholly above / below 0 and = otherwise."""
    configs = list(dict.fromkeys((r["scheme"], r["k"]) for d in runs for r in d["results"] if r["scheme"] != "dense"))
    head = "| model | noise | dense | " + " | ".join(f"{s} k={k}" for s, k in configs) + " |"
    lines = [head, "|---|---|---|" + "---|" * len(configs)]
    for d in runs:
        name = f"{d['model']} (n={d['inputs']})"
        floors = {(f["scheme"], f["k"]): f["floor_flip_rate"] for f in d["floors"]}
        lines.append(f"| {name} | none (floor) | 0% | " + " | ".join(
            "–" if floors.get(c) is None else f"{floors[c]:.0%}" for c in configs) + " |")
        keys = list(dict.fromkeys((r["perturbation"], r["rate"]) for r in d["results"] if r["rate"] > 0))
        for p, rate in keys:
            sel = {(r["scheme"], r["k"]): r for r in d["results"] if (r["perturbation"], r["rate"]) == (p, rate)}
            any_row = next(iter(sel.values()))
            cells = []
            for c in configs:
                r = sel.get(c)
                if r is None or r.get("sampled_flip_rate") is None:
                    cells.append("–")
                    continue
                lo, hi = r["difference_ci"]
                mark = "▲" if lo is not None and lo > 0 else "▼" if hi is not None and hi < 0 else "="
                cells.append(f"{r['sampled_flip_rate']:.0%} {mark}")
            lines.append(f"| {name} | {p} {rate:g} | {any_row['dense_flip_rate']:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
