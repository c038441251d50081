"""Story mode for a non-specialist audience: one idea per screen, large type, next/back and a step indicator.

The step (``step=1..7``), the language (the app-wide ``lang=en|ja`` of ``ui.lang``: the URL, else this session's
choice, else the browser's language, else English; the story's own switch changes it for the whole app), the
model and the text live in the URL, so a story can be shared at any step. Any text can be typed: every step is
recomputed from it by ``interp.story`` (the page holds no analysis). The noise probe (step 5, the slow one) runs
only when step 5 or 7 is shown or a report is made, cached per (model, text, settings), so step 1 shows at once.
The whole story downloads as one self-contained HTML report, or as a PDF.
"""
from __future__ import annotations

import html
from pathlib import Path

import streamlit as st

import app_support as ui
from ui.session import LANG_NAMES
from interp import story as S
from interp.figures import story as FS
from interp.i18n import LANGS, error_text, t
from interp.ranges import K, SEED, SEEDS
from interp.loader import ModelLoadError
from interp.report import html_to_pdf, story_report
from interp.trace import InputError

N_STEPS = 7
FALLBACK_TEXT = "She put the book on the [MASK] and left the room."
CSS = """<style>
section.main .block-container, [data-testid="stMainBlockContainer"] { padding-top: 1.2rem; max-width: 1200px; }
[data-testid="stHeading"] h2 { font-size: 2.1rem; line-height: 1.2; padding: 0.2rem 0 0.4rem; }
[data-testid="stMarkdownContainer"] p.story-line { font-size: 1.3rem !important; line-height: 1.4;
    margin: 0 0 0.45rem; }
[data-testid="stMarkdownContainer"] p.story-meta { font-size: 0.95rem !important; color: #5a5a5a; }
.story-step { font-size: 1.1rem; font-weight: 600; text-align: center; padding-top: 0.35rem; }
[data-testid="stAlert"] p { font-size: 1.3rem; line-height: 1.45; }
</style>"""

ui.start_page()
qp = st.query_params


# --- language: the app-wide choice (URL, else this session's choice, else the browser, else English) ------
lang = ui.lang()
if st.session_state.get("_story_lang_synced") != lang:
    st.session_state["story_lang"] = lang
    st.session_state["_story_lang_synced"] = lang


def _on_lang() -> None:
    chosen = st.session_state["story_lang"]
    ui.set_lang(chosen)               # the whole app follows, and the URL says so
    st.session_state["_story_lang_synced"] = chosen


with st.sidebar:
    lang = st.radio(t("story.language", lang), options=list(LANGS), key="story_lang", horizontal=True,
                    format_func=lambda code: LANG_NAMES.get(code, code), help=t("story.language_help", lang),
                    on_change=_on_lang)
if qp.get("lang") != lang:             # a shared story link says its language
    ui.set_lang(lang)
st.markdown(CSS, unsafe_allow_html=True)

# --- step (URL) -------------------------------------------------------------------------------------------
raw_step = qp.get("step", "1")
try:
    step_no = int(raw_step)
    if not 1 <= step_no <= N_STEPS:
        raise ValueError
except ValueError:
    st.warning(t("error.param", lang, name="step", value=str(raw_step)[:40], reason=f"1–{N_STEPS}"),
               icon=":material/link:")
    step_no = min(max(1, step_no), N_STEPS) if raw_step.lstrip("-").isdigit() else 1
if qp.get("step") != str(step_no):
    qp["step"] = str(step_no)


def _go(delta: int) -> None:
    current = int(st.query_params.get("step", "1"))
    st.query_params["step"] = str(min(max(1, current + delta), N_STEPS))


# --- model, text and settings -----------------------------------------------------------------------------
options = [m for m in ui.model_options() if not str(m).startswith("__")]
model = ui.current("model") or (options[0] if options else "mini-bert")
examples = [e for e in ui.examples() if "[MASK]" in e]
text = ui.current("text") or (examples[0] if examples else FALLBACK_TEXT)
if not ui.current("text") or not ui.current("model"):
    ui.set_view(model=model, text=text)
if st.session_state.get("_story_text_synced") != text:      # the view's text changed (URL, another page)
    st.session_state["story_text"] = text
    st.session_state["_story_text_synced"] = text


def _on_text() -> None:
    new = st.session_state["story_text"]
    if new.strip():                # an empty box stays empty on screen (with a hint); the view keeps its text
        st.session_state["_story_text_synced"] = new
        ui.set_view(text=new)


def _on_model() -> None:
    ui.set_view(model=st.session_state["story_model"])


with st.sidebar:
    with st.expander(t("story.settings", lang)):
        if model in options:
            st.session_state.setdefault("story_model", model)
            st.selectbox(t("input.model", lang), options=options, key="story_model", format_func=ui.model_labels(),
                         on_change=_on_model)
        schemes = ui.schemes()
        scheme = st.selectbox(t("samp.scheme", lang), options=schemes, index=schemes.index("A") if "A" in schemes
                              else 0, key="story_scheme", help=t("samp.scheme_help", lang))
        k = int(st.number_input(t("samp.k", lang), min_value=K.lo, max_value=K.hi, value=8, key="story_k",
                                help=t("samp.k_help", lang, range=K.describe())))
        seeds = int(st.number_input(t("samp.seeds", lang), min_value=SEEDS.lo, max_value=SEEDS.hi, value=8, key="story_seeds",
                                    help=t("samp.seeds_help", lang)))
        seed = int(st.number_input(t("samp.seed", lang), min_value=SEED.lo, max_value=SEED.hi, value=0, key="story_seed",
                                   help=t("samp.seed_help", lang, range=SEED.describe())))

typed = st.text_input(t("story.text", lang), key="story_text", help=t("story.text_help", lang),
                      on_change=_on_text)

# --- navigation bar: back · step indicator · next -----------------------------------------------------------
b1, b2, b3 = st.columns([1, 4, 1], vertical_alignment="center")
with b1:
    st.button(t("story.back", lang), key="story_back", on_click=_go, args=(-1,), disabled=step_no <= 1,
              icon=":material/arrow_back:", width="stretch")
with b2:
    st.progress(step_no / N_STEPS, text=t("story.step_of", lang, step=step_no, total=N_STEPS))
with b3:
    st.button(t("story.next", lang), key="story_next", on_click=_go, args=(1,), disabled=step_no >= N_STEPS,
              icon=":material/arrow_forward:", width="stretch", type="primary")

if not typed.strip():
    st.info(t("story.empty", lang), icon=":material/edit:")
    st.stop()


@st.cache_data(show_spinner=False, max_entries=32)
def _story(model: str, text: str, scheme: str, k: int, seeds: int, seed: int, triage_run: str | None,
           triage_stamp: float | None) -> S.Story:
    """Every step but the noise probe (step 5), which is the slow one: step 1 shows at once."""
    lm = ui.get_model(model)
    return S.build_story(lm, text, S.StorySettings(scheme, k, seeds, seed), model=model, load=ui.get_model,
                         triage_run=Path(triage_run) if triage_run else None, defer_noise=True)


@st.cache_data(show_spinner=False, max_entries=32)
def _noise(model: str, text: str, scheme: str, k: int, seeds: int, seed: int) -> S.NoiseStep:
    """The noise probe of step 5, per (model, text, settings): run when step 5 or 7 is shown or a report made."""
    return S.noise_step(ui.get_model(model), text, S.StorySettings(scheme, k, seeds, seed))


def _complete(story: S.Story, progress: bool = True) -> S.Story:
    """The story with its noise step measured (cached), with progress while the probe runs (not from a deferred
    download, which has no page to draw on)."""
    if not S.noise_pending(story):
        return story
    if not progress:
        return S.with_noise(story, _noise(model, typed, scheme, k, seeds, seed))
    with st.spinner(t("story.s5.computing", lang, model=model, seeds=seeds), show_time=True):
        return S.with_noise(story, _noise(model, typed, scheme, k, seeds, seed))


run = S.latest_triage_run()
stamp = (run / "results.parquet").stat().st_mtime if run else None
try:
    with st.spinner(t("story.preparing", lang, n=len(typed), model=model)):
        story = _story(model, typed, scheme, k, seeds, seed, str(run) if run else None, stamp)
    if step_no in (5, N_STEPS):
        story = _complete(story)
except ModelLoadError as err:
    st.error(t("error.model", lang, message=error_text(err, lang)), icon=":material/error:")
    st.stop()
except (InputError, ValueError) as err:
    st.error(t("error.input", lang, message=error_text(err, lang)), icon=":material/error:")
    st.stop()

# --- the step -------------------------------------------------------------------------------------------------
step = story.steps[step_no - 1]
st.header(f"{step_no}. {t(step.title_key, lang)}", anchor=False)
if step.kind == "messages":
    status_box = {S.SUPPORTED: st.success, S.NOT_SUPPORTED: st.warning, S.NOT_MEASURED: st.info}
    icons = {S.SUPPORTED: ":material/check_circle:", S.NOT_SUPPORTED: ":material/warning:",
             S.NOT_MEASURED: ":material/hourglass_empty:"}
    lines = step.text(lang)
    st.markdown(f'<p class="story-line">{html.escape(lines[0])}</p>', unsafe_allow_html=True)
    for msg, line in zip(step.messages, lines[1:]):
        status_box[msg.status](f"**{msg.number}. {t('story.status.' + msg.status, lang)}** — {line}",
                               icon=icons[msg.status])
else:
    for line in step.text(lang):
        st.markdown(f'<p class="story-line">{html.escape(line)}</p>', unsafe_allow_html=True)
    if step.kind == "break":       # the worst case opens in one click, above the chart
        c1, c2 = st.columns(2)
        if step.link:
            c1.link_button(t("story.s6.open", lang), step.link, icon=":material/open_in_new:")
        if step.triage and step.triage.get("link"):
            c2.link_button(t("nav.triage", lang) + " · " + t("story.s6.open", lang), step.triage["link"],
                           icon=":material/troubleshoot:")
    fig = FS.step_figure(step, lang)
    if fig is not None:
        ui.show_figure(fig, f"story-{step_no}-{step.kind}-{model}", key=f"story_fig_{step_no}")

meta = t("story.meta", lang, model=model, scheme=scheme, k=k, seeds=seeds, seed=seed)
st.markdown(f'<p class="story-meta">{html.escape(meta)}</p>', unsafe_allow_html=True)

# --- report ---------------------------------------------------------------------------------------------------
with st.sidebar:
    st.subheader(t("story.export", lang))
    st.download_button(t("story.export_html", lang), data=lambda: story_report(_complete(story, False), lang),
                       file_name=f"expertlens-story-{lang}.html", mime="text/html", key="story_html",
                       on_click="ignore", help=t("story.export_html_help", lang), icon=":material/download:")
    pdf_key = f"_story_pdf_{lang}_{hash((model, typed, scheme, k, seeds, seed))}"
    if st.button(t("story.export_pdf", lang), key="story_pdf_make", help=t("story.export_pdf_help", lang),
                 icon=":material/picture_as_pdf:"):
        try:
            with st.spinner(t("story.export_pdf", lang) + "…"):
                st.session_state[pdf_key] = html_to_pdf(story_report(_complete(story), lang))
        except Exception as err:  # Chromium missing or failing: one line, the page goes on
            st.error(t("story.export_pdf_failed", lang, message=str(err).splitlines()[0] if str(err) else
                       type(err).__name__), icon=":material/error:")
    if pdf_key in st.session_state:
        st.download_button(t("story.export_pdf", lang), data=st.session_state[pdf_key],
                           file_name=f"expertlens-story-{lang}.pdf", mime="application/pdf", key="story_pdf",
                           on_click="ignore", icon=":material/download:")
