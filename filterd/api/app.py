"""``create_app(settings)``: the FastAPI application of ``filterd serve``.

Follow one message: ``routes/messages.py`` -> :mod:`filterd.ingest` (judge with
:mod:`filterd.pipeline`, write with :mod:`filterd.store`) -> :mod:`filterd.outbox` (webhooks).
Start-up runs the migrations (``FILTERD_MIGRATE_ON_START``) and, when a webhook is
configured, the background deliverer; shut-down stops it and releases the store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import httpx
from fastapi import FastAPI

from filterd import __version__
from filterd.api import errors
from filterd.api.deps import Services
from filterd.api.routes import ROUTERS
from filterd.api.routes.events import message_event
from filterd.config import Settings, load_settings
from filterd.events import Broadcaster
from filterd.ingest import Ingestor
from filterd.metrics import Metrics
from filterd.originals import sealer_from_settings
from filterd.outbox import Deliverer
from filterd.pipeline import Filter
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
) -> FastAPI:
    """Build the service. ``filter``/``store`` default to the shipped model and
    ``FILTERD_DATABASE_URL``; a store passed in is not closed at shut-down. ``transport``
    replaces the webhook client's network (tests pass an ``httpx.MockTransport``)."""
    settings = settings or load_settings()
    sealer = sealer_from_settings(settings)  # a bad FILTERD_ORIGINALS_KEY fails here
    own_store = store is None
    if store is None:
        sql = SqlStore(settings.database_url)
        log.info("store: %s", sql.url)
        store = sql
    if not settings.api_keys:
        log.warning("no FILTERD_API_KEYS: the API is open to any caller (originals and the "
                    "audit log stay closed)")
    filter = filter or Filter(settings)
    metrics = Metrics()
    deliverer = Deliverer(store, settings, metrics, transport=transport)
    events = Broadcaster()
    ingestor = Ingestor(filter, store, settings, metrics, on_delivery=deliverer.wake,
                        sealer=sealer if settings.store_originals else None,
                        on_stored=lambda m: events.publish(message_event(m)))
    services = Services(settings, filter, store, ingestor, metrics, deliverer, sealer, events)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await anyio.to_thread.run_sync(services.store.upgrade)
        if settings.delivery_worker and settings.webhooks_configured:
            deliverer.start()
        try:
            yield
        finally:
            await deliverer.aclose()
            if own_store:
                services.store.close()

    app = FastAPI(title="filterd", version=__version__, lifespan=lifespan,
                  description="Abuse and frustration filter for customer-service chat.")
    app.state.services = services
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    install_web(app)  # /console, /dashboard, /static and the security headers
    return app


def create_app_from_env() -> FastAPI:
    """The app from ``FILTERD_*`` environment variables: the factory each uvicorn worker
    imports (``filterd.api.app:create_app_from_env``, ``factory=True``)."""
    return create_app(load_settings())
