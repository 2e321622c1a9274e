"""``GET /v1/stats?window=24h&bucket=hour&channel=``: rates, escalations, top channels, and a
series of hours or days (escalations and routes per period)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from filterd.api.deps import DashboardPrincipalDep, StoreDep
from filterd.api.schemas import Channel, ErrorOut, StatsOut
from filterd.errors import InputError
from filterd.store.base import utcnow

router = APIRouter(prefix="/v1", tags=["stats"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorOut} for c in (422,)}
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_WINDOW = timedelta(days=31)


def parse_window(window: str) -> timedelta:
    """``15m``, ``24h``, ``7d`` -> a timedelta of at most 31 days."""
    m = re.fullmatch(r"(\d{1,5})([mhd])", window)
    if m is None:
        raise InputError(f"Query 'window' has value {window!r}: use a number and a unit, "
                         "m, h or d (e.g. 24h).")
    span = int(m.group(1)) * _UNITS[m.group(2)]
    if not timedelta(0) < span <= MAX_WINDOW:
        raise InputError(f"Query 'window' has value {window!r}: it must be more than 0 and "
                         "at most 31d.")
    return span


@router.get("/stats", response_model=StatsOut, responses=_ERRORS)
def get_stats(store: StoreDep, principal: DashboardPrincipalDep,
              window: Annotated[str, Query(max_length=8)] = "24h",
              bucket: Annotated[Literal["hour", "day"], Query()] = "hour",
              channel: Annotated[Channel | None, Query()] = None) -> StatsOut:
    """Figures over the caller's tenant's customer messages received in the last ``window``
    (of one channel if given); ``series`` holds every hour or day of it."""
    until = utcnow()
    stats = store.stats(principal.tenant, until - parse_window(window), until, channel=channel,
                        bucket=bucket)
    return StatsOut.of(window, stats, bucket, channel)
