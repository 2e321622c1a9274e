"""Every HTTP answer counted by route template and status, for the 5xx/4xx alerts.

A pure ASGI middleware, outermost, so it sees the status the client got, including the
catch-all's 500, the limits' 413/429/503 and the auth errors. Labels stay bounded: the
route is the matched template (``/v1/conversations/{conversation_id}``), never the raw
path, and ``unmatched`` for anything no route took. Time is measured to the response's first
byte, so a long event stream does not skew the histogram.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filterd.metrics import Metrics


class HttpMetrics:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # the app died before it answered: the client sees a failure

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self._observe(scope, status, time.perf_counter() - t0)
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except BaseException:
            self._observe(scope, status, time.perf_counter() - t0)
            raise

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = str(scope.get("method", ""))
        self.metrics.http_requests.labels(method, template, str(status)).inc()
        self.metrics.http_seconds.labels(template).observe(seconds)
