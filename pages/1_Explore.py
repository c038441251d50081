"""Explore: pick a model, type a text, see its tokens and predictions, and every layer × head at a glance."""
import streamlit as st

import ui
from interp.figures import explore as fx
from interp.i18n import error_text, plural, role_text, t
from interp.ranges import TEXT_MAX_CHARS
from interp.trace import InputError, clean_text

tr = ui.tr
v = ui.start_page()
st.title(tr("app.title"))
st.caption(tr("app.tagline"))

# --- input -------------------------------------------------------------------------------------------------
options = ui.model_options()
model = v.model or options[0]
if st.session_state.get("_el_model_src") != model or "in_model" not in st.session_state:
    st.session_state["_el_model_src"] = model      # the view's model changed (URL, new session): show it
    ui.bind("in_model", model if model in options else ui.LOCAL)
    if model not in options:
        ui.bind("in_folder", model)
if v.text is not None and st.session_state.get("_el_text_src") != v.text:
    st.session_state["in_text"] = v.text
    st.session_state["_el_text_src"] = v.text
st.session_state.setdefault("in_text", "")


def _choose_model():
    choice = st.session_state.in_model
    if choice != ui.LOCAL and choice in options:       # a registry name, never a display label
        ui.set_view(model=choice)


def _choose_folder():
    folder = st.session_state.get("in_folder", "").strip()
    if folder:
        ui.set_view(model=folder)


def _pick_example():
    if st.session_state.in_example:
        st.session_state.in_text = st.session_state.in_example


def _insert_mask():
    st.session_state.in_text = (st.session_state.in_text.rstrip() + " [MASK]").strip()


def _analyze():
    text = st.session_state.in_text
    st.session_state.pop("_el_input_error", None)
    try:
        clean_text(text)
    except InputError as err:
        st.session_state["_el_input_error"] = error_text(err, ui.lang())
        ui.replace_view(ui.view().replace(text=None))
        return
    if len(text) > TEXT_MAX_CHARS:
        st.session_state["_el_input_error"] = tr("error.text_too_long", n=len(text), max=TEXT_MAX_CHARS)
        return
    if st.session_state.in_model == ui.LOCAL:
        _choose_folder()
    st.session_state["_el_text_src"] = text
    ui.set_view(text=text)


st.subheader(tr("input.header"))
c_model, c_example = st.columns([3, 2])
with c_model:
    st.selectbox(tr("input.model"), options=options, key="in_model", format_func=ui.model_labels(),
                 help=tr("input.model_help"), on_change=_choose_model)
    if st.session_state.in_model == ui.LOCAL:
        st.text_input(tr("input.folder"), key="in_folder", placeholder=tr("input.folder_placeholder"),
                      help=tr("input.folder_help"), on_change=_choose_folder)
        if not st.session_state.get("in_folder", "").strip():
            st.caption(tr("error.folder_empty"))
with c_example:
    st.selectbox(tr("input.example"), options=[None] + ui.examples(), key="in_example",
                 format_func=lambda s: tr("input.example_none") if s is None else (s if len(s) <= 90 else s[:88] + "…"),
                 help=tr("input.example_help"),
                 on_change=_pick_example)
st.text_area(tr("input.text"), key="in_text", height=110, placeholder=tr("input.text_placeholder"),
             help=tr("input.text_help"))
b1, b2, _ = st.columns([1, 1, 4])
b1.button(tr("input.insert_mask"), on_click=_insert_mask, help=tr("input.insert_mask_help"), width="stretch")
b2.button(tr("input.analyze"), on_click=_analyze, type="primary", help=tr("input.analyze_help"), width="stretch",
          key="analyze")
if st.session_state.get("_el_input_error"):
    st.error(tr("error.input", message=st.session_state["_el_input_error"]), icon=":material/error:")

result = ui.analysed()
if result is None:
    if not ui.view().text and not st.session_state.get("_el_input_error"):
        st.info(tr("input.empty_state"), icon=":material/edit:")
    st.stop()
lm, trace = result
d = lm.describe()
st.caption(tr("input.model_card", head_text=tr("input.has_head") if d["has_mlm_head"] else tr("input.no_head"),
              layers_n=plural(d["layers"], "count.layer", ui.lang()),
              heads_n=plural(d["heads"], "count.head", ui.lang()),
              **d))
v = ui.view()
if st.session_state.in_text != v.text:
    st.caption(tr("input.changed"))
ui.show_notes(trace)

# --- tokens and predictions -------------------------------------------------------------------------------
query = ui.current("query")
st.subheader(tr("tokens.header"))
st.markdown(fx.tokens_markdown(trace.tokens, trace.special.tolist(), query))
st.caption(tr("tokens.caption", n_tokens=plural(trace.n, "count.token", ui.lang())))
with st.expander(tr("tokens.header")):
    ui.show_table(fx.tokens_table(trace, ui.lang()), "tokens", key="tokens")

st.subheader(tr("pred.header"))
if not lm.has_mlm_head:
    st.info(tr("pred.no_head", name=lm.name), icon=":material/info:")
else:
    preds = ui.predictions(v.model, v.text)
    if len(preds) == 0:
        st.caption(tr("pred.none_mask"))
    else:
        ui.show_table(preds, "mask-predictions", key="preds")

# --- overview ---------------------------------------------------------------------------------------------
st.subheader(tr("ov.header"))
query = ui.query_picker(trace, "ov_query")
ov = ui.overview(v.model, v.text)
selected = (ui.current("layer"), ui.current("head"))
st.caption(tr("ov.caption", token=trace.tokens[query], query=query))
fig = fx.overview_figure(ov, query, selected, ui.lang())
event = ui.show_figure(fig, f"overview-{lm.name}", key="ov_chart", on_select="rerun",
                       alt=tr("ov.alt", L=trace.n_layers, H=trace.n_heads))
clicked = fx.selected_head(event)
if clicked is not None:
    ui.set_view(layer=clicked[0], head=clicked[1])
    ui.open_page("head")

H = trace.n_heads


def _pick_head():
    """The picker's value is a flat index l·H + h; anything else (a stale label) is dropped."""
    pick = st.session_state.get("ov_pick")
    if isinstance(pick, int) and not isinstance(pick, bool) and 0 <= pick < trace.n_layers * H:
        ui.set_view(layer=pick // H, head=pick % H)


ui.bind("ov_pick", selected[0] * H + selected[1])
c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
lang_now = ui.lang()       # bound: a picker's labels are also formatted outside the run
c1.selectbox(tr("select.head_fallback"), options=list(range(trace.n_layers * H)), key="ov_pick",
             help=tr("select.head_fallback_help"), on_change=_pick_head,
             format_func=lambda i: t("select.head_option", lang_now, layer=i // H, head=i % H,
                                     role=role_text(ov.role[i // H][i % H], lang_now))
             if isinstance(i, int) and 0 <= i < trace.n_layers * H else str(i))
if c2.button(tr("select.open_head"), key="ov_open", width="stretch"):
    ui.open_page("head")
checks = ui.identity_checks(v.model, v.text)
if checks:
    def _err(name):
        val = checks.get(name)
        return "—" if val is None else f"{val:.1e}"
    st.caption(tr("ov.checks", d=_err("identity_dense_max_rel_err"), ln=_err("identity_ln_max_rel_err"),
                  c=_err("layer_output_max_rel_err")))
with st.expander(tr("ov.table")):
    ui.show_table(fx.overview_table(ov, query, ui.lang()), f"overview-{lm.name}", key="ov_table")
