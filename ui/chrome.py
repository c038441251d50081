"""Page chrome: navigation, page setup, the error boundary, model choice and examples, the analysed input,
the layer/head/query pickers, notes and empty states."""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Callable

import streamlit as st

from interp.figures import explore as fx
from interp.i18n import error_text, model_description, note_text, t
from interp.loader import REGISTRY, LoadedModel, ModelLoadError, available_models, default_model
from interp.trace import InputError, Trace
from ui import engine
from ui.session import (add_problems, begin_run, bind, clear_view, current, from_widget, lang, replace_view,
                        set_view, tr, url_problems, view)

log = logging.getLogger("expertlens.ui")
ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "pages"
LOCAL = "__local__"
BUILTIN_EXAMPLES = (
    "I will call you back in five [MASK].",
    "Please enter your email [MASK] below.",
    "The capital of France is [MASK].",
    "The cat sat on the mat because it was tired.",
    "She put the book on the [MASK] and left the room.",
    "Each word is an expert; attention decides whom to listen to.",
    "Sampling a few keys is usually right, but not always.",
)


# --- models and examples ------------------------------------------------------------------------------------

def model_options() -> list[str]:
    """Registry models present on this machine (the default first), then the local-folder choice."""
    avail = available_models()
    first = default_model()
    names = ([first] if first in avail else []) + [m for m in avail if m != first]
    return names + [LOCAL]


def model_label(name: str, lang_code: str | None = None) -> str:
    """``name — description`` for the model picker, in the app's language (or ``lang_code``)."""
    code = lang_code or lang()
    if name == LOCAL:
        return t("input.local_option", code)
    entry = REGISTRY.get(name)
    return f"{name} — {model_description(name, entry.description, code)}" if entry else name


def model_labels() -> Callable[[str], str]:
    """The model picker's ``format_func`` for this run: :func:`model_label` with this run's language bound (a
    picker's labels are formatted again outside the run, where the URL's language cannot be read)."""
    code = lang()
    return lambda name: model_label(name, code)


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


# --- the analysed input ------------------------------------------------------------------------------------

def analysed() -> tuple[LoadedModel, Trace] | None:
    """The model and trace of the view's (model, text), with progress and one-line error messages; None when
    there is nothing to analyse or it failed (the message is already shown). The view is fitted to the input
    (layer, head, query in range; a message for each value that was not)."""
    v = view()
    text, model = v.text, v.model or default_model()
    if not text:
        return None
    try:
        with st.spinner(tr("input.loading", name=model)):
            lm = engine.get_model(model)
    except ModelLoadError as err:
        st.error(tr("error.model", message=error_text(err, lang())), icon=":material/error:")
        return None
    try:
        with st.spinner(tr("input.analysing", n=len(text), name=model)):
            trace = engine.get_trace(model, text)
    except InputError as err:
        st.error(tr("error.input", message=error_text(err, lang())), icon=":material/error:")
        return None
    if v.model is None:
        replace_view(view().replace(model=model))
    fit_view(lm, trace)
    return lm, trace


def fit_view(lm: LoadedModel, trace: Trace) -> None:
    """Bring layer/head/query into range for this model and input, saying what was out of range."""
    fitted, problems = view().fit(trace.n_layers, trace.n_heads, trace.n,
                                  fx.default_query(trace, getattr(lm.tokenizer, "mask_token_id", None)))
    for problem in problems:
        st.warning(problem, icon=":material/link:")
    if fitted != view():
        replace_view(fitted)


def show_notes(trace: Trace) -> None:
    """Truncation warning and every change made to the input text."""
    if trace.truncation is not None:
        st.warning(tr("trunc.warning", message=note_text(trace.truncation.message(), lang())),
                   icon=":material/content_cut:")
    other = [n for n in trace.notes if trace.truncation is None or n != trace.truncation.message()]
    if other:
        st.info(tr("notes.header") + ": " + "; ".join(note_text(n, lang()) for n in other), icon=":material/info:")


# --- pickers bound to the view ------------------------------------------------------------------------------

def _index_in(n: int) -> Callable[[object], int]:
    """A converter that accepts only an integer in 0..n-1 (a stale label or anything else raises)."""
    def convert(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
            raise ValueError(f"not an index below {n}: {value!r}")
        return value
    return convert


def query_picker(trace: Trace, key: str) -> int:
    """Select the query token (bound to the ``query`` URL parameter); returns the view's typed query."""
    bind(key, current("query"))
    st.selectbox(tr("select.query"), options=list(range(trace.n)), key=key,
                 format_func=lambda j: f"{j}: {trace.tokens[j]}" if isinstance(j, int) and 0 <= j < trace.n
                 else str(j), help=tr("select.query_help"), on_change=from_widget(key, "query", _index_in(trace.n)))
    return current("query")


def layer_picker(trace: Trace, key: str) -> int:
    bind(key, current("layer"))
    st.selectbox(tr("select.layer"), options=list(range(trace.n_layers)), key=key,
                 on_change=from_widget(key, "layer", _index_in(trace.n_layers)))
    return current("layer")


def head_picker(trace: Trace, key: str) -> int:
    bind(key, current("head"))
    st.selectbox(tr("select.head"), options=list(range(trace.n_heads)), key=key,
                 on_change=from_widget(key, "head", _index_in(trace.n_heads)))
    return current("head")


def layer_head_pickers(trace: Trace, key: str) -> tuple[int, int]:
    c1, c2 = st.columns(2)
    with c1:
        layer = layer_picker(trace, f"{key}_layer")
    with c2:
        head_ = head_picker(trace, f"{key}_head")
    return layer, head_


def empty_state(message_key: str) -> None:
    st.info(tr(message_key), icon=":material/arrow_back:")
    st.page_link(page("explore"), label=tr("nav.explore"), icon=":material/search:")


# --- pages and navigation ----------------------------------------------------------------------------------

_PAGE_FILES = {"story": "0_Story.py", "explore": "1_Explore.py", "head": "2_Head.py", "triage": "3_Triage.py",
               "sampling": "4_Sampling.py", "noise": "5_Noise.py", "tables": "6_Tables.py"}


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
    pages.insert(0, st.Page(page("story"), title=tr("story.nav"), icon=":material/slideshow:", url_path="Story"))
    pages.append(st.Page(page("noise"), title=tr("nav.noise"), icon=":material/blur_on:", url_path="Noise"))
    pages.append(st.Page(page("tables"), title=tr("nav.tables"), icon=":material/table_chart:", url_path="Tables"))
    return pages


def page_config() -> None:
    st.set_page_config(page_title="ExpertLens", page_icon=":material/search:", layout="wide",
                       initial_sidebar_state="expanded")


_RUN = threading.local()


def app_ran() -> None:
    """Called by ``app.py`` at the start of every run it handles."""
    _RUN.app_ran = True


_STARTED = "_el_session_started"


def start_page():
    """Call first in every page: the view merged from the URL, URL problems shown.

    Normally ``app.py`` ran first in this run (page config, navigation, URL merge, language switch). But on the
    very first run of a server process, Streamlit still treats the app as a ``pages/``-folder app (it decides
    that when it first sees the folder next to ``app.py``, before any script has run): it declares its own
    folder navigation ("app", "Head", …) and runs a deep-linked page directly, without ``app.py``. Then the page
    does what ``app.py`` does: it tells Streamlit that this app declares its own navigation, and declares it
    (this replaces the folder navigation in the same run; the URL paths are the folder's page names, so the
    same page is resolved and no "page not found" dialog appears), and shows the language switch. This is done
    in a session's first run only (the only run without user input, so no widget event can be lost to the
    change of navigation; ``AppTest`` starts every run as a folder run, and its later runs keep the plain
    setup). No rerun is involved, so nothing can loop."""
    ran = getattr(_RUN, "app_ran", False)
    _RUN.app_ran = False
    first_run = not st.session_state.get(_STARTED)
    st.session_state[_STARTED] = True
    if not ran:
        from streamlit.runtime.pages_manager import PagesManager
        folder_run = bool(PagesManager.uses_pages_directory)
        PagesManager.uses_pages_directory = False
        page_config()
        if folder_run and first_run:
            current_page = st.navigation(navigation_pages())
        begin_run()
        if folder_run and first_run and getattr(current_page, "url_path", "") != "Story":
            language_picker()       # as in app.py (the story page has its own, larger language switch)
    for problem in url_problems():
        st.warning(problem, icon=":material/link:")
    return view()


def open_page(name: str) -> None:
    """Switch to a page, carrying the view (and the language) in the URL."""
    from ui.session import lang
    st.switch_page(page(name), query_params={**view().to_query(), "lang": lang()})


def language_picker() -> None:
    """The sidebar's language choice (English / 日本語), kept in the URL as ``lang``."""
    from interp.i18n import LANGS
    from ui.session import LANG_NAMES, lang, set_lang
    current_lang = lang()
    if st.session_state.get("_el_lang_widget_synced") != current_lang:
        st.session_state["el_lang_pick"] = current_lang
        st.session_state["_el_lang_widget_synced"] = current_lang

    def _chosen() -> None:
        set_lang(st.session_state["el_lang_pick"])
        st.session_state["_el_lang_widget_synced"] = st.session_state["el_lang_pick"]

    with st.sidebar:
        st.radio(t("story.language", current_lang), options=list(LANGS), key="el_lang_pick", horizontal=True,
                 format_func=lambda code: LANG_NAMES.get(code, code), on_change=_chosen,
                 help=t("story.language_help", current_lang))


# --- error boundary ------------------------------------------------------------------------------------------

def run_guarded(run: Callable[[], None], what: str) -> None:
    """Run a page; an unexpected error becomes one line saying what failed and what to do (the traceback goes
    to the server log, never to the browser), with a button that resets the view. Streamlit's own control flow
    (``st.stop``, ``st.rerun``, page switches) passes through: it is not an ``Exception``."""
    try:
        run()
    except Exception as err:  # noqa: BLE001 - the boundary: anything a page did not expect
        log.exception("page %s failed", what)
        st.error(tr("error.unexpected", page=what, kind=type(err).__name__), icon=":material/error:")
        st.button(tr("error.reset"), key="_el_reset_view", on_click=clear_view, help=tr("error.reset_help"),
                  icon=":material/restart_alt:")
