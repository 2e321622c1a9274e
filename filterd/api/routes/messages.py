"""``POST /v1/messages`` and ``POST /v1/messages:batch``: judge, store, answer the verdict.

Messages belong to the tenant of the key that sends them (an ``ingest`` key). Idempotent on
``(tenant, conversation_id, message_id)``: a retry answers the first verdict, counts nothing
twice and carries the header ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request, Response

from filterd.api.deps import IngestorDep, IngestPrincipalDep
from filterd.api.schemas import BatchIn, BatchOut, ErrorOut, MessageIn, MessageOut
from filterd.coalesce import IngestCoalescer
from filterd.ingest import Incoming, Outcome
from filterd.store.base import as_utc

router = APIRouter(prefix="/v1", tags=["messages"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorOut} for c in (400, 409, 413, 422, 503)
}


def _incoming(m: MessageIn) -> Incoming:
    return Incoming(
        conversation_id=m.conversation_id, message_id=m.message_id, channel=m.channel,
        role=m.sender.role, sender_id=m.sender.id, text=m.text,
        sent_at=as_utc(m.sent_at) if m.sent_at else None, meta=m.metadata)


@router.post("/messages", response_model=MessageOut, responses=_ERRORS)
async def post_message(body: MessageIn, ingestor: IngestorDep, response: Response,
                       principal: IngestPrincipalDep, request: Request) -> dict[str, Any]:
    """Judge one message in its conversation and store it (masked).

    With ``FILTERD_COALESCE`` concurrent messages share one ingest pass
    (:mod:`filterd.coalesce`); otherwise the pass of this one message runs on the thread
    pool, as a sync handler would.
    """
    item, tenant = _incoming(body), principal.tenant
    coalescer: IngestCoalescer | None = getattr(request.app.state, "coalescer", None)
    outcome: Outcome
    if coalescer is None:
        [outcome] = await anyio.to_thread.run_sync(
            lambda: ingestor.ingest([item], tenant=tenant))
    elif ingestor.settings.coalesce_await:
        outcome = await coalescer.ingest_async(item, tenant)
    else:
        outcome = await anyio.to_thread.run_sync(coalescer.ingest, item, tenant)
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return outcome.as_dict()


@router.post("/messages:batch", response_model=BatchOut, responses=_ERRORS)
def post_batch(body: BatchIn, ingestor: IngestorDep,
               principal: IngestPrincipalDep) -> dict[str, Any]:
    """Judge up to FILTERD_BATCH_MAX_MESSAGES messages, in order within each conversation.

    The batch is checked as a whole first: one invalid message refuses the batch (the error
    names its index) and nothing is stored.
    """
    outcomes = ingestor.ingest([_incoming(m) for m in body.messages], batch=True,
                               tenant=principal.tenant)
    return {"results": [o.as_dict() for o in outcomes]}
