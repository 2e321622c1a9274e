"""``GET /v1/events``: newly stored messages as Server-Sent Events, for the agent console.

Each event is ``event: message`` with JSON data: the conversation id, the conversation
state after the message, and the message as in a transcript (masked text only; originals
never travel here). A stream carries the caller's tenant's messages only. Events come from
this process only: with several workers, each worker streams the messages it stored. A
comment line every ``KEEPALIVE_SECONDS`` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from filterd.api.deps import ConsolePrincipalDep, ServicesDep
from filterd.api.schemas import ErrorOut, TranscriptMessageOut
from filterd.events import Event
from filterd.store.base import StoredMessage

router = APIRouter(prefix="/v1", tags=["events"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (401, 403)}
KEEPALIVE_SECONDS = 15.0


def message_event(m: StoredMessage) -> Event:
    """The event for one stored message (masked text only); publish it to ``m.tenant``."""
    return {"conversation_id": m.conversation_id, "state": m.state_after.as_dict(),
            "message": TranscriptMessageOut.of(m).model_dump(mode="json")}


def _sse(event: Event) -> str:
    return f"event: message\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


@router.get("/events", responses=_ERRORS, response_class=StreamingResponse)
async def get_events(
    request: Request, services: ServicesDep, principal: ConsolePrincipalDep,
    max_events: Annotated[int | None, Query(ge=1, le=10_000,
                                            description="close after this many")] = None,
) -> StreamingResponse:
    """Stored messages as they arrive (``text/event-stream``)."""
    events = services.events

    async def stream() -> AsyncIterator[str]:
        async with events.subscribe(principal.tenant) as queue:
            yield "retry: 2000\n: connected\n\n"
            sent = 0
            while max_events is None or sent < max_events:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                yield _sse(event)
                sent += 1

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
