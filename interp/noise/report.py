"""Turn ``python -m interp noise`` JSON files into the markdown table and the HTML plot of the README section.

    python -m interp.noise.report docs/noise/mini-bert.json docs/noise/paper.json --out docs/noise

writes ``OUT/results.md`` (one table, every model) and ``OUT/flips.html`` (self-contained, plotly.js inlined,
opens offline; one panel per model × perturbation).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build(paths: list[Path], out: Path) -> tuple[Path, Path]:
    from plotly.subplots import make_subplots

    from ..figures.common import to_html
    from ..figures.noise import flip_figure, markdown_table, pivot_markdown
    runs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for d in runs:
        parts.append(markdown_table(d["results"], d["model"], d["inputs"]))
    md = out / "results.md"
    md.write_text("## Summary\n\n" + pivot_markdown(runs) + "\n\n## Every row\n\n" + "\n\n".join(parts) + "\n",
                  encoding="utf-8")
    panels = [(d, p) for d in runs for p in d["settings"]["perturbations"]]
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=[f"{d['model']} (n={d['inputs']}): {p}"
                                                                   for d, p in panels], vertical_spacing=0.06)
    for i, (d, p) in enumerate(panels, 1):
        for tr in flip_figure(d["results"], p).data:
            tr.showlegend = i == 1
            tr.legendgroup = tr.name
            fig.add_trace(tr, row=i, col=1)
        fig.update_yaxes(range=[0, 1], tickformat=".0%", title_text="flip rate", row=i, col=1)
        fig.update_xaxes(title_text=f"{p} rate", row=i, col=1)
    fig.update_layout(height=330 * len(panels), title_text="Flip rate of the top-1 prediction under noise: dense vs "
                      "sampled attention (dotted: the floor, sampling alone)", plot_bgcolor="white")
    html = out / "flips.html"
    html.write_text(to_html(fig, "noise flip rates"), encoding="utf-8")
    return md, html


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m interp.noise.report", description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/noise"))
    args = ap.parse_args(argv)
    try:
        md, html = build(args.json, args.out)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {md} and {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
