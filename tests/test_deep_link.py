"""A page opened by its URL in a session's first run, when Streamlit runs it as a ``pages/``-folder page without
``app.py`` (a server's first run; every ``AppTest`` run starts that way too), declares the app's own navigation and
shows the language switch itself, without a rerun; later runs keep working."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from interp.i18n import t

ROOT = Path(__file__).resolve().parent.parent


def test_first_run_by_deep_link_declares_the_navigation_and_the_language_switch():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/2_Head.py").run()            # the first run lands on the page, not on app.py
    assert not at.exception, [e.value for e in at.exception]
    assert [r.key for r in at.radio if r.key == "el_lang_pick"] == ["el_lang_pick"]   # the language switch
    assert any(t("head.empty") in str(i.value) for i in at.info)                     # the head page ran
    from streamlit.runtime.pages_manager import PagesManager
    assert PagesManager.uses_pages_directory is False  # the app's own navigation from now on
    at.radio(key="el_lang_pick").set_value("ja").run()   # a later run: the switch works, no loop, no error
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["lang"] == "ja"
    assert any(t("head.empty", "ja") in str(i.value) for i in at.info)
