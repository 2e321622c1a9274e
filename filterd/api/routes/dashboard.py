"""The browser pages' data: ``GET /v1/me`` (what this key may do) and ``GET /v1/dashboard``
(the supervisor dashboard in one call: stats, urgent queues, repeat offenders).

The dashboard needs a supervisor or admin key (or an open service); it names customers by
sender id, so agents do not get it. Every figure is of the caller's tenant only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from filterd.api.deps import DashboardPrincipalDep, MePrincipalDep, ServicesDep
from filterd.api.routes.stats import parse_window
from filterd.api.schemas import Channel, ConversationOut, ErrorOut, StatsOut
from filterd.store.base import ConversationQuery, utcnow

router = APIRouter(prefix="/v1", tags=["pages"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (401, 403, 422)}
URGENT_QUEUES = ("crisis", "supervisor", "abuse_review")  # most urgent first


class MeOut(BaseModel):
    role: str
    tenant: str
    console: bool  # may use the agent console
    dashboard: bool  # may see the supervisor dashboard
    reveal: bool  # may read originals, and originals are kept
    originals_kept: bool


class OffenderOut(BaseModel):
    sender_id: str
    abusive: int
    messages: int
    conversations: int


class DashboardOut(BaseModel):
    stats: StatsOut
    queues: dict[str, list[ConversationOut]]  # crisis, supervisor, abuse_review
    repeat_offenders: list[OffenderOut]
    reveal: bool


@router.get("/me", response_model=MeOut, responses=_ERRORS)
def get_me(services: ServicesDep, principal: MePrincipalDep) -> MeOut:
    """The caller's role and tenant, and what the pages let it do (every valid key)."""
    kept = services.settings.store_originals
    return MeOut(role=principal.role, tenant=principal.tenant,
                 console=principal.may_use_console,
                 dashboard=principal.may_use_dashboard,
                 reveal=kept and principal.is_supervisor, originals_kept=kept)


@router.get("/dashboard", response_model=DashboardOut, responses=_ERRORS)
def get_dashboard(
    services: ServicesDep, principal: DashboardPrincipalDep,
    window: Annotated[str, Query(max_length=8)] = "24h",
    bucket: Annotated[Literal["hour", "day"], Query()] = "hour",
    channel: Annotated[Channel | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DashboardOut:
    """Stats over ``window``, the conversations now in urgent queues, repeat offenders."""
    store, tenant = services.store, principal.tenant
    until = utcnow()
    since = until - parse_window(window)
    stats = store.stats(tenant, since, until, channel=channel, bucket=bucket)
    queues = {q: [ConversationOut.of(c) for c in store.conversations(
                  tenant, ConversationQuery(queue=q, limit=limit))]
              for q in URGENT_QUEUES}
    offenders = [OffenderOut(sender_id=o.sender_id, abusive=o.abusive, messages=o.messages,
                             conversations=o.conversations)
                 for o in store.offenders(tenant, since, until, 10)]
    return DashboardOut(stats=StatsOut.of(window, stats, bucket, channel), queues=queues,
                        repeat_offenders=offenders,
                        reveal=services.settings.store_originals and principal.is_supervisor)
