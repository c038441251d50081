"""Sampled vs dense attention: rows side by side, error heatmaps, downstream effect, variance, concentration,
FLOPs."""
import functools

import streamlit as st

import ui
from interp.report import sampling_page_report
from interp.figures import sampling as fs
from interp.i18n import error_line, plural
from interp.ranges import K, SEED, SEEDS

tr = ui.tr
v = ui.start_page()
st.title(tr("samp.header"))
try:
    scheme_names = ui.schemes()
except ImportError as err:  # pragma: no cover - the sampling engine ships with the app
    st.warning(tr("samp.unavailable", message=str(err)))
    st.stop()
result = ui.analysed()
if result is None:
    ui.empty_state("samp.empty")
    st.stop()
lm, trace = result

# --- settings (ranges shared with the URL and the CLI: interp.ranges) --------------------------------------
c1, c2, c3, c4, c5 = st.columns([2, 1, 1, 1, 2])
ui.bind("sp_scheme", ui.current("scheme"))
ui.bind("sp_k", ui.current("k"))
ui.bind("sp_seed", ui.current("seed"))
with c1:
    st.selectbox(tr("samp.scheme"), options=scheme_names, key="sp_scheme", help=tr("samp.scheme_help"),
                 on_change=ui.from_widget("sp_scheme", "scheme"))
with c2:
    st.number_input(tr("samp.k"), min_value=K.lo, max_value=K.hi, step=1, key="sp_k",
                    help=tr("samp.k_help", range=K.describe()), on_change=ui.from_widget("sp_k", "k", int))
with c3:
    st.number_input(tr("samp.seed"), min_value=SEED.lo, max_value=SEED.hi, step=1, key="sp_seed",
                    help=tr("samp.seed_help", range=SEED.describe()), on_change=ui.from_widget("sp_seed", "seed", int))
with c4:
    seeds = int(st.number_input(tr("samp.seeds"), min_value=SEEDS.lo, max_value=SEEDS.hi, value=ui.DEFAULT_SEEDS,
                                step=1,
                                key="sp_seeds", help=tr("samp.seeds_help")))
with c5:
    where = st.radio(tr("samp.where"), options=["head", "layer", "all"], horizontal=True, key="sp_where",
                     format_func=lambda s: tr(f"samp.where.{s}"), help=tr("samp.where_help"))
c6, c7 = st.columns([1, 1])
with c6:
    layer, head = ui.layer_head_pickers(trace, "sp")
with c7:
    query = ui.query_picker(trace, "sp_query")
ui.show_notes(trace)
v = ui.view()
model, text, scheme, k, seed = v.model, v.text, v.scheme, v.k, v.seed

try:
    rows = ui.sampled_rows(model, text, scheme, k, seeds, seed, layer, head, query)
    report = ui.sampling_all(model, text, scheme, k, seeds, seed)
except ValueError as err:
    st.error(error_line(err, ui.lang()), icon=":material/error:")
    st.stop()

# --- rows side by side ------------------------------------------------------------------------------------
dense, sampled = rows
rep = 0
if seeds > 1:
    st.session_state["sp_rep"] = min(st.session_state.get("sp_rep", 0), seeds - 1)
    rep = st.slider(tr("samp.replicate"), min_value=0, max_value=seeds - 1, key="sp_rep",
                    help=tr("samp.replicate_help"))
ui.show_figure(fs.rows_figure(dense, sampled, trace.tokens, rep, query, layer, head, seed, ui.lang()),
               f"rows-{scheme}-k{k}-L{layer}H{head}q{query}-seed{seed}", key="sp_rows")
with st.expander(tr("samp.rows_table")):
    ui.show_table(fs.row_table(dense, sampled, trace.tokens, ui.lang()), f"rows-{scheme}-k{k}-L{layer}H{head}q{query}",
                  key="sp_rows_table")

# --- error heatmaps ---------------------------------------------------------------------------------------
st.subheader(tr("samp.errors"))
m1, m2 = st.columns([2, 1])
lang_now = ui.lang()       # bound: a picker's labels are also formatted outside the run
metric = m1.selectbox(tr("samp.metric"), options=list(fs.METRICS), format_func=lambda m: fs.metric_label(m, lang_now),
                      key="sp_metric")
nospecial = m2.toggle(tr("samp.nospecial"), key="sp_nospecial", help=tr("samp.nospecial_help"))
grid = fs.head_grid(report, metric, nospecial=nospecial, n_layers=trace.n_layers, n_heads=trace.n_heads)
ui.show_figure(fs.error_heatmap(grid, metric, (layer, head), ui.lang()), f"errors-{metric}-{scheme}-k{k}",
               key="sp_grid")
with st.expander(tr("samp.heads_table")):
    ui.show_table(fs.heads_table(report), f"sampling-heads-{scheme}-k{k}-seed{seed}", key="sp_heads_table")

# --- downstream effect ------------------------------------------------------------------------------------
st.subheader(tr("samp.downstream"))
with st.spinner(f"{tr('samp.downstream')}: {tr(f'samp.where.{where}')}…"):
    try:
        effect = ui.downstream(model, text, scheme, k, seeds, seed, where, layer, head)
    except ValueError as err:
        effect = None
        st.error(error_line(err, ui.lang()), icon=":material/error:")
if effect is not None:
    if effect.has_mlm_head:
        masks = [i for i, tok in enumerate(trace.tokens) if tok == getattr(lm.tokenizer, "mask_token", None)]
        where_text = (plural(len(masks), "samp.where_mask", ui.lang(), pos=", ".join(map(str, masks)))
                      if effect.positions[0] == "mask" and masks else tr("samp.where_nonspecial"))
        st.markdown(tr("samp.flip", rate=float(effect.flip_rate[0]), where=where_text,
                       seeds_n=plural(seeds, "count.seed", ui.lang())))
    else:
        st.markdown(tr("samp.cosine", mean=float(effect.cosine_mean[0]), min=float(effect.cosine_min[0])))
    ui.show_table(fs.downstream_table(effect, ui.lang()), f"downstream-{scheme}-k{k}-{where}", key="sp_down")

# --- variance and concentration ---------------------------------------------------------------------------
li = report.layers.index(layer)
a, b = st.columns(2)
with a:
    ui.show_figure(fs.variance_figure(report.per_query["var_rel"][li, head], report.per_query["bias2_rel"][li, head],
                                      trace.tokens, ui.lang()), f"variance-{scheme}-k{k}-L{layer}H{head}",
                   key="sp_var")
with b:
    err = report.per_query["rel_err"][li, head]
    ui.show_figure(fs.concentration_figure(err, trace.tokens, ui.lang()), f"concentration-{scheme}-k{k}-L{layer}H{head}",
                   key="sp_conc")
    c = fs.concentration_stats(err)
    st.caption(tr("samp.conc_caption", queries=c["queries"], mean=c["mean"], p95=c["p95"], max=c["max"],
                  share=c["worst5_share"]))

# --- FLOPs ------------------------------------------------------------------------------------------------
st.subheader(tr("samp.flops"))
from interp.sampling.schemes import NEEDS_FULL_QK, dense_flops, scheme_flops  # noqa: E402

d_head = int(trace.layers[0].q.shape[-1])
d_model = int(trace.layers[0].hidden_in.shape[-1])
flops = fs.flops_table(scheme_names, scheme_flops, dense_flops, NEEDS_FULL_QK, trace.n, trace.n, d_head, d_model, k,
                       lang=ui.lang())
ui.show_table(flops, f"flops-n{trace.n}-k{k}", key="sp_flops")
st.caption(tr("samp.flops_caption", n=trace.n, d_head=d_head, k=k, share=flops.attrs["attention_share"],
              seconds=report.meta.get("seconds_heads", float("nan"))))

ui.report_buttons(functools.partial(
    sampling_page_report, model, text, ui.lang(), where=where, tokens=list(trace.tokens), rows=rows, report=report, effect=effect,
    flops=flops, scheme=scheme, k=k, seeds=seeds, seed=seed, layer=layer, head=head, query=query, replicate=rep,
    metric=metric, nospecial=nospecial, n_layers=trace.n_layers, n_heads=trace.n_heads,
    mask_positions=[i for i, tok in enumerate(trace.tokens) if tok == getattr(lm.tokenizer, "mask_token", None)]),
    f"report-sampling-{scheme}-k{k}-L{layer}H{head}q{query}-seed{seed}", "sp",
    (model, text, scheme, k, seeds, seed, layer, head, query, rep, metric, nospecial, where))
