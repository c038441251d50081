"""The column path of the scoring (a batch's scores as NumPy columns, gathered into Parquet without a loop over
rows) pinned to the row path (one ``Scored`` per input, one dict per row): every value bit-identical, on
tricky batches and a tricky log."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from engine_fixtures import model_folder
from interp.loader import load_model
from interp.triage import scores as S
from interp.triage.schema import Scored, ScoredColumns, column_kinds, score_values
from interp.triage.store import schema_for, to_table
from triage_logs import folder, lm, tricky_log  # noqa: F401  (fixtures)

TEXTS = ["the cat sat on the [MASK] .", "a big red house near the river", "[MASK] king saw the [MASK] queen .",
         "she went to paris", "the quick brown fox jumps over the lazy dog near the bank .", "run",
         " ".join(["the king saw a big red house ."] * 120)]
PRED = ["mat", None, "the old", "x", '["a", "b"]', None, "house"]
LAB = ["mat", "house", None, None, "b", "run", None]


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return type(a) is type(b) and a == b


@pytest.fixture(scope="module")
def lm_pooled():
    return load_model(str(model_folder("bert", False, 0, initializer_range=0.3)))


@pytest.mark.parametrize("policy", ["auto", "mask-each", "unmasked", "pooled"])
def test_columns_equal_the_rows_bit_for_bit(lm, lm_pooled, policy):
    model = lm_pooled if policy == "pooled" else lm
    st = S.ScoreSettings(k=4, seeds=2, seed=3, mask_policy="auto" if policy == "pooled" else policy, mask_cap=3)
    n = len(TEXTS) if policy == "auto" else len(TEXTS) - 1       # the long (cut) text once: it is slow on a CPU
    rows = S.score_batch(model, TEXTS[:n], st, predictions=PRED[:n], labels=LAB[:n])
    cols = S.score_batch(model, TEXTS[:n], st, predictions=PRED[:n], labels=LAB[:n], columns=True)
    assert isinstance(cols, ScoredColumns) and len(cols) == n
    for i, r in enumerate(rows):
        c = cols.row(i)
        for name in [f for f, _ in column_kinds()] + ["head_concentration", "notes"]:
            assert same(getattr(c, name), getattr(r, name)), (policy, i, name, getattr(c, name), getattr(r, name))
        got = [a for a in (r.agrees_prediction, r.agrees_label) if not math.isnan(a)]
        want = sum(got) / len(got) if got else float("nan")
        assert same(float(cols.extra["agreement"][i]), want)
        assert set(cols.values(i)) == set(score_values(r)) | {"agreement"}
    assert any(r.truncated for r in rows) == (policy == "auto")
    if policy == "auto":
        assert any(not math.isnan(r.agrees_prediction) for r in rows)


def test_the_gathered_table_equals_the_row_by_row_table(lm):
    """to_table of rows that point into batch columns (and rows that do not: skipped, failed) equals to_table
    of the same rows with every value written into the dict, as the row path did."""
    st = S.ScoreSettings(k=4, seeds=2)
    a = S.score_batch(lm, TEXTS[:4], st, predictions=PRED[:4], labels=LAB[:4], columns=True)
    b = S.score_batch(lm, TEXTS[4:], st, predictions=PRED[4:], labels=LAB[4:], columns=True)
    schema = schema_for(("region",), lm.n_layers * lm.n_heads)
    lazy, plain = [], []
    order = [(a, 2), ("skip", 0), (b, 1), (a, 0), ("fail", 1), (b, 0), (a, 3), (a, 1), (b, 2), (a, 0)]
    for rec, (src, i) in enumerate(order):
        base = {"record": rec, "line": rec + 1, "notes": None, "preview": "p", "region": "eu", "id": f"r{rec}"}
        if src == "skip":
            r = dict(base, status="skipped", reason_code="empty-text", reason="empty")
            lazy.append(dict(r))
            plain.append(dict(r))
            continue
        if src == "fail":
            r = dict(base, status="failed", reason_code="error", reason="E: x", text="t")
            lazy.append(dict(r))
            plain.append(dict(r))
            continue
        lazy.append(dict(base, status="analysed", _sc=(src, i), concentration_z=0.5, concentration_layer=-1,
                         concentration_head=2, suspicion=0.25))
        plain.append(dict(base, status="analysed", **src.values(i), concentration_z=0.5, concentration_layer=-1,
                          concentration_head=2, suspicion=0.25))
    ta, tb = to_table(lazy, schema), to_table(plain, schema)
    assert ta.schema == tb.schema
    for name in schema.names:
        assert ta[name].equals(tb[name]), name


def test_a_tricky_log_gives_the_same_results_as_the_row_path(tmp_path, folder, lm, monkeypatch):  # noqa: F811
    """The whole run (duplicates, bad lines, long lines, CJK) with the column path, against the same run with
    every batch turned back into rows (``ScoredColumns.values``) before it is stored."""
    import pyarrow.parquet as pq

    from interp.triage import ColumnMapping, run_triage
    from interp.triage import runner as R
    log = tricky_log(tmp_path / "log.jsonl", n=60)
    st = S.ScoreSettings(k=4, seeds=2)
    run_triage(log, tmp_path / "cols", str(folder), ColumnMapping("text", id="id"), st, lm=lm, batch_size=8)
    real = R.scored_columns

    def as_rows(batch, res, extra):
        real(batch, res, extra)
        R.materialise(batch)
    monkeypatch.setattr(R, "scored_columns", as_rows)
    run_triage(log, tmp_path / "rows", str(folder), ColumnMapping("text", id="id"), st, lm=lm, batch_size=8)
    a = pq.read_table(tmp_path / "cols" / "results.parquet")
    b = pq.read_table(tmp_path / "rows" / "results.parquet")
    assert a.num_rows == 60 and a.schema == b.schema
    for name in a.schema.names:
        assert a[name].equals(b[name]), name
    assert set(a["status"].to_pylist()) >= {"analysed", "skipped"}
