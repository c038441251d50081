"""ExpertLens — the dashboard's entry point: `streamlit run app.py`.

Navigation over the pages in ``pages/``; the shareable view (model, text, layer, head, query, scheme, k, seed)
is merged from the URL before any page runs, so opening a URL reproduces the view and ``/?model=…&text=…``
lands on the analysed overview.
"""
import streamlit as st

import app_support as ui

st.set_page_config(page_title="ExpertLens", page_icon=":material/search:", layout="wide", initial_sidebar_state="expanded")
navigation = st.navigation(ui.navigation_pages())
ui.begin_run()
for problem in ui.url_problems():
    st.warning(problem, icon=":material/link:")
navigation.run()
