"""Streaming readers for production logs (JSONL, CSV, Parquet) with bounded memory and full accounting.

Every record of the file comes out exactly once, in file order, as a :class:`RawRecord`: either with its parsed
fields, or already marked ``skipped`` with a reason code, a one-line reason and its line number. Nothing is
dropped silently, so ``analysed + skipped + failed`` always equals the records read.

What a "line" is: for JSONL every physical line is one record (blank lines included, reported as skipped);
for CSV one record is one data row (the header is not a record; a quoted field may span physical lines, and the
record's ``line`` is the physical line where it starts); for Parquet one record is one row (``line`` = row
number, 1-based).

Memory is bounded whatever the file size: text files are read one physical line at a time with a byte limit
(longer lines are skipped without being held in memory), a multi-line CSV record is abandoned past a span limit
and its continuation lines are re-read as records of their own, and Parquet is read in record batches.

Handled and reported: a UTF-8 byte-order mark (and UTF-16 files, detected by their BOM or by their NUL pattern),
invalid bytes (decoded with U+FFFD replacement, noted on the record), CRLF line ends, embedded NUL bytes
(removed, noted), lines over the byte limit (skipped), malformed JSON or CSV (skipped with the parser's
message), a missing column, empty or non-text values (skipped).
"""
from __future__ import annotations

import codecs
import csv
import datetime as _dt
import math
import io
import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

FORMATS = ("jsonl", "csv", "parquet")
MAX_LINE_BYTES = 1 << 20          # a physical line longer than this is skipped as "too-long"
MAX_RECORD_LINES = 200            # a quoted CSV field may span at most this many physical lines
INSPECT_RECORDS = 200             # records read to list a JSONL file's columns and show a sample

# Reason codes of skipped records (the human-readable reason says more, with the specifics).
REASONS = {
    "blank-line": "the line is empty",
    "too-long": "the line is longer than the byte limit",
    "malformed-json": "the line is not a JSON object",
    "malformed-csv": "the row could not be parsed as CSV with the header's fields",
    "missing-column": "the mapped text column is absent from the record",
    "empty-text": "the text is empty (or only whitespace / control characters)",
    "not-text": "the text column holds something other than a string",
    "no-mask": "the mask policy needs a [MASK] token and the text has none",
    "too-many-tokens": "the text is longer than the model reads and the policy says skip",
    "unreadable": "most of the text's word pieces are unknown to the model's vocabulary ([UNK]): status "
                  "'unreadable by this model', not ranked",
}


class LogError(ValueError):
    """The log as a whole cannot be read (missing file, unknown format, unreadable header or schema).
    ``str(err)`` is one clear line."""


class MappingError(ValueError):
    """The column mapping does not fit the log (e.g. the text column is not there); one clear line."""


@dataclass
class RawRecord:
    """One record of the log. ``fields`` is None when the record was skipped while reading."""
    index: int                     # 0-based ordinal among the records of the file
    line: int                      # 1-based line (JSONL/CSV: physical line where it starts; Parquet: row)
    fields: dict | None
    status: str | None = None      # None (parsed) or "skipped"
    reason_code: str = ""
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    preview: str = ""              # the start of the raw line, for skipped records


@dataclass
class LogInfo:
    """What :func:`inspect_log` learnt from the start of the file."""
    path: str
    format: str
    size_bytes: int
    columns: list[str]
    sample: list[dict]
    encoding: str
    delimiter: str | None = None
    n_rows: int | None = None              # Parquet only
    column_types: dict[str, str] = field(default_factory=dict)   # Parquet only
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ColumnMapping:
    """Which column holds what. Only ``text`` is required; ``slices`` are extra fields to slice results by."""
    text: str
    id: str | None = None
    timestamp: str | None = None
    prediction: str | None = None
    label: str | None = None
    slices: tuple[str, ...] = ()

    def used(self) -> list[str]:
        cols = [self.text, self.id, self.timestamp, self.prediction, self.label, *self.slices]
        out: list[str] = []
        for c in cols:
            if c and c not in out:
                out.append(c)
        return out

    def validate(self, info: LogInfo, reserved: set[str] | frozenset[str] = frozenset()) -> None:
        """Raise :class:`MappingError` with one clear line when the mapping cannot work for this log."""
        if not self.text or not str(self.text).strip():
            raise MappingError("no text column chosen: map the column that holds the model's input text")
        cols = info.columns
        where = (f"the first {INSPECT_RECORDS} lines" if info.format == "jsonl" else "the header"
                 if info.format == "csv" else "the schema")
        shown = ", ".join(repr(c) for c in cols[:30]) + (" …" if len(cols) > 30 else "") if cols else "none"
        if info.format == "jsonl" and not info.sample:
            return      # no record could be parsed at the start: nothing to check against; lines get reasons
        # JSONL: optional fields are checked only once a sampled record has usable text (the first lines may
        # all be broken, and broken lines legitimately lack them)
        usable = info.format != "jsonl" or any(isinstance(r.get(self.text), str) and r.get(self.text).strip()
                                               for r in info.sample)
        for role, col in (("text", self.text), ("id", self.id), ("timestamp", self.timestamp),
                          ("prediction", self.prediction), ("label", self.label)):
            if col and col not in cols and (role == "text" or usable):
                raise MappingError(f"{role} column {col!r} is not in {where} of {Path(info.path).name}; "
                                   f"columns found: {shown}")
        for col in self.slices:
            if col not in cols and usable:
                raise MappingError(f"slice column {col!r} is not in {where} of {Path(info.path).name}; "
                                   f"columns found: {shown}")
            if col in reserved:
                raise MappingError(f"slice column {col!r} has the name of a result column; map it under its "
                                   "role (id, timestamp, prediction, label) or rename it in the log")
        if info.format == "parquet":
            kind = info.column_types.get(self.text, "")
            if not (kind.startswith(("string", "large_string", "binary", "large_binary", "string_view"))
                    or ("dictionary" in kind and "string" in kind)):
                raise MappingError(f"text column {self.text!r} holds {kind or 'no'} values, not text: "
                                   "map the column with the input sentences")
        if info.sample and all(self.text not in r for r in info.sample) and info.format == "jsonl":
            raise MappingError(f"text column {self.text!r} is in none of the sampled records")

    def check(self, info: LogInfo) -> list[str]:
        """What looks wrong when each mapped column is compared with the sampled records (one line each; an
        empty list when nothing does): dates, numbers or ids mapped as the text, values that are not times
        mapped as the timestamp, ids mapped as the prediction or label. Warnings, not errors: the run may go on."""
        out: list[str] = []
        if not info.sample:
            return out

        def values(col):
            vals = [r.get(col) for r in info.sample if r.get(col) is not None and str(r.get(col)).strip()]
            return vals

        def eg(vals):
            return ", ".join(repr(str(v)[:30]) for v in vals[:2])
        text = values(self.text) if self.text else []
        if len(text) >= 3:
            kind = _looks_like(text)
            if kind in ("dates", "numbers", "identifiers"):
                out.append(f"text column {self.text!r} looks like {kind} (e.g. {eg(text)}), not sentences: map "
                           "the column with the model's input text")
        if self.timestamp:
            ts = values(self.timestamp)
            if ts:
                ok = sum(1 for v in ts if _is_time(v))
                if ok < max(1, len(ts) // 2):
                    out.append(f"timestamp column {self.timestamp!r} does not hold times (e.g. {eg(ts)}): "
                               f"{ok} of {len(ts)} sampled values are ISO 8601 dates or Unix times; without "
                               "times there is no time filter")
        for role in ("prediction", "label"):
            col = getattr(self, role)
            vals = values(col) if col else []
            if len(vals) >= 5 and _looks_like(vals) == "identifiers":
                out.append(f"{role} column {col!r} looks like identifiers (e.g. {eg(vals)}): a different value "
                           f"on each sampled record, so agreement with it means nothing")
        if self.id:
            vals = values(self.id)
            if len(vals) >= 5 and _looks_like(vals) == "sentences":
                out.append(f"id column {self.id!r} looks like free text (e.g. {eg(vals)}), not identifiers")
        return out


def _is_time(v) -> bool:
    try:
        t = parse_time(v)
    except (ValueError, OverflowError, OSError, TypeError):
        return False
    if t is None:
        return False
    if isinstance(v, (int, float)) or _NUMBER.fullmatch(str(v).strip()):   # plausible epochs only (1990..2100)
        return 631_152_000 <= t.timestamp() <= 4_102_444_800
    return True


import re as _re  # noqa: E402

_NUMBER = _re.compile(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?")
_DATE = _re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")
_IDENT = _re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")


def _looks_like(values: list) -> str | None:
    """'dates', 'numbers', 'identifiers' or 'sentences' when at least 80% of the values are of that kind."""
    vals = [str(v).strip() for v in values]
    n = len(vals)
    def share(pred):
        return sum(1 for v in vals if pred(v)) / n
    if share(lambda v: bool(_DATE.fullmatch(v))) >= 0.8:
        return "dates"
    if share(lambda v: bool(_NUMBER.fullmatch(v))) >= 0.8:
        return "numbers"
    if (share(lambda v: bool(_IDENT.fullmatch(v)) and any(c.isdigit() for c in v)) >= 0.8
            and len(set(vals)) == n):
        return "identifiers"
    if share(lambda v: len(v.split()) >= 3) >= 0.8:
        return "sentences"
    return None


def parse_time(v) -> _dt.datetime | None:
    """A timestamp value → aware UTC datetime: datetimes, ISO-8601 strings, or Unix epoch numbers (seconds, or
    milliseconds when larger than 10¹¹). Raises ValueError when not understood."""
    if v is None or v == "":
        return None
    if isinstance(v, _dt.datetime):
        return v if v.tzinfo else v.replace(tzinfo=_dt.timezone.utc)
    if isinstance(v, _dt.date):
        return _dt.datetime(v.year, v.month, v.day, tzinfo=_dt.timezone.utc)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        x = float(v)
        if not math.isfinite(x):
            raise ValueError("not a finite number")
        return _dt.datetime.fromtimestamp(x / 1000.0 if abs(x) > 1e11 else x, tz=_dt.timezone.utc)
    s = str(v).strip()
    try:
        x = float(s)
    except ValueError:
        pass
    else:
        return parse_time(x)
    t = _dt.datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


# ------------------------------------------------------------------------------------------ detection ---

def detect_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """``jsonl`` / ``csv`` / ``parquet`` from ``fmt`` or the file name (``.json``, ``.ndjson``, ``.tsv``, ``.txt``
    and ``.gz`` are not guessed beyond their obvious meaning); Parquet is also recognised by its magic bytes."""
    if fmt:
        f = fmt.lower().strip(".")
        f = {"json": "jsonl", "ndjson": "jsonl", "tsv": "csv", "pq": "parquet"}.get(f, f)
        if f not in FORMATS:
            raise LogError(f"unknown log format {fmt!r}: use one of {', '.join(FORMATS)}")
        return f
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise LogError(f"cannot read {p}: {err.strerror or err}") from err
    if head == b"PAR1":
        return "parquet"
    raise LogError(f"cannot tell the format of {p.name} from its name: give the format (jsonl, csv or parquet)")


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise LogError(f"log file not found: {p}")
    if p.is_dir():
        raise LogError(f"{p} is a folder, not a log file")
    if not os.access(p, os.R_OK):
        raise LogError(f"log file {p} is not readable (permissions)")
    return p


# Magic bytes of files that are sometimes renamed or exported by mistake as logs.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF87a", "a GIF image"),
          (b"GIF89a", "a GIF image"), (b"%PDF-", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (or an Office file)"),
          (b"\x1f\x8b", "a gzip archive (decompress it first)"), (b"BZh", "a bzip2 archive (decompress it first)"),
          (b"\xfd7zXZ\x00", "an xz archive (decompress it first)"), (b"PAR1", "a Parquet file"),
          (b"SQLite format 3\x00", "an SQLite database"), (b"\x7fELF", "a program (ELF)"))


def _check_text_file(p: Path, fmt: str) -> None:
    """Raise a specific :class:`LogError` when a file given as a text log (JSONL/CSV) is binary: a known file
    type by its magic bytes, or bytes that are not text at all."""
    with open(p, "rb") as f:
        head = f.read(4096)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            if kind == "a Parquet file":
                raise LogError(f"{p.name} is a Parquet file, not {fmt.upper()}: rename it to .parquet or give "
                               "the format parquet")
            raise LogError(f"{p.name} is not a text log: its bytes are those of {kind}, not {fmt.upper()} text")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF8)):
        return
    even, odd = head[0::2], head[1::2]
    if len(head) >= 8 and (odd.count(0) / max(1, len(odd)) > 0.6 or even.count(0) / max(1, len(even)) > 0.6):
        return      # UTF-16 without a BOM (decoded as such)
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    if head and control / len(head) > 0.1:
        raise LogError(f"{p.name} is not a text log: {100 * control // len(head)}% of its first bytes are "
                       f"binary control codes, so it is not {fmt.upper()} text")


def _sniff_encoding(head: bytes, encoding: str | None) -> tuple[str, int, list[str]]:
    """(encoding, bytes to skip, notes) from the first bytes of a text file."""
    if encoding and encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "auto"):
        try:
            codecs.lookup(encoding)
        except LookupError as err:
            raise LogError(f"unknown text encoding {encoding!r}") from err
        skip = 3 if head.startswith(codecs.BOM_UTF8) and encoding.lower().startswith("utf") else 0
        return encoding, skip, []
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3, ["the file starts with a UTF-8 byte-order mark (BOM); it was skipped"]
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16", 0, ["the file is UTF-16 (it starts with a UTF-16 byte-order mark); decoded as UTF-16"]
    if len(head) >= 8:
        even = head[0::2].count(0) / len(head[0::2])
        odd = head[1::2].count(0) / len(head[1::2])
        if odd > 0.6 and even < 0.1:
            return "utf-16-le", 0, ["the file looks like UTF-16 little-endian without a BOM; decoded as such"]
        if even > 0.6 and odd < 0.1:
            return "utf-16-be", 0, ["the file looks like UTF-16 big-endian without a BOM; decoded as such"]
    return "utf-8", 0, []


# ------------------------------------------------------------------------------------- physical lines ---

@dataclass
class Line:
    no: int                 # 1-based physical line number
    text: str               # without its line end
    too_long: bool = False
    replaced: int = 0       # characters decoded as U+FFFD (invalid bytes)
    nuls: int = 0           # NUL characters removed
    nbytes: int = 0         # raw bytes, line end included


class LineSource:
    """The physical lines of a text log, decoded, each at most ``max_line_bytes`` (longer ones are marked
    ``too_long`` and their content is never held in memory). Tracks bytes read for progress."""

    def __init__(self, path: str | os.PathLike, encoding: str | None = None, max_line_bytes: int = MAX_LINE_BYTES):
        self.path = _check_file(path)
        self.max = int(max_line_bytes)
        self.size = self.path.stat().st_size
        self._f = open(self.path, "rb")
        head = self._f.read(64)
        self.encoding, skip, self.notes = _sniff_encoding(head, encoding)
        self._f.seek(skip)
        self.bytes_read = skip
        self.no = 0
        self._text = None
        self._strict = None
        if self.encoding.lower().startswith("utf-16"):
            self._text = io.TextIOWrapper(self._f, encoding=self.encoding, errors="replace", newline="")
        else:
            self._strict = codecs.lookup(self.encoding).name

    def close(self) -> None:
        try:
            (self._text or self._f).close()
        except Exception:  # pragma: no cover
            pass

    def __iter__(self) -> Iterator[Line]:
        return self

    def __next__(self) -> Line:
        if self._text is not None:
            return self._next_text()
        raw = self._f.readline(self.max + 2)
        if not raw:
            raise StopIteration
        self.no += 1
        nbytes = len(raw)
        body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        if len(body) > self.max:
            preview = raw[:200]
            while not raw.endswith(b"\n"):
                raw = self._f.readline(1 << 20)
                if not raw:
                    break
                nbytes += len(raw)
            self.bytes_read += nbytes
            return Line(self.no, preview.decode(self.encoding, errors="replace"), too_long=True, nbytes=nbytes)
        self.bytes_read += nbytes
        nuls = body.count(b"\0")
        if nuls:
            body = body.replace(b"\0", b"")
        try:
            text = body.decode(self.encoding)
            replaced = 0
        except UnicodeDecodeError:
            before = body.count("\ufffd".encode("utf-8")) if self._strict == "utf-8" else 0
            text = body.decode(self.encoding, errors="replace")
            replaced = max(1, text.count("\ufffd") - before)
        return Line(self.no, text, replaced=replaced, nuls=nuls, nbytes=nbytes)

    def _next_text(self) -> Line:
        raw = self._text.readline(self.max + 2)
        if not raw:
            raise StopIteration
        self.no += 1
        body = raw[:-2] if raw.endswith("\r\n") else raw[:-1] if raw.endswith("\n") else raw
        size = len(raw) * 2
        if len(body) > self.max:
            preview = raw[:200]
            while not raw.endswith("\n"):
                raw = self._text.readline(1 << 19)
                if not raw:
                    break
                size += len(raw) * 2
            self.bytes_read += size
            return Line(self.no, preview, too_long=True, nbytes=size)
        self.bytes_read += size
        nuls = body.count("\0")
        if nuls:
            body = body.replace("\0", "")
        return Line(self.no, body, replaced=body.count("\ufffd"), nuls=nuls, nbytes=size)


def _line_notes(line: Line) -> list[str]:
    notes = []
    if line.replaced:
        notes.append(f"{line.replaced} invalid byte sequence(s) replaced with U+FFFD")
    if line.nuls:
        notes.append(f"removed {line.nuls} NUL byte(s)")
    return notes


# ------------------------------------------------------------------------------------------- readers ---

class LogReader:
    """Iterate a log's records (see the module docstring). ``progress()`` is the fraction of the file read."""

    def __init__(self, path: str | os.PathLike, fmt: str | None = None, encoding: str | None = None,
                 delimiter: str | None = None, columns: list[str] | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES, max_record_lines: int = MAX_RECORD_LINES,
                 parquet_batch: int = 1024):
        self.path = _check_file(path)
        self.format = detect_format(self.path, fmt)
        self.encoding = encoding
        self.delimiter = delimiter
        self.columns = columns
        self.max_line_bytes = max_line_bytes
        self.max_record_lines = max_record_lines
        self.parquet_batch = parquet_batch
        self.notes: list[str] = []
        self.header: list[str] | None = None
        self.n_rows: int | None = None
        self._source: LineSource | None = None
        self._rows_read = 0

    def progress(self) -> float:
        if self.format == "parquet":
            return self._rows_read / self.n_rows if self.n_rows else 1.0
        if self._source is None or not self._source.size:
            return 0.0
        return min(1.0, self._source.bytes_read / self._source.size)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()

    def __iter__(self) -> Iterator[RawRecord]:
        try:
            if self.format == "jsonl":
                yield from self._jsonl()
            elif self.format == "csv":
                yield from self._csv()
            else:
                yield from self._parquet()
        finally:
            self.close()

    # --- JSONL -----------------------------------------------------------------------------------------
    def _jsonl(self) -> Iterator[RawRecord]:
        self._source = src = LineSource(self.path, self.encoding, self.max_line_bytes)
        self.notes.extend(src.notes)
        index = 0
        for line in src:
            rec = RawRecord(index, line.no, None, notes=_line_notes(line))
            index += 1
            if line.too_long:
                _skip(rec, "too-long", f"line is longer than {self.max_line_bytes} bytes", line.text)
            elif not line.text.strip():
                _skip(rec, "blank-line", "blank line", "")
            else:
                try:
                    obj = json.loads(line.text)
                except (json.JSONDecodeError, RecursionError) as err:
                    msg = f"{err.msg} (column {err.colno})" if isinstance(err, json.JSONDecodeError) else \
                        "nested too deeply"
                    _skip(rec, "malformed-json", f"malformed JSON: {msg}", line.text)
                else:
                    if isinstance(obj, dict):
                        rec.fields = obj
                    else:
                        _skip(rec, "malformed-json", f"malformed JSON: expected an object {{…}}, got "
                              f"{_json_kind(obj)}", line.text)
            yield rec

    # --- CSV -------------------------------------------------------------------------------------------
    def _csv(self) -> Iterator[RawRecord]:
        self._source = src = LineSource(self.path, self.encoding, self.max_line_bytes)
        self.notes.extend(src.notes)
        feeder = _Feeder(src, self.max_record_lines)
        first = None
        for first in feeder.raw_lines():
            break
        if first is None:
            raise LogError(f"{self.path.name} is empty: a CSV log needs a header line")
        if first.too_long:
            raise LogError(f"the CSV header (line 1) is longer than {self.max_line_bytes} bytes")
        delim = self.delimiter or _sniff_delimiter(first.text, self.path)
        self.delimiter = delim
        feeder.push_front([first])
        csv.field_size_limit(max(self.max_line_bytes * 4, 1 << 20))
        reader = csv.reader(feeder, delimiter=delim, strict=True)
        try:
            feeder.begin()
            header = next(reader)
        except (csv.Error, _SpanError) as err:
            raise LogError(f"the CSV header (line 1) could not be read: {err}") from err
        except StopIteration:
            raise LogError(f"{self.path.name} has no CSV header") from None
        self.header = _unique_header(header, self.notes)
        width = len(self.header)
        index = 0
        while True:
            feeder.begin()
            try:
                row = next(reader)
                err = None
            except StopIteration:
                if feeder.pending_too_long():
                    row, err = None, None
                else:
                    break
            except csv.Error as e:
                row, err = None, f"malformed CSV: {e}"
                if "unexpected end of data" in str(e):
                    err = "malformed CSV: a quoted field is never closed"
            except _SpanError as e:
                row, err = None, f"malformed CSV: {e}"
            consumed = feeder.consumed
            if row is None and err is None:      # a too-long physical line at a record start
                line = feeder.take_too_long()
                rec = RawRecord(index, line.no, None)
                _skip(rec, "too-long", f"line is longer than {self.max_line_bytes} bytes", line.text)
                index += 1
                yield rec
                continue
            if not consumed:  # pragma: no cover - csv yields nothing without consuming
                break
            start = consumed[0]
            rec = RawRecord(index, start.no, None, notes=[n for ln in consumed for n in _line_notes(ln)])
            index += 1
            if err is not None:
                if len(consumed) > 1:      # re-read the continuation lines as records of their own
                    feeder.push_front(consumed[1:])
                    err += f" (the record starting here ran over {len(consumed)} lines; the following lines " \
                           "are read again as records of their own)"
                _skip(rec, "malformed-csv", err, start.text)
            elif not row:
                _skip(rec, "blank-line", "blank line", "")
            elif len(row) != width:
                if len(consumed) > 1:
                    feeder.push_front(consumed[1:])
                _skip(rec, "malformed-csv", f"malformed CSV: expected {width} fields (as in the header), got "
                      f"{len(row)}", start.text)
            else:
                rec.fields = dict(zip(self.header, row))
            yield rec

    # --- Parquet ---------------------------------------------------------------------------------------
    def _parquet(self) -> Iterator[RawRecord]:
        import pyarrow.parquet as pq
        try:
            pf = pq.ParquetFile(self.path)
        except Exception as err:
            raise LogError(f"{self.path.name} is not a readable Parquet file: {err}") from err
        self.n_rows = pf.metadata.num_rows
        names = pf.schema_arrow.names
        cols = [c for c in (self.columns or names) if c in names]
        index = 0
        try:
            for batch in pf.iter_batches(batch_size=self.parquet_batch, columns=cols):
                for row in batch.to_pylist():
                    self._rows_read += 1
                    rec = RawRecord(index, index + 1, row)
                    for k, v in row.items():
                        if isinstance(v, (bytes, bytearray)):
                            try:
                                v = bytes(v).decode("utf-8")
                            except UnicodeDecodeError:
                                v = bytes(v).decode("utf-8", errors="replace")
                                rec.notes.append(f"column {k!r}: invalid UTF-8 replaced with U+FFFD")
                            row[k] = v
                        if isinstance(v, str) and "\0" in v:
                            row[k] = v.replace("\0", "")
                            rec.notes.append(f"column {k!r}: removed {v.count(chr(0))} NUL character(s)")
                    index += 1
                    yield rec
        except LogError:
            raise
        except Exception as err:
            raise LogError(f"{self.path.name}: Parquet data could not be read after row {index}: {err}") from err


def _skip(rec: RawRecord, code: str, reason: str, preview: str) -> None:
    rec.status, rec.reason_code, rec.reason, rec.preview = "skipped", code, reason, preview[:300]


def _json_kind(obj) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false",
            type(None): "null"}.get(type(obj), type(obj).__name__)


def _sniff_delimiter(header: str, path: Path) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    counts = {d: header.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] > 0 else ","


def _unique_header(header: list[str], notes: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, h in enumerate(header):
        name = h.strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            new = f"{name}_{seen[name]}"
            notes.append(f"the CSV header repeats {name!r}: column {i + 1} is read as {new!r}")
            name = new
        else:
            seen[name] = 1
        out.append(name)
    return out


class _SpanError(Exception):
    """A CSV record ran over the span limit or into a too-long line."""


class _Feeder:
    """Feeds decoded physical lines to ``csv.reader`` one record at a time, remembering which lines the current
    record consumed, so that a broken multi-line record can be abandoned and its continuation lines re-read."""

    def __init__(self, src: LineSource, max_lines: int):
        self.src = src
        self.max_lines = max_lines
        self.pending: deque[Line] = deque()
        self.consumed: list[Line] = []
        self._too_long: Line | None = None

    def raw_lines(self) -> Iterator[Line]:
        while True:
            if self.pending:
                yield self.pending.popleft()
                continue
            try:
                yield next(self.src)
            except StopIteration:
                return

    def push_front(self, lines: list[Line]) -> None:
        self.pending.extendleft(reversed(lines))

    def begin(self) -> None:
        self.consumed = []

    def pending_too_long(self) -> bool:
        return self._too_long is not None

    def take_too_long(self) -> Line:
        line, self._too_long = self._too_long, None
        return line

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self._too_long is not None:
            raise StopIteration
        line = self.pending.popleft() if self.pending else next(self.src)
        if line.too_long:
            if not self.consumed:
                self._too_long = line
                raise StopIteration
            self.pending.appendleft(line)
            raise _SpanError("a quoted field runs into a line that is over the byte limit")
        if len(self.consumed) >= self.max_lines:
            self.pending.appendleft(line)
            raise _SpanError(f"a quoted field spans more than {self.max_lines} lines")
        self.consumed.append(line)
        return line.text + "\n"


# ------------------------------------------------------------------------------------------ inspection ---

def inspect_log(path: str | os.PathLike, fmt: str | None = None, encoding: str | None = None,
                delimiter: str | None = None, records: int = INSPECT_RECORDS,
                max_line_bytes: int = MAX_LINE_BYTES) -> LogInfo:
    """Format, columns and a small sample of a log, reading only its start (and a Parquet file's schema)."""
    p = _check_file(path)
    size = p.stat().st_size
    if size == 0:
        raise LogError(f"{p.name} is empty (0 bytes): there is nothing to triage; check that the export finished")
    f = detect_format(p, fmt)
    if f == "parquet":
        import pyarrow.parquet as pq
        try:
            pf = pq.ParquetFile(p)
        except Exception as err:
            raise LogError(f"{p.name} is not a readable Parquet file: {err}") from err
        schema = pf.schema_arrow
        sample: list[dict] = []
        if pf.metadata.num_rows:
            for batch in pf.iter_batches(batch_size=min(records, 20)):
                sample = batch.to_pylist()
                break
        return LogInfo(str(p), f, size, list(schema.names), sample, "parquet", None, pf.metadata.num_rows,
                       {n: str(t) for n, t in zip(schema.names, schema.types)})
    _check_text_file(p, f)
    reader = LogReader(p, f, encoding, delimiter, max_line_bytes=max_line_bytes)
    cols: list[str] = []
    sample = []
    seen = 0
    it = iter(reader)
    try:
        for rec in it:
            seen += 1
            if rec.fields is not None:
                if f == "jsonl":
                    for k in rec.fields:
                        if k not in cols:
                            cols.append(k)
                if len(sample) < 20:
                    sample.append(rec.fields)
            if seen >= records:
                break
    finally:
        it.close()
        reader.close()
    if f == "csv":
        cols = list(reader.header or [])
    enc = reader._source.encoding if reader._source else "utf-8"
    return LogInfo(str(p), f, size, cols, sample, enc, reader.delimiter, None, {}, list(reader.notes))
