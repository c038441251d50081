"""Jane Austen's six novels from the Debian package ``r-cran-janeaustenr`` (public domain).

The package stores each novel as an R character vector (one element per printed line, "" between paragraphs)
in the lazy-load database ``data/Rdata.rdb`` indexed by ``data/Rdata.rdx``; :mod:`.rdata` reads it without R.
Document = one novel; *Persuasion* is held out.
"""
from __future__ import annotations

import re
from pathlib import Path

from . import Document, squash
from .fetch import deb_root
from .rdata import RVector, read_lazyload

NAME = "austen"
SOURCE = "Debian r-cran-janeaustenr"
LICENSE = "public domain (texts); package MIT"
PACKAGE = "r-cran-janeaustenr"
HELD_OUT = {"persuasion"}
TITLES = {"emma": "Emma", "mansfieldpark": "Mansfield Park", "northangerabbey": "Northanger Abbey",
          "persuasion": "Persuasion", "prideprejudice": "Pride and Prejudice",
          "sensesensibility": "Sense and Sensibility"}
_HEADING = re.compile(r"^(chapter|volume)\b|^by jane austen$|^the end$|^finis$", re.I)


def locate(cache: Path, fetch: bool = True) -> Path:
    return deb_root(cache, PACKAGE, fetch=fetch) / "usr/lib/R/site-library/janeaustenr"


def paragraphs(lines: list[str | None]) -> list[str]:
    """Printed lines → paragraphs (blank lines separate); headings and all-capitals lines dropped."""
    out, cur = [], []
    for line in list(lines) + [""]:
        line = (line or "").strip()
        if line:
            cur.append(line)
            continue
        if cur:
            text = squash(" ".join(cur))
            cur = []
            if _HEADING.search(text) or not any(c.islower() for c in text):
                continue
            out.append(text.replace("_", ""))
    return out


def read(root: Path) -> list[Document]:
    data = read_lazyload(root / "data" / "Rdata.rdx", root / "data" / "Rdata.rdb")
    docs = []
    for key, title in TITLES.items():
        vec = data.get(key)
        if not isinstance(vec, RVector):
            raise ValueError(f"{root}: novel {key!r} not found in the package data")
        docs.append(Document(NAME, key, title, paragraphs(vec.values)))
    return docs


def held_out(doc_id: str) -> bool:
    return doc_id in HELD_OUT
