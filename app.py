"""ExpertLens — the dashboard's entry point: `streamlit run app.py`.

Declares the navigation over the pages in ``pages/``, merges the shareable view (model, text, layer, head,
query, scheme, k, seed) from the URL, and runs the selected page; so opening a URL reproduces the view and
``/?model=…&text=…`` lands on the analysed overview. Each page starts with ``app_support.start_page()``.
"""
import streamlit as st

import app_support as ui

ui.app_ran()
ui.page_config()
navigation = st.navigation(ui.navigation_pages())
ui.begin_run()
navigation.run()
