"""The triage score registry and its optional noise-sensitivity score: the score equals a direct computation of
``noise_sensitivity`` on the line's text, does not depend on the batch, is ranked by the query layer like the
other scores, leaves the results schema as it was when off, gives the same numbers in the Ray scoring stage,
one-line CLI errors for bad flags, and the page's checkbox (AppTest)."""
from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine_fixtures import WORDS
from interp.triage import ColumnMapping, ResultsQuery, ScoreSettings, registry, run_triage
from interp.triage.store import RANKINGS, RESERVED, schema_for
from triage_logs import folder, lm  # noqa: F401  (shared fixtures)

NOISE = ("noise_flip_rate", "noise_kl", "noise_cosine", "noise_changed_share")
BASE = ScoreSettings(k=4, seeds=2, seed=5)
ON = registry.with_score(BASE, "noise", perturbation="typo", rate=0.3, noise_seeds=2)
MAPPING = ColumnMapping("text", id="id")


def write_log(path, n=14, seed=2):
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = [rng.choice(WORDS[:70]) for _ in range(rng.randint(4, 9))]
        if i % 3:
            words[rng.randrange(len(words))] = "[MASK]"
        lines.append(json.dumps({"id": f"q{i}", "text": " ".join(words)}))
    lines.append(lines[1])                                   # a duplicate: scored once, scores copied
    lines.append("{broken")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def results(out) -> pd.DataFrame:
    return pq.read_table(out / "results.parquet").to_pandas()


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory, folder, lm):
    tmp = tmp_path_factory.mktemp("noise")
    log = write_log(tmp / "log.jsonl")
    run_triage(log, tmp / "b4", folder, MAPPING, ON, lm=lm, batch_size=4)
    run_triage(log, tmp / "b1", folder, MAPPING, ON, lm=lm, batch_size=1)
    return tmp, log


def test_noise_score_equals_a_direct_noise_sensitivity_of_the_line(noisy_run, lm):
    from interp.noise.probe import noise_sensitivity
    tmp, _ = noisy_run
    df = results(tmp / "b4")
    ok = df[df["status"] == "analysed"]
    assert len(ok) == 15 and (df["status"] == "skipped").sum() == 1
    flips = []
    for _, row in ok.iterrows():
        want = noise_sensitivity(lm, row["text"], "typo", 0.3, 2, seed=5)
        assert row["noise_flip_rate"] == pytest.approx(want["noise_flip_rate"], rel=1e-5, abs=1e-9)
        assert row["noise_kl"] == pytest.approx(want["noise_kl"], rel=1e-5, abs=1e-9)
        assert row["noise_changed_share"] == pytest.approx(want["changed_text_share"], rel=1e-5, abs=1e-9)
        assert np.isnan(row["noise_cosine"])                  # an MLM model: flip rate and KL, not cosine
        flips.append(row["noise_flip_rate"])
    assert len(set(flips)) > 1                                # the score separates inputs on this log
    assert df["noise_flip_rate"][df["status"] != "analysed"].isna().all()


def test_noise_score_is_independent_of_the_batch_and_leaves_the_core_scores_unchanged(noisy_run, folder, lm):
    tmp, log = noisy_run
    a, b = results(tmp / "b4").set_index("line"), results(tmp / "b1").set_index("line")
    for c in NOISE:
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        assert np.array_equal(np.isnan(x), np.isnan(y)) and np.array_equal(x[~np.isnan(x)], y[~np.isnan(y)]), c
    plain = run_triage(log, tmp / "plain", folder, MAPPING, BASE, lm=lm, batch_size=4)
    c = results(tmp / "plain").set_index("line")
    assert plain["analysed"] == 15
    for col in ("suspicion", "confidence", "margin", "flip_rate", "kl", "concentration_z", "rank"):
        x, y = a[col].to_numpy(float), c[col].to_numpy(float)
        assert np.allclose(x, y, rtol=1e-5, atol=1e-6, equal_nan=True), col


def test_off_by_default_the_results_have_exactly_the_core_columns(noisy_run, folder, lm):
    tmp, _ = noisy_run
    assert ScoreSettings().extras == () and registry.enabled(ScoreSettings()) == []
    cols = list(results(tmp / "plain").columns)
    assert not any(c in cols for c in NOISE)
    assert set(NOISE) <= set(results(tmp / "b4").columns)
    assert list(schema_for((), 6)) == [f for f in schema_for((), 6, registry.enabled_columns(BASE))]
    assert [f.name for f in schema_for((), 6, registry.enabled_columns(ON))
            if f.name.startswith("noise_")] == list(NOISE)
    assert set(NOISE) <= RESERVED                             # a slice field may not take a score's name
    q = ResultsQuery(tmp / "plain")
    try:
        assert "noise" not in q.rankings() and list(q.rankings()) == list(RANKINGS)
        with pytest.raises(ValueError, match="needs a score this run did not compute"):
            q.ranked("noise")
    finally:
        q.close()


def test_noise_ranking_is_the_query_layers_over_the_whole_run(noisy_run):
    tmp, _ = noisy_run
    from interp.triage.store import export_ranked_csv
    q = ResultsQuery(tmp / "b4")
    try:
        assert "noise" in q.rankings()
        got = q.ranked("noise", None, group=False)
    finally:
        q.close()
    df = results(tmp / "b4")
    df = df[df["status"] == "analysed"].sort_values(["noise_flip_rate", "line"], ascending=[False, True])
    assert list(got["line"]) == list(df["line"])
    import io
    csv = pd.read_csv(io.BytesIO(export_ranked_csv(tmp / "b4", "noise", group=False)))
    assert list(csv["line"]) == list(df["line"]) and "noise_flip_rate" in csv.columns


def test_resumed_identity_is_unchanged_when_no_optional_score_is_on():
    ident = registry.identity(BASE)
    assert "extras" not in ident and registry.identity(ON)["extras"]
    back = registry.settings_from_dict(json.loads(json.dumps(registry.identity(ON))))
    assert back == ON


def test_ray_scoring_stage_gives_the_same_noise_numbers(noisy_run, folder):
    """The Ray actor's callable (run in-process: no cluster needed) rebuilds the settings from their dict form
    and returns the noise columns, equal to the local engine's."""
    from dataclasses import asdict
    from interp.triage.ray_engine import RayScorer, scored_fields
    tmp, _ = noisy_run
    df = results(tmp / "b4")
    ok = df[df["status"] == "analysed"].head(5)
    scorer = RayScorer(folder, "cpu", asdict(ON), 4, None, 1)
    batch = pa.table({"record": pa.array(ok["record"].tolist(), pa.int64()), "text": ok["text"].tolist(),
                      "_tokens": pa.array(ok["n_tokens"].tolist(), pa.int32()),
                      "prediction_json": ["null"] * len(ok), "label_json": ["null"] * len(ok),
                      "notes": [None] * len(ok), "preview": [None] * len(ok)})
    out = scorer(batch).to_pandas().set_index("record")
    assert [n for n, _ in scored_fields(ON)][-1] == "head_concentration"
    for c in NOISE:
        assert c in out.columns
        x = ok.set_index("record")[c].to_numpy(float)
        y = out.loc[ok["record"], c].to_numpy(float)
        assert np.allclose(x, y, rtol=1e-5, atol=1e-9, equal_nan=True), c


def test_adding_a_score_is_one_registered_function(tmp_path, folder, lm):
    """A toy score registered here enters the schema, the scoring stage and the rankings with nothing else."""
    from interp.triage import registry as R

    def compute(lm_, texts, settings, options):
        return [{"toy_chars": float(len(t))} for t in texts]
    toy = R.register(R.TriageScore("toy", (("toy_chars", "float"),), (("toy", "toy_chars", "DESC"),), compute))
    try:
        log = write_log(tmp_path / "log.jsonl", n=5)
        s = R.with_score(BASE, "toy")
        run_triage(log, tmp_path / "toy", folder, MAPPING, s, lm=lm, batch_size=4)
        df = results(tmp_path / "toy")
        ok = df[df["status"] == "analysed"]
        assert (ok["toy_chars"] == ok["text"].str.len()).all()
        q = ResultsQuery(tmp_path / "toy")
        try:
            assert list(q.ranked("toy", 3, group=False)["line"]) == list(
                ok.sort_values(["toy_chars", "line"], ascending=[False, True])["line"].head(3))
        finally:
            q.close()
    finally:
        R._REGISTRY.pop(toy.name, None)


def one_line_error(capsys, argv, needle):
    from interp.__main__ import main
    try:
        rc = main(argv)
    except SystemExit as stop:        # argparse's own checks (types) exit; ours return 2
        rc = stop.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


@pytest.mark.parametrize("extra,needle", [
    (["--noise-rate", "0.2"], "--noise-rate only apply with --noise-score"),
    (["--noise-score", "--noise-perturbation", "bogus"], "unknown perturbation 'bogus'"),
    (["--noise-score", "--noise-rate", "1.5"], "noise rate must be above 0 and at most 1"),
    (["--noise-score", "--noise-rate", "abc"], "noise rate must be a number"),
    (["--noise-score", "--noise-seeds", "0"], "noise seeds must be a positive integer"),
])
def test_cli_bad_noise_flags_get_one_line(capsys, tmp_path, folder, extra, needle):
    log = write_log(tmp_path / "log.jsonl", n=3)
    one_line_error(capsys, ["triage", str(log), "--model", folder, "--text-column", "text", "--out",
                            str(tmp_path / "out"), "--quiet", *extra], needle)


def test_cli_noise_score_ranks_and_exports(capsys, tmp_path, folder):
    from interp.__main__ import main
    log = write_log(tmp_path / "log.jsonl", n=6)
    csv = tmp_path / "r.csv"
    rc = main(["triage", str(log), "--model", folder, "--text-column", "text", "--out", str(tmp_path / "out"),
               "--quiet", "--k", "4", "--seeds", "2", "--seed", "5", "--noise-score", "--noise-rate", "0.3",
               "--noise-seeds", "2", "--rank-by", "noise", "--export-csv", str(csv)])
    assert rc == 0
    got = pd.read_csv(csv)
    q = ResultsQuery(tmp_path / "out")
    try:
        want = q.ranked("noise", None)
    finally:
        q.close()
    assert list(got["line"]) == list(want["line"]) and got["noise_flip_rate"].notna().all()


def test_page_checkbox_switches_the_noise_score_on_and_states_its_cost(tmp_path, monkeypatch, folder):
    from streamlit.testing.v1 import AppTest

    import app_support as ui
    from pathlib import Path
    monkeypatch.setenv("EXPERTLENS_CACHE", str(tmp_path / "cache"))
    log = write_log(tmp_path / "log.jsonl", n=6)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages/3_Triage.py"), default_timeout=180)
    at.run()
    at.radio(key="tri_source").set_value("path").run()
    at.text_input(key="tri_path").input(str(log)).run()
    at.selectbox(key="tri_model").set_value(ui.LOCAL).run()
    at.text_input(key="tri_model_path").input(folder).run()
    at.number_input(key="tri_seeds").set_value(2).run()
    at.number_input(key="tri_k").set_value(4).run()
    box = at.checkbox(key="tri_noise")
    assert box.value is False and "extra forward passes" in box.help
    assert not [c for c in at.caption if "extra dense forward-pass rows" in c.value]
    box.check().run()
    cost = [c.value for c in at.caption if "extra dense forward-pass rows" in c.value]
    assert len(cost) == 1 and "up to 8 extra" in cost[0] and "the 3 the scores" in cost[0]
    assert "3.7×" in cost[0]                                 # (3 + 8) / 3 with S = 2
    at.number_input(key="tri_noise_rate").set_value(0.3).run()
    at.number_input(key="tri_noise_seeds").set_value(2).run()
    at.button(key="tri_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert "noise sensitivity (flip rate under noise)" in at.selectbox(key="tri_order").options
    at.selectbox(key="tri_order").set_value("noise").run()
    from interp.i18n import EN
    header = {c: EN["triage.col." + c] for c in ("explorer", "noise_flip_rate", "noise_cosine")}
    table = [d.value for d in at.dataframe if header["explorer"] in d.value.columns][0]
    assert header["noise_flip_rate"] in table.columns and header["noise_cosine"] not in table.columns  # all null
    vals = table[header["noise_flip_rate"]].to_numpy(float)
    assert np.all(np.diff(vals) <= 1e-12)                    # ranked by the noise score, most sensitive first


def test_results_are_built_the_same_without_duckdb(noisy_run, tmp_path):
    """The benchmark's finalisation runs on a machine without DuckDB: the in-memory build writes the same
    results.parquet (rows, order, columns, types, rank and duplicate bookkeeping) and the same counts."""
    import shutil
    from interp.triage.store import RunFolder, build_results, build_results_in_memory
    src, _ = noisy_run
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(src / "b4", a)
    shutil.copytree(src / "b4", b)
    ca, cb = build_results(RunFolder(a)), build_results_in_memory(RunFolder(b))
    assert ca == cb and cb["duplicate_texts"] == {"texts": 1, "lines": 2} and cb["skipped"] == 1
    ta, tb = pq.read_table(a / "results.parquet"), pq.read_table(b / "results.parquet")
    assert ta.schema.names == tb.schema.names
    assert [f.type for f in ta.schema] == [f.type for f in tb.schema]
    pd.testing.assert_frame_equal(ta.to_pandas(), tb.to_pandas())


def test_a_run_finishes_without_duckdb_installed(tmp_path, folder, lm, monkeypatch):
    """What benchmarks/bench_triage.py runs (run_triage, local engine) needs no DuckDB."""
    import sys
    log = write_log(tmp_path / "log.jsonl", n=5)
    monkeypatch.setitem(sys.modules, "duckdb", None)          # import duckdb now raises ImportError
    s = run_triage(log, tmp_path / "out", folder, MAPPING, BASE, lm=lm, batch_size=4)
    assert s["analysed"] == 6 and s["skipped"] == 1 and s["lines_total"] == 7
    df = results(tmp_path / "out")
    assert sorted(df["rank"].dropna().astype(int)) == list(range(1, 7))


def test_memory_held_by_a_run_does_not_grow_with_the_log(tmp_path, folder, lm, monkeypatch):
    """Python memory retained while streaming (row buffers, the deduplication memory, the norm sample) is
    bounded: the traced peak at 2N lines stays within 15% (+1 MB) of the peak at N lines. Small caches make the
    bound visible on a small log (the buffer flushes every 64 lines; 64 inputs remembered for deduplication).
    benchmarks/bench_triage_memory.py measures whole-process memory on large logs, both engines."""
    import gc
    import tracemalloc
    from interp.triage.demo import generate_log
    from interp.triage.runner import Triage
    monkeypatch.setattr(Triage, "RECENT", 64)
    path = generate_log(tmp_path / "big.jsonl", 640, seed=1)
    settings = ScoreSettings(k=2, seeds=1, seed=0)
    peaks = []
    for n in (320, 640):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        s = run_triage(path, tmp_path / f"run{n}", folder, MAPPING, settings, lm=lm, batch_size=16, limit=n,
                       flush_rows=64)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        assert s["lines_total"] == n
        peaks.append(peak / 2**20)
    assert peaks[1] <= 1.15 * peaks[0] + 1.0, peaks
