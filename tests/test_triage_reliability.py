"""Triage defects of the reliability issue, each pinned by a test that failed before its fix: every export of
the page downloads, long lines are cut before any expensive work with memory bounded and progress in tokens,
identical inputs are grouped and unreadable ones get their own status, and column mappings are checked against
the data (empty files and renamed images get specific messages)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from engine_fixtures import WORDS
from interp.triage import ColumnMapping, LogError, ResultsQuery, ScoreSettings, inspect_log, run_triage
from triage_logs import folder, lm, long_lines_log  # noqa: F401  (folder, lm: shared fixtures)

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ScoreSettings(k=4, seeds=2, seed=1)


# --- (3) every export button of the page produces its file --------------------------------------------------

def test_every_export_button_on_the_triage_page_downloads(tmp_path, monkeypatch, folder):
    """Downloads are fetched after the script run ends, as a browser does: a deferred (callable) export is
    executed then, so it must not use anything the page has closed (the ranked CSV used the page's DuckDB
    connection: 'Connection already closed')."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.media_file_manager import MediaFileManager
    import app_support as ui
    managers = []

    class Recording(MediaFileManager):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            managers.append(self)
    monkeypatch.setattr(app_test, "MediaFileManager", Recording)
    monkeypatch.setenv("EXPERTLENS_CACHE", str(tmp_path / "cache"))
    log = tmp_path / "prod.jsonl"
    rows = [{"id": f"q{i}", "text": f"the {WORDS[30 + i % 9]} [MASK] near the river"} for i in range(14)]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n{bad\n", encoding="utf-8")
    at = app_test.AppTest.from_file(str(ROOT / "pages/3_Triage.py"), default_timeout=180)
    at.run()
    at.radio(key="tri_source").set_value("path").run()
    at.text_input(key="tri_path").input(str(log)).run()
    at.selectbox(key="tri_model").set_value(ui.LOCAL).run()
    at.text_input(key="tri_model_path").input(folder).run()
    at.number_input(key="tri_seeds").set_value(2).run()
    at.button(key="tri_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    mgr = managers[-1]
    buttons = at.get("download_button")
    assert len(buttons) >= 4                     # ranked CSV, skipped lines CSV, and every figure's HTML
    got = {}
    for b in buttons:
        proto = b.proto
        if proto.HasField("deferred_file_id"):
            url = mgr.execute_deferred(proto.deferred_file_id)
        else:
            url = proto.url
        file_id = url.rsplit("/", 1)[-1].split(".")[0]
        data = mgr._storage.get_file(file_id).content
        assert data, proto.label
        got[proto.label] = data
    ranked = pd.read_csv(io.BytesIO(got["Ranked table (CSV)"]))
    res = pq.read_table(Path(at.session_state["_tri_run"]["out"]) / "results.parquet").to_pandas()
    an = res[res.status == "analysed"]
    # grouped: one row per distinct text, the copies counted, in suspicion order
    assert len(ranked) == an["key"].nunique() == 9
    assert ranked["copies"].sum() == len(an) == 14
    assert list(ranked["suspicion"]) == sorted(ranked["suspicion"], reverse=True)
    assert ranked["explorer_url"].str.startswith("/?").all()
    bad = pd.read_csv(io.BytesIO(next(v for k, v in got.items() if k.startswith("Skipped"))))
    assert list(bad["line"]) == [15] and list(bad["reason_code"]) == ["malformed-json"]
    for label, data in got.items():
        if label.endswith("(HTML)") or b"<html" in data[:200].lower():
            assert b"plotly" in data.lower()


# --- (5) long lines: cut before the expensive work, bounded memory, progress in tokens ----------------------

MEMORY_SCRIPT = r"""
import json, sys, threading, time
from pathlib import Path
sys.path.insert(0, "tests")
from engine_fixtures import model_folder
from triage_logs import long_lines_log
from interp.loader import load_model
from interp.triage import ColumnMapping, ScoreSettings, run_triage
folder = str(model_folder("bert", True, 0, initializer_range=0.3, num_attention_heads=8, hidden_size=64,
                          max_position_embeddings=512))
# Resident memory sampled from /proc every 10 ms. (ru_maxrss is no use here: a child started by fork keeps the
# parent's high-water mark, so under a long pytest session it reports the test runner's memory.)
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
peak_seen = [0.0]
done = threading.Event()
def sample():
    while not done.is_set():
        peak_seen[0] = max(peak_seen[0], rss_mb())
        time.sleep(0.01)
lm = load_model(folder)
log = long_lines_log(Path(sys.argv[1]) / "long.jsonl")
base = rss_mb()
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
s = run_triage(log, Path(sys.argv[1]) / "out", folder, ColumnMapping("text"), ScoreSettings(k=8, seeds=2), lm=lm,
               batch_size=16)
done.set()
sampler.join()
peak = max(peak_seen[0], rss_mb())
print(json.dumps({"base_mb": base, "peak_mb": peak, "summary": {k: s[k] for k in
      ("lines_total", "analysed", "skipped", "unreadable", "failed", "truncated")}}))
"""


def test_300_line_log_with_12_long_lines_stays_in_bounded_memory(tmp_path):
    """The log of the issue (300 lines, 12 of ~3,000 characters, a few malformed and Japanese lines) on a model
    that reads 512 tokens with 8 heads: before the fix its 12 long inputs were scored in one batch and the
    process peaked at ~3.8 GB (S = 4); now batches are bounded by rows × tokens², the peak stays within a few
    hundred MB of the loaded model (bound: 1.5 GB in all, 500 MB above the baseline)."""
    p = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1",
                                                     "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    s = out["summary"]
    assert s["lines_total"] == 300 and s["analysed"] + s["skipped"] + s["unreadable"] + s["failed"] == 300
    assert s["truncated"] == 12 and s["failed"] == 0 and s["unreadable"] == 6
    assert out["peak_mb"] < 1500, out
    assert out["peak_mb"] - out["base_mb"] < 500, out


def test_long_text_is_cut_to_what_the_model_reads_before_scoring(tmp_path, lm, folder):
    from interp.trace import encode
    from interp.triage.runner import window_text
    text = " ".join(WORDS[(7 * i) % 70] for i in range(3000))
    cut, n_total, n_read, unk = window_text(lm, text)
    assert n_read == lm.max_tokens and n_total > lm.max_tokens and unk == 0
    assert len(cut) < len(text) // 2 and text.startswith(cut)
    # the model reads exactly the same tokens from the cut text as from the full one
    a, b = encode(lm, [text]), encode(lm, [cut])
    assert a.input_ids.tolist() == b.input_ids.tolist()
    short = "the cat sat"
    assert window_text(lm, short) == (short, 5, 5, 0)


def test_progress_is_measured_in_tokens_and_moves_inside_a_window(tmp_path, lm, folder):
    """One window holding short lines and a few long ones: progress reports come after every token-bounded
    batch, the fraction and the tokens scored grow inside the window (the ETA no longer freezes)."""
    log = tmp_path / "mixed.jsonl"
    long = " ".join(WORDS[(3 * i) % 70] for i in range(700))
    rows = [{"text": long if i % 8 == 0 else f"the {WORDS[40 + i % 20]} [MASK] here"} for i in range(32)]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    seen = []
    run_triage(log, tmp_path / "o", folder, ColumnMapping("text"), SETTINGS, lm=lm, batch_size=8,
               progress=seen.append, progress_every=0.0)
    inside = [p for p in seen if not p.done and p.tokens > 0]
    assert len(inside) >= 4                       # one report per batch, not per window of 32 lines
    toks = [p.tokens for p in inside]
    fracs = [p.fraction for p in inside]
    assert toks == sorted(toks) and fracs == sorted(fracs) and len(set(fracs)) >= 4
    res = pq.read_table(tmp_path / "o" / "results.parquet").to_pandas()
    assert seen[-1].tokens == int(res.drop_duplicates("key")["n_tokens"].sum())
    assert "tokens/s" in seen[-1].line()


# --- (6) duplicates grouped, unreadable inputs get their own status -----------------------------------------

def test_duplicates_are_scored_once_and_grouped_and_unreadable_inputs_have_their_own_status(tmp_path, lm, folder):
    log = tmp_path / "dups.jsonl"
    same = "the king saw a big [MASK] house"
    rows = []
    for i in range(30):
        if i % 5 == 0:
            rows.append({"id": f"d{i}", "text": same})
        elif i % 7 == 3:
            rows.append({"id": f"j{i}", "text": "注文した商品がまだ届きません"})
        else:
            rows.append({"id": f"u{i}", "text": f"the {WORDS[30 + i]} [MASK] near the sea"})
    log.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    s = run_triage(log, tmp_path / "o", folder, ColumnMapping("text", id="id"), SETTINGS, lm=lm, batch_size=4)
    assert s["unreadable"] == 3 and s["analysed"] == 27 and s["lines_total"] == 30
    res = pq.read_table(tmp_path / "o" / "results.parquet").to_pandas()
    un = res[res.status == "unreadable"]
    assert list(un["line"]) == [4, 18, 25]
    assert un["reason"].str.contains("unreadable by this model").all() and un["suspicion"].isna().all()
    assert un["rank"].isna().all()                         # never ranked as a failure
    # the copies of one text share its scores exactly (scored once), each keeps its own line and id
    d = res[res.text == same]
    assert len(d) == 6 and d["key"].nunique() == 1 and d["suspicion"].nunique() == 1
    assert list(d["id"]) == [f"d{i}" for i in range(0, 30, 5)]
    (tmp_path / "one.jsonl").write_text(json.dumps({"text": same}) + "\n")
    run_triage(tmp_path / "one.jsonl", tmp_path / "o1", folder, ColumnMapping("text"), SETTINGS, lm=lm)
    one = pq.read_table(tmp_path / "o1" / "results.parquet").to_pandas().iloc[0]
    assert d["kl"].iloc[0] == pytest.approx(one["kl"], rel=1e-5) and d["flip_rate"].iloc[0] == one["flip_rate"]
    q = ResultsQuery(tmp_path / "o")
    try:
        grouped = q.ranked("suspicion", None)
        assert len(grouped) == res[res.status == "analysed"]["key"].nunique() == 22
        row = grouped[grouped.text == same].iloc[0]
        assert row["copies"] == 6 and row["lines"] == "1, 6, 11, 16, 21, 26" and row["line"] == 1
        assert list(grouped["rank"]) == list(range(1, 23))
        flat = q.ranked("suspicion", None, group=False)
        assert len(flat) == 27 and flat["copies"].eq(1).all()
        assert "unreadable" in set(q.not_analysed()["status"])
    finally:
        q.close()


# --- (7) mappings checked against the data; empty files and renamed images -----------------------------------

def test_wrong_mappings_are_named(tmp_path):
    log = tmp_path / "m.jsonl"
    rows = [{"rid": f"req-{1000 + i}", "ts": f"2025-02-{1 + i:02d}T08:00:00Z", "msg": f"my order {i} is late again",
             "label": f"req-{2000 + i}"} for i in range(12)]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    info = inspect_log(log)
    good = ColumnMapping("msg", id="rid", timestamp="ts")
    assert good.check(info) == []
    dates_as_text = ColumnMapping("ts").check(info)
    assert len(dates_as_text) == 1 and "text column 'ts' looks like dates" in dates_as_text[0]
    text_as_time = ColumnMapping("msg", timestamp="msg").check(info)
    assert len(text_as_time) == 1 and "timestamp column 'msg' does not hold times" in text_as_time[0]
    assert "0 of 12" in text_as_time[0]
    ids_as_label = ColumnMapping("msg", label="label").check(info)
    assert len(ids_as_label) == 1 and "label column 'label' looks like identifiers" in ids_as_label[0]
    ids_as_text = ColumnMapping("rid").check(info)
    assert "looks like identifiers" in ids_as_text[0]
    text_as_id = ColumnMapping("msg", id="msg").check(info)
    assert "id column 'msg' looks like free text" in text_as_id[0]


def test_empty_file_and_png_renamed_csv_get_specific_messages(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(LogError, match=r"empty.csv is empty \(0 bytes\)"):
        inspect_log(empty)
    png = tmp_path / "chart.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(LogError, match="not a text log: its bytes are those of a PNG image"):
        inspect_log(png)
    zipped = tmp_path / "log.jsonl"
    zipped.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 40)
    with pytest.raises(LogError, match="gzip archive"):
        inspect_log(zipped)
    pq_as_csv = tmp_path / "t.csv"
    import pyarrow as pa
    pq.write_table(pa.table({"text": ["a"]}), pq_as_csv)
    with pytest.raises(LogError, match="is a Parquet file"):
        inspect_log(pq_as_csv)
