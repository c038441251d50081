"""Plain-language sentences about analysis results (presentation, kept out of the math modules).

The dashboard builds its captions from ``interp/i18n.py`` keys in the figure layer (``interp.figures.head.caption``);
these English versions serve the command line and JSON exports. Each reads only numbers already in the result.
"""
from __future__ import annotations


def head_caption(hv, query: int) -> str:
    """What head ``hv`` (a ``decompose.HeadView``) does at ``query``: its role, strongest gate, spread of gates,
    and — when it differs — the expert that moves the output most (largest firing strength)."""
    j, tok, g, _ = hv.top_experts(query, 1)[0]
    eff = float(hv.effective_experts[query])
    strongest = hv.top_experts(query, 1, by="firing")[0]
    parts = [f"Layer {hv.layer}, head {hv.head} acts as a {hv.role} head on this input.",
             f"For “{hv.tokens[query]}” (position {query}) it gives {g:.0%} of its gate to “{tok}” "
             f"(position {j}) and spreads over about {eff:.1f} experts."]
    if strongest[0] != j:
        parts.append(f"Weighted by message size, the expert that moves the output most is “{strongest[1]}” "
                     f"(position {strongest[0]}): a large gate on a small message changes little.")
    return " ".join(parts)
