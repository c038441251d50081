"""The session's view (:class:`ui.state.View`) kept in Streamlit session state and mirrored in the URL.

* :func:`begin_run` — once per run, before any page: parameters the URL changed since this session last wrote
  it are parsed (typed, range-checked) into the view; then the view is written back, so the URL always says
  what is shown (a clamped ``k=5000`` becomes ``k=4096`` in the URL, with a message).
* :func:`set_view` — the only way pages change the view; values are typed and validated by ``View.replace``.
* :func:`from_widget` — ``on_change`` callbacks that copy a widget's value into the view *only* when it is a
  valid typed value. Streamlit hands back a widget's display label when the options changed under it (a stale
  selection after a new analysis); such a value is logged and dropped, never written to the view.
"""
from __future__ import annotations

import logging
from typing import Callable

import streamlit as st

from interp.i18n import DEFAULT_LANG, t
from ui.state import PARAMS, View, from_query

log = logging.getLogger("expertlens.ui")

_VIEW = "_el_view"
_URL = "_el_url_written"
_PROBLEMS = "_el_url_problems"


_LANG = "_el_lang"
LANG_NAMES = {"en": "English", "ja": "日本語"}


def _browser_language() -> str | None:
    try:
        return st.context.headers.get("Accept-Language")
    except Exception:  # no request headers (headless tests)
        return None


def lang() -> str:
    """The UI language: ``lang`` in the URL, else the one this session chose, else the browser's
    Accept-Language, else English (``interp.language.resolve_language``)."""
    from interp.language import normalise, resolve_language
    from_url = normalise(st.query_params.get("lang"))
    if from_url:
        st.session_state[_LANG] = from_url
        return from_url
    stored = st.session_state.get(_LANG)
    if stored:
        return stored
    return resolve_language(None, _browser_language()) or DEFAULT_LANG


def set_lang(code: str) -> None:
    """Choose the UI language for this session and say so in the URL."""
    from interp.language import normalise
    code = normalise(code) or DEFAULT_LANG
    st.session_state[_LANG] = code
    st.query_params["lang"] = code


def tr(key: str, **values) -> str:
    return t(key, lang(), **values)


def view() -> View:
    """The canonical view of this session."""
    current = st.session_state.get(_VIEW)
    if not isinstance(current, View):
        current = View()
        st.session_state[_VIEW] = current
    return current


def _store(new: View) -> None:
    st.session_state[_VIEW] = new


def begin_run() -> View:
    """Merge URL parameters that changed since this session last wrote them into the view, then write the view
    back to the URL. Call once per run, before any page."""
    written = st.session_state.setdefault(_URL, {})
    qp = st.query_params
    changed = {name for name in PARAMS if name in qp and written.get(name) != qp[name]}
    if changed:
        new, problems = from_query({name: qp[name] for name in changed}, view(), lang())
        _store(new)
        for name in changed:        # a refused value is not read again until the URL changes it once more
            written[name] = qp[name]
        # shown on every page until the user changes the view: a page switch right after opening the link
        # must not hide what was clamped or refused
        st.session_state[_PROBLEMS] = problems
    write_url()
    return view()


def url_problems() -> list[str]:
    return st.session_state.get(_PROBLEMS, [])


def add_problems(problems: list[str]) -> None:
    st.session_state[_PROBLEMS] = url_problems() + list(problems)


def write_url() -> None:
    """Write the view's parameters to the URL (only those that changed), removing those the view leaves unset
    (a refused value does not stay in the URL pretending to be shown)."""
    target = view().to_query()
    written = st.session_state.setdefault(_URL, {})
    qp = st.query_params
    chosen = st.session_state.get(_LANG)
    if chosen and qp.get("lang") != chosen:   # the language stays in the URL once chosen or opened from a link
        qp["lang"] = chosen
    for name in PARAMS:
        raw = target.get(name)
        if raw is None:
            if name in qp:
                del qp[name]
            written.pop(name, None)
            continue
        if qp.get(name) != raw:
            qp[name] = raw
        written[name] = raw


def set_view(**values) -> bool:
    """Update the view (and the URL) with typed values. Returns False, changing nothing, when a value has the
    wrong type or is out of range (logged: it is a programming error or a stale widget value)."""
    try:
        new = view().replace(**values)
    except (TypeError, ValueError) as err:
        log.warning("view change refused: %s (%r)", err, values)
        return False
    if new != view():
        st.session_state[_PROBLEMS] = []
    _store(new)
    write_url()
    return True


def replace_view(new: View) -> None:
    """Replace the whole view (already validated) and write it to the URL."""
    _store(new)
    write_url()


def clear_view(keep: tuple[str, ...] = ("model",)) -> None:
    """Back to the default view, keeping the ``keep`` fields."""
    old = view()
    replace_view(View(**{name: getattr(old, name) for name in keep}))


def current(name: str):
    return getattr(view(), name)


def bind(widget_key: str, value) -> None:
    """Make a keyed widget show ``value`` on this run (set before the widget is created; no ``value=``)."""
    if st.session_state.get(widget_key) != value:
        st.session_state[widget_key] = value


def from_widget(widget_key: str, name: str, convert: Callable | None = None) -> Callable[[], None]:
    """An ``on_change`` callback copying a widget's value into the view parameter ``name`` (through
    ``convert`` when given); a value that is not a valid typed value is dropped."""
    def callback():
        value = st.session_state.get(widget_key)
        if convert is not None:
            try:
                value = convert(value)
            except (TypeError, ValueError, IndexError, KeyError):
                log.warning("dropped widget value %r of %s", value, widget_key)
                return
        set_view(**{name: value})
    return callback
