"""``llmbench serve --public``'s token, against the real command: requests without it are 401 on
every route (page, websocket, static files, API, metrics, an unknown path), the Bearer header
and the login cookie let in, a wrong token does not; a generated token is printed at start.
And ``serve --store`` serves a team database."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from support.serve_process import ServeProcess, serve_env
from support.store_helpers import run

from llmbench_tui.store import open_store

TOKEN = "s3cret-token-for-tests"
GUARDED = ["/", "/api/runs", "/api/runs/abc", "/api/sessions/abc", "/metrics", "/ws",
           "/static/css/xterm.css", "/no-such-page", "/report"]  # fmt: skip

WRONG = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
         {"Cookie": "llmbench_token=x"}]  # fmt: skip


def test_public_refuses_requests_without_the_token(tmp_path: Path) -> None:
    proc = ServeProcess(tmp_path / "data", tmp_path, "--public", "--token", TOKEN,
                        env=serve_env())  # fmt: skip
    try:
        proc.wait_ready()
        for path in GUARDED:
            for headers in WRONG:
                answer = httpx.get(proc.url + path, headers=headers)
                assert answer.status_code == 401, (path, headers, answer.status_code)
                assert TOKEN not in answer.text
        api = httpx.get(proc.url + "/api/runs")
        assert api.headers["WWW-Authenticate"] == "Bearer" and "token" in api.json()["error"]
        page = httpx.get(proc.url + "/")
        assert '<form method="post" action="/login">' in page.text  # the login form
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(proc.url + "/api/runs", headers=bearer).status_code == 200
        assert httpx.get(proc.url + "/metrics", headers=bearer).status_code == 200
        assert httpx.get(proc.url + "/", headers=bearer).status_code == 200
        # the login page: a wrong token stays out, the right one gets a cookie that works
        with httpx.Client(base_url=proc.url) as browser:
            assert browser.get("/login").status_code == 200
            wrong = browser.post("/login", data={"token": "nope"})
            assert wrong.status_code == 401 and "not the token" in wrong.text
            assert "llmbench_token" not in browser.cookies
            login = browser.post("/login", data={"token": TOKEN})
            assert login.status_code == 303 and login.headers["Location"] == "/"
            cookie = login.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert browser.get("/api/runs").status_code == 200
            assert browser.get("/").status_code == 200
    finally:
        proc.stop()


def test_a_generated_token_is_printed_and_works(tmp_path: Path) -> None:
    proc = ServeProcess(tmp_path / "data", tmp_path, "--public", env=serve_env())
    try:
        proc.wait_ready()
        found = re.search(r"token \(give it at /login, or as Authorization: Bearer\): (\S+)",
                          proc.output())  # fmt: skip
        assert found, proc.output()
        token = found.group(1)
        assert len(token) >= 24
        assert httpx.get(proc.url + "/api/runs").status_code == 401
        ok = httpx.get(proc.url + "/api/runs", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    finally:
        proc.stop()


def test_loopback_needs_no_token_and_serves_a_team_database(pg_url: str, tmp_path: Path) -> None:
    store = open_store(pg_url, tmp_path / "data")
    record = run(model="served-from-postgres")
    store.add_run(record)
    store.close()
    proc = ServeProcess(tmp_path / "data", tmp_path, "--store", pg_url, env=serve_env())
    try:
        proc.wait_ready()
        listed = httpx.get(proc.url + "/api/runs").json()
        assert listed["total"] == 1 and listed["runs"] == [record]
        assert httpx.get(f"{proc.url}/api/runs/{record['id']}").json() == record
        assert pg_url.split("@")[1] in proc.output()  # "data postgresql://bench@host/db"
    finally:
        proc.stop()
