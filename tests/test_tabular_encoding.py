"""Tabular mode, the encoding: table → words → table of bins round trip, bins equal to pandas.qcut's, every
decision on awkward columns, CSV checks, and the auto-mpg preparation's split."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp.tabular.data import AUTO_MPG_ROWS, check_size, prepare_auto_mpg, prepare_table, read_table
from interp.tabular.encoding import NA, EncodingError, TableEncoder


def table(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"price": rng.normal(100, 20, n), "colour": rng.choice(["red", "dark blue", "green"], n),
                         "size": rng.integers(1, 4, n), "score": rng.uniform(0, 1, n)})


def test_round_trip_table_tokens_table_of_bins():
    df = table()
    enc = TableEncoder.fit(df, target="score", bins=4)
    codes = enc.codes(df)
    sentences = [enc.sentence(row) for row in codes]
    back = np.array([enc.decode_words(s.split()) for s in sentences])
    assert (back == codes).all()
    binned = enc.decode(back)
    # every numeric value lies in the interval its bin label names; categories come back unchanged
    price = enc.column("price")
    for x, k in zip(df["price"], codes[:, 0]):
        assert price.edges[k] - 1e-9 <= x <= price.edges[k + 1] + 1e-9
    assert list(binned["colour"]) == list(df["colour"])
    assert enc.column("colour").words == ["dark_blue", "green", "red"]      # whitespace → "_"
    # one shared vocabulary: the bin words q1..q4 serve every numeric column
    assert enc.column("price").words == enc.column("score").words == ["q1", "q2", "q3", "q4"]
    assert enc.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # a saved schema reproduces the same codes
    again = TableEncoder.from_dict(enc.to_dict())
    assert (again.codes(df) == codes).all()


@pytest.mark.parametrize("bins", [2, 3, 5])
def test_bins_match_pandas_qcut(bins):
    df = table(200, seed=bins)
    enc = TableEncoder.fit(df, target="score", bins=bins)
    codes = enc.codes(df)
    for name in ("price", "score"):
        assert (pd.qcut(df[name], bins, labels=False).to_numpy() == codes[:, enc.names.index(name)]).all()


def test_decisions_on_awkward_columns():
    df = table(80)
    df["constant"] = 7
    df["empty"] = np.nan
    df["ident"] = [f"id{i}" for i in range(80)]
    df.loc[[3, 5], "price"] = np.nan
    df["price"] = df["price"].astype(object)
    df.loc[7, "price"] = "?"                                     # text in a numeric column
    df.loc[[1, 2], "score"] = np.nan                              # missing target values
    enc = TableEncoder.fit(df, target="score", bins=3)
    text = " | ".join(enc.notes)
    assert "constant" not in enc.names and "one value" in text
    assert "empty" not in enc.names and "entirely missing" in text
    assert "ident" not in enc.names and "78 distinct values" in text   # after the 2 target-less rows
    assert "dropped 2 row(s) with no value in the target" in text
    assert "non-numeric value(s) ('?')" in text
    assert enc.column("price").kind == "numeric" and enc.column("price").has_na
    codes = enc.codes(df)
    assert codes[3, enc.names.index("price")] == -1 and codes[7, enc.names.index("price")] == -1
    assert enc.words_of(codes[3:4])[0][enc.names.index("price")] == NA
    assert enc.column("size").kind == "categorical" and enc.column("size").values == ["1", "2", "3"]


@pytest.mark.parametrize("df, target, message", [
    (pd.DataFrame({"a": [], "b": []}), "a", "no rows"),
    (pd.DataFrame({"a": [1, 2, 3]}), "a", "one column"),
    (pd.DataFrame({"a": [1, 2, 3], "b": [np.nan] * 3}), "b", "entirely missing"),
    (pd.DataFrame({"a": [1, 2, 3], "b": ["x", "x", "x"]}), "b", "one value"),
    (pd.DataFrame({"a": [1, 2, 3], "b": [1, 2, 3]}), "zzz", "no column named"),
])
def test_unusable_tables_get_one_clear_line(df, target, message):
    with pytest.raises(EncodingError, match=message):
        TableEncoder.fit(df, target=target)


def test_csv_checks(tmp_path):
    good = tmp_path / "good.csv"
    table(30).to_csv(good, index=False)
    df, notes = read_table(good)
    assert df.shape == (30, 4) and notes == []
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b\n1;x\n2;y\n", encoding="utf-8")
    assert read_table(semi)[0].shape == (2, 2)
    cases = {"empty.csv": (b"", "empty"), "header.csv": (b"a,b\n", "no rows"), "one.csv": (b"a\n1\n2\n", "one column"),
             "bin.csv": (bytes(range(256)) * 4, "binary")}
    for name, (blob, message) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(EncodingError, match=message):
            read_table(tmp_path / name)
    with pytest.raises(EncodingError, match="500 MB"):
        check_size(500 * 2 ** 20)
    with pytest.raises(EncodingError, match="folder"):
        read_table(tmp_path)
    many, notes = read_table(good, max_rows=10)
    assert len(many) == 10 and "first 10" in notes[0]


def test_target_with_one_value_after_split_rules():
    df = pd.DataFrame({"a": range(10), "t": ["y"] * 10})
    with pytest.raises(EncodingError, match="one value"):
        prepare_table(df, "t")


def test_auto_mpg_preparation_gives_the_papers_split():
    """406 cars; 14 without mpg or horsepower and 7 with 3 or 5 cylinders removed: 385 cars, of which 245 of US
    origin (train) and 140 from Europe and Japan (test) — the row counts of the paper's experiment."""
    prep = prepare_auto_mpg()
    assert prep.split_counts() == AUTO_MPG_ROWS == {"train": 245, "test": 140}
    assert prep.enc.names == ["cylinders", "displacement", "horsepower", "weight", "acceleration", "year", "mpg"]
    assert prep.enc.target == "mpg" and prep.enc.column("cylinders").values == ["4", "6", "8"]
    assert set(prep.frame.loc[prep.train, "origin"]) == {"USA"}
    assert set(prep.frame.loc[prep.test, "origin"]) == {"Europe", "Japan"}
    # tertiles computed on all 385 cars before the split (as the paper did): each bin holds about a third
    counts = np.bincount(prep.codes[:, prep.target])
    assert counts.sum() == 385 and counts.min() >= 120
    assert (prep.codes >= 0).all()
