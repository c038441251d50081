"""Which language to show: the ``lang`` URL parameter, else the browser's Accept-Language header, else English.

UI-free (no Streamlit): the page passes the raw parameter and the raw header string. Accept-Language follows
RFC 9110 §12.5.4: comma-separated language ranges, each with an optional ``;q=`` weight in [0, 1] (default 1);
q=0 means "not acceptable"; ``*`` matches anything. A range matches a supported language by its primary subtag
(``ja-JP`` → ``ja``), case-insensitively; among equal weights the earlier range wins.
"""
from __future__ import annotations

from .i18n import DEFAULT_LANG, LANGS


def normalise(tag: str | None, supported: tuple[str, ...] = LANGS) -> str | None:
    """The supported language a tag names (``"JA-jp"`` → ``"ja"``), or None."""
    if not tag:
        return None
    primary = str(tag).strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in supported else None


def parse_accept_language(header: str | None) -> list[tuple[str, float]]:
    """(range, weight) pairs of an Accept-Language header, highest weight first (stable for ties); malformed
    entries are skipped."""
    if not header:
        return []
    out = []
    for index, part in enumerate(str(header).split(",")):
        fields = [f.strip() for f in part.split(";")]
        tag = fields[0]
        if not tag:
            continue
        q = 1.0
        for f in fields[1:]:
            if f.lower().startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = -1.0
        if not 0.0 <= q <= 1.0:
            continue
        out.append((index, tag, q))
    out.sort(key=lambda x: (-x[2], x[0]))
    return [(tag, q) for _, tag, q in out]


def from_accept_language(header: str | None, supported: tuple[str, ...] = LANGS,
                         default: str = DEFAULT_LANG) -> str | None:
    """The first supported language the browser accepts (q > 0), or None when it names none."""
    refused = {normalise(tag, supported) for tag, q in parse_accept_language(header) if q == 0}
    for tag, q in parse_accept_language(header):
        if q <= 0:
            continue
        if tag == "*":
            return default if default not in refused else next((s for s in supported if s not in refused), None)
        lang = normalise(tag, supported)
        if lang is not None and lang not in refused:
            return lang
    return None


def resolve_language(url_lang: str | None, accept_language: str | None = None,
                     supported: tuple[str, ...] = LANGS, default: str = DEFAULT_LANG) -> str:
    """``lang=ja|en`` from the URL when it names a supported language; else the browser's preference; else
    ``default`` (English)."""
    return normalise(url_lang, supported) or from_accept_language(accept_language, supported, default) or default
