"""``/healthz`` (the process answers), ``/readyz`` (model and store work), ``/metrics``.

The probes are always open. ``/metrics`` is open unless ``FILTERD_METRICS_REQUIRE_KEY``:
then it needs a ``metrics`` key (a scrape-only role) or an ``admin`` key. Supervisors do not
get it: the figures are service-wide, over every tenant.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from filterd.api.deps import ServicesDep, authenticate, check
from filterd.api.schemas import HealthOut

router = APIRouter(tags=["health"])
log = logging.getLogger("filterd.api")


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """Alive: the process serves requests."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def readyz(services: ServicesDep) -> JSONResponse:
    """Ready: the model answers and the store takes a write; else 503 naming what failed."""
    checks: dict[str, str] = {}
    try:
        # through the guard: a hung model answers "not ready" within the time budget
        services.filter.guard.predict(["ready?"])
        checks["model"] = "ok"
    except Exception as e:  # any failure means not ready; say which kind
        checks["model"] = f"failed: {type(e).__name__}"
    try:
        services.store.ping()
        checks["store"] = "ok"
    except Exception as e:
        checks["store"] = f"failed: {type(e).__name__}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        log.warning("not ready: %s", checks)
    body = HealthOut(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus metrics (text format); a metrics or admin key if so configured."""
    if services.settings.metrics_require_key:
        check(authenticate(request, services), "metrics", "/metrics")
    m = services.metrics
    try:
        m.outbox_depth.set(services.store.outbox_depth())
    except Exception as e:  # a scrape still answers when the store is down
        log.warning("outbox depth unavailable (%s)", type(e).__name__)
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)
