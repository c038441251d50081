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
from interp.noise.perturb import PERTURBATIONS
from interp.triage import figures as tf
from interp.triage import registry
from interp.triage import workspace
from interp.triage.demo import write_sample_log
from interp.triage.ray_engine import ray_available
from interp.triage.scores import TERMS
from interp.triage.store import export_ranked_csv
from interp.i18n import DEFAULT_LANG, EN, error_line, error_text, progress_text, t
from interp.report import triage_report


# The app's language, read once per run: the widgets' format_func labels may be formatted again outside the
# run, where the URL's language cannot be read, and must stay in this run's language.
LANG = getattr(ui, "lang", lambda: DEFAULT_LANG)()


def T(key: str, **values) -> str:
    """The page's strings, from interp/i18n.py, in this run's language."""
    return t(key, LANG, **values)


def col(name: str) -> str:
    """A results column's header in the app's language (a log's own field names are kept as they are)."""
    return T("triage.col." + name) if "triage.col." + name in EN else str(name)


def headed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its column headers in the app's language (the data keeps its codes)."""
    return frame.rename(columns={c: col(c) for c in frame.columns})


NONE = "—"


def rank_label(ranking: str) -> str:
    """A ranking's name on the page: its i18n label, or its registry name for a score without one."""
    try:
        return T("triage.rank_" + ranking)
    except KeyError:
        return ranking

KEY = "tri_"
RUN = "_tri_run"          # session state: the run folder and settings of the results on screen
TEXT_GUESSES = ("text", "sentence", "input", "query", "message", "prompt", "content", "utterance")
ROLE_GUESSES = {"id": ("id", "request_id", "uuid", "record_id"), "timestamp": ("ts", "timestamp", "time", "date",
                "created_at", "datetime"), "prediction": ("prediction", "pred", "predicted", "output"),
                "label": ("label", "gold", "target", "truth")}

ui.start_page()
st.title(T("triage.title"))
st.caption(T("triage.intro"))


@st.cache_data(show_spinner=False, max_entries=16)
def inspect(path: str, mtime: float, size: int):
    return inspect_log(path)


def guess(columns: list[str], names: tuple[str, ...]) -> str | None:
    low = {c.lower(): c for c in columns}
    return next((low[n] for n in names if n in low), None)


# --- 1. the log -------------------------------------------------------------------------------------------
st.subheader(T("triage.step_log"))


def use_sample_log():
    """Point the page at the built-in sample log (written once into the per-user cache)."""
    st.session_state[KEY + "source"] = "path"
    st.session_state[KEY + "path"] = str(write_sample_log(workspace.cache_root() / "sample"))


st.button(T("triage.sample"), key=KEY + "sample", icon=":material/science:", on_click=use_sample_log,
          help=T("triage.sample_help"))
source = st.radio(T("triage.source"), ["upload", "path"], horizontal=True, key=KEY + "source",
                  format_func=lambda code: T("triage.source_" + code))   # stable codes: a language switch keeps it
path: Path | None = None
if source == "upload":
    up = st.file_uploader(T("triage.upload"), type=["jsonl", "ndjson", "json", "csv", "tsv",
                                                                       "parquet"], key=KEY + "upload")
    if up is not None:
        path = workspace.save_upload(up.name, up.getvalue())
else:
    typed = st.text_input(T("triage.path"), key=KEY + "path", placeholder="/data/requests.jsonl")
    if typed.strip():
        path = Path(typed.strip()).expanduser()
if path is None:
    st.info(T("triage.empty"), icon=":material/upload_file:")
    st.stop()
try:
    stat = path.stat() if path.exists() else None
    info = inspect(str(path), stat.st_mtime if stat else 0.0, stat.st_size if stat else 0)
except LogError as err:
    st.error(error_line(err, LANG), icon=":material/error:")
    st.stop()
st.caption(T("triage.file_facts", format=info.format.upper(), size=info.size_bytes, columns=len(info.columns),
             rows=T("triage.file_rows", rows=info.n_rows) if info.n_rows is not None else "",
             encoding=info.encoding))
for note in info.notes:
    st.info(note, icon=":material/info:")
if info.sample:
    with st.expander(T("triage.first_records"), expanded=False):
        st.dataframe(pd.DataFrame(info.sample[:10]).astype(str), hide_index=True, width="stretch")

# --- 2. column mapping -------------------------------------------------------------------------------------
st.subheader(T("triage.step_columns"))
cols = list(info.columns)
c1, c2, c3, c4, c5 = st.columns(5)
with c1:
    default_text = guess(cols, TEXT_GUESSES)
    text_col = st.selectbox(T("triage.text_col"), options=[NONE] + cols, key=KEY + "map_text",
                            index=(cols.index(default_text) + 1) if default_text else 0,
                            help=T("triage.text_col_help"))
roles = {}
for box, role in zip((c2, c3, c4, c5), ("id", "timestamp", "prediction", "label")):
    with box:
        g = guess(cols, ROLE_GUESSES[role])
        roles[role] = st.selectbox(T("triage.role_col", role=T("triage.role_" + role)), options=[NONE] + cols, key=KEY + "map_" + role,
                                   index=(cols.index(g) + 1) if g else 0)
used = {text_col, *roles.values()}
slices = st.multiselect(T("triage.slices"), options=[c for c in cols if c not in used],
                        key=KEY + "map_slices")
mapping = ColumnMapping(text_col if text_col != NONE else "", *[roles[r] if roles[r] != NONE else None
                                                                 for r in ("id", "timestamp", "prediction", "label")],
                        tuple(slices))
try:
    mapping.validate(info, RESERVED)
except MappingError as err:
    st.error(error_line(err, LANG), icon=":material/error:")
    st.stop()
for warning in mapping.check(info):
    st.warning(warning, icon=":material/warning:")

# --- 3. settings and run -----------------------------------------------------------------------------------
st.subheader(T("triage.step_score"))
options = ui.model_options()
s1, s2, s3, s4 = st.columns([3, 2, 1, 1])
with s1:
    model_choice = st.selectbox(T("triage.model"), options=options, format_func=ui.model_labels(), key=KEY + "model")
    model = model_choice
    if model_choice == ui.LOCAL:
        model = st.text_input(T("triage.model_folder"), key=KEY + "model_path").strip()
with s2:
    policy = st.selectbox(T("triage.policy"), options=list(MASK_POLICIES), key=KEY + "policy",
                          help="; ".join(f"{k}: {T('triage.policy_help.' + k)}" for k in MASK_POLICIES))
with s3:
    scheme = st.selectbox(T("triage.scheme"), options=ui.schemes(), key=KEY + "scheme",
                          index=ui.schemes().index(ui.DEFAULT_SCHEME))
with s4:
    k = int(st.number_input("k", min_value=1, max_value=4096, value=8, step=1, key=KEY + "k",
                            help=T("triage.k_help")))
s5, s6, s7, s8, s9 = st.columns(5)
with s5:
    seeds = int(st.number_input(T("triage.seeds"), min_value=1, max_value=64, value=4, step=1, key=KEY + "seeds"))
with s6:
    seed = int(st.number_input(T("triage.seed"), min_value=0, max_value=2**31 - 1, value=0, step=1, key=KEY + "seed",
                               help=T("triage.seed_help")))
with s7:
    limit = int(st.number_input(T("triage.limit"), min_value=0, value=0, step=100, key=KEY + "limit"))
with s8:
    budget = float(st.number_input(T("triage.budget"), min_value=0.0, value=0.0, step=10.0,
                                   key=KEY + "budget"))
with s9:
    batch = int(st.number_input(T("triage.batch"), min_value=1, max_value=1024, value=16, step=1, key=KEY + "batch"))
mask_cap = 8
if policy == "mask-each":
    mask_cap = int(st.number_input(T("triage.cap"), min_value=1, max_value=64, value=8,
                                   key=KEY + "cap"))
settings = ScoreSettings(scheme, k, seeds, seed, policy, mask_cap)
# optional scores (registry): noise sensitivity, off by default, its cost stated
if st.checkbox(T("triage.noise_score"), value=False, key=KEY + "noise", help=T("triage.noise_help")):
    n1, n2, n3 = st.columns(3)
    with n1:
        perturbations = list(PERTURBATIONS)
        noise_p = st.selectbox(T("triage.noise_perturbation"), options=perturbations, key=KEY + "noise_p",
                               index=perturbations.index("typo") if "typo" in perturbations else 0,
                               help="; ".join(f"{n}: {v.description}" for n, v in PERTURBATIONS.items()))
    with n2:
        noise_rate = float(st.number_input(T("triage.noise_rate"), min_value=0.01, max_value=1.0, value=0.1,
                                           step=0.05, key=KEY + "noise_rate", help=T("triage.noise_rate_help")))
    with n3:
        noise_seeds = int(st.number_input(T("triage.noise_seeds"), min_value=1, max_value=16, value=3, step=1,
                                          key=KEY + "noise_seeds"))
    settings = registry.with_score(settings, "noise", perturbation=noise_p, rate=noise_rate,
                                   noise_seeds=noise_seeds)
    rows = int(registry.extra_cost_factor(settings))
    base = 1 + seeds
    st.caption(T("triage.noise_cost", rows=rows, rows_mask=rows // 2, base=base, seeds=seeds,
                 factor=(base + rows) / base, factor_mask=(base + rows // 2) / base))
with st.expander(T("triage.engine_box"), expanded=False):
    engine = st.radio(T("triage.engine"), ["local", "ray"], horizontal=True, key=KEY + "engine",
                      format_func=lambda e: T("triage.engine_" + e),
                      help=T("triage.engine_help"))
    address, ray_workers, gpus_per_worker = None, 1, 0.0
    if engine == "ray":
        if not ray_available():
            st.info(T("triage.ray_missing"), icon=":material/extension:")
        r1, r2, r3 = st.columns(3)
        with r1:
            address = st.text_input(T("triage.ray_address"), key=KEY + "ray_address",
                                    placeholder="ray://head-node:10001").strip() or None
        with r2:
            ray_workers = int(st.number_input(T("triage.ray_workers"), min_value=1, max_value=1024,
                                              value=1, key=KEY + "ray_workers"))
        with r3:
            gpus_per_worker = float(st.number_input(T("triage.ray_gpus"), min_value=0.0, max_value=8.0, value=0.0,
                                                    step=0.25, key=KEY + "ray_gpus"))
if not model:
    st.info(T("triage.need_folder"), icon=":material/folder_open:")
    st.stop()
out_dir = workspace.run_folder(path, model, mapping, settings)
restart = st.checkbox(T("triage.restart"), key=KEY + "restart")
start = st.button(T("triage.run"), type="primary", key=KEY + "run", icon=":material/play_arrow:")
st.caption(T("triage.folder", folder=out_dir))

if start:
    try:
        with st.spinner(T("triage.loading", model=model)):
            lm = ui.get_model(model)
    except ModelLoadError as err:
        st.error(T("error.model", message=error_text(err, LANG)), icon=":material/error:")
        st.stop()
    bar = st.progress(0.0, text=T("triage.starting"))

    def show_progress(p):
        bar.progress(min(1.0, p.fraction or 0.0), text=progress_text(p, LANG))
    try:
        summary = run_triage(path, out_dir, model, mapping, settings, lm=lm, limit=limit or None,
                             time_budget=(budget or None) if engine == "local" else None, batch_size=batch,
                             restart=restart, progress=show_progress, progress_every=0.5, engine=engine,
                             address=address, workers=ray_workers if engine == "ray" else 1,
                             gpus_per_worker=gpus_per_worker)
    except (LogError, MappingError, ValueError) as err:
        bar.empty()
        st.error(str(err), icon=":material/error:")
        st.stop()
    bar.progress(1.0, text=T("triage.done", lines=summary["lines_total"], seconds=summary["seconds"],
                              rate=summary["inputs_per_second"]))
    st.session_state[RUN] = {"out": str(out_dir), "model": model, "scheme": scheme, "k": k, "seed": seed}

run = st.session_state.get(RUN)
if run is None and (out_dir / "results.parquet").exists():
    run = {"out": str(out_dir), "model": model, "scheme": scheme, "k": k, "seed": seed}
if run is None:
    st.info(T("triage.press_run"), icon=":material/play_arrow:")
    st.stop()

# --- 4. results -------------------------------------------------------------------------------------------
out = Path(run["out"])
summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
st.subheader(T("triage.step_results"))
m1, m2, m3, m4, m5, m6 = st.columns(6)
m1.metric(T("triage.m_lines"), f"{summary['lines_total']:,}")
m2.metric(T("triage.m_analysed"), f"{summary['analysed']:,}")
m3.metric(T("triage.m_skipped"), f"{summary['skipped']:,}")
m4.metric(T("triage.m_unreadable"), f"{summary.get('unreadable', 0):,}", help=T("triage.m_unreadable_help"))
m5.metric(T("triage.m_failed"), f"{summary['failed']:,}")
m6.metric(T("triage.m_rate"), f"{summary['inputs_per_second']:.1f}")
if not summary["complete"]:
    st.warning(T("triage.stopped", where=summary["stopped"], lines=summary["lines_total"]), icon=":material/pause:")
ui.show_figure(tf.status_bar(summary["analysed"], summary["skipped"], summary["failed"],
                             summary.get("unreadable", 0)), "triage-lines",
               key=KEY + "fig_status")
extra = []
if summary["duplicate_ids"]["ids"]:
    extra.append(T("triage.note_dup_ids", ids=summary["duplicate_ids"]["ids"], lines=summary["duplicate_ids"]["lines"]))
if summary["lines_with_replaced_bytes"]:
    extra.append(T("triage.note_replaced", n=summary["lines_with_replaced_bytes"]))
if summary["lines_with_nul_bytes"]:
    extra.append(T("triage.note_nul", n=summary["lines_with_nul_bytes"]))
if summary["truncated"]:
    extra.append(T("triage.note_truncated", n=summary["truncated"]))
for note in summary["file_notes"] + extra:
    st.info(note, icon=":material/info:")

with st.expander(T("triage.how"), expanded=False):
    st.code(SUSPICION_FORMULA, language=None, wrap_lines=True)
    st.markdown("\n".join(T("triage.term", expr=tm.expr, weight=tm.weight,
                             meaning=T("triage.meaning." + name) if "triage.meaning." + name in EN else tm.meaning)
                           for name, tm in TERMS.items()))
    st.markdown(T("triage.norm", norm=summary["concentration_norm"], n=summary["norm_sample"],
                  policy=summary["mask_policy"]))

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
            chosen = st.multiselect(T("triage.slice", field=col(field)), options=values, key=KEY + "slice_" + field,
                                    format_func=lambda v: T("triage.slice_empty") if v is None else str(v))
        if chosen:
            filters[field] = chosen
time_range = None
bounds = q.time_bounds()
if bounds is not None and bounds[0] != bounds[1]:
    def naive_utc(x):
        x = pd.Timestamp(x)
        return (x.tz_convert("UTC").tz_localize(None) if x.tzinfo else x).to_pydatetime()
    lo, hi = naive_utc(bounds[0]), naive_utc(bounds[1])
    picked = st.slider(T("triage.time"), min_value=lo, max_value=hi, value=(lo, hi), key=KEY + "time",
                       format="YYYY-MM-DD HH:mm")
    if tuple(picked) != (lo, hi):
        time_range = tuple(pd.Timestamp(x, tz="UTC").to_pydatetime() for x in picked)
n_sel = q.count(filters, time_range)
st.caption(T("triage.n_sel", n=n_sel))

left, right = st.columns([3, 2])
with left:
    edges, counts = q.histogram("suspicion", 40, filters, time_range)
    ui.show_figure(tf.score_histogram(edges, counts), "triage-suspicion-distribution", key=KEY + "fig_hist",
                   alt=T("triage.hist_alt"))
with right:
    if slice_fields:
        by = st.selectbox(T("triage.compare"), options=slice_fields, key=KEY + "by")
        sl = q.by_slice(by, filters, time_range)
        if len(sl):
            ui.show_figure(tf.slice_bars(sl["value"].tolist(), sl["mean_suspicion"].tolist(), sl["inputs"].tolist(),
                                         by), f"triage-by-{by}", key=KEY + "fig_slices")

# top suspects
t1, t2 = st.columns([2, 1])
with t1:
    order = st.selectbox(T("triage.rank_by"), options=list(q.rankings()), key=KEY + "order",
                         format_func=rank_label)
with t2:
    top_n = int(st.number_input(T("triage.rows"), min_value=10, max_value=5000, value=100, step=10, key=KEY + "top"))
ranking = order
table = q.ranked(ranking, top_n, filters, time_range)
table["explorer"] = [row_url(r, run["model"], run["scheme"], run["k"], run["seed"])
                     for r in table.to_dict("records")]
table["worst head"] = [f"L{int(l)}·H{int(h)}" if not (pd.isna(l) or pd.isna(h)) else ""
                       for l, h in zip(table["worst_layer"], table["worst_head"])]
show = ["rank", "line", "copies", "lines", "suspicion", "explorer", "text", "flip_rate", "kl", "cosine", "confidence", "margin",
        "worst head", "worst_tv", "concentration_z", "agreement",
        *registry.all_columns(),          # the optional scores' columns (present only when the run computed them)
        "dense_top1", "id", "time",
        *summary["mapping"].get("slices", []), "prediction", "label", "notes"]
optional = ("id", "time", "prediction", "label", *registry.all_columns())    # shown when they hold a value
show = [c for c in show if c in table.columns and (c not in optional or table[c].notna().any())]
if summary["model_info"]["has_mlm_head"]:
    show = [c for c in show if c != "cosine"]
else:
    show = [c for c in show if c not in ("flip_rate", "kl", "confidence", "margin", "dense_top1", "agreement")]
num = {c: st.column_config.NumberColumn(col(c), format="%.4f") for c in
       ("suspicion", "flip_rate", "kl", "cosine", "confidence", "margin", "worst_tv", "concentration_z",
        "agreement", *[c for sc in registry.optional_scores().values() for c, kind in sc.columns
                       if kind == "float"])}
st.markdown(T("triage.top", order=rank_label(order)))
st.dataframe(headed(table[show]), hide_index=True, width="stretch", key=KEY + "table",
             column_config={col("explorer"): st.column_config.LinkColumn(col("explorer"),
                                                                         display_text=T("triage.open_cell")),
                            col("text"): st.column_config.TextColumn(col("text"), width="large"),
                            **{col(c): cfg for c, cfg in num.items()}})

# one input: its scores and a shareable link into the explorer
if len(table):
    st.markdown(T("triage.inspect"))
    rows = table.to_dict("records")
    i1, i2 = st.columns([3, 1])
    with i1:
        pick = st.selectbox(T("triage.input"), options=list(range(len(rows))), key=KEY + "pick",
                            format_func=lambda i: T("triage.input_label", line=rows[i]["line"],
                                                    suspicion=rows[i]["suspicion"], text=str(rows[i]["text"])[:80]))
    row = rows[pick]
    with i2:
        st.link_button(T("triage.open"), row["explorer"], icon=":material/open_in_new:", width="stretch",
                       key=KEY + "open")
    detail = {c: row.get(c) for c in show if c not in ("explorer", "text")}
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    st.dataframe(pd.DataFrame({T("triage.col.score"): [col(c) for c in detail],
                               T("triage.col.value"): [fmt(v) for v in detail.values()]}),
                 hide_index=True, width="stretch", key=KEY + "detail")

# exports: the ranked CSV is built when asked for, on a connection of its own (the page's connection is closed
# when the script ends, before a deferred download runs)
e1, e2 = st.columns(2)
with e1:
    link = {k_: run[k_] for k_ in ("model", "scheme", "k", "seed")}
    st.download_button(T("triage.dl_ranked"), data=functools.partial(export_ranked_csv, str(out), ranking,
                                                                    filters, time_range, True, link),
                       file_name="triage-ranked.csv", mime="text/csv",
                       key=KEY + "dl_ranked", on_click="ignore", icon=":material/table:")
with e2:
    bad = q.not_analysed()
    st.download_button(T("triage.dl_bad", n=len(bad)), data=bad.to_csv(index=False),
                       file_name="triage-skipped-failed.csv", mime="text/csv", key=KEY + "dl_bad",
                       on_click="ignore", icon=":material/report:")
ui.report_buttons(functools.partial(triage_report, str(out), ui.lang(), order=order, top=top_n, filters=filters,
                                    time_range=time_range, by=by if slice_fields else None, link=link),
                  f"report-triage-{out.name}", "tri",
                  (str(out), (out / "results.parquet").stat().st_mtime, order, top_n, repr(filters), time_range,
                   by if slice_fields else None))
if len(bad):
    shown_bad = bad.head(1000).copy()
    if LANG != DEFAULT_LANG and {"reason", "reason_code"} <= set(shown_bad.columns):
        # the library's specific reason is English: in another language, the reason code's general wording
        shown_bad["reason"] = [T("triage.reason." + c) if isinstance(c, str) and "triage.reason." + c in EN else r
                               for c, r in zip(shown_bad["reason_code"], shown_bad["reason"])]
    with st.expander(T("triage.bad_box", n=len(bad)), expanded=False):
        st.dataframe(headed(shown_bad), hide_index=True, width="stretch", key=KEY + "bad_table")
q.close()
