"""``llmbench serve``'s ``GET /report``: the HTML report of the runs ``/api/runs`` selects, read
only, with its CSP sent as a header; bad parameters and empty selections in one sentence."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.seed_history import seed_store
from support.serve_process import ServeProcess, serve_env

from llmbench_tui.engine.stats import summarize
from llmbench_tui.store import Store

pytestmark = [pytest.mark.timeout(300)]

DATA = re.compile(r'<script type="application/json" id="llmbench-data">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    base = tmp_path_factory.mktemp("serve-report")
    store = Store(base / "history.json")
    seed_store(store, 400)
    store.close()
    server = ServeProcess(base, base, env=serve_env())
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_report_of_the_api_selection(served: ServeProcess):
    reply = httpx.get(f"{served.url}/report?model=qwen", timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    csp = reply.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'; script-src 'sha256-") and "frame-ancestors" in csp
    (blob,) = DATA.findall(reply.text)
    data = json.loads(blob)
    runs = httpx.get(f"{served.url}/api/runs?model=qwen&limit=1000",
                     timeout=60).json()  # fmt: skip
    assert data["counts"]["runs"] == runs["total"] == len(runs["runs"]) > 50  # all, not a page
    records = sorted(runs["runs"], key=lambda r: r["started_at"])
    assert [row["figures"] for row in data["summary"]] == [
        g.to_json()["figures"] for g in summarize(records)]  # fmt: skip
    assert data["selection"] == "--model qwen"


def test_report_refusals(served: ServeProcess):
    reply = httpx.get(f"{served.url}/report?colour=red", timeout=30)
    assert reply.status_code == 400 and reply.text.startswith("colour: unknown parameter")
    reply = httpx.get(f"{served.url}/report?model=absent", timeout=30)
    assert (reply.status_code, reply.text) == (404, "no runs match this selection\n")
    reply = httpx.get(f"{served.url}/report", headers={"Host": "evil.example"}, timeout=30)
    assert reply.status_code == 403
    reply = httpx.post(f"{served.url}/report", timeout=30)
    assert reply.status_code == 405  # read-only


def test_report_page_is_a_file_of_its_own(served: ServeProcess, tmp_path: Path):
    """The served page is the very page ``llmbench report`` writes (but its generation time)."""
    from llmbench_tui.commands import report

    reply = httpx.get(f"{served.url}/report?session=s00003", timeout=60)
    out = tmp_path / "r.html"
    data_dir = str(Path(served.stdout_path).parent)
    args = report.build_parser("llmbench report").parse_args(
        ["--session", "s00003", "--html", str(out), "--data-dir", data_dir])
    assert report.main(args) == 0
    stamp = re.compile(r'"generated_at":"[^"]*"|Generated</dt><dd>[^<]*')
    assert stamp.sub("", reply.text) == stamp.sub("", out.read_text(encoding="utf-8"))
