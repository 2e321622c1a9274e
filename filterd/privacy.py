"""Privacy (issue 6): the retention purge and the right to erasure.

Retention: transcripts (messages with their originals, corrections and delivered or dead
webhook deliveries, and conversations left with no message) older than
``FILTERD_RETENTION_DAYS`` are deleted; the audit log keeps its own, longer period,
``FILTERD_AUDIT_RETENTION_DAYS``, because it is the evidence of who read what. ``filterd
purge`` runs it once; ``filterd serve`` runs it in the background of every worker every
``FILTERD_PURGE_INTERVAL_SECONDS``, one batch (one transaction) per call into a worker thread,
so the event loop never waits and shut-down waits for one batch at most. Several workers or
instances purging at once is safe: batches are idempotent and, on PostgreSQL, disjoint.

Erasure: :func:`erase_customer` deletes everything about one customer of one tenant (see
``Store.erase_customer``) and records it in the audit log under the customer's pseudonym
(:func:`filterd.store.base.pseudonym`), never the id itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread

from filterd.config import Settings
from filterd.errors import InputError
from filterd.metrics import Metrics
from filterd.store.base import AuditEntry, Erasure, Removed, Store, pseudonym, utcnow

log = logging.getLogger("filterd.privacy")

MAX_CUSTOMER_ID = 200  # models.ID_LEN: a longer id cannot be stored, so cannot be erased
_FIRST_RUN_MAX_DELAY = 60.0  # spread the first purge of many workers starting together


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Rows older than these go (None: that kind is kept forever)."""

    transcripts: datetime | None
    audit: datetime | None

    @classmethod
    def of(cls, settings: Settings, now: datetime) -> Cutoffs:
        def before(days: int | None) -> datetime | None:
            return now - timedelta(days=days) if days else None

        return cls(before(settings.retention_days), before(settings.audit_retention_days))

    @property
    def any(self) -> bool:
        return self.transcripts is not None or self.audit is not None


def purge_batches(store: Store, cutoffs: Cutoffs, batch: int) -> Iterator[Removed]:
    """The purge, one batch (one transaction) per step: transcripts first, then the audit
    log; stops when a batch comes back short (a concurrent purger holds the rest)."""
    if cutoffs.transcripts is not None:
        while True:
            removed = store.purge(cutoffs.transcripts, batch)
            yield removed
            if removed.messages < batch:
                break
    if cutoffs.audit is not None:
        while True:
            n = store.purge_audit(cutoffs.audit, batch)
            yield Removed(audit_log=n)
            if n < batch:
                break


def purge(store: Store, settings: Settings, now: datetime | None = None, *,
          metrics: Metrics | None = None) -> Removed:
    """Everything the retention settings say is due, in batches (``filterd purge``)."""
    total = Removed()
    for removed in purge_batches(store, Cutoffs.of(settings, now or utcnow()),
                                 settings.purge_batch):
        total += removed
        if metrics is not None:
            metrics.observe_purged(removed)
    return total


def preview(store: Store, settings: Settings, now: datetime | None = None) -> Removed:
    """What :func:`purge` would delete now (``filterd purge --dry-run``)."""
    cut = Cutoffs.of(settings, now or utcnow())
    return store.purge_preview(cut.transcripts, cut.audit)


def describe(settings: Settings) -> str:
    """One line on what retention does, for the start-up log and ``filterd purge``."""
    days, audit = settings.retention_days, settings.audit_retention_days
    kept = f"transcripts {days} days" if days else "transcripts forever"
    kept += f", the audit log {audit} days" if audit else ", the audit log forever"
    return f"retention: {kept} (FILTERD_RETENTION_DAYS, FILTERD_AUDIT_RETENTION_DAYS)"


class Purger:
    """The retention purge in the background of ``filterd serve`` (one per worker)."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics, *,
                 clock: Callable[[], datetime] = utcnow,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @property
    def enabled(self) -> bool:
        s = self.settings
        return s.purge_interval_seconds > 0 and bool(s.retention_days or s.audit_retention_days)

    def start(self) -> None:
        """Run :meth:`run` in the background of the running event loop."""
        self._task = asyncio.create_task(self.run(), name="filterd-purger")

    async def aclose(self) -> None:
        """Stop, after the batch in progress (if any) commits."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """Purge every interval until stopped; never raises (a failing store is retried at
        the next interval). The first run comes after a random part of a minute, so workers
        started together do not all purge at the same moment."""
        interval = self.settings.purge_interval_seconds
        delay = self.rng.uniform(0, min(interval, _FIRST_RUN_MAX_DELAY))
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self._stop.is_set():
                return
            try:
                removed = await self.run_once()
                if removed.total:
                    log.info("retention purge removed %s", removed.as_dict())
            except Exception as e:  # the store is down, or a batch raced a writer: next time
                log.error("retention purge failed (%s); retrying in %.0f s",
                          type(e).__name__, interval)
            delay = interval

    async def run_once(self) -> Removed:
        """One purge: every batch in a worker thread, stopping early on shut-down."""
        batches = purge_batches(self.store, Cutoffs.of(self.settings, self.clock()),
                                self.settings.purge_batch)
        total = Removed()
        while not self._stop.is_set():
            removed = await anyio.to_thread.run_sync(next, batches, None)
            if removed is None:
                break
            self.metrics.observe_purged(removed)
            total += removed
        return total


def erase_customer(store: Store, tenant: str, customer_id: str, *, who: str, role: str,
                   now: datetime | None = None, metrics: Metrics | None = None) -> Erasure:
    """Delete everything about ``customer_id`` in ``tenant`` and audit it (right to erasure).

    The audit entry (action ``erase``, outcome ``done``) names who asked and the customer's
    pseudonym, never the id, with the rows removed per table. Idempotent: a second erasure
    removes nothing and is recorded too.
    """
    if not customer_id or len(customer_id) > MAX_CUSTOMER_ID:
        raise InputError(f"A customer id has 1 to {MAX_CUSTOMER_ID} characters (the sender id "
                         "the chat platform sent with the customer's messages).")
    customer = pseudonym(tenant, customer_id)
    entry = AuditEntry(who=who, role=role, action="erase", conversation_id="-",
                       message_id="-", outcome="done", at=now or utcnow(),
                       detail={"customer": customer})
    erasure = store.erase_customer(tenant, customer_id, entry)
    if metrics is not None:
        metrics.observe_erasure(erasure.removed)
    log.info("erased customer %s of tenant %r for %s: %s", customer, tenant, who,
             erasure.removed.as_dict())
    return erasure
