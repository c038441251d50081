"""The query layer: every ranking is computed over the whole run in DuckDB (one implementation for the page,
the CLI and the exports)."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from interp.triage.store import RANKINGS, ResultsQuery, RunFolder, build_results, export_ranked_csv, schema_for, \
    to_table


def planted_run(tmp_path, n=5000, at=4001, z=-9.0):
    """A finished run of ``n`` analysed lines (written with the store's own schema and finalisation) whose
    concentration z is small everywhere except line ``at`` (|z| largest, negative sign); line 11 has z = 2."""
    rng = np.random.default_rng(0)
    folder = RunFolder(tmp_path / "run")
    folder.create()
    folder.scored.mkdir()
    zs = rng.uniform(-1.5, 1.5, n)
    zs[10] = 2.0
    zs[at - 1] = z
    rows = [{"record": i, "line": i + 1, "status": "analysed", "key": f"k{i}", "text": f"text {i}",
             "concentration_z": float(zs[i]), "suspicion": float(rng.uniform(0, 1)), "confidence": 0.5,
             "cosine": 1.0 - 1e-4 * i, "flip_rate": 0.0, "kl": float(rng.uniform(0, 1)), "margin": 0.2}
            for i in range(n)]
    schema = schema_for((), 4)
    for start in range(0, n, 1000):
        t = to_table(rows[start:start + 1000], schema)
        import pyarrow.parquet as pq
        pq.write_table(t, folder.scored / f"part-{start:012d}-{start + 999:012d}.parquet")
    build_results(folder)
    return folder.dir, zs


def test_concentration_ranking_sees_an_extreme_line_late_in_a_long_log(tmp_path):
    out, zs = planted_run(tmp_path)
    q = ResultsQuery(out)
    try:
        top = q.ranked("concentration", 10)
        assert top["line"].iloc[0] == 4001 and top["concentration_z"].iloc[0] == pytest.approx(-9.0)
        assert top["line"].iloc[1] == 11                       # z = 2, the next largest |z|
        want = np.argsort(-np.abs(zs), kind="stable")[:10] + 1
        assert list(top["line"]) == list(want)
        for name, (expr, direction) in RANKINGS.items():     # every ranking equals pandas over all rows
            got = q.ranked(name, 25)
            df = pd.read_parquet(out / "results.parquet")
            key = {"concentration": df["concentration_z"].abs(), "drift": df["cosine"]}.get(name, df.get(expr))
            df = df.assign(_k=key).sort_values(["_k", "line"], ascending=[direction == "ASC", True])
            assert list(got["line"]) == list(df["line"].head(25)), name
    finally:
        q.close()
    # the export is the same ranking over the whole run, on a connection of its own
    csv = pd.read_csv(io.BytesIO(export_ranked_csv(out, "concentration")))
    assert len(csv) == 5000 and csv["line"].iloc[0] == 4001 and list(csv["rank"][:3]) == [1, 2, 3]


def test_cli_top_uses_the_same_ranking(tmp_path, capsys):
    import argparse
    from interp.cli.triage import _ranked_outputs
    out, _ = planted_run(tmp_path)
    args = argparse.Namespace(out=out, top=3, export_csv=tmp_path / "r.csv", rank_by="concentration", model="m",
                              scheme="A", k=8, seed=0)
    _ranked_outputs(args)
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].split()[:2] == ["1", "4001"] and printed[2].split()[:2] == ["2", "11"]
    csv = pd.read_csv(args.export_csv)
    assert csv["line"].iloc[0] == 4001 and csv["explorer_url"].iloc[0].startswith("/?model=m")


def test_results_schema_and_scoring_stage_fields_derive_from_one_dataclass():
    import dataclasses
    from interp.triage.ray_engine import SCORED_FIELDS
    from interp.triage.schema import Scored, score_columns
    plain = [f.name for f in dataclasses.fields(Scored) if f.name not in ("notes", "head_concentration")]
    assert [n for n, _ in score_columns()] == plain
    schema = schema_for((), 6)
    for name, typ in score_columns():
        assert schema.field(name).type == typ
    ray_names = [n for n, _ in SCORED_FIELDS]
    assert all(n in ray_names for n in plain) and "head_concentration" in ray_names
