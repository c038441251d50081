"""Consistency of the string tables: placeholders of a format string, and keys whose placeholders differ.

A placeholder is a replacement field's name *and* its format spec (``{rate:.0%}`` → ``("rate", ".0%")``), so
a translation cannot silently drop a value or format it differently. UI-free.
"""
from __future__ import annotations

import string


def placeholders(text: str) -> frozenset[tuple[str, str]]:
    """The (field name, format spec) pairs of a ``str.format`` string (``{{`` escapes excluded)."""
    return frozenset((name, spec or "") for _, name, spec, _ in string.Formatter().parse(text) if name is not None)


def placeholder_mismatches(reference: dict[str, str], other: dict[str, str]) -> dict[str, tuple[frozenset, frozenset]]:
    """Keys present in both tables whose placeholders differ: key → (reference's, other's)."""
    out = {}
    for key, text in reference.items():
        if key in other:
            a, b = placeholders(text), placeholders(other[key])
            if a != b:
                out[key] = (a, b)
    return out
