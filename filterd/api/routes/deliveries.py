"""``GET /v1/deliveries/dead`` and ``POST /v1/deliveries/{id}/retry``: the dead letters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from filterd.api.deps import DelivererDep, PrincipalDep, StoreDep
from filterd.api.schemas import DeliveryListOut, DeliveryOut, ErrorOut
from filterd.store.base import utcnow

router = APIRouter(prefix="/v1", tags=["deliveries"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (404, 409, 422)}


@router.get("/deliveries/dead", response_model=DeliveryListOut, responses=_ERRORS)
def dead_letters(store: StoreDep, principal: PrincipalDep,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100) -> DeliveryListOut:
    """Webhook deliveries given up after the last attempt, most recent first."""
    return DeliveryListOut(deliveries=[DeliveryOut.of(d) for d in store.dead_letters(limit)])


@router.post("/deliveries/{delivery_id}/retry", status_code=202, response_model=DeliveryOut,
             responses=_ERRORS)
def retry_delivery(delivery_id: int, store: StoreDep, deliverer: DelivererDep,
                   principal: PrincipalDep) -> DeliveryOut:
    """Requeue a dead letter: its attempts start again from zero."""
    delivery = store.requeue(delivery_id, utcnow())
    deliverer.wake()
    return DeliveryOut.of(delivery)
