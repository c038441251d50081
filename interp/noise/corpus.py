"""Inputs for the corpus probe: the held-out sentences shipped in ``models/``, or a log file (txt/JSONL/CSV).

Held-out sentences: ``models/heldout_sample.json`` holds held-out evaluation sequences as token ids of the shipped
tokenizer, with the positions that the training protocol masked. Each sequence is cut into sentences at ``.``,
``;``, ``!`` and ``?`` tokens; a sentence of 6–40 word pieces that holds at least one masked *whole word* (a
piece that is neither a continuation ``##…`` nor followed by one, and is alphabetic) becomes one input: decoded
to text with its masked whole words (at most two) as [MASK] and every other piece as it was. The result is plain
text, so any model (any tokenizer) can be probed on it. Deterministic: same file, same list.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from ..loader import MODELS_DIR

HELDOUT = MODELS_DIR / "heldout_sample.json"
ENDS = {".", ";", "!", "?"}


def _tokenizer(folder: Path | None = None):
    from transformers import AutoTokenizer
    for name in ([folder] if folder else []) + [MODELS_DIR / n for n in ("mini-bert", "paper", "cbow")]:
        if name is not None and (Path(name) / "tokenizer.json").exists():
            return AutoTokenizer.from_pretrained(str(name), local_files_only=True, trust_remote_code=False)
    raise FileNotFoundError(f"no shipped tokenizer in {MODELS_DIR}: build the models with `make models`")


def heldout_sentences(limit: int | None = None, path: Path = HELDOUT, min_pieces: int = 6, max_pieces: int = 40,
                      max_masks: int = 2) -> list[tuple[str, str]]:
    """(key, text) pairs of held-out sentences with [MASK] at the held-out masked whole words, interleaved across
    the corpora (one sentence per corpus in turn) so that any prefix is balanced. ``limit`` caps the count."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"cannot read the held-out sample {path}: {err}") from err
    tok = _tokenizer()
    per_corpus: dict[str, list[tuple[str, str]]] = {}
    for si, seq in enumerate(data["sequences"]):
        ids = list(seq["input_ids"])
        pieces = tok.convert_ids_to_tokens(ids)
        masked = set(seq["masked"])
        special = set(tok.all_special_ids)
        start = 1
        for end in range(1, len(ids)):
            if pieces[end] in ENDS or ids[end] in special:
                stop = end + 1 if pieces[end] in ENDS else end
                lo = start
                while lo < stop and pieces[lo].startswith("##"):
                    lo += 1
                sent = list(range(lo, stop))
                start = stop
                if not min_pieces <= len(sent) <= max_pieces:
                    continue
                whole = [i for i in sent if i in masked and pieces[i].isalpha() and not pieces[i].startswith("##")
                         and not (i + 1 < len(pieces) and pieces[i + 1].startswith("##"))][:max_masks]
                if not whole:
                    continue
                out = [tok.mask_token_id if i in whole else ids[i] for i in sent]
                text = tok.decode(out, skip_special_tokens=False, clean_up_tokenization_spaces=True)
                per_corpus.setdefault(seq.get("corpus", "?"), []).append((f"{seq.get('corpus', '?')}-{si}-{lo}", text))
    out: list[tuple[str, str]] = []
    lists = [per_corpus[c] for c in sorted(per_corpus)]
    i = 0
    while any(i < len(x) for x in lists):
        out.extend(x[i] for x in lists if i < len(x))
        i += 1
    return out[:limit] if limit else out


class LogSource:
    """The texts of a log: a plain ``.txt`` file (one input per non-blank line) or a JSONL/CSV/Parquet file read
    by the triage readers (``text_column``). Iterating gives (key, text) with key = ``line:N``; lines without
    usable text are listed in ``skipped`` (line, reason). ``fraction()`` is the share of the file read."""

    def __init__(self, path: str | os.PathLike, text_column: str = "text", limit: int | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"log file not found: {self.path}")
        if self.path.is_dir():
            raise FileNotFoundError(f"{self.path} is a folder, not a log file")
        self.text_column = text_column
        self.limit = limit
        self.skipped: list[tuple[str, str]] = []
        self._reader = None
        self._size = max(1, self.path.stat().st_size)
        self._read = 0
        self.is_text = self.path.suffix.lower() in (".txt", ".text", "")

    def fraction(self) -> float:
        if self._reader is not None:
            return float(self._reader.progress())
        return min(1.0, self._read / self._size)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        n = 0
        if self.is_text:
            with open(self.path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    self._read += len(raw)
                    text = raw.decode("utf-8", errors="replace").strip()
                    if not text:
                        self.skipped.append((f"line:{lineno}", "the line is empty"))
                        continue
                    yield f"line:{lineno}", text
                    n += 1
                    if self.limit and n >= self.limit:
                        return
            return
        from ..triage.readers import LogReader, MappingError
        self._reader = reader = LogReader(self.path, columns=[self.text_column])
        seen_text = False
        for rec in reader:
            where = f"line:{rec.line}"
            if rec.fields is None:
                self.skipped.append((where, rec.reason or rec.reason_code))
                continue
            value = rec.fields.get(self.text_column)
            if self.text_column not in rec.fields:
                self.skipped.append((where, f"no column {self.text_column!r}"))
                continue
            if not isinstance(value, str) or not value.strip():
                self.skipped.append((where, "the text is empty or not text"))
                continue
            seen_text = True
            yield where, value
            n += 1
            if self.limit and n >= self.limit:
                return
        if not seen_text and self.skipped and all("no column" in r for _, r in self.skipped):
            raise MappingError(f"text column {self.text_column!r} is in no record of {self.path.name}: use "
                               "--text-column")
