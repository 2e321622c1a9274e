"""``GET /v1/audit``: who tried to read which original, when, and how it ended."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from filterd.api.deps import AuditPrincipalDep, StoreDep
from filterd.api.schemas import AuditEntryOut, AuditListOut, ErrorOut, Id

router = APIRouter(prefix="/v1", tags=["audit"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (401, 403, 422)}


@router.get("/audit", response_model=AuditListOut, responses=_ERRORS)
def list_audit(store: StoreDep, principal: AuditPrincipalDep,
               conversation_id: Id | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AuditListOut:
    """The caller's tenant's audit entries, newest first (supervisor or admin)."""
    entries = store.audit_entries(principal.tenant, limit, conversation_id)
    return AuditListOut(entries=[AuditEntryOut.of(e) for e in entries])
