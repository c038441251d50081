"""Shared fixtures for the dashboard tests: small model folders, an AppTest factory, and (for the browser tests)
a `streamlit run` server on a free local port plus headless Debian Chromium driven by Playwright."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OUTPUT = ROOT / "tests" / "output"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def tiny_bert_dir() -> str:
    """A random 2-layer, 4-head BERT with an MLM head and a WordPiece tokenizer, 64 positions (offline)."""
    from engine_fixtures import model_folder
    return str(model_folder("bert", True, 0, max_position_embeddings=64))


@pytest.fixture(scope="session")
def tiny_encoder_dir() -> str:
    """The same architecture without an MLM head."""
    from engine_fixtures import model_folder
    return str(model_folder("bert", False, 1))


@pytest.fixture()
def app():
    """Factory: an AppTest of the dashboard with the given URL query parameters (not yet run)."""
    from streamlit.testing.v1 import AppTest

    def make(**params) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        for key, val in params.items():
            at.query_params[key] = str(val)
        return at
    return make


# --- real browser -----------------------------------------------------------------------------------------

def browser_required() -> bool:
    return os.environ.get("EXPERTLENS_REQUIRE_BROWSER") == "1"


def need_chromium() -> None:
    """Skip with a clear message when Chromium is missing — unless the browser is required (CI), then fail."""
    if Path(CHROMIUM).exists():
        return
    message = (f"Debian Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
               "to run the real-browser tests")
    if browser_required():
        pytest.fail(message + " (EXPERTLENS_REQUIRE_BROWSER=1 makes these tests mandatory)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log_path: Path, root: Path = ROOT) -> subprocess.Popen:
    """`streamlit run app.py` of the checkout at ``root`` (default: this one) on ``port``, headless, no file
    watcher, no usage statistics."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(root / "app.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=str(root), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"streamlit did not become healthy on port {port}; see {log_path}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def server(output_dir):
    """Base URL of a dashboard served by `streamlit run` on a free local port (one per test session)."""
    need_chromium()
    port = free_port()
    proc = start_server(port, output_dir / "streamlit-server.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium through Playwright (never a downloaded browser)."""
    need_chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def copy_screenshot(src: Path, name: str) -> None:
    """With EXPERTLENS_UPDATE_SCREENSHOTS=1, copy a screenshot into docs/screenshots/ (for the README)."""
    if os.environ.get("EXPERTLENS_UPDATE_SCREENSHOTS") != "1":
        return
    dest = ROOT / "docs" / "screenshots"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest / name)
