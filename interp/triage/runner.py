"""Run a triage over a log: stream records, score them in batches, write parts, resume, finalise.

Every record ends as ``analysed``, ``skipped`` (reason code, reason, line number) or ``failed`` (the error):
``analysed + skipped + failed = lines read``. A batch that raises is retried one input at a time so that only
the inputs that fail are marked failed. Memory is bounded: records are read in windows of a few batches, rows
are flushed to Parquet parts, and the corpus norm keeps a fixed-size sample.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import hashlib
import json
import math
import os
import platform
import sys
import time
import types
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..loader import LoadedModel, load_model
from ..trace import InputError, clean_text
from . import registry
from . import scores as S
from .readers import ColumnMapping, LogReader, MappingError, RawRecord, inspect_log, parse_time  # noqa: F401
from .heap import release_free_heap
from .store import RESERVED, RunFolder, ScoreGather, build_results, head_matrix, schema_for, to_table

ON_LONG = ("truncate", "skip")
STATUSES = ("analysed", "skipped", "unreadable", "failed")
ENGINES = ("local", "ray")
# A duplicate keeps these fields of its own (where it is in the log and what was logged with it).
_OWN = frozenset({"record", "line", "id", "timestamp", "time", "prediction", "label", "logged_correct", "notes",
                  "_prediction_raw", "_label_raw"})


def _sig(v):
    """A hashable signature of a logged value: equal exactly when the values' JSON texts are equal (strings and
    null, the usual cases, without writing JSON: a JSON string never equals another type's JSON)."""
    if v is None:
        return (0,)
    if type(v) is str:
        return (1, v)
    return (2, json.dumps(v, sort_keys=True, default=str))


@dataclass
class Progress:
    """Where a run stands. ``lines`` were read (the last window may still be in flight, so ``analysed + skipped
    + unreadable + failed`` reaches ``lines`` at the end of each window). Work is measured in tokens, not lines
    (a long line costs many times a short one): ``tokens`` were scored in this session, ``rate`` is tokens per
    second, and ``fraction`` is the share of the file read, interpolated inside a window by the share of its
    tokens scored, so the ETA keeps moving while long inputs are scored; ``eta`` is None when unknown."""
    lines: int
    analysed: int
    skipped: int
    failed: int
    elapsed: float
    rate: float
    fraction: float | None
    eta: float | None
    resumed_from: int = 0
    done: bool = False
    unreadable: int = 0
    tokens: int = 0

    def line(self) -> str:
        """The progress line in English (the UI words it in its language with the same function)."""
        from ..i18n import progress_text
        return progress_text(self, "en")


def format_seconds(s: float) -> str:
    """A duration in English ("22m 27s")."""
    from ..i18n import duration_text
    return duration_text(s, "en")


@dataclass
class TriageConfig:
    """Everything that decides a run's results (a resumed run must have the same)."""
    model: str
    mapping: ColumnMapping
    settings: S.ScoreSettings = field(default_factory=S.ScoreSettings)
    fmt: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    on_long: str = "truncate"
    max_line_bytes: int = 1 << 20

    def identity(self, lm: LoadedModel, log: Path, fmt: str) -> dict:
        return {"model": self.model, "model_folder": str(lm.folder), "model_type": lm.config.model_type,
                "mapping": asdict(self.mapping), "settings": registry.identity(self.settings), "format": fmt,
                "encoding": self.encoding, "delimiter": self.delimiter, "on_long": self.on_long,
                "max_line_bytes": self.max_line_bytes, "log": str(log.resolve()), "log_head": _file_head_hash(log)}


def _file_head_hash(path: Path, n: int = 1 << 20) -> str:
    with open(path, "rb") as f:
        return hashlib.blake2b(f.read(n), digest_size=16).hexdigest()


def _as_text(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, default=str)
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat()
    return json.dumps(v, default=str) if isinstance(v, (bool, int, float)) else str(v)


_MISSING = object()


def prepare(rec: RawRecord, mapping: ColumnMapping, lm: LoadedModel, policy: str, on_long: str) -> dict:
    """A record → the row of results it starts as (status None: to be scored, with ``text`` set)."""
    return prepare_many([rec], mapping, lm, policy, on_long)[0]


def prepare_many(recs: list[RawRecord], mapping: ColumnMapping, lm: LoadedModel, policy: str,
                 on_long: str) -> list[dict]:
    """:func:`prepare` of each record, the texts tokenised in one call (:func:`window_texts`)."""
    rows, pending = [], []
    for rec in recs:
        row, ctx = _prepare_head(rec, mapping, lm, policy)
        rows.append(row)
        if ctx is not None:
            pending.append((row, ctx))
    if pending:
        for (row, ctx), (win, ids) in zip(pending, _window_texts(lm, [c[1] for _, c in pending])):
            _prepare_tail(row, ctx, win, lm, on_long)
            if ids is not None and row.get("text") is not None:
                row["_ids"] = ids
    return rows


def _prepare_head(rec: RawRecord, mapping: ColumnMapping, lm: LoadedModel, policy: str):
    """The part of :func:`prepare` before tokenising: (row, None) when the row is finished (skipped), else
    (row, (notes, cleaned text, preview)) to be finished by :func:`_prepare_tail` with its tokenisation."""
    row = {"record": rec.index, "line": rec.line, "status": rec.status, "reason_code": rec.reason_code or None,
           "reason": rec.reason or None, "preview": rec.preview or None}
    notes = list(rec.notes)
    if rec.fields is None:
        row["notes"] = "; ".join(notes) or None
        return row, None
    f = rec.fields
    for role in ("id", "prediction", "label"):
        col = getattr(mapping, role)
        row[role] = _as_text(f.get(col)) if col else None
    if mapping.prediction:
        row["_prediction_raw"] = f.get(mapping.prediction)
    if mapping.label:
        row["_label_raw"] = f.get(mapping.label)
    if mapping.timestamp:
        raw = f.get(mapping.timestamp)
        row["timestamp"] = _as_text(raw)
        try:
            row["time"] = parse_time(raw)
        except (ValueError, OverflowError, OSError):
            row["time"] = None
            notes.append(f"timestamp {str(raw)[:40]!r} not understood (ISO 8601 or Unix seconds expected)")
    for col in mapping.slices:
        row[col] = _as_text(f.get(col))
    if mapping.prediction or mapping.label:
        row["logged_correct"] = S.logged_correct(f.get(mapping.prediction) if mapping.prediction else None,
                                                 f.get(mapping.label) if mapping.label else None)
    value = f.get(mapping.text, _MISSING)
    preview = str(value)[:300] if value is not _MISSING else json.dumps(f, default=str)[:300]

    def skip(code, reason):
        return _skip(row, notes, preview, code, reason), None
    if value is _MISSING:
        return skip("missing-column", f"missing column {mapping.text!r} in this record")
    if value is None:
        return skip("empty-text", "empty text (null)")
    if not isinstance(value, str):
        kind = {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
            type(value), type(value).__name__)
        return skip("not-text", f"the text column holds {kind}, not a string")
    try:
        text, cleaned = clean_text(value)
    except InputError:
        return skip("empty-text", "empty text" if not value.strip() else
                    "empty text once control characters are removed")
    notes.extend(cleaned)
    tok = lm.tokenizer
    if policy == "mask":
        has = any(a in text for a in ("[MASK]", "[mask]", "<mask>", "[Mask]", getattr(tok, "mask_token", "") or "\0"))
        if not has:
            return skip("no-mask", "no [MASK] in the text (mask policy 'mask')")
    return row, (notes, text, preview)


def _skip(row: dict, notes: list, preview, code: str, reason: str) -> dict:
    row.update(status="skipped", reason_code=code, reason=reason, preview=preview)
    row["notes"] = "; ".join(notes) or None
    return row


def _prepare_tail(row: dict, ctx: tuple, win: tuple[str, int, int, int], lm: LoadedModel, on_long: str) -> dict:
    """The part of :func:`prepare` after tokenising (``win``: :func:`window_text` of the cleaned text)."""
    notes, _, preview = ctx
    tok = lm.tokenizer
    text, n_total, n_read, unk = win
    if on_long == "skip" and n_total > lm.max_tokens:
        return _skip(row, notes, preview, "too-many-tokens",
                     f"text is {n_total} tokens; the model reads at most {lm.max_tokens}")
    pieces = n_read - _n_special(lm)
    if pieces > 0 and unk / pieces >= UNREADABLE_SHARE:
        row.update(status="unreadable", reason_code="unreadable",
                   reason=f"unreadable by this model: {unk} of its {pieces} word pieces are unknown to the "
                          f"model's vocabulary ({tok.unk_token}); a model trained on this language is needed",
                   preview=preview)
        row["notes"] = "; ".join(notes) or None
        return row
    if n_total > n_read:
        notes.append(f"text is {n_total} tokens; the model reads the first {n_read}: the rest was cut before "
                     "scoring")
    row["text"] = text
    row["_tokens"] = n_read
    row["notes"] = "; ".join(notes) or None
    return row


UNREADABLE_SHARE = 0.5     # at least this share of [UNK] pieces: the input is "unreadable by this model"
_WINDOW_CHARS = 8          # characters of text per model token, at most, read before tokenising (a bound)


def _n_special(lm: LoadedModel) -> int:
    n = getattr(lm, "_triage_n_special", None)
    if n is None:
        n = len(lm.tokenizer("", add_special_tokens=True)["input_ids"])
        try:
            lm._triage_n_special = n
        except AttributeError:  # pragma: no cover
            pass
    return n


def window_text(lm: LoadedModel, text: str) -> tuple[str, int, int, int]:
    """What the model reads of ``text``, found before any expensive work: (the text cut after the last whole
    word the model reads, tokens of the full text or a lower bound when very long, tokens the model reads,
    [UNK] pieces among them). The cut keeps whole words (the tokenizer splits on whitespace first), so
    tokenising the cut text gives the same first pieces as the full text; the text is cut at a bounded number
    of characters before tokenising, so a very long line costs no more than one the model can read."""
    return window_texts(lm, [text])[0]


def window_texts(lm: LoadedModel, texts: list[str]) -> list[tuple[str, int, int, int]]:
    """:func:`window_text` of each text, tokenised in one call (each text on its own, as a single call would)."""
    return [w for w, _ in _window_texts(lm, texts)]


def _window_texts(lm: LoadedModel, texts: list[str]) -> list[tuple[tuple[str, int, int, int], tuple | None]]:
    """:func:`window_texts`, each with what ``trace.encode`` would make of the text the model reads when that is
    the whole text (ids, token types, pieces, notes; see :func:`encoded_from_ids`), else None. The tokenizer's
    Rust backend is called once for the batch where there is one (as ``trace.encode`` calls it)."""
    from ..trace import plain_backend
    tok = lm.tokenizer
    limit = lm.max_tokens
    budget = (limit + 2) * _WINDOW_CHARS
    heads, norms = [], []
    norm = lm.config.model_type != "expertlens-paper" and getattr(tok, "mask_token", None)
    if norm:
        from ..trace import _normalise_mask
    for text in texts:
        head = text
        if len(text) > budget:
            cut = text.rfind(" ", 0, budget)
            head = text[: cut if cut > budget // 2 else budget]
        heads.append(head)
        norms.append(_normalise_mask(head, tok.mask_token) if norm else head)
    plain = plain_backend(tok)
    reuse = plain is not None and bool(norm) == bool(lm.adapter.accepts_mask_aliases and
                                                     getattr(tok, "mask_token", None))
    if plain is not None:
        encodings = plain.encode_batch(norms, add_special_tokens=True)
    else:
        enc = tok(norms, truncation=False, add_special_tokens=True, return_offsets_mapping=True, verbose=False)
    unk_id = getattr(tok, "unk_token_id", None)
    out = []
    for j, (text, head, head_norm) in enumerate(zip(texts, heads, norms)):
        ids = list(encodings[j].ids) if plain is not None else list(enc["input_ids"][j])
        n_total = len(ids) if head is text else max(len(ids), limit + 1)
        if len(ids) <= limit:
            unk = ids.count(unk_id) if unk_id is not None else 0
            prepared = None
            if reuse and head is text:
                prepared = _as_encoded_row(lm, text, ids, encodings[j], unk)
            out.append((((head if head is text else text[:len(head)]), n_total, len(ids), unk), prepared))
            continue
        # the model reads ids[:limit-1] + the final special token: keep whole words up to the first cut piece
        offsets = list(encodings[j].offsets) if plain is not None else list(enc["offset_mapping"][j])
        keep = limit - 1
        cut_char = next((st for st, en in offsets[keep:] if en > st), len(head_norm))
        kept = ids[:keep]
        unk = kept.count(unk_id) if unk_id is not None else 0
        space = head_norm.find(" ", cut_char)
        end = len(head_norm) if space < 0 else space
        if head_norm is not head:      # mask aliases normalised: map the cut back by re-normalising the prefix
            out.append(((head_norm[:end], n_total, limit, unk), None))
        else:
            out.append(((head[:end], n_total, limit, unk), None))
    return out


def _as_encoded_row(lm: LoadedModel, text: str, ids: list[int], encoding, unk: int) -> tuple | None:
    """(ids, token types, pieces, notes) exactly as ``trace.encode`` makes them for ``text`` (a text the model
    reads whole): its notes are those of cleaning the text again plus the unknown-piece note. None when
    cleaning would change the text (then ``encode`` runs as before)."""
    from ..trace import Note
    try:
        again, notes = clean_text(text)
    except InputError:
        return None
    if again != text:
        return None
    if unk:
        notes.append(Note("unknown", n=unk, unk=lm.tokenizer.unk_token))
    return ids, list(encoding.type_ids), list(encoding.tokens), notes


def encoded_from_ids(lm: LoadedModel, got: list[tuple]):
    """An ``Encoded`` batch from (ids, types, pieces, notes) rows (:func:`_as_encoded_row`): right padding,
    special flags and token types as ``trace.encode`` sets them."""
    import torch
    from ..trace import Encoded
    tok = lm.tokenizer
    B = len(got)
    n = max(len(g[0]) for g in got)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids_np = np.full((B, n), pad, dtype=np.int64)
    types_np = np.zeros((B, n), dtype=np.int64)
    lens = np.fromiter((len(g[0]) for g in got), dtype=np.int64, count=B)
    for b, (ids, tt, _, _) in enumerate(got):
        ids_np[b, :len(ids)] = ids
        types_np[b, :len(ids)] = tt[:len(ids)]
    input_ids = torch.from_numpy(ids_np)
    mask = torch.from_numpy((np.arange(n)[None, :] < lens[:, None]).astype(np.int64))
    special_ids = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)
    special = torch.isin(input_ids, special_ids) & mask.bool()
    return Encoded(input_ids, mask, torch.from_numpy(types_np) if lm.adapter.uses_token_types else None,
                   [list(g[2]) for g in got], special, [list(g[3]) for g in got], [None] * B)


def _merged_notes(own: str | None, scored: list) -> str | None:
    """The row's notes followed by the scoring's own notes that it does not already say."""
    if not scored:
        return own or None
    notes = [own] if own else []
    cut = "the rest was cut before scoring" in (own or "")
    notes.extend(n for n in scored if n not in (own or "")
                 and not (cut and n.startswith("input is ") and "the model reads at most" in n))
    return "; ".join(notes) or None


def scored_columns(batch: list[dict], res: S.ScoredColumns, extra: list[dict]) -> None:
    """The scored rows of a batch: each row is marked analysed and points into the
    batch's columns (``_sc``: (columns, index)); the values stay in the NumPy arrays until the rows are stored
    (``store.to_table`` gathers them column by column) or :func:`materialise` d. Only the notes are merged row by
    row (and the optional scores' columns, when any are on)."""
    notes = res.notes
    for i, r in enumerate(batch):
        r.pop("_tokens", None)
        r.pop("_ids", None)
        r["status"] = "analysed"
        r["_sc"] = (res, i)
        if notes[i]:
            r["notes"] = _merged_notes(r.get("notes"), notes[i])
        elif not r.get("notes"):
            r["notes"] = None
        ex = extra[i]
        if ex:
            r.update(ex)


def materialise(rows: list[dict]) -> list[dict]:
    """Rows that point into batch columns (``_sc``) with their values written into the dict instead, as the row
    path writes them (for hand-over to another process, or code that reads scores from the dicts)."""
    for r in rows:
        ref = r.pop("_sc", None)
        if ref is not None:
            r.update(ref[0].values(ref[1]))
    return rows


def _fail(row: dict, err: BaseException) -> dict:
    msg = str(err).splitlines()[0] if str(err) else ""
    row.update(status="failed", reason_code="error", reason=f"{type(err).__name__}: {msg}"[:500],
               preview=(row.get("text") or "")[:300] or row.get("preview"))
    return row


PASS_CELLS = 16 * 128 * 128   # rows × tokens² per forward pass: bounds attention memory (see score_rows)
_LIVE_TENSORS = 24            # rows × heads × n² float32 tensors a sampled pass may hold at once (a bound)


def pass_cells(lm: LoadedModel) -> int:
    """The rows × tokens² bound of a forward pass on ``lm``'s device: :data:`PASS_CELLS` on the CPU; on a GPU,
    a sixteenth of its memory for the attention tensors of a pass (at most :data:`_LIVE_TENSORS` of rows ×
    heads × n² float32 at once), and never less than :data:`PASS_CELLS`. Large passes keep a GPU busy: with
    the CPU bound a batch of short inputs would be split into many small passes, each costing the launches of
    every kernel of every layer. Derived from the device's total memory (not what is free now), so the
    batching, hence every bit of the results, is the same from run to run on the same kind of device."""
    import torch
    dev = torch.device(getattr(lm, "device", "cpu"))
    if dev.type != "cuda":
        return PASS_CELLS
    total = torch.cuda.get_device_properties(dev).total_memory
    return max(PASS_CELLS, int(total // 16 // (4 * max(1, lm.n_heads) * _LIVE_TENSORS)))


def token_batches(todo: list[dict], batch_size: int, cells: int = PASS_CELLS) -> list[list[dict]]:
    """Batches of at most ``batch_size`` rows and, once padded to their longest input of n tokens, at most
    ``cells`` rows × n² (one input per batch when it alone is larger): attention tensors, the largest of a
    pass, are rows × heads × n², so memory is bounded whatever the line lengths. Rows in length order."""
    out, cur, width = [], [], 0
    for r in sorted(todo, key=lambda r: (r.get("_tokens") or len(r["text"]), r["record"])):
        n = int(r.get("_tokens") or 0)
        w = max(width, n)
        if cur and (len(cur) >= batch_size or (len(cur) + 1) * w * w > cells):
            out.append(cur)
            cur, w = [], n
        cur.append(r)
        width = w
    if cur:
        out.append(cur)
    return out


def score_rows(lm: LoadedModel, todo: list[dict], settings: S.ScoreSettings, batch_size: int,
               max_rows: int | None, tick: Callable[[int], None] | None = None, cells: int | None = None) -> None:
    """Score prepared rows in place, in token-bounded batches (:func:`token_batches`; the results do not depend
    on the batching). A batch that raises is retried one input at a time, so that only the inputs that fail
    are marked failed. ``tick(tokens)`` after each batch: tokens of the inputs scored so far. The one scoring
    stage of every engine (local, worker processes, Ray actors). ``cells``: the pass bound, default
    :func:`pass_cells` of the model's device.

    Batches overlap by one: batch i+1's device work is queued (:func:`start_step`) before batch i's results
    are read and turned into rows, so on a GPU the host's share of a batch runs while the device computes the
    next one. The rows and their order are the same as scoring the batches one after the other."""
    cells = pass_cells(lm) if cells is None else cells
    done = 0
    pending = None

    def complete(step):
        nonlocal done
        tokens, finish = step
        finish()
        done += tokens
        if tick is not None:
            tick(done)
    for batch in token_batches(todo, batch_size, cells):
        tokens = sum(int(r.get("_tokens") or 1) for r in batch)     # read before scoring drops ``_tokens``
        step = (tokens, start_step(lm, batch, settings, max_rows, cells))
        if pending is not None:
            complete(pending)
        pending = step
    if pending is not None:
        complete(pending)


def score_step(lm: LoadedModel, batch: list[dict], settings: S.ScoreSettings, max_rows: int | None,
               cells: int = PASS_CELLS) -> None:
    """Score one batch of prepared rows in place: the core scores (``scores.score_batch``) and every optional
    score of the registry switched on in ``settings``; a batch that raises is split into single inputs."""
    start_step(lm, batch, settings, max_rows, cells)()


def start_step(lm: LoadedModel, batch: list[dict], settings: S.ScoreSettings, max_rows: int | None,
               cells: int = PASS_CELLS) -> Callable[[], None]:
    """:func:`score_step` in two halves: queue the batch's device work now (``scores.score_batch(..., defer=True)``) and return
    ``finish()``, which reads the results and updates the rows. Whichever half raises, the batch is scored
    again one input at a time (in ``finish``), so that only the inputs that fail are marked failed."""
    texts = [r["text"] for r in batch]
    try:
        fin = S.score_batch(lm, texts, settings, None,
                            [r.get("_prediction_raw") for r in batch], [r.get("_label_raw") for r in batch],
                            max_rows=max_rows, enc=encode_rows(lm, batch), cells=cells, defer=True, columns=True)
    except Exception as err:  # isolate the inputs that fail
        return lambda e=err: _split_or_fail(lm, batch, settings, max_rows, cells, e)

    def finish() -> None:
        try:
            res = fin()
            extra = registry.compute_enabled(lm, texts, settings)
        except Exception as err:
            _split_or_fail(lm, batch, settings, max_rows, cells, err)
            return
        scored_columns(batch, res, extra)
    return finish


def _split_or_fail(lm, batch, settings, max_rows, cells, err) -> None:
    if len(batch) == 1:
        _fail(batch[0], err)
        return
    for r in batch:
        score_step(lm, [r], settings, max_rows, cells)


def encode_rows(lm: LoadedModel, batch: list[dict]):
    """The batch's encoding, from the token ids that :func:`prepare_many` kept (``_ids``) when every row has
    them: the texts are then tokenised once, in the cut step, not again for scoring. Equal to
    ``trace.encode`` of the texts (pinned by a test); None (the caller encodes) when a row has none."""
    got = [r.get("_ids") for r in batch]
    if not got or any(g is None for g in got):
        return None
    return encoded_from_ids(lm, got)


_score = score_step      # the former name


# --- worker processes (--workers N): each loads the model once and scores whole windows ---------------------

_WORKER: dict = {}
_SENT = ("record", "text", "key", "_prediction_raw", "_label_raw", "notes", "preview", "_tokens")


@contextlib.contextmanager
def _spawn_safe_main():
    """Spawned workers re-import the parent's ``__main__`` by its file path. When that is a script run in-process
    (a Streamlit page executed by a test harness, say) they would execute it; while workers start and run, a bare
    stand-in ``__main__`` is shown instead, and the real one is restored afterwards."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None or not getattr(main, "__file__", None):
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _worker_init(model: str, device: str | None, settings: S.ScoreSettings, threads: int) -> None:
    import torch
    torch.set_num_threads(max(1, threads))
    _WORKER["lm"] = load_model(model, device=device)
    _WORKER["settings"] = settings


def _worker_score(todo: list[dict], batch_size: int, max_rows: int | None) -> list[dict]:
    score_rows(_WORKER["lm"], todo, _WORKER["settings"], batch_size, max_rows)
    release_free_heap()
    return materialise(todo)


class _Stop:
    """The end of the reader's windows, and why."""

    def __init__(self, why: str):
        self.why = why


class _Producer:
    """Runs a generator in a thread, at most ``depth`` items ahead (a bounded queue); iterating yields its items
    in order and raises its exception. A :class:`_Stop` item ends the iteration (``stopped_by``: its reason).
    ``stop()`` asks the thread to stop after its current item and waits for it."""

    def __init__(self, gen, depth: int, name: str):
        import queue
        import threading
        self._q: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
        self._halt = threading.Event()
        self.stopped_by: str | None = None
        self._gen = gen
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        import queue
        while not self._halt.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._gen:
                if not self._put(("item", item)) or isinstance(item, _Stop):
                    return
            self._put(("item", _Stop("end of file")))
        except BaseException as err:        # handed to the consuming thread
            self._put(("error", err))
        finally:
            self._gen.close()

    def __iter__(self):
        while True:
            kind, item = self._q.get()
            if kind == "error":
                raise item
            if isinstance(item, _Stop):
                self.stopped_by = item.why
                return
            yield item

    def stop(self) -> None:
        self._halt.set()
        self._thread.join()


class _Consumer:
    """Calls ``fn(item)`` in a thread for each item ``put``, in order, at most ``depth`` waiting (``put``
    blocks beyond). An exception in ``fn`` is raised by the next ``put`` or by ``close``; items after it are
    not processed. ``close()`` processes what was put, then ends the thread."""

    def __init__(self, fn, depth: int, name: str):
        import queue
        import threading
        self._fn = fn
        self._q: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if self._error is not None:
                continue
            try:
                self._fn(item)
            except BaseException as err:
                self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def put(self, item) -> None:
        self._raise()
        self._q.put(item)

    def close(self) -> None:
        self._q.put(_END)
        self._thread.join()
        self._raise()


_END = object()


class LocalRun:
    """The state and the named steps of one local-engine session (see :meth:`Triage._run`): ``read_window`` →
    ``cut_and_dedupe`` → ``score`` (token-budget batches, :func:`score_rows`) or ``submit`` to worker processes →
    ``account`` (corpus norm, interim scores, counts, progress) → ``write_part``. ``lines`` are finished
    (scored or accounted for), ``read`` are read (finished or in flight)."""

    def __init__(self, tri: "Triage", t0: float, done: int, counts: dict, limit: int | None,
                 time_budget: float | None, progress: Callable[[Progress], None] | None, progress_every: float,
                 flush_rows: int, flush_seconds: float):
        self.tri, self.t0, self.counts = tri, t0, counts
        self.limit, self.time_budget = limit, time_budget
        self.progress, self.progress_every = progress, progress_every
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.done = self.resumed = self.lines = self.read = done
        self.reader = LogReader(tri.log, tri.info.format, tri.cfg.encoding, tri.cfg.delimiter,
                                columns=tri.cfg.mapping.used(), max_line_bytes=tri.cfg.max_line_bytes)
        self.it = iter(self.reader)
        self.buffer: list[dict] = []
        self.last_flush = time.perf_counter()
        self.last_progress = 0.0
        self.stopped = "end of file"
        self.analysed_now = 0
        self.tokens_now = 0                 # tokens of the inputs scored in this session
        self.window_span = (0.0, 0.0, 1)    # (file fraction before the window, after reading it, its tokens)
        self.start_fraction = None
        self.t_start = None
        self.pending: deque = deque()

    # --- progress ---
    def fraction(self) -> float:
        frac = self.reader.progress()
        if self.limit:
            frac = max(frac, min(1.0, self.read / self.limit))
        return frac

    def report(self, final: bool = False, tokens_in_window: int | None = None) -> None:
        now = time.perf_counter()
        if self.progress is None or (not final and now - self.last_progress < self.progress_every):
            return
        self.last_progress = now
        elapsed = now - self.t0
        frac = self.fraction()
        if tokens_in_window is not None:     # inside a window: the share of its tokens scored so far
            lo, hi, total = self.window_span
            frac = lo + (hi - lo) * min(1.0, tokens_in_window / max(1, total))
        toks = self.tokens_now + (tokens_in_window or 0)
        rate = toks / elapsed if elapsed > 0 else 0.0
        eta = None
        if not final and self.start_fraction is not None and frac - self.start_fraction > 1e-9:
            eta = (now - self.t_start) * (1 - frac) / (frac - self.start_fraction)
        if self.time_budget is not None:
            left = max(0.0, self.time_budget - elapsed)
            eta = left if eta is None else min(eta, left)
        c = self.counts
        self.progress(Progress(self.read, c["analysed"], c["skipped"], c["failed"], elapsed, rate, frac, eta,
                               self.resumed, final, c["unreadable"], toks))

    # --- step 1: read ---
    def stop_reason(self) -> str | None:
        """Why to stop before reading another window (None: go on)."""
        if self.limit is not None and self.read >= self.limit:
            for rec in self.it:           # is there anything after the limit?
                if rec.index >= self.read:
                    return "limit"
            return "end of file"
        if self.time_budget is not None and time.perf_counter() - self.t0 >= self.time_budget:
            return "time budget"
        return None

    def read_window(self, size: int) -> tuple[list[RawRecord], bool]:
        """Up to ``size`` records after the resume point and before the limit; (records, end of file reached)."""
        window: list[RawRecord] = []
        self._before = self.fraction()
        while len(window) < size:
            if self.limit is not None and self.read + len(window) >= self.limit:
                break
            try:
                rec = next(self.it)
            except StopIteration:
                return window, True
            if rec.index < self.done:
                continue
            if self.start_fraction is None:
                self.t_start, self.start_fraction = time.perf_counter(), self.fraction()
            window.append(rec)
        return window, False

    # --- step 2: cut (prepare) and dedupe ---
    def cut_and_dedupe(self, window: list[RawRecord]) -> tuple[list[dict], list[dict], list]:
        """Rows of the window (cut to what the model reads, skips and unreadable inputs marked), the distinct
        inputs to score and the (copy, original) pairs of the others."""
        rows, todo, copies, tokens, span = self.cut(window)
        self.window_tokens, self.window_span = tokens, span
        return rows, todo, copies

    def cut(self, window: list[RawRecord]) -> tuple[list[dict], list[dict], list, int, tuple]:
        """:meth:`cut_and_dedupe` without touching the window being scored: also returns the window's tokens
        and its (fraction before, fraction after, tokens) span for the progress line."""
        tri = self.tri
        self.read += len(window)
        rows = prepare_many(window, tri.cfg.mapping, tri.lm, tri.cfg.settings.mask_policy, tri.cfg.on_long)
        todo, copies = tri._unique(rows)
        tokens = sum(int(r.get("_tokens") or 1) for r in todo)
        return rows, todo, copies, tokens, (self._before, self.fraction(), tokens)

    # --- the local engine in one process, as a pipeline ---
    def pipelined(self, window_size: int, batch_size: int, max_rows: int | None, depth: int = 2) -> None:
        """Steps 1–5 with the host work off the scoring thread: a reader thread reads, cuts and dedupes the
        next windows (at most ``depth`` ahead), this thread scores them in order, and a writer thread accounts
        for the scored windows and writes the parts, in the same order. Rows, parts, counts and the corpus
        norm are exactly those of the sequential loop (the writer takes the windows in file order, after
        their scoring; a duplicate's original is always in an earlier or the same window, hence scored
        first). An exception in a thread is raised here; the windows scored before it are still accounted
        and written. Progress is reported from this thread."""
        reader = _Producer(self._windows(window_size), depth, "triage-reader")
        writer = _Consumer(lambda item: self.account(*item, report=False), depth, "triage-writer")
        try:
            for rows, todo, copies, tokens, span in reader:
                self.window_tokens, self.window_span = tokens, span
                self.score(todo, batch_size, max_rows)
                writer.put((rows, copies))
                self.report()
        finally:
            reader.stop()
            writer.close()
        if reader.stopped_by:
            self.stopped = reader.stopped_by

    def _windows(self, size: int):
        """The windows to score, cut and deduped (run by the reader thread); sets :attr:`stopped`."""
        while True:
            why = self.stop_reason()
            if why:
                yield _Stop(why)
                return
            window, exhausted = self.read_window(size)
            if window:
                yield self.cut(window)
            if exhausted:
                yield _Stop("end of file")
                return

    # --- step 3: batch by token budget and score ---
    def score(self, todo: list[dict], batch_size: int, max_rows: int | None) -> None:
        score_rows(self.tri.lm, todo, self.tri.cfg.settings, batch_size, max_rows,
                   lambda tk: self.report(tokens_in_window=tk))
        self.tokens_now += self.window_tokens

    def submit(self, pool, workers: int, rows, todo, copies, batch_size: int, max_rows: int | None) -> None:
        """Score in a worker process; at most two windows per worker in flight, finished in file order."""
        self.tokens_now += self.window_tokens
        sent = [{k: r.get(k) for k in _SENT} for r in todo]
        self.pending.append((rows, todo, copies, pool.submit(_worker_score, sent, batch_size, max_rows)))
        while len(self.pending) >= 2 * workers or (self.pending and self.pending[0][3].done()):
            self._complete_oldest()

    def _complete_oldest(self) -> None:
        rows, todo, copies, fut = self.pending.popleft()
        for r, got in zip(todo, fut.result()):
            r.update(got)
        self.account(rows, copies)

    def drain(self) -> None:
        while self.pending:
            self._complete_oldest()

    # --- step 4: account ---
    def account(self, rows: list[dict], copies: list, report: bool = True) -> None:
        """Copies take their originals' scores; the window enters the corpus norm and the counts; its rows go
        to the part buffer."""
        self.tri._copy_scores(copies)
        self.tri._finish_window(rows)
        for r in rows:
            self.counts[r["status"]] += 1
            self.analysed_now += r["status"] == "analysed"
        self.lines += len(rows)
        self.buffer.extend(rows)
        self.write_part()
        if report:
            self.report()

    # --- step 5: write a part ---
    def write_part(self, force: bool = False) -> None:
        """Flush the buffer as a Parquet part every ``flush_rows`` lines or ``flush_seconds`` (or when forced)."""
        if self.buffer and (force or len(self.buffer) >= self.flush_rows
                            or time.perf_counter() - self.last_flush >= self.flush_seconds):
            self.tri.folder.write_part(to_table(self.buffer, self.tri.schema))
            self.buffer = []
            self.last_flush = time.perf_counter()
            release_free_heap()         # freed batch buffers back to the system (see heap.py)

    def close(self) -> None:
        if hasattr(self.it, "close"):
            self.it.close()


class Triage:
    """One triage run over one log into one folder. Use :func:`run_triage` for the usual call."""

    RECENT = 4096      # distinct inputs remembered across windows for deduplication (bounded memory)

    def __init__(self, log: str | os.PathLike, out_dir: str | os.PathLike, config: TriageConfig,
                 lm: LoadedModel | None = None, device: str | None = None):
        self.log = Path(log)
        self.cfg = config
        self.info = inspect_log(self.log, config.fmt, config.encoding, config.delimiter,
                                max_line_bytes=config.max_line_bytes)
        config.mapping.validate(self.info, RESERVED)
        if config.on_long not in ON_LONG:
            raise ValueError(f"unknown long-text policy {config.on_long!r}: use {' or '.join(ON_LONG)}")
        self.lm = lm if lm is not None else load_model(config.model, device=device)
        config.settings.check(self.lm)
        self.folder = RunFolder(out_dir)
        self.n_heads_total = self.lm.n_layers * self.lm.n_heads
        self.schema = schema_for(config.mapping.slices, self.n_heads_total,
                                 registry.enabled_columns(config.settings))
        self.norm = S.ConcentrationNorm(self.n_heads_total)
        self._recent: OrderedDict = OrderedDict()     # the last distinct inputs scored (see _unique)

    # --- resume ------------------------------------------------------------------------------------------
    def _open(self, restart: bool) -> tuple[int, dict]:
        ident = json.loads(json.dumps(self.cfg.identity(self.lm, self.log, self.info.format), default=str))
        old = self.folder.read_config()
        if restart:
            self.folder.wipe()
            old = None
        if old is not None and old.get("identity") != ident:
            diff = sorted(k for k in set(ident) | set(old.get("identity", {}))
                          if ident.get(k) != old.get("identity", {}).get(k))
            raise MappingError(f"{self.folder.dir} holds a run with other settings ({', '.join(diff)}): "
                               "use another output folder, or --restart to discard it")
        self.folder.create()
        counts = {st: 0 for st in STATUSES}
        done = self.folder.done_records()
        sessions = old.get("sessions", []) if old else []
        for _, _, path in self.folder.part_files():
            t = pq.read_table(path, columns=["status", "key", "head_concentration"])
            for st, c in zip(*np.unique(np.asarray(t["status"].to_pylist(), dtype=object), return_counts=True)):
                counts[str(st)] = counts.get(str(st), 0) + int(c)
            idx, mat = head_matrix(t, self.n_heads_total)
            if idx.size:
                keys = t["key"].to_pylist()
                self.norm.add([keys[i] for i in idx], mat)
        self.folder.write_config({"identity": ident, "sessions": sessions,
                                  "created": old.get("created") if old else _now()})
        return done, counts

    # --- the run -----------------------------------------------------------------------------------------
    def run(self, limit: int | None = None, time_budget: float | None = None, batch_size: int = 16,
            restart: bool = False, progress: Callable[[Progress], None] | None = None, progress_every: float = 1.0,
            flush_rows: int = 2048, flush_seconds: float = 20.0, window_batches: int = 4,
            max_rows: int | None = None, workers: int = 1, device: str | None = None, engine: str = "local",
            address: str | None = None, gpus_per_worker: float = 0.0, _fault: str | None = None,
            pipeline: bool = True) -> dict:
        """Read, score and store; returns the summary. Records are read in windows of ``batch_size ×
        window_batches``; with ``workers`` > 1, windows are scored by that many worker processes (each with its
        own copy of the model on ``device``), at most two windows each in flight, and finished in file order: the
        results are the same as with one process. With one process (``pipeline``, the default) reading and
        writing run in threads beside the scoring (:meth:`LocalRun.pipelined`), with the same results as the
        sequential loop (``pipeline=False``). The limit is exact; the time budget is checked between windows
        (a run may overshoot it by the windows in flight or read ahead). Parts are flushed every ``flush_rows``
        lines or ``flush_seconds``; a killed run loses at most the lines since the last part."""
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if limit is not None and limit < 0:
            raise ValueError("limit must be ≥ 0")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}: use {' or '.join(ENGINES)}")
        t0 = time.perf_counter()
        self.folder.acquire()
        frozen = _freeze_gc()
        try:
            if engine == "ray":
                return self._run_ray(t0, limit, batch_size, restart, progress, progress_every, flush_rows, max_rows,
                                     address, workers, gpus_per_worker, device, _fault)
            with _spawn_safe_main() if workers > 1 else contextlib.nullcontext():
                return self._run(t0, limit, time_budget, batch_size, restart, progress, progress_every, flush_rows,
                                 flush_seconds, window_batches, max_rows, workers, device, pipeline)
        finally:
            if frozen:
                gc.unfreeze()
            self.folder.release()

    def _run(self, t0, limit, time_budget, batch_size, restart, progress, progress_every, flush_rows, flush_seconds,
             window_batches, max_rows, workers, device, pipeline=True) -> dict:
        """The local engine, in named steps (:class:`LocalRun`): read a window → cut and dedupe → batch by token
        budget and score (here, or in worker processes) → account (corpus norm, counts, progress) → write parts;
        then :meth:`finalise`."""
        done, counts = self._open(restart)
        run = LocalRun(self, t0, done, counts, limit, time_budget, progress, progress_every, flush_rows,
                       flush_seconds)
        window_size = max(1, batch_size * window_batches)
        pool = None
        if workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor
            threads = max(1, (os.cpu_count() or 1) // workers)
            pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                       initargs=(self.cfg.model, device or str(self.lm.device), self.cfg.settings,
                                                 threads))
        run.report()
        try:
            if pool is None and pipeline:
                run.pipelined(window_size, batch_size, max_rows)
            while not (pool is None and pipeline):
                run.stopped = run.stop_reason()
                if run.stopped:
                    break
                window, exhausted = run.read_window(window_size)
                if window:
                    rows, todo, copies = run.cut_and_dedupe(window)
                    if pool is None:
                        run.score(todo, batch_size, max_rows)
                        run.account(rows, copies)
                    else:
                        run.submit(pool, workers, rows, todo, copies, batch_size, max_rows)
                if exhausted:
                    run.stopped = "end of file"
                    break
            run.drain()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            run.write_part(force=True)
            run.close()
        seconds = time.perf_counter() - t0
        summary = self.finalise(seconds=seconds, analysed_now=run.analysed_now, lines_now=run.lines - run.resumed,
                                stopped=run.stopped, resumed_from=run.resumed, reader_notes=run.reader.notes)
        run.report(final=True)
        return summary

    def _run_ray(self, t0, limit, batch_size, restart, progress, progress_every, flush_rows, max_rows, address,
                 workers, gpus_per_worker, device, fault) -> dict:
        """The Ray engine: the project's reader and parts, Ray Data for the scoring stage (``ray_engine``)."""
        from . import ray_engine
        if not ray_engine.ray_available():
            raise ValueError(ray_engine.RAY_MISSING)
        if restart:
            ray_engine.cleanup(self.folder)
        done, counts = self._open(restart)
        stopped, lines_now, analysed_now, notes = ray_engine.run_with_ray(
            self, done=done, counts=counts, limit=limit, batch_size=batch_size, max_rows=max_rows,
            flush_rows=flush_rows, progress=progress, progress_every=progress_every, address=address,
            workers=workers, gpus_per_worker=gpus_per_worker, device=device, t0=t0, fault=fault)
        ray_engine.cleanup(self.folder)
        return self.finalise(seconds=time.perf_counter() - t0, analysed_now=analysed_now, lines_now=lines_now,
                             stopped=stopped, resumed_from=done, reader_notes=notes)

    def _unique(self, rows: list[dict]) -> tuple[list[dict], list[tuple[dict, dict]]]:
        """The rows to score (one per distinct text and logged prediction/label, in this window and among the
        last inputs scored) and the (copy, scored original) pairs of the others: an input's scores depend only
        on its text, the settings and what was logged with it, so a duplicate is scored once and its scores
        copied exactly."""
        todo, copies, first = [], [], {}
        for r in rows:
            if r["status"] is not None:
                continue
            sig = (r["text"], _sig(r.get("_prediction_raw")), _sig(r.get("_label_raw")))
            if sig in first:
                copies.append((r, first[sig]))
            elif sig in self._recent:
                copies.append((r, self._recent[sig]))
                self._recent.move_to_end(sig)
            else:
                first[sig] = r
                todo.append(r)
        for sig, r in first.items():
            self._recent[sig] = r
            while len(self._recent) > self.RECENT:
                self._recent.popitem(last=False)
        return todo, copies

    @staticmethod
    def _copy_scores(copies: list[tuple[dict, dict]]) -> None:
        for dup, orig in copies:
            for k, v in orig.items():
                if k not in _OWN:
                    dup[k] = v
            if orig.get("status") != "analysed":
                dup["preview"] = (dup.get("text") or "")[:300] or dup.get("preview")

    def _finish_window(self, rows: list[dict]) -> None:
        """Add a window's analysed inputs to the corpus norm (in file order) and give them interim scores."""
        scored = [r for r in rows if r["status"] == "analysed"]
        if not scored:
            return
        g = ScoreGather(scored)
        keys = g.strings("key")
        mat = g.heads(self.n_heads_total)
        self.norm.add(keys, mat)
        z, zl, zh = S.worst_concentration(self.norm.z(mat), self.lm.n_heads)
        for r, a, b, c in zip(scored, z.tolist(), zl.tolist(), zh.tolist()):
            r["concentration_z"], r["concentration_layer"], r["concentration_head"] = a, b, c
        cols = {t.column: (z if t.column == "concentration_z" else g.floats(t.column)) for t in S.TERMS.values()}
        for r, x in zip(scored, S.suspicion(cols).tolist()):
            r["suspicion"] = x

    # --- the end -----------------------------------------------------------------------------------------
    def finalise(self, seconds: float, analysed_now: int, lines_now: int, stopped: str, resumed_from: int,
                 reader_notes: list[str]) -> dict:
        """Re-score every input against the final corpus norm, rank, write results.parquet and summary.json."""
        self.folder.scored.mkdir(exist_ok=True)
        for old in self.folder.scored.glob("*.parquet"):
            old.unlink()
        parts = self.folder.part_files()
        for _, _, path in parts:
            t = pq.read_table(path)
            idx, mat = head_matrix(t, self.n_heads_total)
            z = np.full(t.num_rows, np.nan)
            zl = np.full(t.num_rows, -1, dtype=np.int64)
            zh = np.full(t.num_rows, -1, dtype=np.int64)
            if idx.size:
                z[idx], zl[idx], zh[idx] = S.worst_concentration(self.norm.z(mat), self.lm.n_heads)
            t = t.set_column(t.schema.get_field_index("concentration_z"), "concentration_z",
                             pa.array(z, pa.float64(), from_pandas=True))
            t = t.set_column(t.schema.get_field_index("concentration_layer"), "concentration_layer",
                             pa.array(np.where(zl >= 0, zl, 0), pa.int32(), mask=zl < 0))
            t = t.set_column(t.schema.get_field_index("concentration_head"), "concentration_head",
                             pa.array(np.where(zh >= 0, zh, 0), pa.int32(), mask=zh < 0))
            term_cols = {c: t[c].to_numpy(zero_copy_only=False).astype(np.float64)
                         for c in {tm.column for tm in S.TERMS.values()}}
            sus = S.suspicion(term_cols)
            analysed = pc.fill_null(pc.equal(t["status"], "analysed"), False).to_numpy(zero_copy_only=False)
            sus = np.where(analysed, sus, np.nan)
            t = t.set_column(t.schema.get_field_index("suspicion"), "suspicion",
                             pa.array(sus, pa.float64(), from_pandas=True))
            pq.write_table(t, self.folder.scored / path.name, compression="zstd")
        if not parts:
            pq.write_table(self.schema.empty_table(), self.folder.scored / "part-empty.parquet")
        counts = build_results(self.folder)
        cfg = self.folder.read_config() or {}
        sessions = cfg.get("sessions", [])
        sessions.append({"ended": _now(), "seconds": round(seconds, 3), "lines": lines_now,
                         "analysed": analysed_now, "stopped": stopped})
        cfg["sessions"] = sessions
        self.folder.write_config(cfg)
        import torch
        import transformers
        summary = {
            **{k: counts[k] for k in ("lines_total", "analysed", "skipped", "unreadable", "failed")},
            "seconds": round(seconds, 3),
            "inputs_per_second": round(analysed_now / seconds, 3) if seconds > 0 else 0.0,
            "lines_per_second": round(lines_now / seconds, 3) if seconds > 0 else 0.0,
            "lines_this_run": lines_now, "analysed_this_run": analysed_now, "resumed_from_line_count": resumed_from,
            "complete": stopped == "end of file", "stopped": stopped,
            "seconds_all_runs": round(sum(s["seconds"] for s in sessions), 3),
            "reasons": counts["reasons"], "duplicate_ids": counts["duplicate_ids"],
            "duplicate_texts": counts["duplicate_texts"],
            "lines_with_replaced_bytes": counts["lines_with_replaced_bytes"],
            "lines_with_nul_bytes": counts["lines_with_nul_bytes"], "truncated": counts["truncated"],
            "file_notes": list(dict.fromkeys(self.info.notes + list(reader_notes))),
            "log": str(self.log), "format": self.info.format, "mapping": asdict(self.cfg.mapping),
            "model": self.cfg.model, "model_info": self.lm.describe(), "settings": asdict(self.cfg.settings),
            "mask_policy": S.MASK_POLICIES[self.cfg.settings.mask_policy], "on_long": self.cfg.on_long,
            "suspicion_formula": S.SUSPICION_FORMULA, "concentration_norm": self.norm.describe(),
            "norm_sample": self.norm.count,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "python": platform.python_version()},
            "results": str(self.folder.results),
        }
        self.folder.summary.write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str), "utf-8")
        return summary


def _freeze_gc() -> bool:
    """Move every object alive now (the model, its modules, the libraries: hundreds of thousands) out of the
    garbage collector's reach for the run (``gc.freeze``), so that its full collections, which a run's many
    short-lived rows trigger, traverse only the run's own objects: measured at a sizeable share of a GPU run's
    host time otherwise. Undone (``gc.unfreeze``) when the run ends. True when frozen here."""
    if not hasattr(gc, "freeze") or gc.get_freeze_count():
        return False           # not CPython, or frozen already (a run inside a run: the outer one unfreezes)
    gc.freeze()
    return True


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def run_triage(log: str | os.PathLike, out_dir: str | os.PathLike, model: str, mapping: ColumnMapping,
               settings: S.ScoreSettings | None = None, *, lm: LoadedModel | None = None, device: str | None = None,
               fmt: str | None = None, encoding: str | None = None, delimiter: str | None = None,
               on_long: str = "truncate", max_line_bytes: int = 1 << 20, limit: int | None = None,
               time_budget: float | None = None, batch_size: int = 16, restart: bool = False,
               progress: Callable[[Progress], None] | None = None, progress_every: float = 1.0,
               flush_rows: int = 2048, flush_seconds: float = 20.0, max_rows: int | None = None,
               workers: int = 1, engine: str = "local", address: str | None = None,
               gpus_per_worker: float = 0.0) -> dict:
    """Triage ``log`` into ``out_dir`` (resuming a run there with the same settings) and return the summary.

    Raises :class:`~interp.triage.readers.LogError` / :class:`MappingError` / ``ModelLoadError`` /
    ``ValueError`` with one clear line when the run cannot start."""
    cfg = TriageConfig(model, mapping, settings or S.ScoreSettings(), fmt, encoding, delimiter, on_long,
                       max_line_bytes)
    tri = Triage(log, out_dir, cfg, lm=lm, device=device)
    return tri.run(limit=limit, time_budget=time_budget, batch_size=batch_size, restart=restart,
                   progress=progress, progress_every=progress_every, flush_rows=flush_rows,
                   flush_seconds=flush_seconds, max_rows=max_rows, workers=workers, device=device, engine=engine,
                   address=address, gpus_per_worker=gpus_per_worker)
