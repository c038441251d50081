"""Tables for tabular mode: the auto-mpg data (offline, from the pinned ``vega_datasets`` package), checked CSV
reading, and the train/test split.

auto-mpg as in the paper's out-of-distribution experiment (Wibisono & Wang, UAI 2023, §6): the ``cars`` table
(406 cars); drop the cars without mpg or horsepower; keep 4-, 6- and 8-cylinder cars (cylinders as three
categories); displacement, horsepower, weight, acceleration and model year in tertiles; the target is the mpg
tertile. The bins are computed on all kept cars *before* the split, as in the authors' released experiment
(so the test cars' feature and mpg marginals shape the bin edges; no test label is used in training). Train on
the cars of US origin, test on the rest: 245 training and 140 test rows.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .encoding import EncodingError, TableEncoder
from .notes import TableNote

MAX_UPLOAD_BYTES = 50 * 2 ** 20
MAX_ROWS = 50_000
AUTO_MPG_COLUMNS = ["cylinders", "displacement", "horsepower", "weight", "acceleration", "year", "mpg"]
AUTO_MPG_TARGET = "mpg"
AUTO_MPG_ROWS = {"train": 245, "test": 140}


@dataclass
class Prepared:
    """An encoded table and its split (row indices into ``codes``)."""
    name: str
    enc: TableEncoder
    codes: np.ndarray
    train: np.ndarray
    test: np.ndarray
    frame: pd.DataFrame              # the rows as kept (raw values), aligned with ``codes``
    split_rule: str
    notes: list[str] = field(default_factory=list)

    @property
    def target(self) -> int:
        return self.enc.target_index

    def split_counts(self) -> dict:
        return {"train": int(len(self.train)), "test": int(len(self.test))}


def auto_mpg_frame() -> pd.DataFrame:
    """The ``cars`` table with the paper's filters; columns ``AUTO_MPG_COLUMNS`` plus ``origin`` and ``name``."""
    from vega_datasets import local_data
    raw = local_data.cars()
    df = raw.dropna(subset=["Miles_per_Gallon", "Horsepower"])
    df = df[df["Cylinders"].isin([4, 6, 8])]
    out = pd.DataFrame({
        "cylinders": df["Cylinders"].astype(int),
        "displacement": df["Displacement"].astype(float),
        "horsepower": df["Horsepower"].astype(float),
        "weight": df["Weight_in_lbs"].astype(float),
        "acceleration": df["Acceleration"].astype(float),
        "year": pd.to_datetime(df["Year"]).dt.year.astype(int),
        "mpg": df["Miles_per_Gallon"].astype(float),
        "origin": df["Origin"].astype(str),
        "name": df["Name"].astype(str),
    }).reset_index(drop=True)
    return out


def prepare_auto_mpg(bins: int = 3) -> Prepared:
    df = auto_mpg_frame()
    enc = TableEncoder.fit(df[AUTO_MPG_COLUMNS], target=AUTO_MPG_TARGET, bins=bins, categorical=["cylinders"])
    codes = enc.codes(df[AUTO_MPG_COLUMNS])
    us = (df["origin"] == "USA").to_numpy()
    return Prepared("auto-mpg", enc, codes, np.nonzero(us)[0], np.nonzero(~us)[0], df,
                    TableNote("tab_split_auto_mpg"),
                    list(enc.notes))


def prepare_table(df: pd.DataFrame, target: str, bins: int = 3, name: str = "table", test_fraction: float = 0.3,
                  split_column: str | None = None, train_value: str | None = None, seed: int = 0) -> Prepared:
    """Encode a user table (bins computed on all rows, as for auto-mpg) and split it: by ``split_column`` ==
    ``train_value`` (train) vs the rest (test) when given — an out-of-distribution split like auto-mpg's — else a
    random ``test_fraction`` of the rows (seeded)."""
    if target not in [str(c) for c in df.columns]:
        raise EncodingError(f"no column named {target!r} to predict")
    notes = []
    drop = []
    if split_column is not None:
        if split_column not in df.columns:
            raise EncodingError(f"no column named {split_column!r} to split on")
        if split_column == target:
            raise EncodingError("the split column cannot be the target")
        drop = [split_column]
    enc = TableEncoder.fit(df, target=target, bins=bins, drop=drop)
    kept = df[df[target].notna()].reset_index(drop=True)
    codes = enc.codes(kept)
    t = enc.target_index
    if len(np.unique(codes[:, t][codes[:, t] >= 0])) < 2:
        raise EncodingError(f"the target column {target!r} has one value: there is nothing to predict")
    if split_column is not None:
        is_train = (kept[split_column].astype(str) == str(train_value)).to_numpy()
        rule = TableNote("tab_split_column", column=split_column, value=train_value)
    else:
        rng = np.random.default_rng(seed)
        is_train = np.ones(len(kept), dtype=bool)
        is_train[rng.permutation(len(kept))[:int(round(test_fraction * len(kept)))]] = False
        rule = TableNote("tab_split_random", share=test_fraction, seed=seed)
    train, test = np.nonzero(is_train)[0], np.nonzero(~is_train)[0]
    if len(train) < 2 or len(test) < 1:
        raise EncodingError(f"the split leaves {len(train)} training and {len(test)} test rows: too few")
    return Prepared(name, enc, codes, train, test, kept, rule, notes + list(enc.notes))


def read_table(source, max_bytes: int | None = None, max_rows: int = MAX_ROWS) -> tuple[pd.DataFrame, list[str]]:
    """A CSV from a path, bytes or a binary file object, checked: too large, not text, not a CSV, no rows, one
    column each raise :class:`EncodingError` with one line. Over ``max_rows`` rows keeps the first ``max_rows``
    (reported)."""
    max_bytes = MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise EncodingError(f"no file at {path}")
        if path.is_dir():
            raise EncodingError(f"{path} is a folder, not a CSV file")
        size = path.stat().st_size
        check_size(size, max_bytes)
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        check_size(len(source), max_bytes)
        data = bytes(source)
    else:
        size = getattr(source, "size", None)
        if size is not None:
            check_size(int(size), max_bytes)
        data = source.read(max_bytes + 1)
        check_size(len(data), max_bytes)
    if not data.strip():
        raise EncodingError("the file is empty")
    if b"\x00" in data[:4096]:
        raise EncodingError("the file is not a CSV: it holds binary data")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise EncodingError("the file is not a CSV: it is not text")
    try:
        df = pd.read_csv(io.StringIO(text), sep=_separator(text), nrows=max_rows + 1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv_error()) as err:
        raise EncodingError(f"the file is not a readable CSV: {str(err).splitlines()[0][:120]}") from err
    notes = []
    if df.shape[1] < 2:
        raise EncodingError("the CSV has one column: tabular mode needs a target and at least one other column "
                            "(is the separator a comma, semicolon or tab?)")
    if len(df) == 0:
        raise EncodingError("the CSV has a header but no rows")
    if len(df) > max_rows:
        df = df.iloc[:max_rows]
        notes.append(TableNote("tab_rows_capped", max_rows=max_rows))
    return df, notes


def _separator(text: str) -> str:
    """Comma, semicolon, tab or bar, whichever the first lines use consistently (default comma)."""
    import csv
    try:
        return csv.Sniffer().sniff(text[:20000], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def csv_error():
    import csv
    return csv.Error


def check_size(size: int, max_bytes: int | None = None) -> None:
    max_bytes = MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
    if size > max_bytes:
        raise EncodingError(f"the file is {size / 2 ** 20:,.0f} MB; tabular mode reads at most "
                            f"{max_bytes / 2 ** 20:,.0f} MB (a few thousand rows train in seconds): sample it first")
