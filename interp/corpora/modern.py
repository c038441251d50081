"""Modern English prose from Debian documentation packages, for the ``minilm-mlm`` masked-LM fine-tuning.

Each source is one Debian package whose manual pages are HTML (``<p>`` and DocBook ``<div class="para">``
paragraphs), Mallard XML (GNOME help, ``<p>``) or POD (Perl). Document = one file of the manual; passage = one
paragraph of at least :data:`MIN_WORDS` words, markup stripped, entities decoded; code blocks and paragraphs
that are mostly not letters are dropped. The held-out split is by document (SHA-1 of the package and file path,
about one file in twenty), as for the other corpora.

The sources, their licences and sizes are recorded in ``models/minilm-mlm/README.md``.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from . import Document, hashed_held_out, squash
from .fetch import deb_root

MIN_WORDS = 6


@dataclass(frozen=True)
class Source:
    name: str            # corpus name
    package: str         # Debian package
    folder: str          # folder inside the package
    pattern: str         # glob of the files read
    kind: str            # "html", "mallard" or "pod"
    license: str


SOURCES: tuple[Source, ...] = (
    Source("python-doc", "python3.11-doc", "usr/share/doc/python3.11/html", "**/*.html", "html",
           "PSF License 2.0"),
    Source("debian-handbook", "debian-handbook", "usr/share/doc/debian-handbook/html/en-US", "*.html", "html",
           "GPL-2+ / CC-BY-SA-3.0"),
    Source("debian-reference", "debian-reference-en", "usr/share/debian-reference", "*.en.html", "html",
           "GPL-2+"),
    Source("debian-faq", "debian-faq", "usr/share/doc/debian", "**/*.html", "html", "GPL-2+"),
    Source("debian-policy", "debian-policy", "usr/share/doc/debian-policy", "**/*.html", "html", "GPL-2+"),
    Source("developers-reference", "developers-reference", "usr/share/developers-reference", "**/*.html", "html",
           "MIT"),
    Source("maint-guide", "maint-guide", "usr/share/doc/maint-guide/html", "*.en.html", "html", "GPL-2+ / MIT"),
    Source("gnome-help", "gnome-user-docs", "usr/share/help/C", "**/*.page", "mallard", "CC-BY-SA-3.0"),
    Source("libreoffice-help", "libreoffice-help-en-us", "usr/share/libreoffice/help/en-US", "**/*.html", "html",
           "MPL-2.0"),
    Source("perl-doc", "perl-doc", "usr/share/perl", "**/*.pod", "pod", "GPL-1+ or Artistic"),
    Source("postgresql-doc", "postgresql-doc-15", "usr/share/doc/postgresql-doc-15/html", "*.html", "html",
           "PostgreSQL License"),
)
MODERN_NAMES = tuple(s.name for s in SOURCES)

_PARA = re.compile(r"<p\b[^>]*>(.*?)</p>|<div class=\"para\"[^>]*>(.*?)</div>", re.S | re.I)
_PRE = re.compile(r"<(pre|code|script|style|screen|programlisting)\b.*?</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_POD_CODE = re.compile(r"[A-Z]<<+\s(.*?)\s>>+|[A-Z]<([^<>]*)>", re.S)


def source(name: str) -> Source:
    for s in SOURCES:
        if s.name == name:
            return s
    raise ValueError(f"unknown modern corpus {name!r}; known: {', '.join(MODERN_NAMES)}")


def prose(text: str) -> bool:
    """A paragraph worth training on: enough words, and mostly letters (not code or tables)."""
    words = text.split()
    if len(words) < MIN_WORDS:
        return False
    letters = sum(c.isalpha() or c == " " for c in text)
    return letters >= 0.8 * len(text)


def html_paragraphs(markup: str) -> list[str]:
    """Text of every ``<p>`` / ``<div class="para">`` of an HTML or Mallard page, code removed."""
    markup = _PRE.sub(" ", markup)
    out = []
    for m in _PARA.finditer(markup):
        body = m.group(1) if m.group(1) is not None else m.group(2)
        text = squash(html.unescape(_TAG.sub(" ", body)))
        text = re.sub(r"\s+([,.;:!?)])", r"\1", text)
        if prose(text):
            out.append(text)
    return out


def pod_paragraphs(pod: str) -> list[str]:
    """Ordinary paragraphs of a POD file (commands and indented verbatim blocks skipped, formatting codes kept as
    their text)."""
    out = []
    for block in re.split(r"\n\s*\n", pod.replace("\r\n", "\n")):
        if not block.strip() or block.startswith(("=", " ", "\t")):
            continue
        text = block
        for _ in range(3):
            text = _POD_CODE.sub(lambda m: m.group(1) or m.group(2) or "", text)
        text = squash(text.replace("E<gt>", ">").replace("E<lt>", "<"))
        if prose(text):
            out.append(text)
    return out


def locate(cache: Path, name: str, fetch: bool = True) -> Path:
    return deb_root(cache, source(name).package, fetch=fetch)


def read(root: Path, name: str) -> list[Document]:
    """Every document of one source (files in sorted order), passages in reading order."""
    src = source(name)
    folder = root / src.folder
    docs = []
    for path in sorted(folder.glob(src.pattern)):
        if not path.is_file() or path.is_symlink():
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        paras = pod_paragraphs(raw) if src.kind == "pod" else html_paragraphs(raw)
        if paras:
            rel = str(path.relative_to(folder))
            docs.append(Document(name, f"{src.package}/{rel}", rel, paras))
    return docs


def held_out(doc_id: str) -> bool:
    return hashed_held_out(doc_id)


def load_all(cache: Path, names=MODERN_NAMES, fetch: bool = True) -> dict[str, list[Document]]:
    return {n: read(locate(cache, n, fetch=fetch), n) for n in names}
