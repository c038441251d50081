"""Shareable explorer links: the dashboard reads its state from the URL query (``model``, ``text``, ``layer``,
``head``, ``query``, ``scheme``, ``k``, ``seed``), so a triage row opens in the explorer with one click."""
from __future__ import annotations

import math
from urllib.parse import urlencode

EXPLORER_KEYS = ("model", "text", "layer", "head", "query", "scheme", "k", "seed")


def _present(v) -> bool:
    if v is None:
        return False
    try:
        if isinstance(v, float) and math.isnan(v):
            return False
    except TypeError:  # pragma: no cover
        pass
    try:
        import pandas as pd
        if v is pd.NA or v is pd.NaT:
            return False
    except ImportError:  # pragma: no cover
        pass
    return True


def explorer_url(model: str, text: str, layer=None, head=None, query=None, scheme: str | None = None,
                 k=None, seed=None, base: str = "/") -> str:
    """``base?model=…&text=…[&layer=…&head=…&query=…&scheme=…&k=…&seed=…]`` (absent values are left out)."""
    params = {"model": model, "text": text, "layer": layer, "head": head, "query": query, "scheme": scheme,
              "k": k, "seed": seed}
    clean = {}
    for key in EXPLORER_KEYS:
        v = params[key]
        if not _present(v):
            continue
        if key in ("layer", "head", "query", "k", "seed"):
            v = int(v)
            if key in ("layer", "head", "query") and v < 0:
                continue
        clean[key] = v
    return f"{base}?{urlencode(clean)}"


def row_url(row, model: str, scheme: str, k: int, seed: int, base: str = "/") -> str:
    """The explorer link of one results row (a mapping with ``text``, ``worst_layer``/``worst_head`` or the
    concentration head, and ``query``): the worst head by TV, or else the most anomalous head."""
    layer, head = row.get("worst_layer"), row.get("worst_head")
    if not _present(layer) or not _present(head):
        layer, head = row.get("concentration_layer"), row.get("concentration_head")
    return explorer_url(model, row.get("text"), layer, head, row.get("query"), scheme, k, seed, base)
