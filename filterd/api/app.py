"""``create_app(settings)``: the FastAPI application of ``filterd serve``.

Follow one message: ``routes/messages.py`` -> :mod:`filterd.ingest` (judge with
:mod:`filterd.pipeline`, write with :mod:`filterd.store`) -> :mod:`filterd.outbox` (webhooks).
Start-up runs the migrations (``FILTERD_MIGRATE_ON_START``) and, when a webhook is
configured, the background deliverer; shut-down stops it and releases the store.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import httpx
from fastapi import FastAPI

from filterd import __version__
from filterd.api import errors
from filterd.api import limits as api_limits
from filterd.api.deps import Services
from filterd.api.http_metrics import HttpMetrics
from filterd.api.routes import ROUTERS
from filterd.api.routes.events import message_event
from filterd.classify.batching import BatchingClassifier
from filterd.coalesce import IngestCoalescer  # group commit (issue 5)
from filterd.config import Settings, load_settings
from filterd.events import Broadcaster, StoreTail
from filterd.ingest import Ingestor
from filterd.metrics import Metrics
from filterd.originals import sealer_from_settings
from filterd.outbox import Deliverer
from filterd.pipeline import Filter
from filterd.privacy import Purger, describe  # privacy (issue 6)
from filterd.store.base import Store
from filterd.store.sql import SqlStore
from filterd.web import install as install_web

log = logging.getLogger("filterd.api")


def create_app(
    settings: Settings | None = None,
    filter: Filter | None = None,
    store: Store | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    serving: bool = False,
) -> FastAPI:
    """Build the service. ``filter``/``store`` default to the shipped model and
    ``FILTERD_DATABASE_URL``; a store passed in is not closed at shut-down. ``transport``
    replaces the webhook client's network (tests pass an ``httpx.MockTransport``).
    ``serving``: this process is ``filterd serve`` and nothing else (see ``_freeze_heap``)."""
    settings = settings or load_settings()
    sealer = sealer_from_settings(settings)  # a bad FILTERD_ORIGINALS_KEY fails here
    own_store = store is None
    if store is None:
        sql = SqlStore(settings.database_url,
                       busy_timeout_ms=settings.store_busy_timeout_ms)
        log.info("store: %s", sql.url)
        store = sql
    # ---- micro-batching (issue 5): only around the model this app loads itself; a Filter
    # passed in (tests, embedders) keeps its classifier as given.
    batcher: BatchingClassifier | None = None
    if filter is None:
        filter = Filter(settings)
        if settings.micro_batch:
            batcher = BatchingClassifier(filter.classifier, max_texts=settings.batch_max_texts,
                                         wait_ms=settings.batch_wait_ms,
                                         queue_texts=settings.batch_queue_texts)
            filter.classifier = batcher
    # ---- end of micro-batching
    metrics = Metrics()
    deliverer = Deliverer(store, settings, metrics, transport=transport)
    events = Broadcaster()
    # ---- live event streams: every worker's /v1/events follows the shared store (its own
    # commits only wake the tail early), so a stream sees what any worker or instance stored
    tail = StoreTail(store, events, message_event, settings.events_poll_seconds)
    # ---- end of live event streams
    ingestor = Ingestor(filter, store, settings, metrics, on_delivery=deliverer.wake,
                        sealer=sealer if settings.store_originals else None,
                        on_stored=lambda m: tail.wake())
    services = Services(settings, filter, store, ingestor, metrics, deliverer, sealer, events)
    purger = Purger(store, settings, metrics)  # privacy (issue 6): the retention purge
    # ---- group commit (issue 5): concurrent single messages share ingest passes
    coalescer = (IngestCoalescer(ingestor, max_items=settings.coalesce_max,
                                 wait_ms=settings.coalesce_wait_ms,
                                 queue_items=settings.coalesce_queue,
                                 threads=settings.coalesce_threads)
                 if settings.coalesce else None)
    # ---- end of group commit
    guard = filter.guard  # limits and model failure (issue 6): its failures feed the metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await anyio.to_thread.run_sync(services.store.upgrade)
        await anyio.to_thread.run_sync(_warn_if_open, services)  # access (issue 6)
        if settings.delivery_worker and settings.webhooks_configured:
            deliverer.start()
        # ---- privacy (issue 6): purge expired transcripts in the background (every worker)
        _log_retention(settings, purger)
        if purger.enabled:
            purger.start()
        # ---- end of privacy
        guard.add_listener(metrics)  # limits and model failure (issue 6)
        if coalescer is not None:  # group commit (issue 5): a lifespan may run again
            coalescer.reopen()
        tail.start()  # live event streams: reads only while a stream is open
        if serving and settings.gc_freeze:  # speed (issue 5)
            _freeze_heap()
        try:
            yield
        finally:
            if coalescer is not None:  # group commit (issue 5): finish queued messages
                await anyio.to_thread.run_sync(coalescer.close)
            await tail.aclose()  # live event streams
            guard.remove_listener(metrics)
            await purger.aclose()  # privacy (issue 6): after its current batch
            await deliverer.aclose()
            if batcher is not None:  # micro-batching (issue 5): join the model thread
                await anyio.to_thread.run_sync(batcher.close)
            if own_store:
                services.store.close()

    app = FastAPI(title="filterd", version=__version__, lifespan=lifespan,
                  description="Abuse and frustration filter for customer-service chat.")
    app.state.services = services
    app.state.purger = purger  # privacy (issue 6)
    app.state.coalescer = coalescer  # group commit (issue 5); None: off
    # limits and model failure (issue 6): body size and admission middleware (inside the
    # error handlers' catch-all), rate limits on every /v1 route
    v1_limits = api_limits.install(app, settings, metrics)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router, dependencies=v1_limits if router.prefix == "/v1" else None)
    install_web(app)  # /console, /dashboard, /static and the security headers
    app.add_middleware(HttpMetrics, metrics=metrics)  # outermost: the status clients got
    return app


def _warn_if_open(services: Services) -> None:
    """Access (issue 6): say at start-up when no API key exists (the service is open)."""
    try:
        services.keyring.warn_if_open()
    except Exception as e:  # the store is not ready (migrations off): /readyz says so
        log.warning("could not check the API keys at start-up (%s)", type(e).__name__)


def _log_retention(settings: Settings, purger: Purger) -> None:
    """Privacy (issue 6): say at start-up what retention does, and warn when nothing is ever
    deleted (a contact centre must be able to say how long it keeps transcripts)."""
    if not settings.retention_days:
        log.warning("FILTERD_RETENTION_DAYS is 0: transcripts are kept forever. Set a "
                    "retention period (README \"Privacy and data retention\").")
    if purger.enabled:
        log.info("%s; purged every %.0f s", describe(settings),
                 settings.purge_interval_seconds)
    elif settings.retention_days or settings.audit_retention_days:
        log.warning("%s, but FILTERD_PURGE_INTERVAL_SECONDS is 0: nothing is purged here; "
                    "run `filterd purge` on a schedule.", describe(settings))


def create_app_from_env() -> FastAPI:
    """The app from ``FILTERD_*`` environment variables: the factory each uvicorn worker
    imports (``filterd.api.app:create_app_from_env``, ``factory=True``)."""
    return create_app(load_settings(), serving=True)


def _freeze_heap() -> None:
    """Move everything alive after start-up (the model, tokenizer, schemas, routes, SQLAlchemy
    metadata: ~160,000 objects) out of the cyclic garbage collector's reach.

    Without it every full collection walks that whole heap again: under load a worker paused
    75-105 ms five times in 20 s, which alone set the p99 latency (benchmarks/bench_gc.py).
    Objects made later, per request, are collected as before. ``gc.freeze`` is the standard
    library's tool for exactly this; it is done once per process, in ``filterd serve`` only
    (a test process building many apps would keep their garbage)."""
    gc.collect()
    gc.freeze()
    log.info("froze %d start-up objects out of the garbage collector", gc.get_freeze_count())
