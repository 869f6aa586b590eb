"""`neuraterm serve`'s web server: textual-serve behind a token, the way Jupyter guards its notebooks.

Whoever loads the page drives the app, which can pause, stop and start runs, so the page is served
only to a browser that shows the server's token: once in the URL (`?token=...`, printed in the URL
line when the server starts), then as a cookie for that port (HttpOnly, SameSite=Strict, so a page
of another site cannot use it). Every route needs it: the page, its scripts and the websocket that
drives the app. The token is random per server (`secrets.token_urlsafe`) unless `--token` sets one.
"""
from __future__ import annotations

import hmac
import secrets
import sys

from aiohttp import web
from textual_serve.server import Server


def new_token() -> str:
    return secrets.token_urlsafe(24)


class TokenServer(Server):
    """textual-serve's Server with every request checked for the token (None: no check, loopback only)."""

    def __init__(self, command: str, token: str | None, **kwargs):
        super().__init__(command, **kwargs)
        self.token = token
        self.cookie = f"neuraterm-token-{self.port}"  # cookies are per host, not per port

    def url(self) -> str:
        return f"{self.public_url}/" + (f"?token={self.token}" if self.token else "")

    def _allowed(self, request: web.Request) -> tuple[bool, bool]:
        """(whether the request may go on, whether it showed the token in its URL)."""
        if self.token is None:
            return True, False
        given = request.query.get("token")
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            return True, True
        cookie = request.cookies.get(self.cookie)
        return cookie is not None and hmac.compare_digest(cookie.encode(), self.token.encode()), False

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()

        @web.middleware
        async def require_token(request: web.Request, handler):
            allowed, in_url = self._allowed(request)
            if not allowed:
                return web.Response(status=403, content_type="text/plain",
                                    text="neuraterm serve: this page needs the server's token; open the URL "
                                         "it printed when it started (http://HOST:PORT/?token=...)\n")
            response = await handler(request)
            if in_url and isinstance(response, web.Response):
                response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict")
            return response

        app.middlewares.append(require_token)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """The URL line, with the token, is what a user copies (textual-serve's own banner would not have it)."""
        print(f"serving {self.title} on {self.url()}", flush=True)
        if self.token is None:
            print("no token: anyone with an account on this machine can open it", flush=True)
        print("press Ctrl+C to quit", file=sys.stderr, flush=True)
