"""Fortune cookies from the Debian packages ``fortunes`` and ``fortunes-min`` (``/usr/share/games/fortunes/*``:
records separated by lines holding only ``%``; ``.dat`` index files and ``.u8`` links skipped).

Document = one fortune file (a topic); passage = one cookie. Records that are mostly not letters (ASCII art)
are dropped, as is the ``ascii-art`` file. Held out: science, food, love, sports.
"""
from __future__ import annotations

from pathlib import Path

from . import Document, squash
from .fetch import deb_root

NAME = "fortunes"
SOURCE = "Debian fortunes + fortunes-min"
LICENSE = "public domain / free redistribution (see the package copyright)"
PACKAGES = ("fortunes", "fortunes-min")
HELD_OUT = {"science", "food", "love", "sports"}
SKIP = {"ascii-art", "translate-me"}


def locate(cache: Path, fetch: bool = True) -> Path:
    roots = [deb_root(cache, p, fetch=fetch) for p in PACKAGES]
    return roots[0]


def records(text: str) -> list[str]:
    """One fortune file's text → its cookies (whitespace collapsed)."""
    out, cur = [], []
    for line in text.replace("\r\n", "\n").split("\n") + ["%"]:
        if line.strip() == "%":
            body = squash(" ".join(cur))
            cur = []
            letters = sum(c.isalpha() for c in body)
            if body and letters >= 0.5 * len(body.replace(" ", "")):
                out.append(body)
        else:
            cur.append(line)
    return out


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read(root: Path) -> list[Document]:
    cache_roots = [root.parent / p for p in PACKAGES]
    files: dict[str, Path] = {}
    for r in cache_roots:
        folder = r / "usr/share/games/fortunes"
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix in (".dat", ".u8") or path.is_symlink() or not path.is_file() or path.name in SKIP:
                continue
            files.setdefault(path.name, path)
    return [Document(NAME, name, name, records(_decode(path.read_bytes()))) for name, path in sorted(files.items())]


def held_out(doc_id: str) -> bool:
    return doc_id in HELD_OUT
