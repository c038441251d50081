"""The report buttons every view shares: one self-contained HTML report (made when the download is clicked) and a
PDF printed from it by headless Chromium (made on request, then offered for download).

A page adds one call, ``report_buttons(make_html, name, key, fingerprint)``: ``make_html`` returns the report's
HTML in the app's language (a function of ``interp.report``), ``name`` names the files, ``key`` prefixes the
widget keys, ``fingerprint`` is what the view shows (a made PDF is kept for it only).
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from interp.figures.common import safe_filename
from interp.report import html_to_pdf
from ui.session import lang, tr


def report_buttons(make_html: Callable[[], str], name: str, key: str, fingerprint: object = None) -> None:
    """An HTML report download and a PDF report button (then its download), labelled in the app's language."""
    code = lang()
    filename = f"{safe_filename(name)}-{code}"
    st.markdown(f"**{tr('report.export')}**")
    st.download_button(tr("report.export_html"), data=make_html, file_name=f"{filename}.html", mime="text/html",
                       key=f"{key}_report_html", on_click="ignore", help=tr("report.export_html_help"),
                       icon=":material/description:")
    pdf_key = f"_{key}_report_pdf_{code}_{hash(repr(fingerprint))}"
    if st.button(tr("report.export_pdf_make"), key=f"{key}_report_pdf_make", help=tr("report.export_pdf_help"),
                 icon=":material/picture_as_pdf:"):
        try:
            with st.spinner(tr("report.export_pdf_making")):
                st.session_state[pdf_key] = html_to_pdf(make_html())
        except Exception as err:  # Chromium missing or failing: one line, the page goes on
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            st.error(tr("report.export_pdf_failed", message=message), icon=":material/error:")
    if pdf_key in st.session_state:
        st.download_button(tr("report.export_pdf"), data=st.session_state[pdf_key], file_name=f"{filename}.pdf",
                           mime="application/pdf", key=f"{key}_report_pdf", on_click="ignore",
                           icon=":material/download:")
