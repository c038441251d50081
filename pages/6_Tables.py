"""Tables: a table's columns as positional experts. Pick auto-mpg (shipped model) or a CSV, train, and see per
row the prediction and which columns' experts it listened to, decomposed exactly as for text."""
import json

import numpy as np
import streamlit as st

import app_support as ui
from interp.figures import tabular as ft
from interp.i18n import error_text, note_text, t
from interp.loader import MODELS_DIR, ModelLoadError
from interp.ranges import IntRange
from interp.tabular import data as TD
from interp.tabular.encoding import MAX_BINS, EncodingError
from interp.tabular.explain import explain_row
from interp.tabular.links import row_url
from interp.tabular.model import FORMS, TrainSettings, evaluate, load_schema, predict
from interp.tabular.workspace import digest, model_key, trained_folder

lang = ui.lang()


def tr(key: str, **values) -> str:
    """The page's strings in this run's language (widget labels may be formatted again after the run, where the
    URL's language cannot be read)."""
    return t(key, lang, **values)


v = ui.start_page()
st.title(tr("tab.header"))
st.caption(tr("tab.intro"))


@st.cache_resource(show_spinner=False)
def auto_mpg_prepared():
    return TD.prepare_auto_mpg()


@st.cache_resource(show_spinner=False, max_entries=16)
def read_uploaded(data: bytes):
    return TD.read_table(data)


@st.cache_resource(show_spinner=False, max_entries=32)
def prepared_table(data: bytes, target: str, bins: int):
    df, notes = read_uploaded(data)
    prep = TD.prepare_table(df, target, bins=bins, name="upload")
    prep.notes[:0] = notes
    return prep


@st.cache_data(show_spinner=False, max_entries=64)
def test_metrics(model: str, key: str):
    prep = _PREPS[key]
    lm = ui.get_model(model)
    pred = predict(lm.model, prep.enc, prep.codes[prep.test], prep.target)
    return evaluate(pred, prep.codes[prep.test, prep.target], prep.enc.columns[prep.target].ordinal)


_PREPS: dict = {}

# --- data and model -------------------------------------------------------------------------------------------
source = st.radio(tr("tab.source"), options=["auto-mpg", "upload", "path"], horizontal=True, key="tb_source",
                  format_func=lambda s: tr(f"tab.source.{s}"), help=tr("tab.source_help"))
prep, model_name = None, None
if source == "auto-mpg":
    model_name = "auto-mpg"
    try:
        with st.spinner(tr("input.loading", name=model_name)):
            lm = ui.get_model(model_name)
        prep = auto_mpg_prepared()
        if load_schema(lm.folder).vocab != prep.enc.vocab:
            st.error(tr("tab.error", message="the shipped model's schema does not match the prepared auto-mpg table"))
            st.stop()
    except (ModelLoadError, FileNotFoundError) as err:
        st.error(tr("error.model", message=error_text(err, lang)), icon=":material/error:")
        st.stop()
    st.caption(tr("tab.shipped"))
    data_key = "auto-mpg"
else:
    data = None
    if source == "upload":
        up = st.file_uploader(tr("tab.upload"), key="tb_upload", help=tr("tab.upload_help", mb=TD.MAX_UPLOAD_BYTES >> 20))
        if up is not None:
            try:
                TD.check_size(int(up.size))
                data = up.getvalue()
            except EncodingError as err:
                st.error(tr("tab.error", message=str(err)), icon=":material/error:")
                st.stop()
    else:
        path = st.text_input(tr("tab.path"), key="tb_path", help=tr("tab.path_help"))
        if path.strip():
            try:
                from pathlib import Path
                p = Path(path.strip()).expanduser()
                if p.is_file():
                    TD.check_size(p.stat().st_size)
                    data = p.read_bytes()
                else:
                    TD.read_table(p)      # raises the clear message (missing, a folder)
            except EncodingError as err:
                st.error(tr("tab.error", message=str(err)), icon=":material/error:")
                st.stop()
    if data is None:
        st.info(tr("tab.upload_empty"), icon=":material/upload_file:")
        st.stop()
    try:
        df, read_notes = read_uploaded(data)
    except EncodingError as err:
        st.error(tr("tab.error", message=str(err)), icon=":material/error:")
        st.stop()
    cols = [str(c) for c in df.columns]
    c1, c2, c3, c4 = st.columns([2, 1, 2, 1])
    with c1:
        target = st.selectbox(tr("tab.target"), options=cols, index=len(cols) - 1, key="tb_target",
                              help=tr("tab.target_help"))
    with c2:
        bins = int(st.number_input(tr("tab.bins"), min_value=2, max_value=MAX_BINS, value=3, step=1, key="tb_bins",
                                   help=tr("tab.bins_help")))
    with c3:
        form = st.radio(tr("tab.form"), options=list(FORMS), horizontal=True, key="tb_form",
                        format_func=lambda f: tr(f"tab.form.{f}"), help=tr("tab.form_help"))
    with c4:
        epochs = int(st.number_input(tr("tab.epochs"), min_value=1, max_value=1000, value=100, step=10,
                                     key="tb_epochs", help=tr("tab.epochs_help")))
    try:
        prep = prepared_table(data, target, bins)
    except EncodingError as err:
        st.error(tr("tab.error", message=str(err)), icon=":material/error:")
        st.stop()
    settings = TrainSettings(form=form, epochs=epochs, init=0.2)
    key = model_key(digest(data), target, bins, settings)
    if st.button(tr("tab.train"), key="tb_train", type="primary", help=tr("tab.train_help")):
        bar = st.progress(0.0, text=tr("tab.training", message="…"))
        folder, info = trained_folder(prep, key, settings,
                                      progress=lambda f, m: bar.progress(f, text=tr("tab.training", message=m)))
        bar.empty()
        st.session_state["tb_trained"] = {"key": key, "folder": str(folder), "info": info}
    trained = st.session_state.get("tb_trained")
    if not trained or trained["key"] != key:
        st.info(tr("tab.untrained"), icon=":material/model_training:")
        with st.expander(tr("tab.encoding")):
            ui.show_table(ft.encoding_table(prep.enc), "tabular-encoding", key="tb_enc_pre")
            for note in prep.notes:
                st.markdown(f"- {note_text(note, lang)}")
        st.stop()
    model_name = trained["folder"]
    info = trained["info"]
    if info:
        st.success(tr("tab.trained", seconds=float(info.get("seconds", 0.0)), rows=len(prep.train),
                      cols=len(prep.enc.columns), examples=info.get("examples", 0),
                      loss=float(info.get("final_loss", float("nan")))), icon=":material/check_circle:")
    try:
        lm = ui.get_model(model_name)
    except ModelLoadError as err:
        st.error(tr("error.model", message=error_text(err, lang)), icon=":material/error:")
        st.stop()
    data_key = key

_PREPS[data_key] = prep
enc, t_col = prep.enc, prep.target
counts = prep.split_counts()
st.markdown(tr("tab.split", train=counts["train"], test=counts["test"], rule=note_text(prep.split_rule, lang)))
m = test_metrics(model_name, data_key)
st.markdown(tr("tab.test_metrics", acc=m["accuracy"] or 0.0, rows=m["rows"],
               mse="–" if m["mse"] is None else f"{m['mse']:.3f}"))
with st.expander(tr("tab.encoding")):
    ui.show_table(ft.encoding_table(enc), "tabular-encoding", key="tb_enc")
    if prep.notes:
        st.markdown(f"**{tr('tab.notes')}**")
        for note in prep.notes:
            st.markdown(f"- {note_text(note, lang)}")

# --- one row ------------------------------------------------------------------------------------------------
order = list(prep.test) + list(prep.train)
split_of = {int(i): "test" for i in prep.test} | {int(i): "train" for i in prep.train}
row = st.selectbox(tr("tab.row"), options=[int(i) for i in order], key=f"tb_row_{data_key}", help=tr("tab.row_help"),
                   format_func=lambda i: tr("tab.row_label", split=tr(f"tab.split.{split_of[i]}"), i=i) + " · "
                   + ", ".join(f"{c}={x}" for c, x in list(zip(enc.names, enc.decode(prep.codes[i:i + 1]).iloc[0]))[:4]))
try:
    ex = explain_row(lm, enc, prep.codes[row], t_col)
except ValueError as err:
    st.error(tr("tab.error", message=str(err)), icon=":material/error:")
    st.stop()
pred_label, p = ex.domain[ex.predicted], float(ex.probs[ex.predicted])
if ex.truth >= 0:
    st.markdown(tr("tab.prediction", target=enc.target, pred=pred_label, p=p, truth=ex.domain[ex.truth]))
else:
    st.markdown(tr("tab.prediction_unknown", target=enc.target, pred=pred_label, p=p))
slug = f"{lm.name}-row{row}"
a, b = st.columns([1, 2])
with a:
    ui.show_figure(ft.prediction_figure(ex, lang), f"prediction-{slug}", key="tb_pred")
    ui.show_table(ft.prediction_table(ex), f"prediction-{slug}", key="tb_pred_table")
with b:
    ui.show_figure(ft.importance_figure(ex, lang), f"columns-{slug}", key="tb_importance")

st.subheader(tr("tab.listened"))
show = st.radio(tr("tab.show"), options=["gate", "firing"], horizontal=True, key="tb_show",
                format_func=lambda s: tr(f"tab.show.{s}"))
ui.show_figure(ft.listening_figure(ex, show, lang), f"{show}-{slug}", key="tb_listen")
ui.show_table(ft.row_table(ex), f"row-{slug}", key="tb_row_table")
ln = ex.checks.get("identity_ln_max_rel_err")
st.caption(tr("tab.exact", dense=ex.checks["identity_dense_max_rel_err"], ln="–" if ln is None else f"{ln:.1e}"))
if ex.experts is not None:
    st.subheader(tr("tab.experts"))
    st.caption(tr("tab.exact_moe", err=ex.moe_error))
    ui.show_figure(ft.experts_figure(ex, lang), f"experts-{slug}", key="tb_experts")
    ui.show_table(ft.experts_table(ex), f"experts-{slug}", key="tb_experts_table")

# --- sampled vs dense ------------------------------------------------------------------------------------------
st.subheader(tr("tab.sampled"))
s1, s2, s3, s4 = st.columns(4)
with s1:
    scheme = st.selectbox(tr("samp.scheme"), options=ui.schemes(), key="tb_scheme", help=tr("samp.scheme_help"))
with s2:
    k = int(st.number_input(tr("samp.k"), min_value=1, max_value=64, value=3, step=1, key="tb_k",
                            help=tr("samp.k_help", range=IntRange("k", 1, 64).describe())))
with s3:
    seeds = int(st.number_input(tr("samp.seeds"), min_value=1, max_value=64, value=8, step=1, key="tb_seeds",
                                help=tr("samp.seeds_help")))
heads = [(l, h) for l in range(ex.n_layers) for h in range(ex.n_heads)]
with s4:
    lh = st.selectbox(tr("select.head"), options=heads, key="tb_head", format_func=lambda x: f"L{x[0]} H{x[1]}")
try:
    dense, sampled = ui.sampled_rows(model_name, ex.text, scheme, k, seeds, 0, lh[0], lh[1], t_col)
    effect = ui.downstream(model_name, ex.text, scheme, k, seeds, 0, "all", lh[0], lh[1])
except ValueError as err:
    st.error(tr("tab.error", message=str(err)), icon=":material/error:")
    st.stop()
ui.show_figure(ft.sampled_figure(np.asarray(dense), np.asarray(sampled), enc.names, f"L{lh[0]} H{lh[1]}", lang),
               f"sampled-{scheme}-k{k}-{slug}", key="tb_sampled")
st.caption(tr("tab.sampled_caption", scheme=scheme, k=k, seeds=seeds, flip=float(effect.flip_rate[0])))

# --- open elsewhere -------------------------------------------------------------------------------------------
st.markdown(f"**{tr('tab.open')}**")
o1, o2 = st.columns(2)
o1.link_button(tr("nav.head"), row_url("head", model_name, ex.text, t_col, lh[0], lh[1]), help=tr("tab.open_help"),
               icon=":material/grid_view:")
o2.link_button(tr("nav.sampling"), row_url("sampling", model_name, ex.text, t_col, lh[0], lh[1]),
               help=tr("tab.open_help"), icon=":material/casino:")

# --- the experiment -----------------------------------------------------------------------------------------
if source == "auto-mpg":
    st.subheader(tr("tab.results"))
    path = MODELS_DIR / "auto-mpg" / "results.json"
    if path.exists():
        results = json.loads(path.read_text(encoding="utf-8"))
        ui.show_figure(ft.results_figure(results, lang), "auto-mpg-results", key="tb_results")
        ui.show_table(ft.results_frame(results), "auto-mpg-results", key="tb_results_table")
        st.caption(tr("tab.results_caption", seeds=results["seeds"]))
    else:
        st.caption(tr("tab.results_missing"))
