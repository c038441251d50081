"""WordNet 3.0 glosses from the Debian package ``wordnet-base`` (``/usr/share/wordnet/data.{noun,verb,adj,adv}``).

Each data line is one synset: ``offset lex_filenum ss_type w_cnt word lex_id ... | gloss``; the gloss is a
definition followed by ``; "example sentences"``. Passages: "lemma, lemma: definition." and each example
sentence. Document = one synset (``pos:offset``); about 1 in 20 synsets held out by a hash of the id.
"""
from __future__ import annotations

import re
from pathlib import Path

from . import Document, hashed_held_out, squash
from .fetch import deb_root

NAME = "wordnet"
SOURCE = "Debian wordnet-base"
LICENSE = "WordNet 3.0 license (free use with attribution, Princeton University)"
PACKAGE = "wordnet-base"
POS_FILES = ("noun", "verb", "adj", "adv")
_EXAMPLE = re.compile(r'"([^"]+)"')


def locate(cache: Path, fetch: bool = True) -> Path:
    return deb_root(cache, PACKAGE, fetch=fetch) / "usr/share/wordnet"


def parse_line(line: str, pos: str) -> Document | None:
    """One data-file line → a synset document, or None for the license header."""
    if not line or line.startswith("  ") or " | " not in line:
        return None
    head, gloss = line.split(" | ", 1)
    fields = head.split()
    offset, w_cnt = fields[0], int(fields[3], 16)
    lemmas = [fields[4 + 2 * i] for i in range(w_cnt)]
    lemmas = [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in lemmas]
    examples = [squash(e) for e in _EXAMPLE.findall(gloss)]
    definition = squash(_EXAMPLE.sub("", gloss)).strip(" ;")
    passages = []
    if definition:
        passages.append(f"{', '.join(lemmas)}: {definition}.")
    passages.extend(e for e in examples if any(c.isalpha() for c in e))
    return Document(NAME, f"{pos}:{offset}", lemmas[0] if lemmas else offset, passages)


def read(root: Path) -> list[Document]:
    docs = []
    for pos in POS_FILES:
        with open(root / f"data.{pos}", encoding="utf-8", errors="replace") as f:
            for line in f:
                doc = parse_line(line.rstrip("\n"), pos)
                if doc is not None and doc.passages:
                    docs.append(doc)
    return docs


def held_out(doc_id: str) -> bool:
    return hashed_held_out(doc_id)
