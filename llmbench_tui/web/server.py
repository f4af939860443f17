"""textual-serve's ``Server`` with llmbench's read-only JSON and metrics beside the dashboard.

How the routes get in: textual-serve builds its aiohttp ``web.Application`` in
``Server._make_app`` (``/`` the page, ``/ws`` one app process per websocket, ``/download/{key}``,
``/static``). :class:`LLMBenchServer` overrides that method: it calls it, then adds its own
routes, a middleware and a response hook to the same application before it starts (a mounted
sub-application could not hold ``/metrics`` beside ``/api/``). The method is private to
textual-serve, which is why ``pyproject.toml`` pins textual-serve exactly; the test suite drives
the real server, so an upgrade that moves it fails loudly. Also overridden: ``handle_index`` and
``handle_websocket`` (below), ``on_startup`` (no logo) and ``serve`` (the addresses are printed
once the port is bound, not before).

Added:

- ``GET /api/runs``, ``/api/runs/{id}``, ``/api/sessions/{id}`` (``api``), ``GET /metrics``
  (``metrics``) and ``GET /report`` (``report_page``: the HTML report of the same selection).
  Read-only: nothing over HTTP starts a benchmark or changes the store. Errors under ``/api/``
  are JSON (``{"error": ...}``), never an HTML page.
- Every response: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and a
  ``frame-ancestors 'none'`` CSP (no other site can frame the dashboard and steer clicks into
  it), ``Referrer-Policy: no-referrer``; JSON also ``Cache-Control: no-store``.
- Loopback mode (the default): requests whose ``Host`` is not a loopback name are refused, so a
  web page that re-points its own DNS name at 127.0.0.1 (DNS rebinding) can neither read the API
  nor open the dashboard. Any mode: a websocket whose ``Origin`` is another site is refused
  (browsers let any page open a websocket to localhost; without this check a page visited in
  another tab could drive the dashboard), and at most ``max_sessions`` dashboards run at once.
- The page's websocket URL is built from the request's own ``Host`` (textual-serve uses the bind
  address, so a page opened as ``localhost`` would talk to ``127.0.0.1``, another origin).
- Log lines are made inert (request lines carry client-chosen text).
- With a token (``--public``, or ``--token``): every route behind ``auth.TokenAuth``'s
  middleware (Bearer header or the login cookie; 401 otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

from llmbench_tui.safe_text import one_line, strip_controls
from llmbench_tui.store import RunStore, StoreError
from llmbench_tui.web import api, metrics
from llmbench_tui.web.auth import TokenAuth

log = logging.getLogger("llmbench.serve")

_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_name(host_header: str) -> str | None:
    """The name or address in a ``Host`` header (no port, no brackets), or None if malformed."""
    m = _HOST_HEADER.fullmatch(host_header.strip())
    if not m:
        return None
    return m.group(1).strip("[]").lower()


def is_loopback_name(name: str) -> bool:
    """``localhost`` (and ``*.localhost``, which resolves to loopback by RFC 6761) or a loopback
    address; no DNS is asked."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_api(path: str) -> bool:
    """Paths that answer JSON (or metrics) rather than pages: errors there are not HTML."""
    return path.startswith("/api/") or path == "/metrics"


def json_response(reply: api.Reply) -> web.Response:
    return web.Response(
        status=reply.status,
        body=api.json_bytes(reply.doc),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


class _InertFormatter(logging.Formatter):
    """Log lines without escape sequences or controls (tracebacks keep their newlines)."""

    def format(self, record: logging.LogRecord) -> str:
        return strip_controls(super().format(record))


class LLMBenchServer(Server):
    """The dashboard for browsers plus the read-only API (see the module docstring)."""

    def __init__(
        self,
        command: str,
        *,
        store: RunStore,
        host: str = "127.0.0.1",
        port: int = 8000,
        loopback_only: bool = True,
        max_sessions: int = 8,
        title: str = "llmbench",
        token: str | None = None,
    ) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.store = store
        self.loopback_only = loopback_only
        self.max_sessions = max_sessions
        self.sessions = 0
        self.auth = TokenAuth(token, is_api=_is_api) if token else None

    # -- textual-serve hooks ---------------------------------------------------------------

    def initialize_logging(self) -> None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_InertFormatter("%(asctime)s %(name)s %(message)s", "%H:%M:%S"))
        logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        if self.auth is not None:  # after the Host check, before every route (present or added)
            app.middlewares.append(self.auth.middleware)
            app.add_routes(self.auth.routes())
        app.on_response_prepare.append(self._add_headers)
        app.add_routes([
            web.get("/api/runs", self.handle_runs, name="api-runs"),
            web.get("/api/runs/{id}", self.handle_run, name="api-run"),
            web.get("/api/sessions/{id}", self.handle_session, name="api-session"),
            web.get("/metrics", self.handle_metrics, name="metrics"),
            web.get("/report", self.handle_report, name="report"),
        ])  # fmt: skip
        app.on_cleanup.append(self._close_store)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """Nothing: textual-serve prints its logo here, before the port is even bound; the
        addresses are printed by ``_listening`` once it is."""

    def serve(self, debug: bool = False) -> None:
        """textual-serve's ``serve`` (its loop, its SIGINT/SIGTERM -> graceful exit), with the
        addresses printed only once the port is bound (``OSError`` if it cannot be)."""
        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, self.request_exit)
            loop.add_signal_handler(signal.SIGTERM, self.request_exit)
        web.run_app(
            self._make_app(),
            host=self.host,
            port=self.port,
            handle_signals=False,
            loop=loop,
            print=self._listening,
        )

    def _listening(self, _message: str) -> None:
        base = f"http://{self._url_host()}:{self.port}"
        print(f"llmbench serve: the dashboard at {base}/", flush=True)
        print(f"llmbench serve: JSON at {base}/api/runs, metrics at {base}/metrics, HTML "
              f"reports at {base}/report?session=ID (the /api/runs filters)", flush=True)
        print(f"llmbench serve: data {self.store.location}; Ctrl+C to stop", flush=True)

    async def handle_index(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        """textual-serve's page, pointed at this request's own host (checked by ``_guard``)."""
        scheme = "wss" if request.secure else "ws"
        context = {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{scheme}://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
            log.warning("refused a websocket from another origin: %s", origin)
            return web.Response(status=403, text="cross-origin websocket refused\n")
        if self.sessions >= self.max_sessions:
            busy = f"at most {self.max_sessions} dashboards at once (--max-sessions)\n"
            return web.Response(status=503, text=busy)
        self.sessions += 1
        try:
            return await super().handle_websocket(request)
        finally:
            self.sessions -= 1

    # -- llmbench routes -------------------------------------------------------------------

    async def handle_runs(self, request: web.Request) -> web.Response:
        params = {name: request.query.getall(name) for name in request.query}
        return json_response(await asyncio.to_thread(api.list_runs, self.store, params))

    async def handle_run(self, request: web.Request) -> web.Response:
        run_id = request.match_info["id"]
        return json_response(await asyncio.to_thread(api.get_run, self.store, run_id))

    async def handle_session(self, request: web.Request) -> web.Response:
        session_id = request.match_info["id"]
        return json_response(await asyncio.to_thread(api.get_session, self.store, session_id))

    async def handle_report(self, request: web.Request) -> web.Response:
        from llmbench_tui.web.report_page import report_page

        params = {name: request.query.getall(name) for name in request.query}
        page = await asyncio.to_thread(report_page, self.store, params)
        headers = {"Cache-Control": "no-store"}
        if page.csp:
            headers["Content-Security-Policy"] = f"{page.csp}; frame-ancestors 'none'"
        return web.Response(status=page.status, text=page.body, content_type=page.content_type,
                            charset="utf-8", headers=headers)  # fmt: skip

    async def handle_metrics(self, request: web.Request) -> web.Response:
        try:
            text = await asyncio.to_thread(self._metrics_text)
        except StoreError as exc:
            return web.Response(status=503, text=f"# the run database cannot be read: "
                                f"{one_line(exc)}\n")  # fmt: skip
        return web.Response(body=text.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})

    def _metrics_text(self) -> str:
        return metrics.render(self.store.query(), self.store.sessions())

    # -- plumbing --------------------------------------------------------------------------

    def _url_host(self) -> str:
        host = self.host
        return f"[{host}]" if ":" in host else host

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        is_api = _is_api(request.path)
        name = host_name(request.host)
        refusal = None
        if name is None:
            refusal = "malformed Host header"
        elif self.loopback_only and not is_loopback_name(name) and name != self.host.lower():
            refusal = "this server answers only to loopback names (see llmbench serve --public)"
        if refusal:
            reply = api.Reply(403, {"error": refusal})
            return json_response(reply) if is_api else web.Response(status=403, text=refusal)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if not is_api or exc.status < 400:
                raise
            if exc.status == 404:
                return json_response(api.not_found(request.path))
            return json_response(api.Reply(exc.status, {"error": exc.reason}))

    @staticmethod
    async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)

    async def _close_store(self, app: web.Application) -> None:
        await asyncio.to_thread(self.store.close)
