"""The SQL store's ``/v1/stats`` query (a mixin of :class:`filterd.store.sql.SqlStore`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from filterd.store.base import Bucket, Stats
from filterd.store.models import messages


def epoch_hour(when: datetime) -> int:
    return int(when.replace(tzinfo=UTC).timestamp()) // 3600


def _hour_key(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H:00:00Z")


class StatsMixin:
    """Customer-message figures over a window, on the host store's transactions."""

    _tx: Callable[..., AbstractContextManager[Connection]]

    def stats(self, since: datetime, until: datetime) -> Stats:
        m = messages.c
        window = (m.role == "customer", m.received_at >= since, m.received_at < until)
        n = func.count().label("n")
        ab = func.coalesce(func.sum(case((m.category == "abusive", 1), else_=0)), 0).label("ab")
        fr = func.coalesce(func.sum(case((m.category == "frustrated", 1), else_=0)),
                           0).label("fr")
        with self._tx() as conn:
            total = conn.execute(select(n, ab, fr).where(*window)).one()
            esc = conn.execute(select(m.queue, n).where(*window, m.escalated_here.is_(True))
                               .group_by(m.queue)).all()
            chans = conn.execute(select(m.channel, n, ab, fr).where(*window)
                                 .group_by(m.channel).order_by(n.desc(), m.channel)
                                 .limit(10)).all()
            hours = {r.hour: r for r in conn.execute(
                select(m.hour, n, ab, fr).where(*window).group_by(m.hour)).all()}
        first, last = epoch_hour(since), epoch_hour(until - timedelta(microseconds=1))
        hourly = []
        for h in range(first, last + 1):
            r = hours.get(h)
            hourly.append(Bucket(_hour_key(h), r.n, int(r.ab), int(r.fr)) if r is not None
                          else Bucket(_hour_key(h), 0, 0, 0))
        return Stats(
            since=since, until=until, messages=total.n, abusive=int(total.ab),
            frustrated=int(total.fr), escalations={r.queue: r.n for r in esc},
            channels=tuple(Bucket(r.channel, r.n, int(r.ab), int(r.fr)) for r in chans),
            hourly=tuple(hourly),
        )
