"""``POST /v1/messages/{conversation_id}/{message_id}/feedback``: an agent's correction.

Stored corrections feed ``filterd feedback export``, whose JSONL ``filterd train --feedback``
reads.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from filterd.api.deps import FeedbackPrincipalDep, ServicesDep, StoreDep
from filterd.api.schemas import ErrorOut, FeedbackOut, FeedbackRequest, Id
from filterd.store.base import FeedbackIn, utcnow

router = APIRouter(prefix="/v1", tags=["feedback"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (404, 422)}


@router.post("/messages/{conversation_id}/{message_id}/feedback", status_code=201,
             response_model=FeedbackOut, responses=_ERRORS)
def post_feedback(conversation_id: Id, message_id: Id, body: FeedbackRequest,
                  store: StoreDep, principal: FeedbackPrincipalDep,
                  services: ServicesDep) -> FeedbackOut:
    """Record the category (and flags) a stored message should have had (a message of the
    caller's tenant). The note is stored masked and PII-redacted, like message text: agents
    quote customers."""
    note = services.filter.redact(body.note) if body.note else body.note
    stored = store.add_feedback(
        principal.tenant,
        FeedbackIn(conversation_id=conversation_id, message_id=message_id,
                   category=body.category, flags=tuple(body.flags), by=body.by,
                   note=note),
        now=utcnow())
    return FeedbackOut.of(stored)

