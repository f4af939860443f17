"""Reports of real runs opened in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver`` through Selenium, as ``test_serve_browser.py``).

The data is made here: a 4-model session (three models on the Ollama-protocol test server and the
embedded SmolLM2, with checks, a judge and a conversation), a concurrency sweep with an SLO and a
size grid on the test server, and two machines seeded through the real store (as the machines
tests do). Each report is written by ``llmbench report`` and opened from disk; the page must
log no console error, make no network request (Chromium's own network log, from the DevTools
protocol, and the page's resource timing both say so), and have its charts drawn with the
script run: marks present, a tooltip on hover, a zoom on drag. Full-page screenshots are kept in
``$LLMBENCH_ARTIFACTS`` (else ``tests/artifacts/``, ignored by git).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from support.fixtures_ollama import fast_models
from support.ollama_server import FakeModel, OllamaTestServer
from support.store_helpers import run

from llmbench_tui.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LLMBENCH_ARTIFACTS") or ROOT / "tests" / "artifacts")
INSTALL = "apt-get install -y chromium chromium-driver"
LLMBENCH = [sys.executable, "-m", "llmbench_tui.cli"]


def tokens(text: str) -> list[str]:
    return [w + " " for w in text.split()]


def llmbench(args: list[str], data: Path, timeout: float = 600) -> str:
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}
    p = subprocess.run([*LLMBENCH, *args], capture_output=True, text=True, env=env,
                       timeout=timeout, cwd=ROOT)  # fmt: skip
    assert p.returncode == 0, p.stderr + p.stdout
    return p.stdout


def session_ids(data: Path) -> list[str]:
    runs = json.loads(llmbench(["history", "--json", "--limit", "100000"], data))
    return list(dict.fromkeys(r["session_id"] for r in sorted(runs, key=lambda r: r["started_at"])))


SUITE = """
models = [{models}]
repetitions = 2
warmup = 0
judge = "ollama:judge-fake:1b@{url}"

[options]
max_tokens = 8

[[prompts]]
id = "sky"
text = "Why is the sky blue? One sentence."

[[prompts.checks]]
kind = "contains"
text = "blue"

[[prompts.checks]]
kind = "contains"
text = "Rayleigh"

[[prompts]]
id = "haiku"
text = "Write a haiku about the sea."

[[prompts.checks]]
kind = "length"
max_words = 40

[[conversations]]
id = "trip"
turns = ["Plan a day in Lisbon.", "Cheaper?"]
"""


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """name -> report file: four models, a sweep, a grid, two machines."""
    base = tmp_path_factory.mktemp("reports")
    models = [
        *fast_models(),
        FakeModel("scatter-fake:1b", tokens=tokens("Rayleigh scattering makes the sky blue ."),
                  token_delay_s=0.004),
        FakeModel("slow-fake:3b", tokens=tokens("It is a colour ."), token_delay_s=0.008),
        FakeModel("judge-fake:1b", tokens=['{"score": 7, "reason": "clear and correct"}'],
                  token_delay_s=0.001),
    ]  # fmt: skip
    server = OllamaTestServer(models).start()
    try:
        url = server.url
        data = base / "data"
        specs = [f"ollama:{m}@{url}" for m in ("smollm-fake:135m", "scatter-fake:1b",
                                               "slow-fake:3b")] + ["embedded"]  # fmt: skip
        suite = base / "four.toml"
        suite.write_text(SUITE.format(models=", ".join(json.dumps(s) for s in specs), url=url))
        llmbench(["--batch", str(suite)], data)
        fake = f"ollama:smollm-fake:135m@{url}"
        llmbench(["--batch", "-m", fake, "-p", "hi", "-c", "1,2,4", "-n", "3", "--warmup", "0",
                  "--slo", "ttft_s<=0.5", "--slo", "itl_p90_s<=0.05"], data)  # fmt: skip
        llmbench(["--batch", "-m", fake, "--pp", "16,32", "--tg", "4", "--depth", "0,32",
                  "-n", "2", "--warmup", "0"], data)  # fmt: skip
    finally:
        server.stop()
    four, sweep, grid = session_ids(data)
    out = {}
    for name, sid in (("four-models", four), ("sweep", sweep), ("grid", grid)):
        out[name] = base / f"{name}.html"
        llmbench(["report", sid, "--html", str(out[name]), "--title", f"llmbench: {name}"], data)
    machines = base / "machines"
    seed_two_machines(machines)
    out["two-machines"] = base / "two-machines.html"
    llmbench(["report", "--html", str(out["two-machines"])], machines)
    yield out


def seed_two_machines(data: Path) -> None:
    """Two models on two boxes, three repetitions each, through the real store."""
    store = Store(data / "history.json")
    for sid, host, cpu, speed in (("s-epyc", "bench-epyc", "AMD EPYC 9654", 1.0),
                                  ("s-desk", "desk", "AMD Ryzen 9 7950X", 0.4)):  # fmt: skip
        env = {"os": {"system": "Linux", "hostname": host, "machine": "x86_64"},
               "cpu": {"model": cpu, "threads": 16}, "ram_mb": 64_000, "gpus": []}  # fmt: skip
        store.add_session({"id": sid, "started_at": "2025-03-01T10:00:00Z", "environment": env})
        for model, rate in (("qwen2.5:7b", 60.0), ("llama3.1:8b", 50.0)):
            for i in range(3):
                store.add_run(run(
                    id=f"{sid}-{model}-{i}", session_id=sid, model=model,
                    model_spec=f"ollama:{model}", started_at=f"2025-03-01T10:0{i}:00+00:00",
                    timings={"decode_tok_s": rate * speed + i, "ttft_s": 0.1 / speed + i / 100,
                             "itl_p50_s": 0.02 / speed, "itl_p90_s": 0.03 / speed,
                             "itl_p99_s": 0.04 / speed},
                ))  # fmt: skip
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(f"chromium and chromedriver must be on PATH ({INSTALL})", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield d
    finally:
        d.quit()


def network_requests(d: webdriver.Chrome) -> list[str]:
    """Every URL the browser was asked to fetch since the last call (DevTools network log)."""
    urls = []
    for entry in d.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def full_screenshot(d: webdriver.Chrome, path: Path) -> None:
    shot = d.execute_cdp_cmd("Page.captureScreenshot",
                             {"format": "png", "captureBeyondViewport": True})  # fmt: skip
    path.write_bytes(base64.b64decode(shot["data"]))


def open_report(d: webdriver.Chrome, path: Path) -> dict[str, Any]:
    d.get_log("browser")
    d.get_log("performance")
    d.get(path.as_uri())
    ready = d.execute_script("return document.documentElement.getAttribute('data-ready')")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    full_screenshot(d, ARTIFACTS / f"report-{path.stem}.png")
    return {
        "ready": ready,
        "console": [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "WARNING")],
        "requests": network_requests(d),
        "resources": d.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"),
        "charts": d.execute_script(
            "return [...document.querySelectorAll('figure[data-chart]')].map(f => "
            "[f.dataset.chart, f.querySelectorAll('svg.chart .mark').length])"),
        "resets": len(d.find_elements(By.CSS_SELECTOR, "button.reset")),
        "zoomable": len(d.find_elements(By.CSS_SELECTOR, "svg.chart[data-zoom]")),
    }


def assert_offline_and_drawn(page: dict[str, Any], path: Path, charts: set[str]) -> None:
    assert page["ready"] == "1"  # the page's script ran (the CSP allowed it, and only it)
    assert page["console"] == []
    assert page["requests"] == [path.as_uri()]  # the file itself, nothing else
    assert page["resources"] == []
    drawn = dict(page["charts"])
    assert charts <= set(drawn), (charts, drawn)
    assert all(n > 0 for name, n in drawn.items() if name in charts), drawn
    assert page["resets"] == page["zoomable"]  # the script added a reset button to each


def browser_attr(d: webdriver.Chrome, element: Any, name: str) -> str:
    return d.execute_script("return arguments[0].getAttribute(arguments[1])", element, name)


def hover_and_zoom(d: webdriver.Chrome, chart: str) -> tuple[str, str, str]:
    """Hover the chart's first mark (the tooltip's text), then drag a box on it (its viewBox
    before and after)."""
    svg = d.find_element(By.CSS_SELECTOR, f"figure[data-chart='{chart}'] svg")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", svg)
    mark = svg.find_element(By.CSS_SELECTOR, ".mark")
    ActionChains(d).move_to_element(mark).perform()
    tip = d.execute_script("const t = document.querySelector('.tip'); "
                           "return t.hidden ? '' : t.textContent")  # fmt: skip
    def view_box() -> str:
        return browser_attr(d, svg, "viewBox")

    before = view_box()
    ActionChains(d).move_to_element_with_offset(svg, -150, -80).click_and_hold() \
        .move_by_offset(200, 120).release().perform()
    return tip, before, view_box()


def test_four_model_session(reports: dict[str, Path], browser: webdriver.Chrome):
    path = reports["four-models"]
    page = open_report(browser, path)
    assert_offline_and_drawn(page, path, {"decode-rate", "ttft", "ttft-distribution",
                                          "itl-distribution", "quality-vs-speed",
                                          "conversation-turns"})  # fmt: skip
    assert dict(page["charts"])["decode-rate"] == 4 * 2 + 4 * 2  # 4 models x (2 prompts + 2 turns)
    tip, before, after = hover_and_zoom(browser, "quality-vs-speed")
    assert "tok/s, score" in tip
    assert before != after
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "embedded" in body and "slow-fake:3b" in body
    assert "one model's opinion" in body  # the judge's caveat beside its verdicts
    assert "7: clear and correct" in body
    # Printed (as PDF): the print styles apply, nothing interactive is left, the charts stay.
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    hidden = browser.execute_script(
        "return [...document.querySelectorAll('nav, button.reset')]"
        ".every(e => getComputedStyle(e).display === 'none')")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    assert hidden
    pdf = base64.b64decode(browser.execute_cdp_cmd("Page.printToPDF", {})["data"])
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 3
    (ARTIFACTS / "report-four-models.pdf").write_bytes(pdf)


def test_concurrency_sweep(reports: dict[str, Path], browser: webdriver.Chrome):
    path = reports["sweep"]
    page = open_report(browser, path)
    assert_offline_and_drawn(page, path, {"concurrency-sweep", "ttft-distribution"})
    assert dict(page["charts"])["concurrency-sweep"] == 3  # one point per level
    svg = browser.find_element(By.CSS_SELECTOR, "figure[data-chart='concurrency-sweep'] svg")
    assert "SLO ttft_s&lt;=0.5" in svg.get_attribute("innerHTML")  # the SLO line's label
    assert svg.find_elements(By.CSS_SELECTOR, "circle.ring") or "still growing" in \
        browser.find_element(By.CSS_SELECTOR, "p.knee").text  # fmt: skip
    tip, _, _ = hover_and_zoom(browser, "concurrency-sweep")
    assert "tok/s aggregate" in tip and "goodput" in tip


def test_size_grid(reports: dict[str, Path], browser: webdriver.Chrome):
    path = reports["grid"]
    page = open_report(browser, path)
    assert_offline_and_drawn(page, path, {"size-grid"})
    assert dict(page["charts"])["size-grid"] == 4 * 3  # 4 cells x (pp, tg, pp+tg)
    table = browser.find_element(By.CSS_SELECTOR, "#grid table").text
    assert "pp32 @ d32" in table and "tg4 @ d64" in table and "pp16+tg4" in table


def test_two_machines(reports: dict[str, Path], browser: webdriver.Chrome):
    path = reports["two-machines"]
    page = open_report(browser, path)
    assert_offline_and_drawn(page, path, {"machines-1", "decode-rate"})
    section = browser.find_element(By.ID, "machines").text
    assert "A = bench-epyc" in section and "B = desk" in section
    assert "worse (p=" in section
    assert browser.find_elements(By.CSS_SELECTOR, "#machines td.real-worse")
