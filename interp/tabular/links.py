"""Shareable links that open a table row in the One head and Sampled vs dense pages: the row's sentence (target
masked) as ``text``, the model, and the masked column as the ``query`` (the pages read these URL parameters)."""
from __future__ import annotations

from urllib.parse import urlencode

PAGE_PATHS = {"head": "/Head", "sampling": "/Sampling"}


def row_url(page: str, model: str, text: str, query: int, layer: int = 0, head: int = 0) -> str:
    if page not in PAGE_PATHS:
        raise ValueError(f"unknown page {page!r}: choose one of {', '.join(PAGE_PATHS)}")
    return f"{PAGE_PATHS[page]}?" + urlencode({"model": model, "text": text, "layer": int(layer), "head": int(head),
                                                "query": int(query)})
