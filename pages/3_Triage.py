"""Production-log triage: load a log, map its columns, score every line, rank the suspicious ones, slice them,
open any one in the explorer, export. All computation is in ``interp.triage``; this page only lays it out."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd
import streamlit as st

import app_support as ui
from interp.loader import ModelLoadError
from interp.triage import (MASK_POLICIES, RESERVED, SUSPICION_FORMULA, ColumnMapping, LogError, MappingError,
                           ResultsQuery, ScoreSettings, inspect_log, row_url, run_triage)
from interp.triage import figures as tf
from interp.triage import workspace
from interp.triage.demo import write_sample_log
from interp.triage.scores import TERMS
from interp.triage.store import export_ranked_csv

NONE = "—"
KEY = "tri_"
RUN = "_tri_run"          # session state: the run folder and settings of the results on screen
TEXT_GUESSES = ("text", "sentence", "input", "query", "message", "prompt", "content", "utterance")
ROLE_GUESSES = {"id": ("id", "request_id", "uuid", "record_id"), "timestamp": ("ts", "timestamp", "time", "date",
                "created_at", "datetime"), "prediction": ("prediction", "pred", "predicted", "output"),
                "label": ("label", "gold", "target", "truth")}
SORTS = {"suspicion": "suspicion", "flip rate": "flip_rate", "KL": "kl", "pooled drift (1 − cosine)": "drift",
         "low confidence": "confidence", "low margin": "margin", "concentration |z|": "concentration",
         "line": "line"}

ui.start_page()
st.title("Production-log triage")
st.caption("Score every line of a log of real inputs — dense confidence, sampled-vs-dense instability, abnormal "
           "expert concentration, agreement with what was logged — rank the rare fragile ones, and open any of "
           "them in the explorer. Every line is accounted for: analysed, skipped (with the reason) or failed.")


@st.cache_data(show_spinner=False, max_entries=16)
def inspect(path: str, mtime: float, size: int):
    return inspect_log(path)


def guess(columns: list[str], names: tuple[str, ...]) -> str | None:
    low = {c.lower(): c for c in columns}
    return next((low[n] for n in names if n in low), None)


# --- 1. the log -------------------------------------------------------------------------------------------
st.subheader("1 · The log")


def use_sample_log():
    """Point the page at the built-in sample log (written once into the per-user cache)."""
    st.session_state[KEY + "source"] = "A path on this machine"
    st.session_state[KEY + "path"] = str(write_sample_log(workspace.cache_root() / "sample"))


st.button("Try it on a sample log", key=KEY + "sample", icon=":material/science:", on_click=use_sample_log,
          help="A built-in customer-support log (240 lines: requests with [MASK], duplicates, a few long "
               "threads, non-English and malformed lines), so every feature can be tried without a file.")
source = st.radio("Source", ["Upload a file", "A path on this machine"], horizontal=True, key=KEY + "source")
path: Path | None = None
if source == "Upload a file":
    up = st.file_uploader("Log file (JSONL, CSV/TSV or Parquet)", type=["jsonl", "ndjson", "json", "csv", "tsv",
                                                                       "parquet"], key=KEY + "upload")
    if up is not None:
        path = workspace.save_upload(up.name, up.getvalue())
else:
    typed = st.text_input("Path to the log file", key=KEY + "path", placeholder="/data/requests.jsonl")
    if typed.strip():
        path = Path(typed.strip()).expanduser()
if path is None:
    st.info("Upload a log or give its path to start. Each line (JSONL), row (CSV) or record (Parquet) is one "
            "input.", icon=":material/upload_file:")
    st.stop()
try:
    stat = path.stat() if path.exists() else None
    info = inspect(str(path), stat.st_mtime if stat else 0.0, stat.st_size if stat else 0)
except LogError as err:
    st.error(str(err), icon=":material/error:")
    st.stop()
st.caption(f"{info.format.upper()} · {info.size_bytes:,} bytes · {len(info.columns)} columns"
           + (f" · {info.n_rows:,} rows" if info.n_rows is not None else "") + f" · encoding {info.encoding}")
for note in info.notes:
    st.info(note, icon=":material/info:")
if info.sample:
    with st.expander("First records", expanded=False):
        st.dataframe(pd.DataFrame(info.sample[:10]).astype(str), hide_index=True, width="stretch")

# --- 2. column mapping -------------------------------------------------------------------------------------
st.subheader("2 · Columns")
cols = list(info.columns)
c1, c2, c3, c4, c5 = st.columns(5)
with c1:
    default_text = guess(cols, TEXT_GUESSES)
    text_col = st.selectbox("Text (required)", options=[NONE] + cols, key=KEY + "map_text",
                            index=(cols.index(default_text) + 1) if default_text else 0,
                            help="The column with the model's input sentences ([MASK] where it should predict).")
roles = {}
for box, role in zip((c2, c3, c4, c5), ("id", "timestamp", "prediction", "label")):
    with box:
        g = guess(cols, ROLE_GUESSES[role])
        roles[role] = st.selectbox(role.capitalize() + " (optional)", options=[NONE] + cols, key=KEY + "map_" + role,
                                   index=(cols.index(g) + 1) if g else 0)
used = {text_col, *roles.values()}
slices = st.multiselect("Fields to slice by (optional)", options=[c for c in cols if c not in used],
                        key=KEY + "map_slices")
mapping = ColumnMapping(text_col if text_col != NONE else "", *[roles[r] if roles[r] != NONE else None
                                                                 for r in ("id", "timestamp", "prediction", "label")],
                        tuple(slices))
try:
    mapping.validate(info, RESERVED)
except MappingError as err:
    st.error(str(err), icon=":material/error:")
    st.stop()
for warning in mapping.check(info):
    st.warning(warning, icon=":material/warning:")

# --- 3. settings and run -----------------------------------------------------------------------------------
st.subheader("3 · Score")
options = ui.model_options()
s1, s2, s3, s4 = st.columns([3, 2, 1, 1])
with s1:
    model_choice = st.selectbox("Model", options=options, format_func=ui.model_label, key=KEY + "model")
    model = model_choice
    if model_choice == ui.LOCAL:
        model = st.text_input("Model folder", key=KEY + "model_path").strip()
with s2:
    policy = st.selectbox("Where to compare outputs", options=list(MASK_POLICIES), key=KEY + "policy",
                          help="; ".join(f"{k}: {v}" for k, v in MASK_POLICIES.items()))
with s3:
    scheme = st.selectbox("Scheme", options=ui.schemes(), key=KEY + "scheme",
                          index=ui.schemes().index(ui.DEFAULT_SCHEME))
with s4:
    k = int(st.number_input("k", min_value=1, max_value=4096, value=8, step=1, key=KEY + "k",
                            help="keys per query of the sampled scheme"))
s5, s6, s7, s8, s9 = st.columns(5)
with s5:
    seeds = int(st.number_input("Seeds S", min_value=1, max_value=64, value=4, step=1, key=KEY + "seeds"))
with s6:
    seed = int(st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key=KEY + "seed",
                               help="every input's seeds derive from this seed and the input's content hash"))
with s7:
    limit = int(st.number_input("Lines (0 = all)", min_value=0, value=0, step=100, key=KEY + "limit"))
with s8:
    budget = float(st.number_input("Time budget s (0 = none)", min_value=0.0, value=0.0, step=10.0,
                                   key=KEY + "budget"))
with s9:
    batch = int(st.number_input("Batch size", min_value=1, max_value=1024, value=16, step=1, key=KEY + "batch"))
mask_cap = 8
if policy == "mask-each":
    mask_cap = int(st.number_input("Masked variants per input (cap)", min_value=1, max_value=64, value=8,
                                   key=KEY + "cap"))
settings = ScoreSettings(scheme, k, seeds, seed, policy, mask_cap)
if not model:
    st.info("Give the model folder.", icon=":material/folder_open:")
    st.stop()
out_dir = workspace.run_folder(path, model, mapping, settings)
restart = st.checkbox("Start again (discard earlier results of this exact request)", key=KEY + "restart")
start = st.button("Run triage", type="primary", key=KEY + "run", icon=":material/play_arrow:")
st.caption(f"Results folder: `{out_dir}` — running again continues where an interrupted or limited run stopped.")

if start:
    try:
        with st.spinner(f"Loading {model} …"):
            lm = ui.get_model(model)
    except ModelLoadError as err:
        st.error(str(err), icon=":material/error:")
        st.stop()
    bar = st.progress(0.0, text="Starting …")

    def show_progress(p):
        bar.progress(min(1.0, p.fraction or 0.0), text=p.line())
    try:
        summary = run_triage(path, out_dir, model, mapping, settings, lm=lm, limit=limit or None,
                             time_budget=budget or None, batch_size=batch, restart=restart, progress=show_progress,
                             progress_every=0.5)
    except (LogError, MappingError, ValueError) as err:
        bar.empty()
        st.error(str(err), icon=":material/error:")
        st.stop()
    bar.progress(1.0, text=f"Done: {summary['lines_total']:,} lines in {summary['seconds']:.1f} s "
                           f"({summary['inputs_per_second']:.1f} inputs/s)")
    st.session_state[RUN] = {"out": str(out_dir), "model": model, "scheme": scheme, "k": k, "seed": seed}

run = st.session_state.get(RUN)
if run is None and (out_dir / "results.parquet").exists():
    run = {"out": str(out_dir), "model": model, "scheme": scheme, "k": k, "seed": seed}
if run is None:
    st.info("Press **Run triage** to score the log.", icon=":material/play_arrow:")
    st.stop()

# --- 4. results -------------------------------------------------------------------------------------------
out = Path(run["out"])
summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
st.subheader("4 · Results")
m1, m2, m3, m4, m5, m6 = st.columns(6)
m1.metric("Lines read", f"{summary['lines_total']:,}")
m2.metric("Analysed", f"{summary['analysed']:,}")
m3.metric("Skipped", f"{summary['skipped']:,}")
m4.metric("Unreadable", f"{summary.get('unreadable', 0):,}", help="unreadable by this model: most word pieces "
          "are unknown to its vocabulary ([UNK]); not ranked")
m5.metric("Failed", f"{summary['failed']:,}")
m6.metric("Inputs / s", f"{summary['inputs_per_second']:.1f}")
if not summary["complete"]:
    st.warning(f"Stopped at the {summary['stopped']} after {summary['lines_total']:,} lines: press Run triage "
               "again to continue.", icon=":material/pause:")
ui.show_figure(tf.status_bar(summary["analysed"], summary["skipped"], summary["failed"],
                             summary.get("unreadable", 0)), "triage-lines",
               key=KEY + "fig_status")
extra = []
if summary["duplicate_ids"]["ids"]:
    extra.append(f"{summary['duplicate_ids']['ids']:,} ids occur more than once "
                 f"({summary['duplicate_ids']['lines']:,} lines; see `first_line_of_id`)")
if summary["lines_with_replaced_bytes"]:
    extra.append(f"{summary['lines_with_replaced_bytes']:,} lines had invalid bytes (replaced with U+FFFD)")
if summary["lines_with_nul_bytes"]:
    extra.append(f"{summary['lines_with_nul_bytes']:,} lines had NUL bytes (removed)")
if summary["truncated"]:
    extra.append(f"{summary['truncated']:,} texts were longer than the model reads (their start was analysed)")
for note in summary["file_notes"] + extra:
    st.info(note, icon=":material/info:")

with st.expander("How suspicion is computed", expanded=False):
    st.code(SUSPICION_FORMULA, language=None, wrap_lines=True)
    st.markdown("\n".join(f"* **{t.expr}** — {t.meaning} (weight {t.weight:.2f})" for t in TERMS.values()))
    st.markdown(f"Expert concentration norm: {summary['concentration_norm']} (sample of "
                f"{summary['norm_sample']:,} inputs). Where outputs are compared: {summary['mask_policy']}.")

try:
    q = ResultsQuery(out)
except FileNotFoundError as err:
    st.error(str(err))
    st.stop()

# slicing
slice_fields = [c for c in [*summary["mapping"].get("slices", []), "prediction", "label", "mode", "dense_top1"]
                if c in q.columns and (c not in ("prediction", "label") or summary["mapping"].get(c))]
filters = {}
if slice_fields:
    fcols = st.columns(min(4, len(slice_fields)))
    for i, field in enumerate(slice_fields):
        values = [v for v, _ in q.values(field, limit=50)]
        with fcols[i % len(fcols)]:
            chosen = st.multiselect(f"Slice: {field}", options=values, key=KEY + "slice_" + field,
                                    format_func=lambda v: "(empty)" if v is None else str(v))
        if chosen:
            filters[field] = chosen
time_range = None
bounds = q.time_bounds()
if bounds is not None and bounds[0] != bounds[1]:
    def naive_utc(x):
        x = pd.Timestamp(x)
        return (x.tz_convert("UTC").tz_localize(None) if x.tzinfo else x).to_pydatetime()
    lo, hi = naive_utc(bounds[0]), naive_utc(bounds[1])
    picked = st.slider("Time (UTC)", min_value=lo, max_value=hi, value=(lo, hi), key=KEY + "time",
                       format="YYYY-MM-DD HH:mm")
    if tuple(picked) != (lo, hi):
        time_range = tuple(pd.Timestamp(x, tz="UTC").to_pydatetime() for x in picked)
n_sel = q.count(filters, time_range)
st.caption(f"{n_sel:,} analysed inputs in this slice.")

left, right = st.columns([3, 2])
with left:
    edges, counts = q.histogram("suspicion", 40, filters, time_range)
    ui.show_figure(tf.score_histogram(edges, counts), "triage-suspicion-distribution", key=KEY + "fig_hist",
                   alt="Histogram of the suspicion score over the analysed inputs of the slice")
with right:
    if slice_fields:
        by = st.selectbox("Compare slices of", options=slice_fields, key=KEY + "by")
        sl = q.by_slice(by, filters, time_range)
        if len(sl):
            ui.show_figure(tf.slice_bars(sl["value"].tolist(), sl["mean_suspicion"].tolist(), sl["inputs"].tolist(),
                                         by), f"triage-by-{by}", key=KEY + "fig_slices")

# top suspects
t1, t2 = st.columns([2, 1])
with t1:
    order = st.selectbox("Rank by", options=list(SORTS), key=KEY + "order")
with t2:
    top_n = int(st.number_input("Rows", min_value=10, max_value=5000, value=100, step=10, key=KEY + "top"))
ranking = SORTS[order]
table = q.ranked(ranking, top_n, filters, time_range)
table["explorer"] = [row_url(r, run["model"], run["scheme"], run["k"], run["seed"])
                     for r in table.to_dict("records")]
table["worst head"] = [f"L{int(l)}·H{int(h)}" if not (pd.isna(l) or pd.isna(h)) else ""
                       for l, h in zip(table["worst_layer"], table["worst_head"])]
show = ["rank", "line", "copies", "lines", "suspicion", "explorer", "text", "flip_rate", "kl", "cosine", "confidence", "margin",
        "worst head", "worst_tv", "concentration_z", "agreement", "dense_top1", "id", "time",
        *summary["mapping"].get("slices", []), "prediction", "label", "notes"]
show = [c for c in show if c in table.columns and (c not in ("id", "time", "prediction", "label")
                                                    or table[c].notna().any())]
if summary["model_info"]["has_mlm_head"]:
    show = [c for c in show if c != "cosine"]
else:
    show = [c for c in show if c not in ("flip_rate", "kl", "confidence", "margin", "dense_top1", "agreement")]
num = {c: st.column_config.NumberColumn(c, format="%.4f") for c in
       ("suspicion", "flip_rate", "kl", "cosine", "confidence", "margin", "worst_tv", "concentration_z",
        "agreement")}
st.markdown(f"**Top suspects** — ranked by {order}; click a column header to sort, **open** to inspect the "
            "input in the explorer with the same model and sampling settings.")
st.dataframe(table[show], hide_index=True, width="stretch", key=KEY + "table",
             column_config={"explorer": st.column_config.LinkColumn("explorer", display_text="open ↗"),
                            "text": st.column_config.TextColumn("text", width="large"), **num})

# one input: its scores and a shareable link into the explorer
if len(table):
    st.markdown("**Inspect one input**")
    rows = table.to_dict("records")
    i1, i2 = st.columns([3, 1])
    with i1:
        pick = st.selectbox("Input", options=list(range(len(rows))), key=KEY + "pick",
                            format_func=lambda i: f"line {rows[i]['line']} · suspicion {rows[i]['suspicion']:.3f} · "
                                                  f"{str(rows[i]['text'])[:80]}")
    row = rows[pick]
    with i2:
        st.link_button("Open in explorer", row["explorer"], icon=":material/open_in_new:", width="stretch",
                       key=KEY + "open")
    detail = {c: row.get(c) for c in show if c not in ("explorer", "text")}
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    st.dataframe(pd.DataFrame({"score": list(detail), "value": [fmt(v) for v in detail.values()]}),
                 hide_index=True, width="stretch", key=KEY + "detail")

# exports: the ranked CSV is built when asked for, on a connection of its own (the page's connection is closed
# when the script ends, before a deferred download runs)
e1, e2 = st.columns(2)
with e1:
    link = {k_: run[k_] for k_ in ("model", "scheme", "k", "seed")}
    st.download_button("Ranked table (CSV)", data=functools.partial(export_ranked_csv, str(out), ranking,
                                                                    filters, time_range, True, link),
                       file_name="triage-ranked.csv", mime="text/csv",
                       key=KEY + "dl_ranked", on_click="ignore", icon=":material/table:")
with e2:
    bad = q.not_analysed()
    st.download_button(f"Skipped and failed lines (CSV, {len(bad):,})", data=bad.to_csv(index=False),
                       file_name="triage-skipped-failed.csv", mime="text/csv", key=KEY + "dl_bad",
                       on_click="ignore", icon=":material/report:")
if len(bad):
    with st.expander(f"Skipped and failed lines ({len(bad):,})", expanded=False):
        st.dataframe(bad.head(1000), hide_index=True, width="stretch", key=KEY + "bad_table")
q.close()
