"""Newly stored messages, fanned out to the ``GET /v1/events`` streams of every worker.

Two parts:

- :class:`Broadcaster`: in-process fan-out. Each open stream subscribes for its tenant and
  gets a queue; ``publish(tenant, event, id)`` hands the event to that tenant's subscribers
  only (tenant isolation lives here). A subscriber that falls behind by ``max_queue`` events
  loses the oldest ones rather than slowing anyone down (the console reloads its list when
  it reconnects).
- :class:`StoreTail`: one background task per app (per worker process) that follows the
  ``messages`` table and publishes what it finds. The store is the only source: a message
  reaches every stream of its tenant whichever worker or instance stored it (``--workers N``,
  several instances on one PostgreSQL). It reads only while a stream is open, every
  ``FILTERD_EVENTS_POLL_SECONDS`` and at once when this process commits a message
  (:meth:`StoreTail.wake`, so local messages are not delayed by the poll).

Why not a message broker or PostgreSQL ``LISTEN/NOTIFY``: the store is already shared by
every worker on both SQLite and PostgreSQL, and a poll of the primary-key index while a
console is open is cheap; a broker would be one more service to run, and NOTIFY does not
exist on SQLite (and still needs a catch-up read after a reconnect).

The guarantee, and why the tail tracks gaps: primary keys are handed out at insert but
become visible at commit, and on PostgreSQL a transaction holding pk 10 can commit after one
holding pk 11, so "everything above the highest pk seen" would lose 10 for good. The tail
therefore remembers every pk it skipped (a *gap*: not committed yet, rolled back, or
deleted; the newest ``StoreTail.MAX_GAPS`` of them) and looks for each again at every poll
for ``StoreTail.GAP_SECONDS`` (10 s), by its own clock. (Re-reading a time window instead
would re-read every recent row at each poll and trust the hosts' clocks.) Each message is
published at most once per tail (a pk is either above the cursor or a gap, and leaves both
when published), and every message committed while a stream is open (after
:meth:`Broadcaster.subscribe` counts it) reaches it, unless its commit lagged its insert by
more than ``GAP_SECONDS`` or the subscriber's queue overflowed; such a message is always in
the transcript (``GET /v1/conversations/{id}``), and a reconnect with ``Last-Event-ID``
replays what a stream missed (see :mod:`filterd.api.routes.events`).

SQLite hands out pks in commit order (one writer at a time), but it reuses the pks of the
newest rows once they are deleted (retention purge, erasure); the tail notices the table's
top going below its cursor and steps back. Only a deletion and a re-insert within one poll
can slip past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple, Protocol

import anyio.to_thread

from filterd.store.base import Store, StoredMessage, TailBatch

log = logging.getLogger("filterd.events")

Event = dict[str, Any]


class Published(NamedTuple):
    """One event as a stream receives it: its SSE id (the message pk) and its data."""

    id: int | None
    data: Event


class Feed(Protocol):
    """What feeds a :class:`Broadcaster` (the :class:`StoreTail`)."""

    async def ready(self) -> None:
        """Fix where the feed starts before a new subscriber counts as subscribed."""


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop, max_queue: int, tenant: str) -> None:
        self.loop = loop
        self.tenant = tenant
        self.live = False  # the feed is ready for it: everything committed from now on comes
        self.queue: asyncio.Queue[Published] = asyncio.Queue(max_queue)

    def put(self, event: Published) -> None:  # on the subscriber's loop
        if self.queue.full():
            self.queue.get_nowait()  # drop the oldest: a slow reader must not block the feed
        self.queue.put_nowait(event)


class Broadcaster:
    """``publish(tenant, event)`` (any thread) -> every ``subscribe(tenant)`` queue (async)."""

    def __init__(self, max_queue: int = 1000) -> None:
        self.max_queue = max_queue
        self.feed: Feed | None = None  # set by the StoreTail that feeds it
        self._subscribers: set[_Subscriber] = set()
        self._lock = threading.Lock()

    @property
    def subscribers(self) -> int:
        """Subscribers that are live: every message committed from now on reaches them."""
        with self._lock:
            return sum(1 for s in self._subscribers if s.live)

    @property
    def waiting(self) -> bool:
        """Whether anyone is subscribed or subscribing (cheap; read from any thread)."""
        return bool(self._subscribers)

    def tenants(self) -> frozenset[str]:
        """The tenants someone is subscribed to (the only ones the feed needs to read)."""
        with self._lock:
            return frozenset(s.tenant for s in self._subscribers)

    def publish(self, tenant: str, event: Event, event_id: int | None = None) -> None:
        """Hand ``event`` to every subscriber of ``tenant``; never raises, never blocks."""
        with self._lock:
            subscribers = [s for s in self._subscribers if s.tenant == tenant]
        item = Published(event_id, event)
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(sub.put, item)
            except RuntimeError:  # its loop is closed: the stream is gone
                self._discard(sub)

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant: str) -> AsyncIterator[asyncio.Queue[Published]]:
        """A queue of ``tenant``'s events published while the context is open. It opens
        once the feed knows where it starts, so nothing committed after that is missed."""
        sub = _Subscriber(asyncio.get_running_loop(), self.max_queue, tenant)
        with self._lock:
            self._subscribers.add(sub)
        try:
            if self.feed is not None:
                await self.feed.ready()
            sub.live = True
            yield sub.queue
        finally:
            self._discard(sub)

    def _discard(self, sub: _Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)


class StoreTail:
    """Follows the ``messages`` table and publishes each new message to ``events``.

    One per app; :meth:`start` in the app's lifespan, :meth:`aclose` at shut-down. Store calls
    run in a worker thread; a failing store is logged (by error type) and read again at the
    next poll. See the module docstring for the guarantee.
    """

    MIN_INTERVAL = 0.02  # seconds between two reads however often it is woken
    BATCH = 500  # pks read per round; a poll reads rounds until it is caught up...
    MAX_ROUNDS = 20  # ...or for this many rounds, then lets the loop breathe
    GAP_SECONDS = 10.0  # how long a skipped pk is looked for again
    MAX_GAPS = 1_000  # skipped pks remembered at most (the newest are kept)

    def __init__(self, store: Store, events: Broadcaster,
                 render: Callable[[StoredMessage], Event], poll_seconds: float = 0.5, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.events = events
        self.render = render
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.cursor: int | None = None  # every pk up to here is published or a gap
        self.gaps: dict[int, float] = {}  # skipped pk -> when it was first skipped
        # made on the loop that starts the tail (an app may be started again on another)
        self._lock = asyncio.Lock()  # one read at a time; a new subscriber waits for it
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        events.feed = self

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run the tail in the background of the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._lock, self._wake = asyncio.Lock(), asyncio.Event()
        self.cursor, self._failing = None, False
        self.gaps.clear()
        self._task = asyncio.create_task(self._run(), name="filterd-events-tail")

    async def aclose(self) -> None:
        """Stop the background task (a store read in progress finishes first)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._loop = None

    def wake(self) -> None:
        """A message was committed here: read now rather than at the next poll. Any thread;
        free when no stream is open."""
        loop = self._loop
        if loop is not None and self.events.waiting and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake.set)

    async def ready(self) -> None:
        """Called by :meth:`Broadcaster.subscribe`: start the cursor if no stream was open
        (waiting for a read in progress), so the new stream misses nothing from now on."""
        loop = self._loop
        if loop is None:  # not started (an app used without its lifespan): no feed
            return
        if asyncio.get_running_loop() is loop:
            await self._ready()
        else:  # a subscriber on another loop: the tail's state lives on its own loop
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._ready(), loop))

    async def _ready(self) -> None:
        async with self._lock:
            if self.cursor is None:
                try:
                    await self._start_cursor()
                except Exception as e:  # the loop starts it at its next poll
                    self._failed(e)
        self._wake.set()

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while True:
            if not self.events.waiting:
                async with self._lock:
                    if not self.events.waiting:  # nobody listens: the next one starts afresh
                        self.cursor = None
                        self.gaps.clear()
                self._wake.clear()
                await self._wake.wait()
                continue
            self._wake.clear()
            try:
                await self.poll_once()
            except Exception as e:
                self._failed(e)
            await asyncio.sleep(self.MIN_INTERVAL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(),
                                       max(0.0, self.poll_seconds - self.MIN_INTERVAL))

    async def poll_once(self) -> int:
        """Read what was committed since the last read and publish it; how many were
        published. Raises what the store raised (the loop logs it and tries again)."""
        published = 0
        async with self._lock:
            if self.cursor is None:
                await self._start_cursor()
                return 0
            for _ in range(self.MAX_ROUNDS):
                cursor, recheck = self.cursor, sorted(self.gaps)
                batch = await anyio.to_thread.run_sync(
                    self.store.tail_messages, cursor, self.BATCH, recheck, self.events.tenants())
                more = self._advance(cursor, batch)
                for m in batch.messages:
                    self.events.publish(m.tenant, self.render(m), m.pk)
                published += len(batch.messages)
                if not more:
                    break
        if self._failing:
            self._failing = False
            log.info("event streams: the store answers again")
        return published

    # ------------------------------------------------------------------ bookkeeping

    async def _start_cursor(self) -> None:
        """Start at the table's top. Pks just below it that are missing may belong to
        transactions still committing (PostgreSQL): they start as gaps."""
        top, batch = await anyio.to_thread.run_sync(self._read_start)
        self.cursor, self.gaps = top, {}
        self._skipped(max(0, top - self.MAX_GAPS), batch.pks, top)

    def _read_start(self) -> tuple[int, TailBatch]:
        top = self.store.last_message_pk()
        return top, self.store.tail_messages(max(0, top - self.MAX_GAPS), self.MAX_GAPS,
                                             (), frozenset())

    def _advance(self, cursor: int, batch: TailBatch) -> bool:
        """Move the cursor past what ``batch`` found; whether more may be waiting."""
        found = set(batch.pks)
        for pk in found.intersection(self.gaps):
            del self.gaps[pk]
        new = [pk for pk in batch.pks if pk > cursor]
        if new:
            self._skipped(cursor, new, new[-1])
            self.cursor = new[-1]
        elif batch.top < cursor:  # the newest rows were deleted; SQLite reuses their pks
            log.info("event streams: messages above pk %d were deleted; following from "
                     "there", batch.top)
            self.cursor = batch.top
        now = self.clock()
        for pk in [pk for pk, since in self.gaps.items() if now - since > self.GAP_SECONDS]:
            del self.gaps[pk]
        return len(new) >= self.BATCH

    def _skipped(self, lo: int, present: tuple[int, ...] | list[int], hi: int) -> None:
        """Record the pks in ``(lo, hi]`` that ``present`` lacks as gaps (the newest
        ``MAX_GAPS`` of all gaps are kept)."""
        now = self.clock()
        have = set(present)
        for pk in range(max(lo, hi - self.MAX_GAPS) + 1, hi + 1):
            if pk not in have:
                self.gaps.setdefault(pk, now)
        if len(self.gaps) > self.MAX_GAPS:
            for pk in sorted(self.gaps)[:len(self.gaps) - self.MAX_GAPS]:
                del self.gaps[pk]

    def _failed(self, e: Exception) -> None:
        level = logging.DEBUG if self._failing else logging.WARNING
        log.log(level, "event streams: reading new messages failed (%s); retrying in %g s",
                type(e).__name__, self.poll_seconds)
        self._failing = True
