"""Triage runs end to end: accounting, no good line lost, batch-size independence, resume after a kill,
reporting of duplicates and encodings, limits, the command line, and DuckDB queries against pandas."""
from __future__ import annotations

import codecs
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_fixtures import WORDS, model_folder
from interp.loader import load_model
from interp.trace import clean_text
from interp.triage import ColumnMapping, MappingError, ResultsQuery, ScoreSettings, run_triage
from interp.triage.scores import SUSPICION_FORMULA

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ScoreSettings(k=4, seeds=2, seed=3)
SCORE_COLUMNS = ["confidence", "margin", "kl", "worst_tv", "eff_experts", "concentration_z", "suspicion"]


@pytest.fixture(scope="module")
def folder():
    return model_folder("bert", True, 0, initializer_range=0.3)


@pytest.fixture(scope="module")
def lm(folder):
    return load_model(str(folder))


def sentence(rng: random.Random, mask=True) -> str:
    words = [rng.choice(WORDS[:70]) for _ in range(rng.randint(2, 9))]
    if mask and rng.random() < 0.5:
        words[rng.randrange(len(words))] = "[MASK]"
    return " ".join(words)


def write_log(path: Path, n: int, seed: int = 0, extra: dict | None = None) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        r = {"id": f"r{i}", "ts": f"2025-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z", "text": sentence(rng),
             "region": rng.choice(["eu", "us", "apac"]), "prediction": rng.choice(WORDS[:30]),
             "label": rng.choice(WORDS[:30])}
        rows.append(r)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return rows


def results(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "results.parquet").to_pandas()


def assert_same_scores(a: pd.DataFrame, b: pd.DataFrame, tol: float = 1e-5) -> None:
    """Same lines, statuses and texts; scores equal to float32 noise; discrete ones exactly; ranks the same
    except between inputs whose suspicions are within ``tol`` (ties in float32)."""
    a, b = a.set_index("line"), b.set_index("line")
    assert list(a.index) == list(b.index)
    assert (a["status"] == b["status"]).all()
    assert (a["text"].fillna("") == b["text"].fillna("")).all()
    assert (a["flip_rate"].fillna(-1) == b["flip_rate"].fillna(-1)).all()
    for c in SCORE_COLUMNS:
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        assert np.array_equal(np.isnan(x), np.isnan(y)), c
        ok = ~np.isnan(x)
        assert np.allclose(x[ok], y[ok], rtol=tol, atol=tol), c
    ana = a[a["status"] == "analysed"]
    order = ana.sort_values("rank").index                     # a's ranking …
    sb = b.loc[order, "suspicion"].to_numpy(float)            # … must sort b's suspicions, up to ties
    assert np.all(np.diff(sb) <= tol)
    same = (ana["rank"] == b.loc[ana.index, "rank"])
    if not same.all():
        moved = ana.index[~same]
        s = ana["suspicion"]
        for line in moved:                                     # every rank change is a float tie
            near = (s - s[line]).abs() <= tol
            assert near.sum() > 1, f"line {line} changed rank without a tie"


# --------------------------------------------------------------------------------------- accounting ---

GOOD = st.builds(lambda seed: sentence(random.Random(seed)), st.integers(0, 10 ** 6))
BAD = st.sampled_from(["{broken", "[1]", "", "   ", json.dumps({"text": ""}), json.dumps({"text": None}),
                       json.dumps({"text": 42}), json.dumps({"other": "no text"}), json.dumps({"text": "\x01\x02"}),
                       "\x00\x00"])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.tuples(st.just(True), GOOD), st.tuples(st.just(False), BAD)), min_size=1, max_size=14)
       .filter(lambda items: any(good for good, _ in items)),    # else the text column is absent: a mapping error
       st.integers(1, 5))
def test_fuzzed_log_accounting_adds_up_and_no_good_line_is_lost(tmp_path_factory, lm, folder, items, batch):
    tmp = tmp_path_factory.mktemp("fuzzrun")
    lines = [json.dumps({"text": v, "id": i}) if good else v for i, (good, v) in enumerate(items)]
    log = tmp / "log.jsonl"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    s = run_triage(log, tmp / "out", str(folder), ColumnMapping("text", id="id"), SETTINGS, lm=lm, batch_size=batch)
    df = results(tmp / "out")
    assert s["lines_total"] == len(items) == len(df)
    assert s["analysed"] + s["skipped"] + s["failed"] == s["lines_total"]
    assert sorted(df["line"]) == list(range(1, len(items) + 1))
    assert sum(s["reasons"].values()) == s["skipped"] + s["failed"]
    by_line = df.set_index("line")
    for i, (good, v) in enumerate(items):
        row = by_line.loc[i + 1]
        if good:
            assert row["status"] == "analysed", row["reason"]
            assert row["text"] == clean_text(v)[0]
            assert np.isfinite(row["suspicion"]) and row["rank"] >= 1
        else:
            assert row["status"] == "skipped" and row["reason"] and row["reason_code"]
    assert sorted(by_line.loc[by_line.status == "analysed", "rank"]) == list(range(1, s["analysed"] + 1))


def test_same_seed_same_ranks_for_batch_sizes_1_and_8_and_two_workers(tmp_path, lm, folder):
    log = tmp_path / "log.jsonl"
    write_log(log, 40, seed=4)
    mp = ColumnMapping("text", id="id", prediction="prediction", label="label")
    run_triage(log, tmp_path / "b1", str(folder), mp, SETTINGS, lm=lm, batch_size=1)
    run_triage(log, tmp_path / "b8", str(folder), mp, SETTINGS, lm=lm, batch_size=8, workers=2, flush_rows=8)
    assert_same_scores(results(tmp_path / "b1"), results(tmp_path / "b8"))


def test_scores_do_not_depend_on_file_position(tmp_path, lm, folder):
    """Content-hash seeds: the same text gets the same instability wherever it sits (and duplicates agree)."""
    log = tmp_path / "log.jsonl"
    rows = write_log(log, 24, seed=5)
    shuffled = list(reversed(rows)) + rows[:3]
    log2 = tmp_path / "log2.jsonl"
    log2.write_text("".join(json.dumps(r) + "\n" for r in shuffled))
    mp = ColumnMapping("text", id="id")
    run_triage(log, tmp_path / "a", str(folder), mp, SETTINGS, lm=lm, batch_size=4)
    s2 = run_triage(log2, tmp_path / "b", str(folder), mp, SETTINGS, lm=lm, batch_size=3)
    a, b = results(tmp_path / "a").set_index("id"), results(tmp_path / "b")
    assert s2["duplicate_ids"] == {"ids": 3, "lines": 6}
    for _, row in b.iterrows():
        ref = a.loc[row["id"]]
        assert row["flip_rate"] == ref["flip_rate"]
        for c in ("kl", "confidence", "worst_tv"):
            assert row[c] == pytest.approx(ref[c], rel=1e-5, abs=1e-6)
    dup = b[b["id"] == rows[0]["id"]]
    assert len(dup) == 2 and set(dup["first_line_of_id"]) == {int(dup["line"].min())}
    assert (dup["text_count"] == 2).all()


# -------------------------------------------------------------------------------------------- resume ---

def cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "interp", "triage", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, lm, folder):
    log = tmp_path / "log.jsonl"
    write_log(log, 60, seed=6)
    with open(log, "a") as f:
        f.write("{bad\n\n")
    out = tmp_path / "killed"
    args = [log, "--model", folder, "--text-column", "text", "--id-column", "id", "--k", 4, "--seeds", 2,
            "--seed", 3, "--batch-size", 2, "--flush-rows", 4, "--out", out]
    proc = cli(*args)
    parts = out / "parts"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if parts.exists() and len(list(parts.glob("part-*.parquet"))) >= 2:
            break
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results.parquet").exists()
    # only committed parts count; a kill can leave a half-written part-*.parquet.tmp, which the resume discards
    done_before = sum(pq.read_metadata(p).num_rows for p in parts.glob("part-*.parquet"))
    assert 0 < done_before < 62
    proc = cli(*args)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_line_count"] == done_before
    assert summary["complete"] and summary["lines_total"] == 62
    assert summary["lines_this_run"] == 62 - done_before
    ref = tmp_path / "ref"
    run_triage(log, ref, str(folder), ColumnMapping("text", id="id"), SETTINGS, lm=lm, batch_size=2)
    assert_same_scores(results(out), results(ref))


def test_resume_refuses_other_settings_and_restart_discards(tmp_path, lm, folder):
    log = tmp_path / "log.jsonl"
    write_log(log, 12)
    mp = ColumnMapping("text")
    s = run_triage(log, tmp_path / "o", str(folder), mp, SETTINGS, lm=lm, limit=5)
    assert s["lines_total"] == 5 and s["stopped"] == "limit" and not s["complete"]
    with pytest.raises(MappingError, match="other settings.*settings"):
        run_triage(log, tmp_path / "o", str(folder), mp, ScoreSettings(k=5, seeds=2, seed=3), lm=lm)
    s = run_triage(log, tmp_path / "o", str(folder), mp, SETTINGS, lm=lm)
    assert s["complete"] and s["lines_total"] == 12 and s["resumed_from_line_count"] == 5
    s = run_triage(log, tmp_path / "o", str(folder), mp, ScoreSettings(k=5, seeds=2), lm=lm, restart=True,
                   time_budget=0)
    assert s["lines_total"] == 0 and s["stopped"] == "time budget"
    s = run_triage(log, tmp_path / "o", str(folder), mp, ScoreSettings(k=5, seeds=2), lm=lm, limit=12)
    assert s["complete"] and s["stopped"] == "end of file" and s["lines_total"] == 12
    # a folder another living process is writing to is refused; a lock left by a dead process is taken over
    lock = tmp_path / "o" / "run.lock"
    lock.write_text(str(os.getppid()))
    with pytest.raises(ValueError, match="another run"):
        run_triage(log, tmp_path / "o", str(folder), mp, ScoreSettings(k=5, seeds=2), lm=lm)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(dead.stdout.strip())
    s = run_triage(log, tmp_path / "o", str(folder), mp, ScoreSettings(k=5, seeds=2), lm=lm)
    assert s["complete"] and not lock.exists()


# ---------------------------------------------------------------------------------------- reporting ---

def test_encodings_nuls_long_lines_and_duplicates_are_reported(tmp_path, lm, folder):
    lines = [
        codecs.BOM_UTF8 + json.dumps({"id": "a", "text": "the cat sat"}).encode(),
        json.dumps({"id": "b", "text": "the dog ran"}).encode(),
        b'{"id": "c", "text": "caf\xe9 by the river"}',
        b'{"id": "a", "text": "nul\x00 inside"}',
        json.dumps({"id": "d", "text": "x " * 400}).encode(),
        json.dumps({"id": "e", "text": "the king and the queen " * 20}).encode(),     # > 64 tokens, < 600 B
    ]
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\r\n".join(lines) + b"\r\n")
    folder_lm = load_model(str(model_folder("bert", True, 0, initializer_range=0.3, max_position_embeddings=64)))
    s = run_triage(log, tmp_path / "o", str(folder), ColumnMapping("text", id="id"), SETTINGS, lm=folder_lm,
                   max_line_bytes=600)
    df = results(tmp_path / "o").set_index("line")
    assert s["lines_total"] == 6 and s["analysed"] == 5 and s["skipped"] == 1 and s["failed"] == 0
    assert s["reasons"] == {"too-long": 1}
    assert df.loc[5, "reason_code"] == "too-long"
    assert s["duplicate_ids"] == {"ids": 1, "lines": 2}
    assert df.loc[4, "first_line_of_id"] == 1 and df.loc[1, "id_count"] == 2
    assert s["lines_with_replaced_bytes"] == 1 and "U+FFFD" in df.loc[3, "notes"]
    assert s["lines_with_nul_bytes"] == 1 and "NUL" in df.loc[4, "notes"]
    assert s["truncated"] == 1 and bool(df.loc[6, "truncated"]) and "cut" in df.loc[6, "notes"]
    assert any("byte-order mark" in n for n in s["file_notes"])
    assert df.loc[1, "text"] == "the cat sat"
    s2 = run_triage(log, tmp_path / "o2", str(folder), ColumnMapping("text", id="id"), SETTINGS, lm=folder_lm,
                    max_line_bytes=600, on_long="skip")
    assert s2["reasons"] == {"too-long": 1, "too-many-tokens": 1}


def test_a_failing_input_is_isolated(tmp_path, lm, folder, monkeypatch):
    from interp.triage import scores as S
    real = S.score_batch

    def flaky(lm_, texts, *a, **kw):
        if any("poison" in t for t in texts):
            raise RuntimeError("boom on poison")
        return real(lm_, texts, *a, **kw)
    monkeypatch.setattr(S, "score_batch", flaky)
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["the cat", "poison pill", "the dog", "a sea"]))
    s = run_triage(log, tmp_path / "o", str(folder), ColumnMapping("text"), SETTINGS, lm=lm, batch_size=4)
    df = results(tmp_path / "o").set_index("line")
    assert (s["analysed"], s["failed"]) == (3, 1)
    assert df.loc[2, "status"] == "failed" and df.loc[2, "reason"] == "RuntimeError: boom on poison"
    assert s["reasons"] == {"error": 1}


def test_csv_and_parquet_logs_and_queries_match_pandas(tmp_path, lm, folder):
    rows = write_log(tmp_path / "log.jsonl", 30, seed=9)
    df_in = pd.DataFrame(rows)
    df_in.to_csv(tmp_path / "log.csv", index=False)
    df_in.to_parquet(tmp_path / "log.parquet", index=False)
    mp = ColumnMapping("text", id="id", timestamp="ts", prediction="prediction", label="label", slices=("region",))
    outs = {}
    for name in ("log.jsonl", "log.csv", "log.parquet"):
        outs[name] = tmp_path / ("o_" + name.replace(".", "_"))
        s = run_triage(tmp_path / name, outs[name], str(folder), mp, SETTINGS, lm=lm, batch_size=8)
        assert s["analysed"] == 30 and s["lines_total"] == 30
    a = results(outs["log.jsonl"])
    for name in ("log.csv", "log.parquet"):
        b = results(outs[name])
        if name == "log.csv":
            b["line"] = b["line"] - 1                       # the CSV header is line 1
        assert_same_scores(a, b)
    df = a
    # logged prediction vs label, from the log itself
    want = [float(p == l) for p, l in zip(df_in["prediction"], df_in["label"])]
    assert df.sort_values("line")["logged_correct"].tolist() == want
    assert df["time"].notna().all()
    q = ResultsQuery(outs["log.jsonl"])
    top = q.top(5, filters={"region": ["eu", "us"]})
    sub = df[(df.status == "analysed") & df.region.isin(["eu", "us"])].sort_values(["suspicion", "line"],
                                                                                    ascending=[False, True])
    assert top["line"].tolist() == sub["line"].head(5).tolist()
    lo, hi = pd.Timestamp("2025-01-05", tz="UTC"), pd.Timestamp("2025-01-12", tz="UTC")
    assert q.count(time_range=(lo, hi)) == int(((df.time >= lo) & (df.time <= hi) & (df.status == "analysed")).sum())
    sl = q.by_slice("region").set_index("value")
    for region, g in df[df.status == "analysed"].groupby("region"):
        assert sl.loc[region, "inputs"] == len(g)
        assert sl.loc[region, "mean_suspicion"] == pytest.approx(g["suspicion"].mean(), rel=1e-9)
    edges, counts = q.histogram(bins=10)
    ref, _ = np.histogram(df.loc[df.status == "analysed", "suspicion"], bins=edges)
    assert counts.sum() == 30 and np.abs(counts - ref).sum() <= 2   # bin-edge rounding only
    assert q.not_analysed().empty
    assert dict(q.values("region")) == df.region.value_counts().to_dict()
    q.close()


# --------------------------------------------------------------------------------------------- CLI ---

def test_cli_outputs_and_exit_codes(tmp_path, folder):
    log = tmp_path / "log.jsonl"
    write_log(log, 6)
    with open(log, "a") as f:
        f.write("not json\n")
    out = tmp_path / "o"
    p = cli(log, "--model", folder, "--text-column", "text", "--slice-column", "region", "--seeds", 2, "--k", 4,
            "--out", out)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert "tokens/s" in err and "7 lines: 6 analysed, 1 skipped, 0 failed" in err
    summary = json.loads((out / "summary.json").read_text())
    for key in ("lines_total", "analysed", "skipped", "failed", "seconds", "inputs_per_second"):
        assert key in summary
    assert summary["suspicion_formula"] == SUSPICION_FORMULA
    cols = pq.read_schema(out / "results.parquet").names
    for c in ("line", "status", "reason", "suspicion", "rank", "flip_rate", "kl", "confidence", "margin",
              "worst_layer", "worst_head", "concentration_z", "region"):
        assert c in cols


def run_main(argv, capsys):
    """The command line in-process (the same ``main`` as ``python -m interp``): (exit code, stderr)."""
    from interp.__main__ import main
    try:
        code = main(["triage", *map(str, argv)])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def test_cli_errors_are_one_line_and_exit_2(tmp_path, folder, capsys):
    log = tmp_path / "log.jsonl"
    write_log(log, 3)
    for bad, msg in ((["--text-column", "txt"], "text column 'txt' is not in"),
                     (["--text-column", "text", "--k", "0"], "k must be a positive integer"),
                     (["--text-column", "text", "--scheme", "Z"], "invalid choice"),
                     (["--text-column", "text", "--mask-policy", "mask-each", "--model", "minilm"], "MLM head")):
        argv = [log, "--model", folder, *bad, "--out", tmp_path / "bad"]
        code, err = run_main(argv, capsys)
        assert code == 2 and msg in err, err
        assert len(err.strip().splitlines()) == 1
    code, err = run_main([tmp_path / "missing.jsonl", "--model", folder, "--text-column", "text", "--out",
                          tmp_path / "bad"], capsys)
    assert code == 2 and err.strip() == f"error: log file not found: {tmp_path / 'missing.jsonl'}"
    code, err = run_main([log, "--model", "no-such-model", "--text-column", "text", "--out", tmp_path / "bad"],
                         capsys)
    assert code == 2 and err.startswith("error: unknown model 'no-such-model'")
