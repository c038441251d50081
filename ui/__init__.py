"""The dashboard's Streamlit layer, one job per module:

* :mod:`ui.state` — the shareable view as one typed, validated value (no Streamlit);
* :mod:`ui.session` — that view in session state and in the URL; widget callbacks that accept typed values only;
* :mod:`ui.engine` — cached calls into the library (the only place the app runs an analysis);
* :mod:`ui.exports` — figures and tables with their HTML/PNG/CSV downloads;
* :mod:`ui.live_chart` — a plotly chart that stays mounted across reruns and updates in place (the head page's);
* :mod:`ui.report` — the report of a view: one self-contained HTML file and its PDF;
* :mod:`ui.chrome` — navigation, page setup, the error boundary, pickers, notes and empty states.

Pages use ``import ui`` and the names re-exported here.
"""
from ui.state import DEFAULT_SCHEME, DEFAULTS, PARAMS, View, from_query, parse_param, schemes  # noqa: F401
from ui.session import (add_problems, begin_run, bind, clear_view, current, from_widget, lang,  # noqa: F401
                        replace_view, set_lang, set_view, tr, url_problems, view, write_url)
from ui.engine import (downstream, get_model, get_trace, head, identity_checks, layer0, lens,  # noqa: F401
                       overview, predictions, sampled_rows, sampling_all, sampling_layer)
from ui.exports import (escape_markdown, figure_download, markdown_table, show_figure, show_live_figure,  # noqa: F401
                        show_markdown_table, show_table, table_download)  # noqa: F401
from ui.report import report_buttons  # noqa: F401
from ui.chrome import (language_picker, BUILTIN_EXAMPLES, LOCAL, PAGES, ROOT, analysed, app_ran, empty_state, examples,  # noqa: F401
                       fit_view, head_picker, layer_head_pickers, layer_picker, model_label, model_labels, model_options,
                       navigation_pages, open_page, page, page_config, query_picker, run_guarded, show_notes,
                       start_page)

DEFAULT_SEEDS = 8
