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
    kind: str            # "html", "mallard", "docbook", "pod", "wml", "json", "quoted" or "fortune"
    license: str
    also: tuple[str, ...] = ()   # further Debian packages read with the same folder and pattern


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
    # Everyday software and household tasks: e-mail, calendars, money, photos, games.
    Source("gnucash-docs", "gnucash-docs", "usr/share/help/C", "**/*.xml", "docbook", "GFDL-1.1+"),
    Source("gimp-help", "gimp-help-en", "usr/share/gimp/2.0/help/en", "**/*.html", "html", "GFDL-1.2"),
    Source("gnome-app-help", "evolution-common", "usr/share/help/C", "**/*.page", "mallard",
           "CC-BY-SA-3.0 / GFDL (see each package's copyright)",
           also=("gnome-clocks", "simple-scan", "eog", "baobab", "file-roller", "seahorse", "gnome-chess",
                 "gnome-mines")),
    Source("aisleriot-rules", "aisleriot", "usr/share/help/C", "**/*.xml", "docbook", "GFDL-1.1+"),
    Source("kde-help", "kmail", "usr/share/doc/HTML/en", "**/*.docbook", "docbook", "GFDL-1.2+",
           also=("korganizer", "dolphin", "okular")),
    # Conversation: the dialogue and narration of the Battle for Wesnoth campaigns, and quotations.
    Source("wesnoth-dialogue", "wesnoth-1.16-httt", "usr/share/games/wesnoth/1.16/data/campaigns",
           "**/*.cfg", "wml", "GPL-2+",
           also=tuple(f"wesnoth-1.16-{c}" for c in ("did", "dm", "dw", "ei", "l", "low", "nr", "sof", "sota",
                                                   "sotbe", "thot", "trow", "tsg", "ttb", "utbs"))),
    Source("cataclysm-text", "cataclysm-dda-data", "usr/share/games/cataclysm-dda", "**/*.json", "json",
           "CC-BY-SA-3.0"),
    Source("endless-sky-text", "endless-sky-data", "usr/share/games/endless-sky/data", "**/*.txt", "quoted",
           "GPL-3+"),
    Source("fortune-anarchism", "fortune-anarchism", "usr/share/games/fortunes", "anarchism", "fortune",
           "GPL-2+ (collection; quotations from their authors)"),
)
MODERN_NAMES = tuple(s.name for s in SOURCES)

_PARA = re.compile(r"<p\b[^>]*>(.*?)</p>|<div class=\"para\"[^>]*>(.*?)</div>", re.S | re.I)
_PRE = re.compile(r"<(pre|code|script|style|screen|programlisting)\b.*?</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_DOCBOOK_PARA = re.compile(r"<(para|simpara)\b[^>]*>(.*?)</\1>", re.S | re.I)
_ENTITY_DEF = re.compile(r"<!ENTITY\s+(\w[\w.-]*)\s+\"([^\"]*)\"\s*>")
_ENTITY_USE = re.compile(r"&([A-Za-z][\w.-]*);")
_WML_STRING = re.compile(r"\b(?:message|story|note|caption)\s*=\s*_\s*\"((?:[^\"]|\"\")*)\"", re.S)
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


def entities(texts) -> dict[str, str]:
    """``<!ENTITY name "value">`` definitions found in DTD/XML texts, values with their markup removed."""
    out = {}
    for t in texts:
        for m in _ENTITY_DEF.finditer(t):
            out.setdefault(m.group(1), squash(_TAG.sub(" ", m.group(2))))
    return out


def docbook_paragraphs(markup: str, known: dict[str, str] | None = None) -> list[str]:
    """Text of every ``<para>``/``<simpara>`` of a DocBook file, code removed, entities expanded (the package's
    own ``<!ENTITY>`` definitions, then HTML's); a paragraph still holding an unknown entity is dropped."""
    known = known or {}
    markup = _PRE.sub(" ", markup)
    out = []
    for m in _DOCBOOK_PARA.finditer(markup):
        body = _TAG.sub(" ", m.group(2))
        for _ in range(2):
            body = _ENTITY_USE.sub(lambda e: known.get(e.group(1), e.group(0)), body)
        text = squash(html.unescape(body))
        text = re.sub(r"\s+([,.;:!?)])", r"\1", text)
        if _ENTITY_USE.search(text) is None and prose(text):
            out.append(text)
    return out


def wml_strings(cfg: str, min_words: int = 4) -> list[str]:
    """Translatable dialogue and narration strings (``message``/``story``/``note``/``caption = _ "…"``) of a
    Wesnoth WML file; doubled quotes undone, inline markup removed; strings with ``$variables`` dropped."""
    out = []
    for m in _WML_STRING.finditer(cfg):
        text = m.group(1).replace('""', '"')
        if "$" in text or "{" in text:
            continue
        text = squash(html.unescape(_TAG.sub(" ", text)))
        if len(text.split()) >= min_words and sum(c.isalpha() or c == " " for c in text) >= 0.8 * len(text):
            out.append(text)
    return out


_JSON_SKIP_KEYS = frozenset({"id", "type", "copy-from", "abstract", "looks_like", "category", "color", "symbol",
                             "material", "flags", "//", "//2", "comment"})
_QUOTED_LINE = re.compile(r'^\s*[`"](.*)[`"]\s*$')


def json_strings(text: str) -> list[str]:
    """Every prose string value of a JSON file (descriptions, dialogue, messages), identifiers and comments
    skipped, ``<tags>`` removed; an unreadable file gives nothing."""
    import json
    try:
        data = json.loads(text)
    except ValueError:
        return []
    out: list[str] = []

    def walk(o, key=None):
        if isinstance(o, str):
            if key not in _JSON_SKIP_KEYS:
                t = squash(_TAG.sub("", o))
                if prose(t) and "|" not in t:
                    out.append(t)
        elif isinstance(o, list):
            for x in o:
                walk(x, key)
        elif isinstance(o, dict):
            for k, v in o.items():
                walk(v, k)
    walk(data)
    return out


def quoted_lines(text: str) -> list[str]:
    """Lines that are one quoted string (Endless Sky's dialogue and descriptions), ``<placeholders>`` dropped."""
    out = []
    for line in text.splitlines():
        m = _QUOTED_LINE.match(line)
        if m:
            t = squash(m.group(1))
            if "<" not in t and prose(t):
                out.append(t)
    return out


def fortune_records(text: str) -> list[str]:
    from .fortunes import records
    return [r for r in records(text) if prose(r)]


def locate(cache: Path, name: str, fetch: bool = True) -> Path:
    src = source(name)
    for extra in src.also:
        deb_root(cache, extra, fetch=fetch)
    return deb_root(cache, src.package, fetch=fetch)


def read(root: Path, name: str) -> list[Document]:
    """Every document of one source (packages in order, files in sorted order), passages in reading order.
    ``root`` is the unpacked main package; the source's further packages sit beside it in the cache."""
    src = source(name)
    docs = []
    for package in (src.package,) + src.also:
        folder = root.parent / package / src.folder if package != src.package else root / src.folder
        files = [p for p in sorted(folder.glob(src.pattern)) if p.is_file() and not p.is_symlink()]
        known = {}
        if src.kind == "docbook":
            known = entities(p.read_text(encoding="utf-8", errors="replace")
                             for p in sorted(folder.glob("**/*")) if p.suffix in (".dtd", ".ent", ".xml", ".docbook")
                             and p.is_file())
        for path in files:
            raw = path.read_text(encoding="utf-8", errors="replace")
            if src.kind == "pod":
                paras = pod_paragraphs(raw)
            elif src.kind == "docbook":
                paras = docbook_paragraphs(raw, known)
            elif src.kind == "wml":
                paras = wml_strings(raw)
            elif src.kind == "json":
                paras = json_strings(raw)
            elif src.kind == "quoted":
                paras = quoted_lines(raw)
            elif src.kind == "fortune":
                paras = fortune_records(raw)
            else:
                paras = html_paragraphs(raw)
            if paras:
                rel = str(path.relative_to(folder))
                docs.append(Document(name, f"{package}/{rel}", rel, paras))
    return docs


def held_out(doc_id: str) -> bool:
    return hashed_held_out(doc_id)


def load_all(cache: Path, names=MODERN_NAMES, fetch: bool = True) -> dict[str, list[Document]]:
    return {n: read(locate(cache, n, fetch=fetch), n) for n in names}
