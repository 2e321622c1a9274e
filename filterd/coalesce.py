"""Group commit: concurrent single-message requests share one ingest pass.

``POST /v1/messages`` carries one message, and judged alone each one pays the fixed costs of
an ingest pass: a duplicate check, a snapshot read, a model call and a write transaction.
``POST /v1/messages:batch`` pays them once for many messages. :class:`IngestCoalescer` gives
single messages the same deal: each request handler checks its own message first (so an
invalid message is refused on its own and never enters a pass), puts it on a bounded queue
and waits; a coalescing thread takes what has queued up -- up to ``max_items`` messages,
waiting at most ``wait_ms`` after the first arrival (0: greedy, take what is there) -- and
runs one :meth:`Ingestor.ingest` per tenant over them. Every guarantee of ``ingest`` holds
as for a ``:batch``: idempotency (a duplicate inside a pass replays the first), messages of
one conversation judged in arrival order, one version-checked write per conversation.

- Each waiter gets its own :class:`~filterd.ingest.Outcome`, ``replayed`` included.
- An error of a pass (store down, conflict, ...) reaches every waiter of that pass as the
  error it was; passes of other tenants are separate calls and are not affected. A message
  of a failed pass may have been stored (its conversation's write went through before
  another failed): a retry replays it, exactly as for a ``:batch``.
- The queue is bounded (``queue_items``): full, a request is refused at once with
  :class:`~filterd.errors.OverloadedError` (503 + Retry-After) instead of queueing behind a
  pile it cannot get through.
- :meth:`close` refuses new messages, lets the threads finish what is queued and joins them.

Written by hand, like :mod:`filterd.classify.batching` (its model-level sibling): what is
needed is a queue, a condition and futures; a task-queue library would add a broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from filterd.classify.batching import wait_for_batch
from filterd.errors import OverloadedError, UnavailableError
from filterd.ingest import Incoming, Ingestor, Outcome
from filterd.store.base import DEFAULT_TENANT

log = logging.getLogger("filterd.coalesce")


@dataclass(slots=True)
class _Job:
    item: Incoming
    tenant: str
    arrived: float
    future: Future[Outcome] = field(default_factory=Future)


@dataclass(slots=True)
class CoalesceStats:
    """Counters since start (read without a lock: for benchmarks, tests and debugging)."""

    messages: int = 0  # messages taken into passes
    passes: int = 0  # ingest() calls
    overloaded: int = 0  # messages refused because the queue was full
    max_pass: int = 0  # the most messages one pass took


class IngestCoalescer:
    """Runs concurrent single messages through shared :meth:`Ingestor.ingest` passes.

    Thread-safe. The coalescing threads start on the first message.
    """

    def __init__(self, ingestor: Ingestor, *, max_items: int = 64, wait_ms: float = 0.0,
                 queue_items: int = 1_024, threads: int = 1,
                 name: str = "filterd-coalesce") -> None:
        if max_items < 1 or queue_items < 1 or wait_ms < 0 or threads < 1:
            raise ValueError("max_items, queue_items and threads must be >= 1, wait_ms >= 0")
        self.ingestor = ingestor
        # a pass is one ingest() call: it must stay within the batch limit ingest checks
        self.max_items = min(max_items, ingestor.settings.batch_max_messages)
        self.wait = wait_ms / 1000.0
        self.queue_items = queue_items
        self.n_threads = threads
        self.name = name
        self.stats = CoalesceStats()
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ callers

    def submit(self, item: Incoming, tenant: str = DEFAULT_TENANT) -> Future[Outcome]:
        """Check ``item`` (raising the errors a single-message ``ingest`` raises), queue it,
        and return the future of its outcome."""
        # the very checks (and errors) of a single-message ingest(): an invalid message is
        # refused on its own and never enters (and never fails) a shared pass
        self.ingestor._check([item], False)
        job = _Job(item, tenant, time.monotonic())
        with self._cond:
            if self._closed:
                raise UnavailableError("The service is shutting down; retry on another "
                                       "instance or shortly.", retry_after=1.0)
            if len(self._jobs) >= self.queue_items:
                self.stats.overloaded += 1
                raise OverloadedError(
                    f"{len(self._jobs)} messages are queued for storing "
                    f"(FILTERD_COALESCE_QUEUE={self.queue_items}); retry shortly or add "
                    "workers.", retry_after=1.0)
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._run, name=f"{self.name}-{n}", daemon=True)
                    for n in range(self.n_threads)]
                for t in self._threads:
                    t.start()
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    def ingest(self, item: Incoming, tenant: str = DEFAULT_TENANT) -> Outcome:
        """Blocking: the outcome of ``item`` from a shared pass (for thread-pool callers)."""
        return self.submit(item, tenant).result()

    async def ingest_async(self, item: Incoming, tenant: str = DEFAULT_TENANT) -> Outcome:
        """The outcome of ``item``, awaited on the event loop (no thread-pool hand-off: the
        coalescing thread resolves the future with ``call_soon_threadsafe``)."""
        return await asyncio.wrap_future(self.submit(item, tenant))

    def close(self, timeout: float | None = 10.0) -> None:
        """Refuse new messages, let the threads finish the queued ones, and join them."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        for t in threads:
            t.join(timeout)
            if t.is_alive():
                log.warning("coalescing thread still busy after %.0f s at shut-down",
                            timeout or 0)
        st = self.stats
        if st.passes:
            log.info("coalescing: %d messages in %d passes (%.1f a pass, at most %d), "
                     "%d refused (queue full)", st.messages, st.passes,
                     st.messages / st.passes, st.max_pass, st.overloaded)

    def reopen(self) -> None:
        """Take messages again after :meth:`close` (an app whose lifespan runs again, as
        tests and embedders do); the threads start again on the next message."""
        with self._cond:
            if not self._closed:
                return
            if any(t.is_alive() for t in self._threads):
                raise RuntimeError("reopen() while the coalescing threads still run")
            self._closed = False
            self._threads = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # ------------------------------------------------------------------ coalescing threads

    def _take(self) -> list[_Job] | None:
        """Wait for work; then up to ``max_items`` jobs (at least one). None: stop."""
        with self._cond:
            if not wait_for_batch(self._cond, self._jobs, self.wait,
                                  lambda: len(self._jobs) >= self.max_items,
                                  lambda: self._closed):
                return None
            n = min(len(self._jobs), self.max_items)
            taken = [self._jobs.popleft() for _ in range(n)]
            if self._jobs:
                self._cond.notify()  # more is queued: wake another thread for it
        # a caller that went away (its request was cancelled) cancelled its future: its
        # message is dropped unjudged; the others can no longer be cancelled from here on
        return [job for job in taken if job.future.set_running_or_notify_cancel()]

    def _run(self) -> None:
        try:
            while (jobs := self._take()) is not None:
                if not jobs:
                    continue
                by_tenant: dict[str, list[_Job]] = {}
                for job in jobs:
                    by_tenant.setdefault(job.tenant, []).append(job)
                for tenant, group in by_tenant.items():
                    self._pass(tenant, group)
        finally:  # a bug here must not leave callers waiting forever
            with self._cond:
                self._closed = True
                left = list(self._jobs)
                self._jobs.clear()
                self._cond.notify_all()
            for job in left:
                if not job.future.done():
                    job.future.set_exception(UnavailableError(
                        "The service stopped storing messages; retry.", retry_after=1.0))

    def _pass(self, tenant: str, jobs: list[_Job]) -> None:
        st = self.stats
        st.passes += 1
        st.messages += len(jobs)
        st.max_pass = max(st.max_pass, len(jobs))
        try:
            outcomes = self.ingestor.ingest([j.item for j in jobs], tenant=tenant)
        except BaseException as e:  # every waiter of this pass gets the pass's error
            for job in jobs:
                job.future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        for job, outcome in zip(jobs, outcomes, strict=True):
            job.future.set_result(outcome)
