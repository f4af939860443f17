"""Token authentication for ``llmbench serve --public``: one aiohttp middleware in front of
every route (the dashboard page, its websocket, static files, the API, metrics and any route
added later), so no handler can forget it.

A request is let in when it carries the token as ``Authorization: Bearer TOKEN`` (scripts, the
API) or in the ``llmbench_token`` cookie that ``POST /login`` sets after the login form (a
browser: the websocket of the dashboard carries the cookie too). Everything else is a 401: JSON
for the API, the login form for a page. Tokens are compared in constant time
(``hmac.compare_digest``). The cookie is ``HttpOnly`` and ``SameSite=Strict``: no script reads
it and no other site's page sends it.
"""

from __future__ import annotations

import hmac
import html
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

COOKIE = "llmbench_token"
LOGIN_PATH = "/login"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llmbench: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 28em; margin: 4em auto">
<h1>llmbench</h1>
<p>This dashboard needs the token that <code>llmbench serve</code> printed when it started
(or the one given with <code>--token</code> / <code>LLMBENCH_SERVE_TOKEN</code>).</p>
<form method="post" action="/login">
<label>Token <input type="password" name="token" autofocus autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>
<p style="color: #b00">{message}</p>
</body></html>
"""


def new_token() -> str:
    """A fresh random token (192 bits, URL-safe)."""
    return secrets.token_urlsafe(24)


class TokenAuth:
    """The middleware and the login route for one token."""

    def __init__(self, token: str, *, is_api: Callable[[str], bool]) -> None:
        self._token = token.encode()
        self._is_api = is_api

    def accepts(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self._token)

    def _bearer(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None

    def routes(self) -> list[web.RouteDef]:
        return [web.get(LOGIN_PATH, self.login_page), web.post(LOGIN_PATH, self.login)]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == LOGIN_PATH:
            return await handler(request)
        if self.accepts(self._bearer(request)) or self.accepts(request.cookies.get(COOKIE)):
            return await handler(request)
        if self._is_api(request.path):
            return web.json_response(
                {"error": "this server needs its token: Authorization: Bearer TOKEN"},
                status=401, headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
            )  # fmt: skip
        return self._page(401, "")

    async def login_page(self, request: web.Request) -> web.Response:
        return self._page(200, "")

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        offered = form.get("token")
        if not isinstance(offered, str) or not self.accepts(offered.strip()):
            return self._page(401, "That is not the token.")
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(COOKIE, offered.strip(), httponly=True, samesite="Strict",
                            secure=request.secure, path="/")  # fmt: skip
        return response

    @staticmethod
    def _page(status: int, message: str) -> web.Response:
        body = _PAGE.format(message=html.escape(message))
        return web.Response(status=status, text=body, content_type="text/html",
                            headers={"Cache-Control": "no-store"})  # fmt: skip
