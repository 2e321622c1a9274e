"""``DELETE /v1/customers/{customer_id}``: the right to erasure, for an admin of the tenant.

Deletes every conversation of the caller's tenant in which the customer (sender id, role
customer) wrote, with all their messages (agents' and bots' too), originals, corrections and
webhook deliveries (pending ones are cancelled), pseudonymises those conversations' ids in the
audit log, and records the erasure there (action ``erase``, the customer's pseudonym, the
counts). Idempotent: erasing again answers 200 with zeros. The same as ``filterd erase
--customer ID --tenant T``; see :mod:`filterd.privacy`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from filterd.api.deps import Principal, ServicesDep, require
from filterd.api.schemas import ErrorOut, Id
from filterd.privacy import erase_customer

router = APIRouter(prefix="/v1", tags=["privacy"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut}
                                             for c in (401, 403, 422, 503)}
ErasePrincipalDep = Annotated[Principal, Depends(require(
    "erase", "Erasing a customer's data"))]


class ErasureOut(BaseModel):
    """What an erasure removed. ``customer`` is the pseudonym the audit log keeps."""

    tenant: str
    customer: str  # sha256:<hex> of the tenant and the customer id
    removed: dict[str, int]  # table -> rows (audit_log: entries pseudonymised)
    audit_id: int  # the audit log entry that records this erasure


@router.delete("/customers/{customer_id}", response_model=ErasureOut, responses=_ERRORS)
def erase(customer_id: Id, services: ServicesDep, principal: ErasePrincipalDep,
          response: Response) -> ErasureOut:
    """Erase everything stored about one customer of the caller's tenant (admin; audited)."""
    erasure = erase_customer(services.store, principal.tenant, customer_id, who=principal.id,
                             role=principal.role, metrics=services.metrics)
    response.headers["Cache-Control"] = "no-store"
    detail = erasure.audit.detail or {}
    return ErasureOut(tenant=principal.tenant, customer=str(detail.get("customer", "")),
                      removed=erasure.removed.as_dict(), audit_id=erasure.audit.id or 0)
