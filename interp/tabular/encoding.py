"""A table as sentences: each column is a position, each (binned) value a word of one shared vocabulary.

The paper's tabular extension (Wibisono & Wang, UAI 2023, §6): a row of categorical features is a sentence whose
j-th word is the value of column j; predicting a masked column is masked-token prediction. Numeric columns are
cut into quantile bins (tertiles in the paper); categorical columns keep their categories.

Vocabulary (shared by every column, as in the paper, where bin index k means the same word in every column):

* ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0–4), the special tokens a ``BertForMaskedLM`` tokenizer needs;
* ``q1 … qK`` — quantile bin k of a numeric column (the column, i.e. the position, says which quantity);
* each category as a word (whitespace replaced by ``_``), shared when two columns have the same category;
* ``[NA]`` — a missing value, when a kept column has any.

A row's sentence is its words in column order, no [CLS]/[SEP]: position j *is* column j. Bins are right-closed
intervals cut at the quantiles i/K of the fitted data (``np.quantile``, linear interpolation — the same edges and
the same assignment as ``pandas.qcut``); a value below the first edge or above the last goes to the end bin.

Decisions, each reported as a note by :meth:`TableEncoder.fit` (and an :class:`EncodingError` where the table
cannot be used at all):

* missing values: rows whose target is missing are dropped; elsewhere a missing value is the word ``[NA]``;
* a column that is entirely missing, or has one value (constant), carries nothing: dropped (an error for the target);
* a categorical column with more than ``max_categories`` values (an identifier or free text) is dropped
  (an error for the target);
* text in a numeric column: a column whose non-missing values are ≥ 95% numbers is numeric, the rest becomes
  missing (reported with examples); below 95% the column is categorical;
* a numeric column with at most ``bins`` distinct values is kept as categories (ordered numerically);
* ties that make two quantile edges equal merge those bins (reported: fewer bins than asked).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .notes import TableNote

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
NA = "[NA]"
MASK = "[MASK]"
NUMERIC_SHARE = 0.95
MAX_CATEGORIES = 50
MAX_BINS = 20


class EncodingError(ValueError):
    """The table cannot be encoded; ``str(err)`` is one clear line for the UI and the CLI."""


def bin_word(k: int) -> str:
    """The word of (0-based) bin k: q1 … qK."""
    return f"q{k + 1}"


def category_word(value) -> str:
    """A category as a word: its text with whitespace runs replaced by '_' (never empty, never a special token)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    word = re.sub(r"\s+", "_", str(value).strip()) or "_"
    if word in SPECIAL or word == NA or re.fullmatch(r"q\d+", word):
        word = "'" + word      # never the same word as a special token or a bin of another column
    return word


@dataclass
class Column:
    """One kept column. ``kind`` is "numeric" (binned) or "categorical"; ``values`` are the labels of its codes
    0…m−1 in order (bin intervals or categories); ``words`` their vocabulary words."""
    name: str
    kind: str
    values: list[str]
    words: list[str]
    edges: list[float] = field(default_factory=list)    # numeric: K+1 edges (min, inner…, max)
    raw: list = field(default_factory=list)             # categorical: the raw category values, in code order
    ordinal: bool = True                                # codes have a meaningful order (bins, numeric categories)
    has_na: bool = False

    @property
    def n_values(self) -> int:
        return len(self.words)


def _to_numeric(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class TableEncoder:
    """Fit on a table (DataFrame), then encode rows to codes / words / sentences and decode them back."""

    def __init__(self, columns: list[Column], target: str | None, notes: list[str] | None = None,
                 bins: int = 3):
        self.columns = columns
        self.target = target
        self.notes = list(notes or [])
        self.bins = bins
        vocab = list(SPECIAL)
        for c in columns:
            for w in c.words + ([NA] if c.has_na else []):
                if w not in vocab:
                    vocab.append(w)
        self.vocab = vocab
        self.word_to_id = {w: i for i, w in enumerate(vocab)}

    # --- fitting --------------------------------------------------------------------------------------------

    @classmethod
    def fit(cls, df: pd.DataFrame, target: str | None = None, bins: int = 3, categorical: list[str] | tuple = (),
            numeric: list[str] | tuple = (), drop: list[str] | tuple = (),
            max_categories: int = MAX_CATEGORIES) -> "TableEncoder":
        """Decide every column's encoding from ``df`` (see the module docstring). ``categorical`` / ``numeric``
        force a column's kind; ``drop`` removes columns. Raises :class:`EncodingError` for an unusable table."""
        if not isinstance(bins, (int, np.integer)) or not 2 <= bins <= MAX_BINS:
            raise EncodingError(f"bins must be an integer from 2 to {MAX_BINS}, not {bins!r}")
        if df is None or df.shape[1] == 0:
            raise EncodingError("the table has no columns")
        if len(df) == 0:
            raise EncodingError("the table has no rows")
        if df.shape[1] < 2:
            raise EncodingError("the table has one column: a prediction needs at least one other column")
        names = [str(c) for c in df.columns]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise EncodingError(f"duplicate column names: {', '.join(dup)}")
        df = df.copy()
        df.columns = names
        for name in list(categorical) + list(numeric) + list(drop) + ([target] if target else []):
            if name not in df.columns:
                raise EncodingError(f"no column named {name!r} (columns: {', '.join(names[:12])})")
        notes: list[str] = []
        if target is not None:
            missing_t = int(df[target].isna().sum())
            if missing_t == len(df):
                raise EncodingError(f"the target column {target!r} is entirely missing")
            if missing_t:
                df = df[df[target].notna()]
                notes.append(TableNote("tab_target_rows_dropped", n=missing_t, column=target))
        columns: list[Column] = []
        for name in names:
            if name in drop:
                notes.append(TableNote("tab_column_dropped", column=name))
                continue
            is_target = name == target
            col = cls._fit_column(df[name], name, bins, name in categorical, name in numeric, max_categories, notes)
            if col is None:
                if is_target:
                    raise EncodingError(notes.pop())
                continue
            columns.append(col)
        if len(columns) < 2:
            raise EncodingError("fewer than two usable columns remain after the checks: "
                                + "; ".join(notes[-3:]))
        return cls(columns, target, notes, bins)

    @staticmethod
    def _fit_column(s: pd.Series, name: str, bins: int, force_cat: bool, force_num: bool, max_categories: int,
                    notes: list[str]) -> Column | None:
        present = s.dropna()
        if len(present) == 0:
            notes.append(TableNote("tab_column_missing", column=name))
            return None
        if present.astype(str).nunique() == 1:
            notes.append(TableNote("tab_column_constant", column=name, value=str(present.iloc[0])[:30]))
            return None
        has_na = bool(s.isna().any())
        if has_na:
            notes.append(TableNote("tab_column_na", column=name, n=int(s.isna().sum()), word=NA))
        numeric = _to_numeric(present) if not force_cat else None
        share = float(numeric.notna().mean()) if numeric is not None else 0.0
        if force_num and share == 0.0:
            raise EncodingError(f"column {name!r} was asked to be numeric but holds no numbers")
        is_num = not force_cat and (force_num or share >= NUMERIC_SHARE)
        if is_num and share < 1.0:
            bad = present[numeric.isna()].astype(str)
            examples = ", ".join(repr(x[:20]) for x in bad.unique()[:3])
            notes.append(TableNote("tab_column_non_numeric", column=name, n=len(bad), examples=examples,
                                   word=NA))
            has_na = True
        if is_num:
            x = _to_numeric(s).dropna().to_numpy(dtype=float)
            distinct = np.unique(x)
            if len(distinct) <= bins:
                raw = [float(v) for v in distinct]
                labels = [_fmt(v) for v in raw]
                words = [category_word(v) for v in raw]
                return Column(name, "categorical", labels, _dedupe(words), raw=raw, ordinal=True, has_na=has_na)
            edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
            if len(edges) - 1 < bins:
                notes.append(TableNote("tab_column_tied_bins", column=name, got=len(edges) - 1, bins=bins))
            k = len(edges) - 1
            labels = [f"{'[' if i == 0 else '('}{_fmt(edges[i])}, {_fmt(edges[i + 1])}]" for i in range(k)]
            return Column(name, "numeric", labels, [bin_word(i) for i in range(k)], edges=[float(e) for e in edges],
                          ordinal=True, has_na=has_na)
        cats = present.astype(str) if not _all_numeric(present) else present
        uniq = list(pd.unique(cats))
        if len(uniq) > max_categories:
            notes.append(TableNote("tab_column_identifier", column=name, n=len(uniq), most=max_categories))
            return None
        ordinal = _all_numeric(present)
        try:
            uniq = sorted(uniq, key=float) if ordinal else sorted(uniq, key=str)
        except (TypeError, ValueError):
            uniq = sorted(uniq, key=str)
            ordinal = False
        words = _dedupe([category_word(v) for v in uniq])
        raw = [v.item() if hasattr(v, "item") else v for v in uniq]
        return Column(name, "categorical", [_label(v) for v in uniq], words,
                      raw=raw, ordinal=ordinal, has_na=has_na)

    # --- encoding -------------------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def target_index(self) -> int:
        if self.target is None:
            raise EncodingError("no target column chosen")
        return self.names.index(self.target)

    def column(self, name: str) -> Column:
        return self.columns[self.names.index(name)]

    def codes(self, df: pd.DataFrame) -> np.ndarray:
        """rows × columns integer codes; −1 = missing (or a category never seen when fitting)."""
        df = df.copy()
        df.columns = [str(c) for c in df.columns]
        missing = [c.name for c in self.columns if c.name not in df.columns]
        if missing:
            raise EncodingError(f"the table lacks column(s) {', '.join(map(repr, missing))}")
        out = np.full((len(df), len(self.columns)), -1, dtype=np.int64)
        for j, c in enumerate(self.columns):
            s = df[c.name]
            if c.kind == "numeric":
                x = _to_numeric(s).to_numpy(dtype=float)
                ok = ~np.isnan(x)
                inner = np.asarray(c.edges[1:-1])
                out[ok, j] = np.searchsorted(inner, x[ok], side="left")
            else:
                lookup = {_key(v): i for i, v in enumerate(c.raw)}
                out[:, j] = [lookup.get(_key(v), -1) if not _isna(v) else -1 for v in s.tolist()]
        return out

    def words_of(self, codes: np.ndarray) -> list[list[str]]:
        """Codes → words (−1 → [NA])."""
        return [[self.columns[j].words[k] if k >= 0 else NA for j, k in enumerate(row)] for row in codes]

    def ids_of(self, codes: np.ndarray) -> np.ndarray:
        """Codes → token ids (rows × columns)."""
        words = self.words_of(codes)
        return np.array([[self.word_to_id.get(w, UNK_ID) for w in row] for row in words], dtype=np.int64)

    def sentence(self, codes_row, mask: int | None = None) -> str:
        """One row as the model's text: its words in column order, column ``mask`` replaced by [MASK]."""
        words = self.words_of(np.asarray(codes_row)[None])[0]
        if mask is not None:
            words[mask] = MASK
        return " ".join(words)

    def decode_words(self, words: list[str]) -> list[int]:
        """A sentence's words back to codes (column by column; [NA]/[MASK]/unknown → −1)."""
        if len(words) != len(self.columns):
            raise EncodingError(f"a row has {len(self.columns)} words, got {len(words)}")
        out = []
        for c, w in zip(self.columns, words):
            out.append(c.words.index(w) if w in c.words else -1)
        return out

    def decode(self, codes: np.ndarray) -> pd.DataFrame:
        """Codes → a table of value labels (bin intervals / categories); missing is None."""
        data = {c.name: [c.values[k] if k >= 0 else None for k in codes[:, j]] for j, c in enumerate(self.columns)}
        return pd.DataFrame(data)

    def domain_ids(self, column: int) -> list[int]:
        """Token ids a prediction of ``column`` chooses from (its own values; never [NA] or specials)."""
        return [self.word_to_id[w] for w in self.columns[column].words]

    # --- persistence ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"format": "expertlens-tabular/1", "target": self.target, "bins": self.bins,
                "columns": [asdict(c) for c in self.columns], "vocab": self.vocab, "notes": self.notes}

    @classmethod
    def from_dict(cls, d: dict) -> "TableEncoder":
        enc = cls([Column(**c) for c in d["columns"]], d.get("target"), d.get("notes"), d.get("bins", 3))
        if enc.vocab != d["vocab"]:
            raise EncodingError("tabular schema: vocabulary does not match its columns")
        return enc

    def save(self, path) -> None:
        from pathlib import Path
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, default=str), encoding="utf-8")

    @classmethod
    def load(cls, path) -> "TableEncoder":
        from pathlib import Path
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _all_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _key(v) -> str:
    """A category's identity across dtypes: 4, 4.0 and "4" are one category."""
    try:
        f = float(v)
        if np.isfinite(f):
            return repr(float(f))
    except (TypeError, ValueError):
        pass
    return str(v)


def _label(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _dedupe(words: list[str]) -> list[str]:
    """Make words unique within a column (two categories that differ only in whitespace)."""
    seen: dict[str, int] = {}
    out = []
    for w in words:
        if w in seen:
            seen[w] += 1
            w = f"{w}~{seen[w]}"
        else:
            seen[w] = 1
        out.append(w)
    return out
