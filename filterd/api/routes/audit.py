"""``GET /v1/audit``: who tried to read which original, when, and how it ended."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from filterd.api.deps import PrincipalDep, StoreDep
from filterd.api.schemas import AuditEntryOut, AuditListOut, ErrorOut, Id
from filterd.errors import ForbiddenError

router = APIRouter(prefix="/v1", tags=["audit"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (401, 403, 422)}


@router.get("/audit", response_model=AuditListOut, responses=_ERRORS)
def list_audit(store: StoreDep, principal: PrincipalDep,
               conversation_id: Id | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> AuditListOut:
    """Audit entries, newest first (supervisor or admin)."""
    if not principal.is_supervisor:
        raise ForbiddenError("The audit log needs a supervisor or admin API key.")
    return AuditListOut(entries=[AuditEntryOut.of(e)
                                 for e in store.audit_entries(limit, conversation_id)])
