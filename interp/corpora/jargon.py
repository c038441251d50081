"""The Jargon File 4.4.7 (public domain) from the Debian package ``jargon-text``
(``/usr/share/doc/jargon-text/jargon.txt.gz``).

The lexicon's entries start with an indented ``:headword: pronunciation, part of speech`` line; the entry's
paragraphs follow until the next entry. Cross-references ``{word}`` become ``word``. Document = one entry
(from the first entry up to "Appendix A"); about 1 in 20 entries held out by a hash of the headword.
"""
from __future__ import annotations

import gzip
import re
from pathlib import Path

from . import Document, hashed_held_out, squash
from .fetch import deb_root

NAME = "jargon"
SOURCE = "Debian jargon-text"
LICENSE = "public domain"
PACKAGE = "jargon-text"
_ENTRY = re.compile(r"^ {2,4}:([^:]+):\s*(.*)$")
_END = re.compile(r"^Appendix A\b")


def locate(cache: Path, fetch: bool = True) -> Path:
    return deb_root(cache, PACKAGE, fetch=fetch) / "usr/share/doc/jargon-text"


def _clean(par: str) -> str:
    par = re.sub(r"\{([^{}]*)\}", r"\1", par)
    return squash(par)


def parse(text: str) -> list[Document]:
    docs: list[Document] = []
    cur: Document | None = None
    par: list[str] = []

    def flush():
        if cur is not None and par:
            body = _clean(" ".join(par))
            if any(c.isalpha() for c in body):
                cur.passages.append(body)
        par.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        if _END.match(line):
            break
        m = _ENTRY.match(line)
        if m:
            flush()
            head = m.group(1).strip()
            cur = Document(NAME, head, head)
            docs.append(cur)
            rest = m.group(2).strip()
            # the rest of the heading line is pronunciation and part of speech; a definition may follow
            if rest and not rest.startswith("/") and len(rest.split()) > 6:
                par.append(rest)
            continue
        if cur is None:
            continue
        if line.strip():
            par.append(line.strip())
        else:
            flush()
    flush()
    return [d for d in docs if d.passages]


def read(root: Path) -> list[Document]:
    return parse(gzip.decompress((root / "jargon.txt.gz").read_bytes()).decode("utf-8", errors="replace"))


def held_out(doc_id: str) -> bool:
    return hashed_held_out(doc_id)
