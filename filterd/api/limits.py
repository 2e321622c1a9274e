"""Limits that keep one caller or one burst from taking the service down; never a hang.

Three layers, outermost first:

1. :class:`BodyLimit` (pure ASGI, every request): a body over ``FILTERD_MAX_BODY_BYTES`` is
   refused with ``413`` before it is parsed: at once when ``Content-Length`` says so, else
   as soon as the streamed bytes pass the limit.
2. :class:`Admission` (pure ASGI, the ingest routes): at most ``FILTERD_MAX_INFLIGHT``
   requests are judged at once. A request waits at most ``FILTERD_ADMISSION_WAIT_MS`` for a
   slot, then gets ``503 overloaded`` with ``Retry-After``; nothing queues without bound.
   The body is read before a slot is taken, so a slow client never holds one.
3. :class:`RateLimits` (a dependency of every ``/v1`` route, after authentication): per API
   key and per ``(tenant, conversation)`` on ``POST /v1/messages`` and ``:batch`` (a batch
   counts each message), per key on the other ``/v1`` routes; ``429 rate_limited`` with
   ``Retry-After`` = seconds until the window has room again.

Rate limits are sliding-window counters in process memory
(:mod:`filterd.api.ratewindow`, the ``limits`` library's algorithm; why not the library
itself is written there). ``RATE_*_PER_SECOND`` and
``*_BURST`` become "at most BURST messages in a window of BURST/PER_SECOND seconds" (rounded
to whole seconds, at least 1; the previous window's count is weighted by how much of it
still overlaps): the sustained rate is PER_SECOND and a burst of BURST passes at once.
Not an exact moving window (a timestamp per message); the counter's keys expire with their
window, so memory stays bounded by the conversations active in the last two windows
(tests/test_limits.py checks that idle conversations are forgotten).
A batch holding more messages for one conversation than its burst counts as a full burst,
so it can pass on an idle conversation instead of being refused forever.

Every limit here is per process: with N workers (``filterd serve --workers N``) or N
instances, the effective limits are N times the settings.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, NoReturn

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.params import Depends as DependsParam
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filterd.api.deps import PrincipalDep
from filterd.api.errors import error_response
from filterd.api.ratewindow import SlidingWindows, Window
from filterd.config import Settings
from filterd.errors import OverloadedError, RateLimitedError
from filterd.metrics import Metrics

INGEST_PATHS = frozenset({"/v1/messages", "/v1/messages:batch"})


def _is_ingest(scope: Scope) -> bool:
    return scope.get("method") == "POST" and scope.get("path") in INGEST_PATHS


# ------------------------------------------------------------------ body size


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passes the limit. An HTTPException, so that
    FastAPI, reading the body, hands it to the API's 413 handler rather than answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is over {limit:,} bytes "
                              "(FILTERD_MAX_BODY_BYTES). Send fewer or smaller messages.")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with a 413 JSON error, before parsing."""

    def __init__(self, app: ASGIApp, *, limit: int, metrics: Metrics) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            self.metrics.rejected.labels("body_too_large").inc()
            await self._refuse(scope, receive, send)
            return
        received = 0
        refused = started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if not refused:
                        refused = True
                        self.metrics.rejected.labels("body_too_large").inc()
                    raise BodyTooLarge(self.limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:  # raised outside FastAPI's body reading (Admission reads first)
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        e = BodyTooLarge(self.limit)
        await error_response(413, "too_large", e.detail)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# ------------------------------------------------------------------ admission


class Admission:
    """Bound the ingest requests judged at once; shed the rest with 503 + Retry-After."""

    def __init__(self, app: ASGIApp, *, max_inflight: int, wait_seconds: float,
                 metrics: Metrics) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.wait_seconds = wait_seconds
        self.metrics = metrics
        self._slots = anyio.Semaphore(max_inflight) if max_inflight > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._slots is None or not _is_ingest(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)  # before the slot: a slow client holds none
        if body is None:
            return  # the client went away
        if not await self._acquire(self._slots):
            self.metrics.rejected.labels("overloaded").inc()
            e = OverloadedError(
                f"filterd is judging {self.max_inflight} requests already "
                "(FILTERD_MAX_INFLIGHT); retry shortly.", retry_after=1.0)
            await error_response(503, "overloaded", str(e),
                                 headers={"Retry-After": e.retry_after_header}
                                 )(scope, receive, send)
            return
        self.metrics.inflight.inc()
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.metrics.inflight.dec()
            self._slots.release()

    async def _acquire(self, slots: anyio.Semaphore) -> bool:
        try:
            slots.acquire_nowait()
            return True
        except anyio.WouldBlock:
            pass
        with anyio.move_on_after(self.wait_seconds):
            await slots.acquire()
            return True
        return False


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then the real channel
    (so the app still hears a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# ------------------------------------------------------------------ rate limits


def _window(per_second: float, burst: int) -> Window | None:
    """BURST messages in any window of BURST/PER_SECOND seconds; None when switched off."""
    if per_second <= 0:
        return None
    return Window(burst, max(1, round(burst / per_second)))


class RateLimits:
    """Per-key and per-conversation sliding windows; ``__call__`` is the /v1 dependency."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        s = settings
        self.metrics = metrics
        self.windows = SlidingWindows()
        self.key = _window(s.rate_key_per_second, s.rate_key_burst)
        self.conversation = _window(s.rate_conversation_per_second, s.rate_conversation_burst)
        self.api = _window(s.rate_api_per_second, s.rate_api_burst)
        self._rates = {
            "key": f"{s.rate_key_per_second:g}/s, burst {s.rate_key_burst} "
                   "(FILTERD_RATE_KEY_PER_SECOND, FILTERD_RATE_KEY_BURST)",
            "conversation": f"{s.rate_conversation_per_second:g}/s, burst "
                            f"{s.rate_conversation_burst} (FILTERD_RATE_CONVERSATION_PER_SECOND"
                            ", FILTERD_RATE_CONVERSATION_BURST)",
            "api": f"{s.rate_api_per_second:g}/s, burst {s.rate_api_burst} "
                   "(FILTERD_RATE_API_PER_SECOND, FILTERD_RATE_API_BURST)",
        }

    async def __call__(self, request: Request, principal: PrincipalDep) -> None:
        if not _is_ingest(request.scope):
            self.check_api(principal.id)
            return
        try:
            body: Any = await request.json()  # parsed once already by FastAPI: cached
        except ValueError:
            body = None  # not JSON: the route answers 400/415; count one message
        batch = request.scope["path"].endswith(":batch")
        items = body.get("messages") if batch and isinstance(body, dict) else [body]
        items = items if isinstance(items, list) else []
        conversations = Counter(m["conversation_id"] for m in items
                                if isinstance(m, dict) and isinstance(m.get("conversation_id"),
                                                                      str))
        self.check_ingest(principal.id, principal.tenant, max(1, len(items)), conversations)

    def check_api(self, key_id: str) -> None:
        """Count one non-ingest request against the key; raise 429 when over."""
        if self.api is None:
            return
        ids = ("api", key_id)
        if not self.windows.hit(self.api, ids):
            self._refuse("rate_limited_key", self.api, ids,
                         f"This API key sent more /v1 requests than its limit of "
                         f"{self._rates['api']}.")

    def check_ingest(self, key_id: str, tenant: str, messages: int,
                     conversations: Counter[str]) -> None:
        """Count ``messages`` against the key and each conversation's share against it;
        all or nothing (a refused request consumes nothing). Raise 429 when over."""
        wanted: list[tuple[Window, tuple[str, ...], int, str]] = []
        if self.key is not None:
            wanted.append((self.key, ("ingest", key_id), messages, "key"))
        if self.conversation is not None:
            # Length-prefixed tenant: ids joined with "/" cannot collide across tenants.
            t = f"{len(tenant)}:{tenant}"
            wanted.extend((self.conversation, ("conversation", t, cid), n, cid)
                          for cid, n in conversations.items())
        for item, ids, n, what in wanted:
            if not self.windows.test(item, ids, cost=min(n, item.amount)):
                if what == "key":
                    self._refuse("rate_limited_key", item, ids,
                                 f"This API key sent more messages than its limit of "
                                 f"{self._rates['key']}.")
                self._refuse("rate_limited_conversation", item, ids,
                             f"Conversation {what!r} sent more messages than its limit of "
                             f"{self._rates['conversation']}; other conversations are not "
                             "affected.")
        for item, ids, n, _ in wanted:
            self.windows.hit(item, ids, cost=min(n, item.amount))

    def _refuse(self, reason: str, item: Window, ids: tuple[str, ...],
                message: str) -> NoReturn:
        self.metrics.rejected.labels(reason).inc()
        # When the window has room again for one more.
        wait = RateLimitedError("", retry_after=self.windows.retry_after(item, ids))
        raise RateLimitedError(f"{message} Retry after {wait.retry_after_header} s.",
                               retry_after=wait.retry_after)


# ------------------------------------------------------------------ wiring


def install(app: FastAPI, settings: Settings, metrics: Metrics) -> list[DependsParam]:
    """Add the body-size and admission middleware to ``app``; return the dependencies to
    mount on the ``/v1`` routers (the rate limits).

    Call before the error handlers are installed, so their catch-all wraps these too.
    """
    app.add_middleware(Admission, max_inflight=settings.max_inflight,
                       wait_seconds=settings.admission_wait_ms / 1000, metrics=metrics)
    app.add_middleware(BodyLimit, limit=settings.body_limit, metrics=metrics)
    return [Depends(RateLimits(settings, metrics))]
