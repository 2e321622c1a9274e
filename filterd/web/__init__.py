"""The browser pages: ``/console`` (agents), ``/dashboard`` (supervisors) and ``/login``.

Plain HTML, CSS and JavaScript shipped in ``static/`` (package data: nothing is fetched from
the internet). The pages hold no data; their scripts call the ``/v1`` API.

Signing in: ``/login`` (public) takes an API key; ``POST /login`` checks it and sets the
``filterd_key`` cookie (HttpOnly, so no script can read it; SameSite=Strict, so no other site
can make the browser send it; Secure over https). The pages themselves check the caller like
any route (the cookie or a header key): without a key a browser asking for HTML is sent to
``/login?next=...`` (303), anything else gets ``401``; a key whose role may not use the page
gets ``403``. ``/logout`` drops the cookie. The API also accepts the cookie; a request signed
in by cookie that changes something must carry ``X-Requested-With: filterd`` (see
:mod:`filterd.api.deps`), and so must ``POST /login`` (no other site can sign a browser in
with its own key).

Every response carries the security headers below: the CSP allows scripts and styles from
this origin only, so no inline script can run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filterd.api.access import Permission, Principal
from filterd.api.deps import (
    COOKIE,
    CSRF_HEADER,
    CSRF_VALUE,
    ServicesDep,
    authenticate,
    check,
)
from filterd.api.schemas import LoginIn
from filterd.errors import AuthError, ForbiddenError

STATIC = Path(__file__).parent / "static"
# page -> (file, permission of the role matrix, what it is called in a 403)
PAGES: dict[str, tuple[str, Permission, str]] = {
    "/console": ("console.html", "console", "The agent console"),
    "/dashboard": ("dashboard.html", "dashboard", "The supervisor dashboard"),
}
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


def _file(name: str, status: int = 200) -> FileResponse:
    # no-cache: a new release's page must not be paired with old cached scripts
    return FileResponse(STATIC / name, status_code=status, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _page_handler(path: str) -> Callable[[Request, ServicesDep], Response]:
    name, permission, what = PAGES[path]

    def page(request: Request, services: ServicesDep) -> Response:
        try:
            check(authenticate(request, services), permission, what)
        except AuthError:
            if _wants_html(request):  # a person: to the sign-in page, then back here
                return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
            raise
        except ForbiddenError:
            if _wants_html(request):
                return _file("forbidden.html", status=403)
            raise
        return _file(name)

    return page


def _next_page(principal: Principal, wanted: str | None) -> str | None:
    """Where to go after signing in: the page asked for if this key may use it, else the
    first page it may use (only our own pages: never an open redirect)."""
    pages = [p for p, (_, permission, _) in PAGES.items() if principal.may(permission)]
    return wanted if wanted in pages else (pages[0] if pages else None)


def login_page() -> FileResponse:
    """The sign-in page (public)."""
    return _file("login.html")


def login(body: LoginIn, request: Request, services: ServicesDep) -> JSONResponse:
    """Check the key and keep it in the HttpOnly session cookie; answer where to go."""
    if request.headers.get(CSRF_HEADER, "").lower() != CSRF_VALUE:
        raise ForbiddenError(f"Signing in needs the header 'X-Requested-With: {CSRF_VALUE}' "
                             "(the sign-in page sends it).")
    ring = services.keyring
    if ring.is_open():  # nothing to sign in to: every caller is anonymous
        anonymous = Principal()
        return JSONResponse({"role": anonymous.role, "tenant": anonymous.tenant,
                             "next": _next_page(anonymous, body.next)})
    principal = ring.resolve(body.key.strip())
    target = _next_page(principal, body.next)
    if target is None:
        raise ForbiddenError(f"This key's role ({principal.role}) may not use the pages; "
                             "sign in with an agent, supervisor or admin key.")
    response = JSONResponse({"role": principal.role, "tenant": principal.tenant,
                             "next": target}, headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE, body.key.strip(), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


def logout(request: Request) -> Response:
    """Drop the session cookie; a browser (GET) goes back to the sign-in page."""
    response: Response = (RedirectResponse("/login", status_code=303)
                          if request.method == "GET" else Response(status_code=204))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


def install(app: FastAPI) -> None:
    """Mount the pages, sign-in and their static files, and add the security headers."""
    for path in PAGES:
        app.add_api_route(path, _page_handler(path), methods=["GET"], include_in_schema=False)
    app.add_api_route("/login", login_page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/login", login, methods=["POST"], include_in_schema=False)
    app.add_api_route("/logout", logout, methods=["GET", "POST"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders)
