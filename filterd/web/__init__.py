"""The browser pages: ``/console`` (agents) and ``/dashboard`` (supervisors).

Plain HTML, CSS and JavaScript shipped in ``static/`` (package data: nothing is fetched from
the internet). The pages hold no data; their scripts call the ``/v1`` API with the key the
user typed (kept in ``sessionStorage``). Every response carries the security headers below:
the CSP allows scripts and styles from this origin only, so no inline script can run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
PAGES = {"/console": "console.html", "/dashboard": "dashboard.html"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response (pure ASGI, so
    event streams are not buffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _page(name: str) -> FileResponse:
    # no-cache: a new release's page must not be paired with old cached scripts
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


def _handler(name: str) -> Callable[[], FileResponse]:
    def page() -> FileResponse:
        return _page(name)

    return page


def install(app: FastAPI) -> None:
    """Mount the pages and their static files, and add the security headers."""
    for path, name in PAGES.items():
        app.add_api_route(path, _handler(name), methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders)
