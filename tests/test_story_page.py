"""The story page headless (AppTest): through every step and back in English and Japanese, the step and the
language kept in the URL, a typed text followed by every step, bad URL values and empty text with one clear
line, and the HTML report download. The embedded one-layer ``paper`` model keeps it fast."""
from __future__ import annotations

from pathlib import Path

import pytest

from interp import story as S
from interp.i18n import t
from interp.loader import load_model

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/0_Story.py"
TEXT = "He took his hat and walked out of the [MASK]."


@pytest.fixture(autouse=True)
def no_triage_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPERTLENS_CACHE", str(tmp_path / "cache"))


def page(**params):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=180)
    for key, val in params.items():
        at.query_params[key] = str(val)
    return at


def button(at, key):
    return next(b for b in at.button if b.key == key)


def heading(at) -> str:
    return at.header[0].value


@pytest.fixture(scope="module")
def expected():
    """The story the page must tell, computed directly by the library with the page's default settings."""
    return S.build_story(load_model("paper"), TEXT, S.StorySettings("A", 8, 8, 0))


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_next_and_back_through_every_step(lang, expected):
    at = page(lang=lang, model="paper", text=TEXT).run()
    assert not at.exception, at.exception
    for i, step in enumerate(expected.steps, start=1):
        assert heading(at) == f"{i}. {t(step.title_key, lang)}"
        assert at.query_params["step"] == str(i) and at.query_params["lang"] == lang
        body = " ".join(m.value for m in at.markdown)
        if step.kind == "messages":
            shown = " ".join(a.value for a in at.success) + " ".join(a.value for a in at.warning) + \
                " ".join(a.value for a in at.info)
            for msg, line in zip(step.messages, step.text(lang)[1:]):
                assert line in shown and t("story.status." + msg.status, lang) in shown
        else:
            import html
            for line in step.text(lang):
                assert html.escape(line) in body, (i, line)
        assert any(t("story.step_of", lang, step=i, total=7) in (p.proto.text or "") for p in at.get("progress"))
        assert button(at, "story_back").disabled == (i == 1)
        assert button(at, "story_next").disabled == (i == 7)
        if i < 7:
            button(at, "story_next").click().run()
            assert not at.exception, at.exception
    button(at, "story_back").click().run()
    assert heading(at) == f"6. {t('story.s6.title', lang)}" and at.query_params["step"] == "6"


def test_deep_link_to_a_step_and_language_switch():
    at = page(lang="ja", step=4, model="paper", text=TEXT).run()
    assert heading(at) == f"4. {t('story.s4.title', 'ja')}"
    assert at.button(key="story_next").label == t("story.next", "ja")
    at.radio(key="story_lang").set_value("en").run()
    assert at.query_params["lang"] == "en" and heading(at) == f"4. {t('story.s4.title', 'en')}"
    assert at.button(key="story_next").label == "Next"


def test_typed_text_is_followed_by_every_step():
    other = "The king saw the [MASK] near the river."
    at = page(model="paper", text=TEXT, step=1).run()
    at.text_input(key="story_text").set_value(other).run()
    assert not at.exception
    direct = S.build_story(load_model("paper"), other, S.StorySettings("A", 8, 8, 0))
    body = " ".join(m.value for m in at.markdown)
    for line in direct.step("prediction").text("en"):
        import html
        assert html.escape(line) in body
    assert at.query_params["text"] == other


def test_bad_step_and_empty_text_get_one_clear_line():
    at = page(model="paper", text=TEXT, step="nine").run()
    assert any("step=nine" in w.value for w in at.warning) and heading(at).startswith("1. ")
    assert at.query_params["step"] == "1"
    at = page(model="paper", text=TEXT, step=99).run()
    assert heading(at).startswith("7. ") and at.query_params["step"] == "7"
    at.text_input(key="story_text").set_value("   ").run()
    assert not at.exception and any(i.value == t("story.empty", "en") for i in at.info)


def test_language_from_the_browser_when_the_url_has_none(monkeypatch):
    import streamlit as st

    class Headers(dict):
        pass
    monkeypatch.setattr(type(st.context), "headers", property(lambda self: Headers({"Accept-Language": "ja-JP,ja;q=0.9"})))
    at = page(model="paper", text=TEXT).run()
    assert at.query_params["lang"] == "ja" and heading(at) == f"1. {t('story.s1.title', 'ja')}"


def test_report_download_is_offered():
    at = page(model="paper", text=TEXT, step=7, lang="ja").run()
    labels = [d.proto.label for d in at.get("download_button")]
    assert t("story.export_html", "ja") in labels


def test_noise_probe_runs_only_when_its_step_is_reached(monkeypatch):
    """Step 1 shows without running the noise probe; step 5 runs it once, and step 7 reuses it (cached per model,
    text and settings)."""
    calls = []
    real = S.noise_step

    def counting(lm, text, settings, module=S._ABSENT):
        calls.append(text)
        return real(lm, text, settings, None)
    monkeypatch.setattr(S, "noise_step", counting)
    text = "A bird sat on the [MASK] of the old house."
    at = page(model="paper", text=text, step=1).run()
    assert not at.exception and heading(at).startswith("1. ") and calls == []
    for _ in range(3):
        button(at, "story_next").click().run()
    assert heading(at).startswith("4. ") and calls == []
    button(at, "story_next").click().run()
    assert heading(at).startswith("5. ") and calls == [text]
    expected = real(load_model("paper"), text, S.StorySettings("A", 8, 8, 0), None)
    body = " ".join(m.value for m in at.markdown)
    import html
    assert all(html.escape(line) in body for line in expected.text("en"))
    button(at, "story_next").click().run()
    button(at, "story_next").click().run()
    assert heading(at).startswith("7. ") and calls == [text]
