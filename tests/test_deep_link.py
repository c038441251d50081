"""The first run of a server treats an app with a ``pages/`` folder as a folder app and runs a deep-linked page
without ``app.py``; ``ui.start_page`` then switches Streamlit to the app's own navigation and asks for exactly one
rerun (no loop), and a page run on its own (no folder next to it) is never rerun."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent

PAGE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
import ui
st.session_state["starts"] = st.session_state.get("starts", 0) + 1
ui.start_page()
st.session_state["runs"] = st.session_state.get("runs", 0) + 1
st.write("runs", st.session_state["runs"])
"""


def test_folder_run_is_rerun_once_and_never_loops(tmp_path):
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "2_Other.py").write_text(PAGE)
    (tmp_path / "main.py").write_text(PAGE)
    at = AppTest.from_file(str(tmp_path / "main.py"), default_timeout=60)
    at.run()
    assert not at.exception
    # the folder run stopped in start_page by the one rerun, then the real run
    assert (at.session_state["starts"], at.session_state["runs"]) == (2, 1)
    at.run()                                      # AppTest starts every run as a folder run again
    assert not at.exception
    # the session's one rerun is spent: no further rerun
    assert (at.session_state["starts"], at.session_state["runs"]) == (3, 2)


def test_page_run_on_its_own_is_not_rerun(tmp_path):
    (tmp_path / "alone.py").write_text(PAGE)
    at = AppTest.from_file(str(tmp_path / "alone.py"), default_timeout=60)
    at.run()
    at.run()
    assert not at.exception
    assert (at.session_state["starts"], at.session_state["runs"]) == (2, 2)
