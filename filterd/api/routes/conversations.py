"""``GET /v1/conversations`` (newest first) and ``GET /v1/conversations/{id}`` (transcript).

Transcripts hold masked, PII-redacted text only, each message tagged with its category,
level, flags and route, plus the conversation's state. A caller sees its own tenant's
conversations only; another tenant's id is simply unknown (404).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from filterd.api.deps import ConsolePrincipalDep, StoreDep
from filterd.api.schemas import (
    CategoryName,
    ConversationListOut,
    ConversationOut,
    ErrorOut,
    Id,
    TranscriptOut,
)
from filterd.store.base import ConversationQuery, as_utc

router = APIRouter(prefix="/v1", tags=["conversations"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (404, 422)}


@router.get("/conversations", response_model=ConversationListOut, responses=_ERRORS)
def list_conversations(
    store: StoreDep,
    principal: ConsolePrincipalDep,
    queue: Annotated[str | None, Query(max_length=64,
                                       description="current queue of the conversation")] = None,
    category: Annotated[CategoryName | None,
                        Query(description="has a customer message of this category")] = None,
    since: Annotated[datetime | None, Query(description="updated at or after (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ConversationListOut:
    """Conversations, most recently updated first."""
    found = store.conversations(principal.tenant, ConversationQuery(
        queue=queue, category=category, since=as_utc(since) if since else None, limit=limit))
    return ConversationListOut(conversations=[ConversationOut.of(c) for c in found])


@router.get("/conversations/{conversation_id}", response_model=TranscriptOut,
            responses=_ERRORS)
def get_conversation(conversation_id: Id, store: StoreDep,
                     principal: ConsolePrincipalDep) -> TranscriptOut:
    """The masked, tagged transcript and the conversation state."""
    return TranscriptOut.of_transcript(store.transcript(principal.tenant, conversation_id))
