"""Finalisation of a long run within DuckDB's bounded memory.

A 1,000,000-line run ran out of DuckDB's memory limit (256 MB) in ``build_results``: the rank and the duplicate
bookkeeping were window functions over the wide rows (texts, previews, notes). They are now computed over a narrow
projection and joined back by line. This test builds a run of wide rows under a memory limit small enough that the
former query fails (checked when the test was written: out of memory at 128 MB with these 300,000 rows, where
the narrow bookkeeping passes), and checks the
file against the in-memory implementation, which shares no code with the DuckDB query."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from interp.triage import store
from interp.triage.store import RunFolder, build_results, build_results_in_memory, schema_for

pytest.importorskip("duckdb")


def wide_run(root, n=300_000, per_part=30_000, width=60):
    rng = np.random.default_rng(3)
    folder = RunFolder(root)
    folder.create()
    folder.scored.mkdir()
    schema = schema_for((), 4)
    line = np.arange(1, n + 1)
    status = np.where(rng.random(n) < 0.05, "skipped", "analysed")
    sus = rng.random(n)
    sus[rng.random(n) < 0.01] = np.nan                          # null suspicion: ranked last
    ids = np.array([f"id{i}" for i in rng.integers(0, n // 2, n)], dtype=object)
    ids[rng.random(n) < 0.1] = None
    keys = np.array([f"key{i}" for i in rng.integers(0, n // 3, n)], dtype=object)
    filler = ("lorem ipsum dolor sit amet " * 40)[:width]
    cols = {"record": line - 1, "line": line, "status": status, "key": keys, "id": ids,
            "text": [f"{i} {filler}" for i in range(n)], "preview": [f"{i} {filler[:120]}" for i in range(n)],
            "notes": [""] * n, "suspicion": sus}
    order = rng.permutation(n // per_part)                      # parts written out of line order, as Ray can
    for p in order:
        sl = slice(p * per_part, (p + 1) * per_part)
        arrays = []
        for f in schema:
            if f.name in cols:
                v = cols[f.name][sl]
                arrays.append(pa.array(v, type=f.type, from_pandas=True))
            else:
                arrays.append(pa.nulls(per_part, type=f.type))
        pq.write_table(pa.Table.from_arrays(arrays, schema=schema),
                       folder.scored / f"part-{p * per_part:012d}-{(p + 1) * per_part - 1:012d}.parquet")
    return folder


def test_finalisation_of_wide_rows_fits_a_small_memory_limit(tmp_path, monkeypatch):
    folder = wide_run(tmp_path / "run")
    monkeypatch.setattr(store, "DUCKDB_MEMORY_LIMIT", "128MB")
    counts = build_results(folder)
    got = pd.read_parquet(folder.results)
    mem = RunFolder(tmp_path / "mem")
    mem.dir.mkdir()
    (mem.dir / "scored").symlink_to(folder.scored)
    counts_mem = build_results_in_memory(mem)
    want = pd.read_parquet(mem.results)
    assert counts == counts_mem and counts["lines_total"] == 300_000
    assert list(got.columns) == list(want.columns)
    assert list(got["line"]) == list(range(1, 300_001))
    for c in ("rank", "id_count", "first_line_of_id", "text_count", "status", "id", "key", "text"):
        pd.testing.assert_series_equal(got[c].astype(object), want[c].astype(object), check_names=False)
    ranked = got.dropna(subset=["rank"]).sort_values("rank")
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
