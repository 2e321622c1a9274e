"""Every error the API answers, mapped in one place.

Bodies are ``{"error": {"code": ..., "message": ..., "details"?: [...]}}``: the message says
what was wrong and what to do. Nothing here echoes the request's text, and no traceback is
ever sent; an unexpected error is logged by type and stack (not by message, which could
carry message data) and answered as ``500 internal_error``.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filterd.errors import (
    AuthError,
    BatchTooLargeError,
    ConfigError,
    ConflictError,
    FilterdError,
    ForbiddenError,
    InputError,
    ModelError,
    NotFoundError,
    OverloadedError,
    RateLimitedError,
    StoreError,
    TextTooLongError,
    UnavailableError,
)

log = logging.getLogger("filterd.api")

# Most specific first: the first class an error is an instance of decides.
_FILTERD_ERRORS: tuple[tuple[type[FilterdError], int, str], ...] = (
    (TextTooLongError, 413, "text_too_long"),
    (BatchTooLargeError, 413, "batch_too_large"),
    (InputError, 422, "invalid_input"),
    (AuthError, 401, "unauthorized"),
    (ForbiddenError, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (RateLimitedError, 429, "rate_limited"),
    (OverloadedError, 503, "overloaded"),
    (UnavailableError, 503, "unavailable"),
    (StoreError, 503, "store_unavailable"),
    (ModelError, 503, "model_unavailable"),
    (ConfigError, 500, "config_error"),
    (FilterdError, 500, "internal_error"),
)
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}


def error_response(status: int, code: str, message: str,
                   details: list[dict[str, str]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in loc]
    out = ""
    for p in parts:
        out += p if p.startswith("[") or not out else f".{p}"
    return out or "body"


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    for e in errors:
        if e.get("type") == "json_invalid":
            why = (e.get("ctx") or {}).get("error", "parse error")
            return error_response(400, "malformed_json",
                                  f"The request body is not valid JSON ({why}). Send a JSON "
                                  "object with Content-Type: application/json.")
    content_type = request.headers.get("content-type", "")
    if errors and tuple(errors[0].get("loc", ())) == ("body",) and "json" not in content_type:
        return error_response(415, "unsupported_media_type",
                              f"The body must be JSON (Content-Type: application/json), not "
                              f"{content_type or 'untyped'}.")
    details = []
    for e in errors:
        loc = tuple(e.get("loc", ()))
        # FastAPI prefixes "body"/"query"/"path": keep it for query and path only.
        field = _field(loc[1:] if loc[:1] == ("body",) else loc)
        if e.get("type") == "missing" and field == "body":
            msg = "A JSON object body is required."
        elif e.get("type") == "missing":
            msg = "This field is required."
        else:
            msg = str(e.get("msg", "invalid value"))
        details.append({"field": field, "message": msg})
    first = details[0]
    code = "missing_field" if errors[0].get("type") == "missing" else "invalid_field"
    return error_response(422, code, f"'{first['field']}': {first['message']}", details)


def _filterd(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FilterdError)
    for cls, status, code in _FILTERD_ERRORS:
        if isinstance(exc, cls):
            code = getattr(exc, "code", code)
            if status >= 500:
                log.error("%s on %s %s", type(exc).__name__, request.method, request.url.path)
            headers = ({"Retry-After": exc.retry_after_header}
                       if isinstance(exc, UnavailableError)
                       else {"Retry-After": "1"} if isinstance(exc, StoreError | ConflictError)
                       else {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError)
                       else None)
            return error_response(status, code, str(exc), headers=headers)
    raise AssertionError("unreachable: FilterdError is in the table")  # pragma: no cover


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, f"http_{status}")
    message = str(exc.detail)
    if status == 404 and message == "Not Found":
        message = f"No route {request.method} {request.url.path}. See /docs for the API."
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    return error_response(status, code, message, headers=getattr(exc, "headers", None))


class CatchAll:
    """Answer any unexpected exception with ``500 internal_error`` and swallow it.

    Starlette's own last-resort handler re-raises after answering, and the server then logs
    the exception's message, which could quote message data; this logs the type and the
    stack frames only.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            stack = "".join(traceback.format_tb(exc.__traceback__))
            log.error("unexpected %s on %s %s\n%s", type(exc).__name__, scope.get("method"),
                      scope.get("path"), stack)
            if started:  # too late for an error body; the client sees a cut response
                return
            response = error_response(
                500, "internal_error",
                "filterd failed unexpectedly; the error is logged. Retry, and report it if it "
                "persists.")
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(FilterdError, _filterd)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_middleware(CatchAll)
    document_common_errors(app)


# --- common error answers in the OpenAPI schema (issue 6, schema fuzzing) ---
# Answers that come from layers every route shares (authentication, rate limits, the body
# limit, JSON parsing, the store) rather than from a route's own code. Routes list their own
# errors; these are added to each operation at schema generation, so the schema documents
# every status the API can answer (tests/test_schema_fuzz.py checks that it does).
_COMMON_ERRORS = {
    400: "The body is not valid JSON (malformed_json).",
    401: "No valid API key (unauthorized).",
    403: "This key's role may not use this route (forbidden).",
    404: "No such resource (not_found and its kinds).",
    413: "The body is over FILTERD_MAX_BODY_BYTES (body_too_large).",
    415: "The body is not JSON (unsupported_media_type).",
    422: "A field is missing or invalid (missing_field, invalid_field, invalid_input).",
    429: "Over a rate limit (rate_limited); see Retry-After.",
    503: "Overloaded or the store is unavailable; see Retry-After.",
}


def _common_codes(path: str, operation: dict[str, Any]) -> set[int]:
    codes: set[int] = set()
    if path.startswith("/v1/"):
        codes |= {401, 403, 429, 503}  # keys, roles, rate limits, the store
    elif path == "/metrics":
        codes |= {401, 403}  # FILTERD_METRICS_REQUIRE_KEY
    if "requestBody" in operation:
        codes |= {400, 413, 415, 422}
    params = operation.get("parameters", [])
    if params:
        codes.add(422)
    if any(p.get("in") == "path" for p in params):
        codes.add(404)
    return codes


def document_common_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` list the shared error answers on every operation."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            has_error_model = "ErrorOut" in schema.get("components", {}).get("schemas", {})
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    answers = operation.setdefault("responses", {})
                    for code in sorted(_common_codes(path, operation)):
                        if str(code) in answers:
                            continue
                        answer: dict[str, Any] = {"description": _COMMON_ERRORS[code]}
                        if has_error_model:
                            answer["content"] = {"application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorOut"}}}
                        answers[str(code)] = answer
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
# --- end common error answers ---
