"""``GET /v1/messages/{conversation_id}/{message_id}/original``: the unmasked text.

Kept only with ``FILTERD_STORE_ORIGINALS`` (encrypted at rest), shown only to a supervisor
or admin key of the message's tenant, and every attempt by a valid key (granted, denied, not
found) goes to the audit log of the caller's tenant first: if the audit entry cannot be
written, nothing is shown. Another tenant's message is simply not found.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from filterd.api.deps import PrincipalDep, ServicesDep, check
from filterd.api.schemas import ErrorOut, Id, OriginalOut
from filterd.errors import ConfigError, ForbiddenError, NotFoundError
from filterd.ingest import scoped_id
from filterd.store.base import AuditEntry, AuditOutcome, utcnow

router = APIRouter(prefix="/v1", tags=["originals"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut}
                                             for c in (401, 403, 404, 422, 503)}


@router.get("/messages/{conversation_id}/{message_id}/original", response_model=OriginalOut,
            responses=_ERRORS)
def get_original(conversation_id: Id, message_id: Id, services: ServicesDep,
                 principal: PrincipalDep, response: Response) -> OriginalOut:
    """The original text of a stored message, decrypted (supervisor or admin; audited)."""
    store, tenant = services.store, principal.tenant

    def audit(outcome: AuditOutcome) -> None:
        store.audit(tenant, AuditEntry(principal.id, principal.role, "read_original",
                                       conversation_id, message_id, outcome, utcnow()))

    try:
        check(principal, "originals", "Reading an original")
    except ForbiddenError as e:
        audit("denied")
        raise ForbiddenError(f"{e} This attempt is in the audit log.") from e
    try:
        sealed = store.sealed_original(tenant, conversation_id, message_id)
    except NotFoundError:
        audit("not_found")
        raise
    if sealed is None:
        audit("not_found")
        raise NotFoundError("original", f"{conversation_id}/{message_id}")
    if services.sealer is None:
        raise ConfigError("FILTERD_ORIGINALS_KEY is not set, so stored originals cannot be "
                          "read. Set it to the key they were written with.")
    text = services.sealer.open(scoped_id(tenant, conversation_id), message_id, sealed)
    audit("granted")
    response.headers["Cache-Control"] = "no-store"
    return OriginalOut(conversation_id=conversation_id, message_id=message_id, text=text)
