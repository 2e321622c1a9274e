"""An in-process broadcaster: stored messages, fanned out to ``GET /v1/events`` streams.

The ingest path publishes each newly stored message after its transaction commits, from
whichever thread ran it; every subscriber (one per open event stream) gets the event on its
own event loop. It lives in one process: with ``filterd serve --workers N`` each worker
streams the messages that worker stored. A subscriber that falls behind by ``max_queue``
events loses the oldest ones (the console reloads the list when it reconnects).

Each subscriber belongs to one tenant and only ever receives that tenant's events: the
publisher names the tenant of each event, and the broadcaster hands it to that tenant's
subscribers alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger("filterd.events")

Event = dict[str, Any]


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop, max_queue: int, tenant: str) -> None:
        self.loop = loop
        self.tenant = tenant
        self.queue: asyncio.Queue[Event] = asyncio.Queue(max_queue)

    def put(self, event: Event) -> None:  # on the subscriber's loop
        if self.queue.full():
            self.queue.get_nowait()  # drop the oldest: a slow reader must not block ingest
        self.queue.put_nowait(event)


class Broadcaster:
    """``publish(tenant, event)`` (any thread) -> every ``subscribe(tenant)`` queue (async)."""

    def __init__(self, max_queue: int = 1000) -> None:
        self.max_queue = max_queue
        self._subscribers: set[_Subscriber] = set()
        self._lock = threading.Lock()

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, tenant: str, event: Event) -> None:
        """Hand ``event`` to every subscriber of ``tenant``; never raises, never blocks."""
        with self._lock:
            subscribers = [s for s in self._subscribers if s.tenant == tenant]
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(sub.put, event)
            except RuntimeError:  # its loop is closed: the stream is gone
                self._discard(sub)

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant: str) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue of ``tenant``'s events published while the context is open."""
        sub = _Subscriber(asyncio.get_running_loop(), self.max_queue, tenant)
        with self._lock:
            self._subscribers.add(sub)
        try:
            yield sub.queue
        finally:
            self._discard(sub)

    def _discard(self, sub: _Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)
