"""``GET /v1/deliveries/dead`` and ``POST /v1/deliveries/{id}/retry``: the dead letters of
the caller's tenant (another tenant's delivery id is unknown: 404)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from filterd.api.deps import (
    DelivererDep,
    DeliveriesPrincipalDep,
    RetryPrincipalDep,
    StoreDep,
)
from filterd.api.schemas import DeliveryListOut, DeliveryOut, ErrorOut
from filterd.store.base import utcnow

router = APIRouter(prefix="/v1", tags=["deliveries"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (404, 409, 422)}
# A larger id cannot be an SQL row id; the database driver raised on it (a 500), so it is
# refused as a 422 here (issue 6, found by tests/test_schema_fuzz.py).
_MAX_ROW_ID = 2**63 - 1


@router.get("/deliveries/dead", response_model=DeliveryListOut, responses=_ERRORS)
def dead_letters(store: StoreDep, principal: DeliveriesPrincipalDep,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100) -> DeliveryListOut:
    """Webhook deliveries given up after the last attempt, most recent first."""
    return DeliveryListOut(deliveries=[DeliveryOut.of(d)
                                       for d in store.dead_letters(principal.tenant, limit)])


@router.post("/deliveries/{delivery_id}/retry", status_code=202, response_model=DeliveryOut,
             responses=_ERRORS)
def retry_delivery(delivery_id: Annotated[int, Path(ge=1, le=_MAX_ROW_ID)], store: StoreDep,
                   deliverer: DelivererDep, principal: RetryPrincipalDep) -> DeliveryOut:
    """Requeue a dead letter: its attempts start again from zero."""
    delivery = store.requeue(principal.tenant, delivery_id, utcnow())
    deliverer.wake()
    return DeliveryOut.of(delivery)
