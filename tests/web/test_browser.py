"""``llmbench serve`` in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium): the page loads, the terminal appears, the model list shows the embedded
SmolLM2, a run against it streams after the keys a user would press, the run is stored (and
served by ``/api/runs``), F2 opens the history screen listing it, and screenshots are kept as
test artefacts.

The page draws the terminal on a canvas (xterm.js with its WebGL/canvas renderer), so there is
no DOM text to read. The test reads what the terminal is sent instead: a script added before
the page's own wraps ``WebSocket`` and appends every binary frame (the app's terminal output)
to ``window.__llmbenchOut``; ``strip_controls`` turns that into the text the screen shows.

Artefacts go to ``$LLMBENCH_ARTIFACTS`` if set, else ``tests/artifacts/`` (ignored by git):
``serve-dashboard.png`` when the run has streamed, ``serve-history.png`` (F2), and
``serve-failure.png`` with the server's log and the screen text when something did not happen.

Selenium Manager never runs (it would download a driver): the driver and browser are the ones
on ``PATH``, and a missing one fails the test with the command that installs them.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from support.paths import REPO
from support.serve_process import ServeProcess, serve_env

from llmbench_tui.safe_text import strip_controls

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ARTIFACTS = Path(os.environ.get("LLMBENCH_ARTIFACTS") or REPO / "tests" / "artifacts")
INSTALL = "apt-get install -y chromium chromium-driver"
PROMPT = "Why is the sky blue? Answer in two sentences."

# Runs before the page's scripts: keep a copy of everything the server sends the terminal.
CAPTURE = r"""
(() => {
  const Native = window.WebSocket;
  const decoder = new TextDecoder();
  window.__llmbenchOut = "";
  function Capturing(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        window.__llmbenchOut += decoder.decode(new Uint8Array(event.data), {stream: true});
      }
    });
    return ws;
  }
  Capturing.prototype = Native.prototype;
  for (const k of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Capturing[k] = Native[k];
  window.WebSocket = Capturing;
})();
"""


def chromium_paths() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver))
                               if not p)  # fmt: skip
        pytest.fail(f"{missing} not found on PATH: the browser test needs Debian's chromium and "
                    f"chromium-driver packages ({INSTALL})", pytrace=False)  # fmt: skip
    return chromium, driver


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        # The page asks fonts.googleapis.com for its font; fail that at once, offline or not.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        chrome.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CAPTURE})
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def dashboard_server(tmp_path: Path, dead_url: str) -> Iterator[ServeProcess]:
    """No Ollama, OpenAI or GGUF source but a dead Ollama host: the embedded model only."""
    env = serve_env({"OLLAMA_HOST": dead_url, "LLMBENCH_CONFIG_DIR": str(tmp_path / "cfg")})
    for name in ("LLMBENCH_OLLAMA_HOSTS", "LLMBENCH_OPENAI_URLS", "LLMBENCH_GGUF_PATHS",
                 "LLMBENCH_DATA_DIR"):  # fmt: skip
        env.pop(name, None)
    proc = ServeProcess(tmp_path / "data", tmp_path, env=env)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def screen_text(chrome: webdriver.Chrome, since: int = 0) -> str:
    return strip_controls(chrome.execute_script("return window.__llmbenchOut.slice(arguments[0])",
                                                since))  # fmt: skip


def sent_so_far(chrome: webdriver.Chrome) -> int:
    return chrome.execute_script("return window.__llmbenchOut.length")


# The embedded model's row: its name, the fit column (docs/fit.md) and its size.
MODEL_ROW = r"embedded\s+(?:GPU|CPU|part \S+|no|\?)?\s*[\d.]+\s*[KMG]B"


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_the_dashboard_runs_the_embedded_model_in_a_browser(
    browser: webdriver.Chrome, dashboard_server: ServeProcess
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chrome, server = browser, dashboard_server
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        chrome.get(f"{server.url}/?fontsize=14")
        wait_for("the terminal", lambda: chrome.find_elements(By.CSS_SELECTOR, ".xterm-screen"), 30)
        wait_for("the app's first output",
                 lambda: "-first-byte" in chrome.find_element(By.TAG_NAME, "body")
                 .get_attribute("class"), 60)  # fmt: skip
        row = wait_for(
            "the embedded model in the model list",
            lambda: re.search(MODEL_ROW, screen_text(chrome)),
            120,
        )
        timings["model list"] = time.monotonic() - t0
        assert "SmolLM2" in screen_text(chrome) or row

        keys = chrome.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")
        chrome.execute_script("arguments[0].focus()", keys)
        keys.send_keys(" ")  # the model list has the focus: tick the highlighted (embedded) row
        time.sleep(0.5)
        keys.send_keys("p")  # to the prompt
        time.sleep(0.5)
        keys.send_keys(PROMPT)
        time.sleep(0.5)
        mark = sent_so_far(chrome)
        keys.send_keys(Keys.F5)
        t_run = time.monotonic()

        header = wait_for(
            "the run's pane to show TTFT and a decode rate",
            lambda: re.search(r"TTFT [\d.]+s\s+[\d.]+ tok/s", screen_text(chrome, mark)),
            300,
        )
        timings["first figures"] = time.monotonic() - t_run
        stored = wait_for(
            "the run to be stored (GET /api/runs)",
            lambda: httpx.get(f"{server.url}/api/runs", timeout=10).json()["runs"],
            300,
        )
        timings["stored"] = time.monotonic() - t_run
        (record,) = stored
        assert record["status"] == "ok", record.get("error")
        assert record["backend"] == "gguf" and record["prompt"] == PROMPT
        assert record["tokens"]["output"] > 1 and record["timings"]["decode_tok_s"] > 0
        wait_for("the finished session", lambda: "ok 1/1" in screen_text(chrome, mark), 60)
        words = re.findall(r"[A-Za-z]{4,}", record["response"])[:10]
        shown = screen_text(chrome, mark)
        assert any(word in shown for word in words), (words, shown[-2000:])  # the answer streamed
        time.sleep(6)  # the last frame, once the 'session finished' toast has gone
        shot = ARTIFACTS / "serve-dashboard.png"
        assert chrome.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

        mark = sent_so_far(chrome)
        keys.send_keys(Keys.F2)  # the history screen, as in the terminal
        wait_for("the history screen listing the run",
                 lambda: re.search(r"runs 1\W1 of 1\b", screen_text(chrome, mark)), 60)  # fmt: skip
        time.sleep(1)
        chrome.save_screenshot(str(ARTIFACTS / "serve-history.png"))
        print(f"\n{header.group()}; timings {timings}; screenshots in {ARTIFACTS}")
    except BaseException:
        chrome.save_screenshot(str(ARTIFACTS / "serve-failure.png"))
        (ARTIFACTS / "serve-failure.log").write_text(server.output())
        (ARTIFACTS / "serve-failure-screen.txt").write_text(screen_text(chrome)[-200_000:])
        raise
