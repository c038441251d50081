"""A page opened first by its URL on a freshly started server shows the app's own navigation (the titles
``app.py`` declares, not Streamlit's folder listing "app", "Head", …) and the sidebar's language switch, in that
very first view. Each case starts its own server, since only a server's first run is a folder run.

Real browser: skipped when /usr/bin/chromium is missing, except with EXPERTLENS_REQUIRE_BROWSER=1."""
from __future__ import annotations

import pytest

from conftest import free_port, need_chromium, start_server, stop_server
from interp.i18n import t

pytestmark = pytest.mark.browser

TIMEOUT = 90_000
IDLE_JS = """() => !document.querySelector('[data-testid="stStatusWidget"]')"""
APP_TITLES = [t(key, "en") for key in ("story.nav", "nav.explore", "nav.head", "nav.sampling", "nav.noise",
                                       "nav.tables")]


@pytest.fixture()
def fresh_server(output_dir, request):
    need_chromium()
    port = free_port()
    proc = start_server(port, output_dir / f"streamlit-deep-link-{request.node.name}.log".replace("/", "_"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


@pytest.mark.parametrize("path, heading", [("Head", "nav.head"), ("Sampling", None)])
def test_first_request_by_deep_link_shows_the_apps_navigation(fresh_server, chromium, path, heading):
    page = chromium.new_page(viewport={"width": 1280, "height": 720})
    page.goto(f"{fresh_server}/{path}", timeout=TIMEOUT)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("日本語").wait_for(timeout=TIMEOUT)          # the language switch
    page.wait_for_function(IDLE_JS, timeout=TIMEOUT)
    assert sidebar.get_by_text(t("story.language", "en")).first.is_visible()
    nav = page.locator('[data-testid="stSidebarNav"]')
    shown = [s.split("\n")[-1].strip() for s in nav.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()]
    for title in APP_TITLES:
        assert title in shown, shown
    assert "app" not in shown and path not in shown, shown          # not the folder's navigation
    assert page.url.rstrip("/").split("?")[0].endswith(f"/{path}")   # still the page that was asked for
    if heading is not None:
        assert page.get_by_role("heading", name=t(heading, "en")).is_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stDialog"]').count() == 0
    page.close()
