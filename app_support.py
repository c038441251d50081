"""Streamlit glue shared by every page: cached engine calls, shareable URL state, exports.

* ``get_model`` — ``st.cache_resource``: one model object per name/folder per process, shared by every session,
  never mutated (analyses run through per-call attention plans, see ``interp.attention``).
* ``get_trace`` — ``st.cache_resource``: one captured forward pass per (model, text), read-only, shared.
* ``overview`` / ``head`` / ``lens`` / ``layer0`` / ... — ``st.cache_data``: compact results per
  (model, text, settings), copied to each caller.
* URL state: exactly the query parameters in :data:`PARAMS`; the canonical view lives in session state and is
  written back to the URL on every run, so any view can be shared and reopened.
* ``show_figure`` / ``show_table``: every figure with a PNG modebar button and a self-contained HTML download,
  every table with a CSV download.

Pages call only this module, ``interp`` and ``interp.figures``; nothing here does any analysis itself.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable

import streamlit as st
import torch

from interp import decompose
from interp.figures import explore as fx
from interp.figures import head as fh
from interp.figures.common import chart_config, safe_filename, to_html
from interp.i18n import DEFAULT_LANG, t
from interp.loader import REGISTRY, LoadedModel, ModelLoadError, available_models, default_model, load_model
from interp.trace import InputError, Trace, trace_text

ROOT = Path(__file__).resolve().parent
PAGES = ROOT / "pages"

# One intra-op thread per analysis: the server runs one script thread per browser session, so parallelism comes
# from sessions; and when the cores are busy, torch's multi-threaded kernels spin-wait for each other (measured
# here: a 128-token MiniLM pass plus the identity checks took 3.4 s with 2 threads on 2 busy cores, 0.13 s with
# 1). EXPERTLENS_TORCH_THREADS overrides it.
torch.set_num_threads(max(1, int(os.environ.get("EXPERTLENS_TORCH_THREADS", "1"))))
PARAMS = ("model", "text", "layer", "head", "query", "scheme", "k", "seed")
INT_PARAMS = ("layer", "head", "query", "k", "seed")
DEFAULTS: dict[str, Any] = {"layer": 0, "head": 0, "k": 8, "seed": 0}
LOCAL = "__local__"
BUILTIN_EXAMPLES = (
    "The capital of France is [MASK].",
    "The cat sat on the mat because it was tired.",
    "She put the book on the [MASK] and left the room.",
    "Each word is an expert; attention decides whom to listen to.",
    "Sampling a few keys is usually right, but not always.",
)
_VIEW = "_el_view"
_URL = "_el_url_written"
_PROBLEMS = "_el_url_problems"


# --- language ---------------------------------------------------------------------------------------------

def lang() -> str:
    """The UI language (English until the language parameter arrives)."""
    return DEFAULT_LANG


def tr(key: str, **values) -> str:
    return t(key, lang(), **values)


# --- cached engine calls ---------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False, max_entries=8)
def get_model(name: str) -> LoadedModel:
    """The shared, read-only model for a registry name or folder (raises ``ModelLoadError``)."""
    return load_model(name)


@st.cache_resource(show_spinner=False, max_entries=32)
def get_trace(model: str, text: str) -> Trace:
    """The shared, read-only forward pass of ``text`` (raises ``InputError``)."""
    return trace_text(get_model(model), text)


@st.cache_data(show_spinner=False, max_entries=64)
def overview(model: str, text: str) -> decompose.Overview:
    """Every head decomposed (identity checks apart, see :func:`identity_checks`)."""
    return decompose.overview(get_model(model), get_trace(model, text), with_checks=False)


@st.cache_data(show_spinner=False, max_entries=64)
def identity_checks(model: str, text: str) -> dict:
    """The exactness of identities 1 and 2 on this input (max relative errors against the model's own pass)."""
    return decompose.identity_checks(get_model(model), get_trace(model, text))


@st.cache_data(show_spinner=False, max_entries=128)
def head(model: str, text: str, layer: int, head_: int) -> decompose.HeadView:
    return decompose.head_view(get_model(model), get_trace(model, text), layer, head_)


@st.cache_data(show_spinner=False, max_entries=64)
def predictions(model: str, text: str, top: int = 5):
    lm = get_model(model)
    return fx.mask_predictions(get_trace(model, text), lm.tokenizer, top, lang())


@st.cache_data(show_spinner=False, max_entries=128)
def lens(model: str, text: str, layer: int, head_: int, query: int, name: str) -> fh.LensSummary:
    """A lens's compact summary (the n × V expert outputs never leave the server)."""
    from interp.lenses import LENSES
    lm, trace = get_model(model), get_trace(model, text)
    if name == "counterfactual":  # n re-runs of the rest of the network: show how far it has got
        bar = st.progress(0.0, text=f"Re-running the network once per expert ({trace.n} experts)…")
        try:
            res = LENSES[name](lm, trace, layer, head_, query,
                               progress=lambda f: bar.progress(float(f), text=f"Re-running the network once per "
                                                               f"expert: {f:.0%} of {trace.n}"))
        finally:
            bar.empty()
    else:
        res = LENSES[name](lm, trace, layer, head_, query)
    return fh.lens_summary(res, trace.tokens, lm.tokenizer, lang=lang())


@st.cache_data(show_spinner=False, max_entries=64)
def layer0(model: str, text: str, head_: int) -> dict:
    """Layer-0 CBOW split norms and gate-score split of one head, with their exactness errors."""
    lm, trace = get_model(model), get_trace(model, text)
    cbow = decompose.cbow_split(lm, trace, head_)
    gss = decompose.gate_score_split(lm, trace, head_)
    return {"norms": cbow.norms(), "cbow_err": cbow.max_rel_err(), "parts": gss.parts, "total": gss.total,
            "score_err": gss.max_abs_err()}


def model_options() -> list[str]:
    """Registry models present on this machine (the default first), then the local-folder choice."""
    avail = available_models()
    first = default_model()
    names = ([first] if first in avail else []) + [m for m in avail if m != first]
    return names + [LOCAL]


def model_label(name: str) -> str:
    if name == LOCAL:
        return tr("input.local_option")
    entry = REGISTRY.get(name)
    return f"{name} — {entry.description}" if entry else name


def examples() -> list[str]:
    """Example sentences: the demo file in ``models/`` when there is one, else the built-in ones."""
    found: list[str] = []
    models = ROOT / "models"
    files = sorted(p for pat in ("*demo*", "*example*") for p in models.glob(pat) if p.is_file()) \
        if models.is_dir() else []
    for path in files:
        try:
            found += _read_examples(path)
        except (OSError, ValueError, UnicodeDecodeError):
            continue
    out = list(dict.fromkeys(s for s in found if s.strip()))
    return out[:50] if out else list(BUILTIN_EXAMPLES)


def _read_examples(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        data = data.get("examples", data.get("texts", [])) if isinstance(data, dict) else data
        return [d if isinstance(d, str) else str(d.get("text", "")) for d in data if isinstance(d, (str, dict))]
    if path.suffix == ".jsonl":
        out = []
        for line in text.splitlines():
            if line.strip():
                d = json.loads(line)
                out.append(d if isinstance(d, str) else str(d.get("text", "")))
        return out
    if path.suffix in (".txt", ".md") and path.name.lower() != "readme.md":
        return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return []


# --- URL state -------------------------------------------------------------------------------------------

def _parse(name: str, raw: str) -> tuple[Any, str | None]:
    if name in INT_PARAMS:
        try:
            val = int(raw)
        except (TypeError, ValueError):
            return None, "not an integer"
        if val < 0 or (name == "k" and val < 1):
            return None, "must be ≥ 1" if name == "k" else "must be ≥ 0"
        return val, None
    if name == "text" and not str(raw).strip():
        return None, "empty"
    if name == "scheme" and raw not in schemes():
        return None, f"unknown scheme (choose one of {', '.join(schemes())})"
    return str(raw), None


def begin_run() -> dict:
    """Merge URL parameters that changed since this session last wrote them into the view, then write the view
    back to the URL (a page switch that dropped them gets them back). Call once per run, before any page."""
    view = st.session_state.setdefault(_VIEW, {})
    written = st.session_state.setdefault(_URL, {})
    problems = []
    qp = st.query_params
    for name in PARAMS:
        if name in qp:
            raw = qp[name]
            if written.get(name) == raw:
                continue
            val, err = _parse(name, raw)
            if err:
                problems.append(tr("error.param", name=name, value=raw[:40], reason=err))
                written[name] = raw
            else:
                if name == "text" and val != view.get("text"):
                    view.pop("query", None)
                view[name] = val
    st.session_state[_PROBLEMS] = problems
    write_url()
    return view


def view() -> dict:
    """The canonical view of this session: model, text, layer, head, query, scheme, k, seed (some may be absent)."""
    return st.session_state.setdefault(_VIEW, {})


def url_problems() -> list[str]:
    return st.session_state.get(_PROBLEMS, [])


def write_url() -> None:
    """Write the view's parameters to the URL (only those that changed; other parameters are left alone)."""
    v = view()
    written = st.session_state.setdefault(_URL, {})
    qp = st.query_params
    for name in PARAMS:
        val = v.get(name)
        if val is None:
            continue
        raw = str(val)
        if qp.get(name) != raw:
            qp[name] = raw
        written[name] = raw


def set_view(**values) -> None:
    """Update the view (and the URL). A new model or text resets the query to the input's default."""
    v = view()
    if ("text" in values and values["text"] != v.get("text")) or ("model" in values and values["model"] != v.get("model")):
        v.pop("query", None)
    v.update({k: val for k, val in values.items() if k in PARAMS})
    write_url()


def current(name: str, default=None):
    val = view().get(name)
    return val if val is not None else DEFAULTS.get(name, default)


def bind(widget_key: str, value) -> None:
    """Make a keyed widget show ``value`` on this run (set before the widget is created; no ``value=``)."""
    if st.session_state.get(widget_key) != value:
        st.session_state[widget_key] = value


def from_widget(widget_key: str, name: str) -> Callable[[], None]:
    """An ``on_change`` callback copying a widget's value into the view parameter ``name``."""
    def callback():
        set_view(**{name: st.session_state[widget_key]})
    return callback


# --- analysis with clear messages -------------------------------------------------------------------------

def analysed() -> tuple[LoadedModel, Trace] | None:
    """The model and trace of the view's (model, text), with progress and one-line error messages; None when
    there is nothing to analyse or it failed (the message is already shown)."""
    v = view()
    text, model = v.get("text"), v.get("model") or default_model()
    if not text:
        return None
    try:
        with st.spinner(tr("input.loading", name=model)):
            lm = get_model(model)
    except ModelLoadError as err:
        st.error(tr("error.model", message=str(err)), icon=":material/error:")
        return None
    try:
        with st.spinner(tr("input.analysing", n=len(text), name=model)):
            trace = get_trace(model, text)
    except InputError as err:
        st.error(tr("error.input", message=str(err)), icon=":material/error:")
        return None
    if v.get("model") is None:
        set_view(model=model)
    clamp_view(lm, trace)
    return lm, trace


def clamp_view(lm: LoadedModel, trace: Trace) -> None:
    """Bring layer/head/query into range for this model and input, saying what was out of range."""
    v = view()
    limits = {"layer": trace.n_layers, "head": trace.n_heads, "query": trace.n}
    changes = {}
    for name, n in limits.items():
        val = v.get(name)
        if val is not None and not 0 <= val < n:
            st.warning(tr("error.param", name=name, value=val, reason=f"out of range 0–{n - 1}"))
            changes[name] = None
    if v.get("query") is None or "query" in changes:
        changes["query"] = fx.default_query(trace, getattr(lm.tokenizer, "mask_token_id", None))
    for name in ("layer", "head"):
        if v.get(name) is None or name in changes:
            changes[name] = DEFAULTS[name]
    if v.get("k") is None:
        changes["k"] = DEFAULTS["k"]
    if v.get("seed") is None:
        changes["seed"] = DEFAULTS["seed"]
    if v.get("scheme") is None:
        changes["scheme"] = DEFAULT_SCHEME
    if changes:
        v.update(changes)
        write_url()


def show_notes(trace: Trace) -> None:
    """Truncation warning and every change made to the input text."""
    if trace.truncation is not None:
        st.warning(tr("trunc.warning", message=trace.truncation.message()), icon=":material/content_cut:")
    other = [n for n in trace.notes if trace.truncation is None or n != trace.truncation.message()]
    if other:
        st.info(tr("notes.header") + ": " + "; ".join(other), icon=":material/info:")


def query_picker(trace: Trace, key: str) -> int:
    """Select the query token (bound to the ``query`` URL parameter)."""
    bind(key, current("query"))
    return st.selectbox(tr("select.query"), options=list(range(trace.n)), key=key,
                        format_func=lambda j: f"{j}: {trace.tokens[j]}", help=tr("select.query_help"),
                        on_change=from_widget(key, "query"))


def layer_head_pickers(trace: Trace, key: str) -> tuple[int, int]:
    c1, c2 = st.columns(2)
    bind(f"{key}_layer", current("layer"))
    bind(f"{key}_head", current("head"))
    with c1:
        layer = st.selectbox(tr("select.layer"), options=list(range(trace.n_layers)), key=f"{key}_layer",
                             on_change=from_widget(f"{key}_layer", "layer"))
    with c2:
        head_ = st.selectbox(tr("select.head"), options=list(range(trace.n_heads)), key=f"{key}_head",
                             on_change=from_widget(f"{key}_head", "head"))
    return layer, head_


def empty_state(message_key: str) -> None:
    st.info(tr(message_key), icon=":material/arrow_back:")
    st.page_link(page("explore"), label=tr("nav.explore"), icon=":material/search:")


# --- pages and navigation --------------------------------------------------------------------------------

_PAGE_FILES = {"explore": "1_Explore.py", "head": "2_Head.py", "triage": "3_Triage.py", "sampling": "4_Sampling.py"}


def page(name: str) -> str:
    """The script path of a page, for ``st.page_link`` / ``st.switch_page``."""
    return f"pages/{_PAGE_FILES[name]}"


def navigation_pages() -> list:
    """``st.Page`` objects for ``st.navigation``; the triage page is included when its file exists. URL paths
    are the names Streamlit derives from the files in ``pages/`` ("Head" from ``2_Head.py``), so that a deep
    link resolves the same way whether or not ``app.py`` ran first (see :func:`start_page`)."""
    pages = [st.Page(page("explore"), title=tr("nav.explore"), icon=":material/search:", default=True),
             st.Page(page("head"), title=tr("nav.head"), icon=":material/grid_view:", url_path="Head"),
             st.Page(page("sampling"), title=tr("nav.sampling"), icon=":material/casino:", url_path="Sampling")]
    if (PAGES / _PAGE_FILES["triage"]).exists():
        pages.insert(2, st.Page(page("triage"), title=tr("nav.triage"), icon=":material/troubleshoot:",
                                url_path="Triage"))
    return pages


def page_config() -> None:
    st.set_page_config(page_title="ExpertLens", page_icon=":material/search:", layout="wide",
                       initial_sidebar_state="expanded")


_RUN = threading.local()


def app_ran() -> None:
    """Called by ``app.py`` at the start of every run it handles."""
    _RUN.app_ran = True


def start_page() -> dict:
    """Call first in every page: the view merged from the URL, URL problems shown.

    Normally ``app.py`` ran first in this run (page config, navigation, URL merge). On the very first run of a
    server process, Streamlit resolves a deep link against the ``pages/`` folder and runs the page directly,
    without ``app.py`` (the URL paths are the folder's page names, so the page is found and no "page not found"
    dialog appears). Then the page does the setup itself and tells Streamlit that this app declares its own
    navigation, so the next run goes through ``app.py``."""
    ran = getattr(_RUN, "app_ran", False)
    _RUN.app_ran = False
    if not ran:
        from streamlit.runtime.pages_manager import PagesManager
        PagesManager.uses_pages_directory = False
        page_config()
        begin_run()
    v = view()
    for problem in url_problems():
        st.warning(problem, icon=":material/link:")
    return v


def open_page(name: str) -> None:
    """Switch to a page, carrying the view in the URL."""
    v = view()
    st.switch_page(page(name), query_params={k: str(v[k]) for k in PARAMS if v.get(k) is not None})


# --- figures and tables with exports --------------------------------------------------------------------

def show_figure(fig, name: str, key: str, alt: str | None = None, on_select: str | Callable | None = None):
    """Render a plotly figure (PNG export from its modebar) with an HTML download (plotly.js inlined).
    Returns the selection state when ``on_select`` is given."""
    filename = safe_filename(name)
    kwargs = dict(key=key, config=chart_config(filename), width="stretch", theme=None)
    if alt:
        kwargs["alt"] = alt
    if on_select is not None:
        event = st.plotly_chart(fig, on_select=on_select, selection_mode="points", **kwargs)
    else:
        event = st.plotly_chart(fig, **kwargs)
    st.download_button(tr("export.html"), data=lambda: to_html(fig, name), file_name=f"{filename}.html",
                       mime="text/html", key=f"{key}__html", on_click="ignore", help=tr("export.html_help"),
                       icon=":material/download:")
    return event


def show_table(df, name: str, key: str, height: int | str = "auto") -> None:
    """A table with a CSV download."""
    if df is None or len(df) == 0:
        st.caption(tr("empty.no_data"))
        return
    if len(df) <= 12 and height == "auto":      # small tables as plain HTML: much lighter for the browser
        st.table(df, hide_index=True)
    else:
        st.dataframe(df, hide_index=True, width="stretch", height=height, key=f"{key}__df")
    st.download_button(tr("export.csv"), data=lambda: df.to_csv(index=False), file_name=f"{safe_filename(name)}.csv",
                       mime="text/csv", key=f"{key}__csv", on_click="ignore", help=tr("export.csv_help"),
                       icon=":material/table:")


# --- sampled vs dense ---------------------------------------------------------------------------------------

DEFAULT_SCHEME = "A"
DEFAULT_SEEDS = 8


def schemes() -> list[str]:
    from interp.sampling import SCHEMES
    return list(SCHEMES)


@st.cache_data(show_spinner=False, max_entries=512)
def sampling_layer(model: str, text: str, scheme: str, k: int, seeds: int, seed: int, layer: int):
    """The sampled-vs-dense report of one layer (all its heads), no downstream run."""
    from interp.sampling.report import sampling_report
    return sampling_report(get_model(model), get_trace(model, text), scheme, k, seeds, seed, layers=[layer],
                           downstream=False)


def sampling_all(model: str, text: str, scheme: str, k: int, seeds: int, seed: int):
    """The report for every layer, one cached layer at a time with a progress bar. Identical to one
    ``sampling_report`` call over all layers: each layer's draws come from the generator of (seed, example,
    layer, replicate) whatever else is computed."""
    import dataclasses

    import numpy as np
    trace = get_trace(model, text)
    L = trace.n_layers
    bar = st.progress(0.0, text=tr("samp.progress", done=0, total=L))
    parts = []
    for l in range(L):
        parts.append(sampling_layer(model, text, scheme, k, seeds, seed, l))
        bar.progress((l + 1) / L, text=tr("samp.progress", done=l + 1, total=L))
    bar.empty()
    per_query = {name: np.concatenate([p.per_query[name] for p in parts]) for name in parts[0].per_query}
    return dataclasses.replace(parts[0], layers=[l for p in parts for l in p.layers],
                               heads=[r for p in parts for r in p.heads], per_query=per_query)


@st.cache_data(show_spinner=False, max_entries=128)
def downstream(model: str, text: str, scheme: str, k: int, seeds: int, seed: int, where: str, layer: int,
               head_: int):
    """The scheme substituted into this head / this layer / all layers, the model re-run for every seed."""
    from interp.sampling import downstream_effect
    from interp.trace import encode
    lm = get_model(model)
    layers = None if where == "all" else [layer]
    heads = [head_] if where == "head" else None
    return downstream_effect(lm, encode(lm, [text]), scheme, k, seeds, seed, None, layers, heads)


@st.cache_data(show_spinner=False, max_entries=256)
def sampled_rows(model: str, text: str, scheme: str, k: int, seeds: int, seed: int, layer: int, head_: int,
                 query: int):
    """(dense row P_i·, sampled rows P̂_i· of every replicate: S × n) of one head and query, drawn exactly as
    the report draws them (same example key, generators and validity mask)."""
    from interp.sampling.report import draw_layer
    lm, trace = get_model(model), get_trace(model, text)
    dr = draw_layer(lm, trace, layer, scheme, k, seeds, seed)
    return dr.P[0, head_, query].cpu().numpy(), dr.est.weights[:, 0, head_, query].cpu().numpy()
