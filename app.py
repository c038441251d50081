"""ExpertLens — the dashboard's entry point: `streamlit run app.py`.

Declares the navigation over the pages in ``pages/``, merges the shareable view (model, text, layer, head,
query, scheme, k, seed; typed and range-checked, see ``ui.state``) from the URL, and runs the selected page
inside the error boundary (``ui.run_guarded``: one line for the user, the traceback in the server log); so
opening a URL reproduces the view and ``/?model=…&text=…`` lands on the analysed overview. Each page starts
with ``ui.start_page()``.
"""
import streamlit as st

import ui

ui.app_ran()
ui.page_config()
navigation = st.navigation(ui.navigation_pages())


def _run() -> None:
    ui.begin_run()
    if getattr(navigation, "url_path", "") != "Story":   # the story page has its own, larger language switch
        ui.language_picker()
    navigation.run()


ui.run_guarded(_run, navigation.title)
