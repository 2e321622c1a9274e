"""``GET /v1/events``: newly stored messages as Server-Sent Events, for the agent console.

Each event is ``id: <message pk>``, ``event: message`` and JSON data: the conversation id,
the conversation state after the message, and the message as in a transcript (masked text
only; originals never travel here). A stream carries the caller's tenant's messages only,
whichever worker or instance stored them: every worker follows the shared store
(:class:`filterd.events.StoreTail`), so with ``--workers N`` or several instances an agent
sees every message, within ``FILTERD_EVENTS_POLL_SECONDS`` (at once for a message stored by
the worker it is connected to).

One connection sends each message at most once. A reconnecting client sends the id of the
last event it got as ``Last-Event-ID`` (``EventSource`` does so itself; the console too) and
the stream first replays that tenant's messages stored after it (the newest ``REPLAY_MAX``),
then goes live without repeating them: across reconnects delivery is at least once (a
message committed late, after a higher id was sent, may come twice, or if the connection
dropped before it came, be left to the transcript). A message whose commit
lagged its insert by more than 10 s may be missed live (see :mod:`filterd.events`); it is
always in the transcript. A comment line every ``KEEPALIVE_SECONDS`` keeps proxies from
closing an idle stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from filterd.api.deps import ConsolePrincipalDep, ServicesDep
from filterd.api.schemas import ErrorOut, TranscriptMessageOut
from filterd.events import Event, Published
from filterd.store.base import StoredMessage

log = logging.getLogger("filterd.api.events")
router = APIRouter(prefix="/v1", tags=["events"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (401, 403)}
KEEPALIVE_SECONDS = 15.0
REPLAY_MAX = 500  # messages replayed after a Last-Event-ID at most (the newest)


def message_event(m: StoredMessage) -> Event:
    """The event for one stored message (masked text only); publish it to ``m.tenant``."""
    return {"conversation_id": m.conversation_id, "state": m.state_after.as_dict(),
            "message": TranscriptMessageOut.of(m).model_dump(mode="json")}


def _sse(item: Published) -> str:
    head = f"id: {item.id}\n" if item.id is not None else ""
    return f"{head}event: message\ndata: {json.dumps(item.data, separators=(',', ':'))}\n\n"


def _last_id(value: str | None) -> int | None:
    """A ``Last-Event-ID`` this service gave out (a pk), or None: any other value is
    ignored and the stream starts live, as if it were a first connection."""
    if value is None or not value.strip().isdigit() or len(value.strip()) > 18:
        return None
    return int(value.strip())


@router.get("/events", responses=_ERRORS, response_class=StreamingResponse)
async def get_events(
    request: Request, services: ServicesDep, principal: ConsolePrincipalDep,
    max_events: Annotated[int | None, Query(ge=1, le=10_000,
                                            description="close after this many")] = None,
    last_event_id: Annotated[str | None, Header(
        description="resume: replay this tenant's messages stored after this event id "
                    f"(the newest {REPLAY_MAX}) before going live")] = None,
) -> StreamingResponse:
    """Stored messages as they arrive (``text/event-stream``)."""
    events, store, tenant = services.events, services.store, principal.tenant
    after = _last_id(last_event_id)

    async def replay() -> list[StoredMessage]:
        if after is None:
            return []
        try:
            return await anyio.to_thread.run_sync(store.messages_after, tenant, after,
                                                  REPLAY_MAX)
        except Exception as e:  # the stream goes live; the console reloads its list anyway
            log.warning("event stream: could not replay after %d (%s)", after, type(e).__name__)
            return []

    async def stream() -> AsyncIterator[str]:
        async with events.subscribe(tenant) as queue:  # live first: the replay may overlap
            yield "retry: 2000\n: connected\n\n"
            sent = 0
            replayed: set[int] = set()
            for m in await replay():
                if max_events is not None and sent >= max_events:
                    return
                yield _sse(Published(m.pk, message_event(m)))
                replayed.add(m.pk)
                sent += 1
            while max_events is None or sent < max_events:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                if item.id is not None and item.id in replayed:
                    continue  # already sent by the replay
                yield _sse(item)
                sent += 1

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
