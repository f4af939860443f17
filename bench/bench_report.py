"""Benchmark of the HTML report at scale: writing it, its size, and its page load in Chromium.

A data folder is filled with ``--runs`` realistic generated runs (``tests/support/seed_history.py``:
six models, six prompts, errors and warm-ups, sessions over six weeks), then, ``--repeat``
times each:

- written: ``llmbench report --html OUT`` as a user runs it (a new process: start-up, store
  load, selection, figures, charts, page), wall time;
- build: the same inside one process, split into select (store query, self-contained records),
  model (``report.build``) and render (charts and page);
- page load in headless Chromium (Debian's chromium + chromedriver) from ``file://``: first
  paint and first contentful paint (``performance.getEntriesByType('paint')``), DOMContentLoaded
  and load (navigation timing), with the page's own script run (``data-ready``).

Usage: ``python bench/bench_report.py --runs 10000 --repeat 3``. Goals: written < 5 s, first
paint < 1 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.seed_history import seed_store  # noqa: E402

from llmbench_tui.report import build, render  # noqa: E402
from llmbench_tui.report.select import select  # noqa: E402
from llmbench_tui.store import RunQuery, Store  # noqa: E402


def write_timing(data_dir: Path, out: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of ``llmbench report --html`` in a new process:
    on a shared machine the CPU time is the figure that does not depend on the neighbours."""
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llmbench_tui.cli", "report", "--html", str(out)],
                   check=True, env=env, capture_output=True)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def build_timing(data_dir: Path) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    store = Store(data_dir / "history.json")
    records = select(store, [], RunQuery())
    t1 = time.perf_counter()
    data = build(records)
    t2 = time.perf_counter()
    render(data)
    t3 = time.perf_counter()
    store.close()
    return t1 - t0, t2 - t1, t3 - t2


def page_load(path: Path, repeat: int) -> list[dict[str, float]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    out = []
    try:
        for _ in range(repeat):
            driver.get("about:blank")
            driver.get(path.as_uri())
            timing = driver.execute_script("""
                const nav = performance.getEntriesByType('navigation')[0];
                const paint = Object.fromEntries(performance.getEntriesByType('paint')
                    .map(e => [e.name, e.startTime]));
                return {fp: paint['first-paint'], fcp: paint['first-contentful-paint'],
                        dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
                        ready: document.documentElement.getAttribute('data-ready')};""")
            assert timing["ready"] == "1", "the page's script did not run"
            out.append(timing)
    finally:
        driver.quit()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        store = Store(data / "history.json")
        seed_store(store, args.runs)
        store.close()
        out = Path(tmp) / "report.html"
        written = [write_timing(data, out) for _ in range(args.repeat)]
        parts = [build_timing(data) for _ in range(args.repeat)]
        loads = page_load(out, args.repeat)
        size = out.stat().st_size

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    print(f"machine: {platform.node()} · {platform.processor() or platform.machine()} · "
          f"{os.cpu_count()} CPUs · load average {os.getloadavg()[0]:.1f}")
    print(f"runs: {args.runs}, repeat: {args.repeat}")
    walls, cpus = [w for w, _ in written], [c for _, c in written]
    print(f"written (llmbench report --html, new process): median {med(walls):.2f} s wall "
          f"(all: {', '.join(f'{x:.2f}' for x in walls)}), median {med(cpus):.2f} s CPU "
          f"(all: {', '.join(f'{x:.2f}' for x in cpus)})")
    for i, name in enumerate(("select", "model", "render")):
        print(f"  {name}: median {med([p[i] for p in parts]):.2f} s")
    print(f"file size: {size / 1024:.0f} KiB")
    for key, name in (("fp", "first paint"), ("fcp", "first contentful paint"),
                      ("dcl", "DOMContentLoaded"), ("load", "load")):  # fmt: skip
        values = [t[key] for t in loads if t[key] is not None]
        print(f"page {name}: median {med(values):.0f} ms (all: "
              f"{', '.join(f'{x:.0f}' for x in values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
