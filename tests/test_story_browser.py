"""The story in a real browser (headless Debian Chromium through Playwright) at 1280×720, in English and Japanese:
every step reached with the Next button, its chart drawn, a screenshot of each step kept under tests/output/
(``EXPERTLENS_UPDATE_SCREENSHOTS=1`` copies step 2 to docs/screenshots/story_en.png / story_ja.png); and the
Japanese glyphs really drawn with a CJK font — each distinct character on the page is drawn on a canvas in the
page's own font and compared with the drawing of a character no font has (a tofu box): none may match.

The page is served alone (an entry script in a temporary folder whose navigation holds the story page), so this
test does not depend on where the app's navigation puts it."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import copy_screenshot, free_port, need_chromium, stop_server
from interp.i18n import t

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1280, "height": 720}
TIMEOUT = 120_000
TEXT = "She put the book on the [MASK] and left the room."
ENTRY = '''import sys
sys.path.insert(0, {root!r})
import streamlit as st
st.navigation([st.Page({page!r}, title="Story", url_path="Story", default=True)]).run()
'''
IDLE_JS = """() => !document.querySelector('[data-testid="stStatusWidget"]')
    && document.querySelectorAll('[data-testid="stSpinner"]').length === 0"""
TOFU = "\U0010FFFD"          # a private-use character of plane 16: no font draws it, so it renders as .notdef
GLYPHS_JS = """([chars, tofu, selector]) => {
    const el = document.querySelector(selector);
    const style = getComputedStyle(el);
    const font = `${style.fontWeight} 40px ${style.fontFamily}`;
    const canvas = document.createElement('canvas');
    canvas.width = 64; canvas.height = 64;
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    const draw = (ch) => {
        ctx.clearRect(0, 0, 64, 64); ctx.font = font; ctx.fillStyle = '#000'; ctx.textBaseline = 'top';
        ctx.fillText(ch, 4, 8);
        const data = ctx.getImageData(0, 0, 64, 64).data;
        let ink = 0, sig = [];
        for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) ink++; sig.push(data[i] > 127 ? 1 : 0); }
        return {ink, sig: sig.join(''), width: ctx.measureText(ch).width};
    };
    const box = draw(tofu);
    return {font, box: {ink: box.ink, width: box.width},
            chars: chars.map(ch => { const d = draw(ch); return {ch, ink: d.ink, width: d.width,
                                                                  tofu: d.sig === box.sig}; })};
}"""


@pytest.fixture(scope="module")
def story_server(tmp_path_factory, output_dir):
    need_chromium()
    folder = tmp_path_factory.mktemp("story-entry")
    entry = folder / "story_app.py"
    entry.write_text(ENTRY.format(root=str(ROOT), page=str(ROOT / "pages" / "0_Story.py")), encoding="utf-8")
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(entry), "--server.headless", "true", "--server.port",
           str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    log = open(output_dir / "story-server.log", "w")
    # an empty triage cache: a run left by another test or session adds its own "Triage · …" link to step 6
    env = {**os.environ, "EXPERTLENS_CACHE": str(folder / "cache")}
    proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_server(proc)
                raise RuntimeError("the story server did not start; see tests/output/story-server.log")
            time.sleep(0.3)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


def wait_idle(page) -> None:
    for _ in range(2):
        page.wait_for_timeout(300)
        page.wait_for_function(IDLE_JS, timeout=TIMEOUT)


def heading(page) -> str:
    page.wait_for_selector('[data-testid="stHeading"] h2', timeout=TIMEOUT)
    return page.locator('[data-testid="stHeading"] h2').first.inner_text().strip()


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_story_through_every_step_at_1280x720(story_server, chromium, output_dir, lang):
    page = chromium.new_page(viewport=VIEWPORT)
    query = urllib.parse.urlencode({"lang": lang, "model": "mini-bert", "text": TEXT})
    page.goto(f"{story_server}/?{query}", timeout=TIMEOUT)      # the story is the default page
    titles = ["story.s1.title", "story.s2.title", "story.s3.title", "story.s4.title", "story.s5.title",
              "story.s6.title", "story.s7.title"]
    charts = {1, 2, 3, 4, 6}                   # steps with a figure (5 has none until the noise probe exists)
    for i, key in enumerate(titles, start=1):
        page.wait_for_function(
            "(want) => { const h = document.querySelector('[data-testid=\"stHeading\"] h2');"
            " return h && h.innerText.trim() === want; }", arg=f"{i}. {t(key, lang)}", timeout=TIMEOUT)
        wait_idle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert f"step={i}" in page.url and f"lang={lang}" in page.url
        if i in charts:
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= 1",
                                   timeout=TIMEOUT)
            box = page.locator(".js-plotly-plot").first.bounding_box()
            assert box["width"] > 500 and box["height"] > 250
            assert box["y"] + 200 < VIEWPORT["height"], f"step {i}: the chart starts below the first screen"
        # one idea per screen: the title and the first caption line are visible without scrolling
        title_box = page.locator('[data-testid="stHeading"] h2').first.bounding_box()
        assert title_box["y"] + title_box["height"] < VIEWPORT["height"]
        if i == 6:                             # the worst case opens in one click, on the first screen
            link = page.get_by_role("link", name=t("story.s6.open", lang), exact=True)   # not "Triage · …"
            assert "Sampling?" in link.get_attribute("href") and "query=" in link.get_attribute("href")
            assert link.bounding_box()["y"] < VIEWPORT["height"]
        page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=TIMEOUT)
        shot = output_dir / f"story_{lang}_{i}.png"
        page.screenshot(path=str(shot))
        if i == 2:
            copy_screenshot(shot, f"story_{lang}.png")
        if i < len(titles):
            page.get_by_role("button", name=t("story.next", lang)).click()
    if lang == "ja":
        text = page.locator('[data-testid="stMain"], section.main').first.inner_text()
        chars = sorted({c for c in text if "\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff"})
        assert len(chars) >= 20
        got = page.evaluate(GLYPHS_JS, [chars, TOFU, '[data-testid="stHeading"] h2'])
        tofu = [c["ch"] for c in got["chars"] if c["tofu"] or c["ink"] == 0]
        assert not tofu, f"drawn as tofu boxes with {got['font']}: {''.join(tofu)}"
    page.close()


def test_the_tofu_check_can_fail(chromium):
    """A character no font has is reported as tofu by the same check (so the test above can fail)."""
    page = chromium.new_page(viewport=VIEWPORT)
    page.set_content("<h2 style='font-family: sans-serif'>x</h2>")
    got = page.evaluate(GLYPHS_JS, [["\U0010FFFC", "会"], TOFU, "h2"])
    assert got["chars"][0]["tofu"] and not got["chars"][1]["tofu"] and got["chars"][1]["ink"] > 50
    page.close()
