"""Delivering the outbox: webhook calls to the agent console and the alert channel.

The ingest transaction writes one outbox row per webhook call, so an accepted message is
never lost, whatever the console does. A background task (:meth:`Deliverer.run`) claims due
rows, POSTs them with httpx and records the result:

- a 2xx answer delivers the row; anything else (or a network error) is a failed attempt,
  retried after an exponential backoff with jitter (:func:`backoff`);
- after ``FILTERD_DELIVERY_MAX_ATTEMPTS`` attempts the row is a dead letter, listed by
  ``GET /v1/deliveries/dead`` and requeued by ``POST /v1/deliveries/{id}/retry``;
- every call carries an ``Idempotency-Key`` header, stable across retries: delivery is at
  least once (a worker that dies mid-call leaves a claim that expires and is retried), so a
  receiver drops keys it has already accepted and sees every message exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import anyio.to_thread
import httpx

from filterd import __version__
from filterd.config import Settings
from filterd.metrics import Metrics
from filterd.store.base import Delivery, Store, utcnow

log = logging.getLogger("filterd.outbox")


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...).

    Doubles from ``base`` up to ``cap``, then draws uniformly from the upper half of that
    delay ("equal jitter"): retries of many messages spread out, yet never come early.
    """
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return delay / 2 + rng.random() * delay / 2


def public_url(url: str) -> str:
    """A webhook URL without credentials or query string (tokens often live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Deliverer:
    """Claims due outbox rows and delivers them; one per app."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self._client = httpx.AsyncClient(
            transport=transport, timeout=settings.delivery_timeout_seconds,
            headers={"User-Agent": f"filterd/{__version__}"}, follow_redirects=False)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run :meth:`run` in the background of the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self.run(), name="filterd-deliverer")

    async def aclose(self) -> None:
        """Stop the background task (if any) and close the HTTP client."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()

    def wake(self) -> None:
        """New work is committed: look now rather than at the next poll. Any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------ work

    async def run(self) -> None:
        """Deliver until stopped; never raises (a failing store is retried at each poll)."""
        while not self._stop.is_set():
            self._wake.clear()
            try:
                claimed = await self.run_once()
            except Exception as e:  # the store is down: try again at the next poll
                log.error("delivery round failed (%s)", type(e).__name__)
                claimed = 0
            if claimed < self.settings.delivery_batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.delivery_poll_seconds)

    async def run_once(self) -> int:
        """Claim the due deliveries and attempt each once, concurrently; returns how many."""
        s = self.settings
        claimed = await anyio.to_thread.run_sync(
            self.store.claim_deliveries, self.clock(), s.delivery_batch,
            s.delivery_timeout_seconds + s.delivery_lease_margin_seconds)
        if claimed:
            done = await asyncio.gather(*(self._attempt(d) for d in claimed))
            # one write for the round's successes: on SQLite a transaction per success kept
            # delivery well behind ingest under load
            delivered = [d for d in done if d is not None]
            await anyio.to_thread.run_sync(self.store.deliveries_succeeded, delivered,
                                           self.clock())
        return len(claimed)

    async def _attempt(self, d: Delivery) -> int | None:
        """One call; failures are recorded here. Returns the id when delivered."""
        attempt = d.attempts + 1
        self.metrics.delivery_attempts.labels(d.kind).inc()
        error: str | None = None
        try:
            r = await self._client.post(d.url, json=d.payload, headers={
                "Idempotency-Key": d.idempotency_key,
                "X-Filterd-Event": str(d.payload.get("event", d.kind)),
                "X-Filterd-Delivery": str(d.id),
                "X-Filterd-Attempt": str(attempt),
            })
            if not 200 <= r.status_code < 300:
                error = f"HTTP {r.status_code}"
        except httpx.HTTPError as e:
            error = type(e).__name__
        now = self.clock()
        if error is None:
            return d.id
        self.metrics.delivery_failures.labels(d.kind).inc()
        s = self.settings
        retry_at: datetime | None = None
        if attempt < s.delivery_max_attempts:
            delay = backoff(attempt, s.delivery_backoff_seconds, s.delivery_backoff_max_seconds,
                            self.rng)
            retry_at = now + timedelta(seconds=delay)
        else:
            self.metrics.dead_letters.labels(d.kind).inc()
        log.warning("delivery %d (%s to %s) attempt %d failed: %s%s", d.id, d.kind,
                    public_url(d.url), attempt, error, "; dead letter" if retry_at is None else "")
        await anyio.to_thread.run_sync(self.store.delivery_failed, d.id, now, error, retry_at)
        return None
