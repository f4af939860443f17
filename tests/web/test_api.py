"""``llmbench serve``'s JSON and metrics, by plain HTTP against the real command.

The server runs as a subprocess (``python -m llmbench_tui.cli serve``) on a free loopback port,
over a data directory seeded with generated history (``seed_history``) and hostile records:
markup that would close a ``<script>``, escape sequences, quotes, backslashes and newlines in
model names and hosts. Nothing here binds anything but 127.0.0.1; the ``--public`` refusal is
checked on ``0.0.0.0`` without binding (the command exits before it would).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.fixtures_llama import free_port
from support.paths import REPO
from support.seed_history import make_runs
from support.serve_process import ServeProcess, serve_env
from support.store_helpers import run

from llmbench_tui.commands.serve import is_loopback_host, warning
from llmbench_tui.config import db_path
from llmbench_tui.safe_text import strip_controls
from llmbench_tui.store import RunQuery, Store
from llmbench_tui.web.api import BadParameter, parse_runs_query
from llmbench_tui.web.metrics import label_value

START = "2025-03-01T09:00:00+00:00"
N_SEEDED = 120
SCRIPT = "</script><script>alert(1)</script>"
ESC_MODEL = "\x1b]0;pwned\x07evil\x1b[2J\x1b[31mmodel\nsecond line\u202e"
EVIL_HOSTNAME = 'box"with\\quote\nand newline\x1b[1m'
EVIL_HOST = 'http://bad"host\\x:1/\n\x1b[5mblink'


def hostile_records() -> list[dict[str, Any]]:
    return [
        run(id="hostile-script", session_id="sess-hostile", model=SCRIPT, backend="gguf",
            host=None, started_at="2026-01-02T10:00:00+00:00",
            response=f"{SCRIPT}\x1b[2J", environment={"os": {"hostname": EVIL_HOSTNAME}},
            timings={"decode_tok_s": 111.5, "ttft_s": 0.02},
            quality={"score": 7.0, "checks": []}),
        run(id="hostile-escape", session_id="sess-hostile", model=ESC_MODEL, backend="openai",
            host=EVIL_HOST, started_at="2026-01-02T10:00:05+00:00",
            timings={"decode_tok_s": 42.0, "ttft_s": 0.25}),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("serve-data")
    store = Store(db_path(data))
    try:
        runs = make_runs(N_SEEDED)
        store.add_runs([rec for rec, _ in runs], {rec["id"]: ser for rec, ser in runs if ser})
        store.add_runs(hostile_records())
        for sid in sorted({rec["session_id"] for rec, _ in runs})[:3]:
            env = {"os": {"hostname": "bench-box"}}
            store.add_session({"id": sid, "started_at": START, "environment": env, "plan": {}})
    finally:
        store.close()
    return data


@pytest.fixture(scope="module")
def server(seeded: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = ServeProcess(seeded, tmp_path_factory.mktemp("serve-logs"), env=serve_env())
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def http(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def get_json(http: httpx.Client, url: str, status: int = 200) -> Any:
    response = http.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    return response.json()


def cli_ids(data: Path, *args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "llmbench_tui.cli", "history", "--data-dir", str(data), "--json",
         *args],
        cwd=REPO, env=serve_env(), capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    return [r["id"] for r in json.loads(out)]


# -- /api/runs ------------------------------------------------------------------------------


def test_runs_are_paged_newest_first_with_the_total(http: httpx.Client) -> None:
    total = N_SEEDED + 2
    first = get_json(http, "/api/runs?limit=10")
    assert first["total"] == total and first["count"] == 10 and first["next_offset"] == 10
    starts = [r["started_at"] for r in first["runs"]]
    assert first["runs"][0]["id"] == "hostile-escape"  # the newest
    assert starts[:2] == ["2026-01-02T10:00:05+00:00", "2026-01-02T10:00:00+00:00"]
    second = get_json(http, "/api/runs?limit=10&offset=10")
    assert get_json(http, "/api/runs?limit=10&page=2") == second
    assert not {r["id"] for r in first["runs"]} & {r["id"] for r in second["runs"]}
    everything = get_json(http, "/api/runs?limit=1000")
    assert everything["count"] == total and everything["next_offset"] is None
    ids = [r["id"] for r in everything["runs"]]
    assert ids[:10] == [r["id"] for r in first["runs"]] and ids[10:20] == [
        r["id"] for r in second["runs"]
    ]
    last = get_json(http, f"/api/runs?limit=10&offset={total - 3}")
    assert last["count"] == 3 and last["next_offset"] is None
    assert get_json(http, "/api/runs")["limit"] == 50


@pytest.mark.parametrize(
    "params",
    [
        {"model": "qwen", "status": "ok"},
        {"search": "haiku", "sort": "-timings.decode_tok_s"},
        {"backend": "gguf", "since": "2025-03-05", "until": "2025-04-30"},
        {"host": "gpu-box", "sort": "timings.ttft_s"},
        {"session": "s00002"},
    ],
)
def test_filters_mean_what_they_mean_on_the_command_line(
    http: httpx.Client, seeded: Path, params: dict[str, str]
) -> None:
    doc = http.get("/api/runs", params={**params, "limit": "1000"}).json()
    cli = cli_ids(seeded, *[f"--{k}={v}" for k, v in params.items()], "--limit", "1000")
    assert [r["id"] for r in doc["runs"]] == cli
    assert doc["total"] == len(cli) and 0 < len(cli) < N_SEEDED


def test_filters_select_the_right_runs(http: httpx.Client) -> None:
    gguf = get_json(http, "/api/runs?backend=gguf&limit=1000")
    assert gguf["total"] > 0 and {r["backend"] for r in gguf["runs"]} == {"gguf"}
    errors = get_json(http, "/api/runs?status=error&limit=1000")["runs"]
    assert errors and {r["status"] for r in errors} == {"error"}
    hostile = get_json(http, "/api/runs?session=sess-hostile")
    assert hostile["total"] == 2
    assert get_json(http, "/api/runs?search=%3C/script%3E")["runs"][0]["id"] == "hostile-script"
    assert get_json(http, "/api/runs?model=no-such-model")["total"] == 0


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("backend=llamafile", "backend"),
        ("status=great", "status"),
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("offset=-1", "offset"),
        ("page=0", "page"),
        ("page=2&offset=3", "page"),
        ("since=yesterday", "since"),
        ("until=2025-13-45", "until"),
        ("sort=timings.decode_tok_s%3Bdrop", "sort"),
        ("model=a&model=b", "model"),
        ("colour=red", "colour"),
        ("data-dir=/etc", "data-dir"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(http: httpx.Client, query: str, parameter: str) -> None:
    doc = get_json(http, f"/api/runs?{query}", 400)
    assert doc["parameter"] == parameter
    assert doc["error"].startswith(f"{parameter}: ")


def test_the_query_parser_is_the_command_line_parser() -> None:
    query, offset, limit = parse_runs_query(
        {"search": ["sky"], "model": ["qwen"], "backend": ["ollama"], "host": ["gpu"],
         "status": ["ok"], "session": ["s01"], "since": ["2025-01-01"],
         "until": ["2025-02-01"], "sort": ["-timings.ttft_s"], "page": ["3"], "limit": ["20"]}
    )  # fmt: skip
    assert query == RunQuery(
        search="sky", model="qwen", backend="ollama", host="gpu", status="ok", since="2025-01-01",
        until="2025-02-01", session_id="s01", sort="-timings.ttft_s", limit=20, offset=40,
    )  # fmt: skip
    assert (offset, limit) == (40, 20)
    with pytest.raises(BadParameter) as caught:
        parse_runs_query({"status": ["fine"]})
    assert caught.value.name == "status" and "invalid choice" in caught.value.message


# -- /api/runs/{id}, /api/sessions/{id}, errors ---------------------------------------------


def test_a_run_is_returned_in_full_as_stored(http: httpx.Client, seeded: Path) -> None:
    some = get_json(http, "/api/runs?status=ok&limit=1")["runs"][0]
    store = Store(db_path(seeded))
    try:
        stored = store.get_run(some["id"])
    finally:
        store.close()
    assert get_json(http, f"/api/runs/{some['id']}") == stored
    assert get_json(http, f"/api/runs/{some['id'][:18]}")["id"] == some["id"]  # a prefix


def test_unknown_ids_and_paths_are_json_404s(http: httpx.Client, seeded: Path) -> None:
    missing = get_json(http, "/api/runs/does-not-exist", 404)
    assert missing == {"error": "no run with id 'does-not-exist'"}  # no database path in it
    ambiguous = get_json(http, "/api/runs/2025", 404)
    assert "matches" in ambiguous["error"]
    assert str(seeded) not in json.dumps(ambiguous)
    assert "error" in get_json(http, "/api/sessions/no-such-session", 404)
    assert get_json(http, "/api/nothing-here", 404) == {
        "error": "no such endpoint: /api/nothing-here"
    }
    posted = http.post("/api/runs", json={})
    assert posted.status_code == 405 and posted.headers["content-type"] == "application/json"
    assert http.delete("/api/runs/hostile-script").status_code == 405
    assert get_json(http, "/api/runs/hostile-script")["id"] == "hostile-script"  # still there


def test_a_session_with_its_run_count(http: httpx.Client) -> None:
    sid = get_json(http, "/api/runs?session=s00001&limit=1")["runs"][0]["session_id"]
    doc = get_json(http, f"/api/sessions/{sid}")
    assert doc["id"] == sid and doc["session"]["environment"]["os"]["hostname"] == "bench-box"
    assert doc["run_count"] == get_json(http, f"/api/runs?session={sid}")["total"] > 0
    assert doc["runs_url"] == f"/api/runs?session={sid}"
    imported = get_json(http, "/api/sessions/sess-hostile")  # known from its runs only
    assert imported["session"] is None and imported["run_count"] == 2


def test_hostile_strings_stay_as_stored_and_inert(http: httpx.Client) -> None:
    response = http.get("/api/runs/hostile-script")
    raw = response.content
    for byte in (b"<", b">", b"&", b"\x1b", b"\n"):
        assert byte not in raw
    assert b"\\u003c/script\\u003e" in raw
    record = response.json()
    assert record["model"] == SCRIPT and record["response"] == f"{SCRIPT}\x1b[2J"
    escaped = http.get("/api/runs/hostile-escape")
    assert b"\\u202e" in escaped.content and "\u202e".encode() not in escaped.content
    doc = escaped.json()
    assert doc["model"] == ESC_MODEL and doc["host"] == EVIL_HOST
    assert escaped.headers["x-content-type-options"] == "nosniff"


# -- /metrics -------------------------------------------------------------------------------


def metric_samples(http: httpx.Client) -> dict[str, list]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "\x1b" not in response.text
    families = text_string_to_metric_families(response.text)
    return {family.name: family.samples for family in families}


def test_metrics_parse_and_hold_the_latest_figures(http: httpx.Client, seeded: Path) -> None:
    samples = metric_samples(http)
    decode = samples["llmbench_decode_tokens_per_second"]
    store = Store(db_path(seeded))
    try:
        for status in ("ok", "error", "timeout", "cancelled"):
            (count,) = [s for s in samples["llmbench_runs"] if s.labels["status"] == status]
            assert count.value == store.count(RunQuery(status=status))
        newest_ok = [
            r for r in store.query(RunQuery(model="qwen2.5:7b", status="ok"))
            if not r.get("warmup") and not r.get("cold")
        ]  # fmt: skip
    finally:
        store.close()
    (qwen,) = [s for s in decode if s.labels["model"] == "qwen2.5:7b"]
    assert qwen.labels["machine"] == "http://gpu-box:11434" and qwen.labels["backend"] == "ollama"
    assert qwen.value == newest_ok[0]["timings"]["decode_tok_s"]
    assert {"llmbench_ttft_seconds", "llmbench_quality_score",
            "llmbench_last_run_timestamp_seconds"} <= set(samples)  # fmt: skip
    # in-process runs: the hostname from their session's environment, else "local"
    embedded = {s.labels["machine"] for s in decode if s.labels["backend"] == "gguf"}
    assert "bench-box" in embedded and embedded <= {
        "bench-box",
        "local",
        'box"with\\quote\nand newline',
    }


def test_hostile_labels_are_escaped_and_parse_back(http: httpx.Client) -> None:
    decode = metric_samples(http)["llmbench_decode_tokens_per_second"]
    by_model = {s.labels["model"]: s for s in decode}
    script = by_model[SCRIPT]  # nothing to strip: kept, and escaped only as the format needs
    assert script.value == 111.5
    assert (
        script.labels["machine"] == strip_controls(EVIL_HOSTNAME) == 'box"with\\quote\nand newline'
    )
    escaped = by_model[strip_controls(ESC_MODEL)]
    assert escaped.labels["model"] == "evilmodel\nsecond line"
    assert escaped.labels["machine"] == 'http://bad"host\\x:1/\nblink'
    text = http.get("/metrics").text
    assert 'machine="box\\"with\\\\quote\\nand newline"' in text
    assert label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_new_runs_show_up_without_a_restart(http: httpx.Client, seeded: Path) -> None:
    before = get_json(http, "/api/runs?limit=1")["total"]
    store = Store(db_path(seeded))
    try:
        store.add_run(run(id="added-later", model="late-model", started_at="2026-02-01T00:00:00Z",
                          timings={"decode_tok_s": 9.5}))  # fmt: skip
    finally:
        store.close()
    after = get_json(http, "/api/runs?limit=1")
    assert after["total"] == before + 1 and after["runs"][0]["id"] == "added-later"
    decode = metric_samples(http)["llmbench_decode_tokens_per_second"]
    assert [s.value for s in decode if s.labels["model"] == "late-model"] == [9.5]


# -- the page, hosts, origins ---------------------------------------------------------------


def test_the_page_points_at_the_host_it_was_asked_for(server: ServeProcess) -> None:
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        page = httpx.get(server.url + "/", headers={"Host": host}, timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'data-session-websocket-url="ws://{host}/ws"' in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"


def test_foreign_hosts_and_origins_are_refused(server: ServeProcess) -> None:
    rebound = httpx.get(f"{server.url}/api/runs", headers={"Host": f"evil.example:{server.port}"})
    assert rebound.status_code == 403 and rebound.headers["content-type"] == "application/json"
    assert httpx.get(server.url + "/", headers={"Host": "evil.example"}).status_code == 403
    handshake = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                 "Origin": "http://evil.example"}  # fmt: skip
    assert httpx.get(f"{server.url}/ws", headers=handshake).status_code == 403


# -- loopback only unless --public ----------------------------------------------------------


def test_a_non_loopback_host_is_refused_before_binding(tmp_path: Path) -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "llmbench_tui.cli", "serve", "--host", "0.0.0.0", "--port",
         str(port), "--data-dir", str(tmp_path / "data")],
        cwd=REPO, env=serve_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "refusing to listen on '0.0.0.0'" in done.stderr and "--public" in done.stderr
    assert "authentication" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was opened or bound


def test_loopback_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback_host(host), host
    for host in ("0.0.0.0", "::", "", "192.168.1.10", "no-such-host.invalid"):
        assert not is_loopback_host(host), host
    text = warning("0.0.0.0", 8000)
    assert "holds the token" in text and "0.0.0.0:8000" in text


def test_public_prints_the_warning(tmp_path: Path) -> None:
    env = serve_env({"LLMBENCH_SERVE_TOKEN": "t0ken"})
    proc = ServeProcess(tmp_path / "data", tmp_path, "--public", env=env)
    try:
        proc.wait_ready()
        assert "WARNING: --public: anyone who can reach" in proc.output()
        # --public drops the loopback Host check (the operator chose who can reach it)
        other = httpx.get(f"{proc.url}/api/runs",
                          headers={"Host": "bench.example", "Authorization": "Bearer t0ken"})
        assert other.status_code == 200
    finally:
        proc.stop()
