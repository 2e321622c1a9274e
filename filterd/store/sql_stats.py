"""The SQL store's ``/v1/stats`` queries (a mixin of :class:`filterd.store.sql.SqlStore`),
each over one tenant's messages."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from filterd.store.base import Bucket, Offender, Period, Stats, StatsBucket
from filterd.store.models import messages

_HOURS = {"hour": 1, "day": 24}  # a bucket's length in hours


def epoch_hour(when: datetime) -> int:
    return int(when.replace(tzinfo=UTC).timestamp()) // 3600


def _hour_key(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H:00:00Z")


def _count(cond: Any, label: str) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0).label(label)


class StatsMixin:
    """Customer-message figures over a window, on the host store's transactions."""

    _tx: Callable[..., AbstractContextManager[Connection]]

    def stats(self, tenant: str, since: datetime, until: datetime, *,
              channel: str | None = None, bucket: StatsBucket = "hour") -> Stats:
        m = messages.c
        window = [m.tenant == tenant, m.role == "customer", m.received_at >= since,
                  m.received_at < until]
        if channel is not None:
            window.append(m.channel == channel)
        n = func.count().label("n")
        ab = _count(m.category == "abusive", "ab")
        fr = _count(m.category == "frustrated", "fr")
        esc_n = _count(m.escalated_here.is_(True), "esc")
        with self._tx() as conn:
            total = conn.execute(select(n, ab, fr).where(*window)).one()
            esc = conn.execute(select(m.queue, n).where(*window, m.escalated_here.is_(True))
                               .group_by(m.queue)).all()
            chans = conn.execute(select(m.channel, n, ab, fr).where(*window)
                                 .group_by(m.channel).order_by(n.desc(), m.channel)
                                 .limit(10)).all()
            rows = conn.execute(select(m.hour, m.queue, n, ab, fr, esc_n).where(*window)
                                .group_by(m.hour, m.queue)).all()
        first, last = epoch_hour(since), epoch_hour(until - timedelta(microseconds=1))
        hours: dict[int, list[int]] = {}
        step = _HOURS[bucket]
        periods: dict[int, Period] = {}
        for h in range(first - first % step, last + 1, step):
            periods[h] = Period(_hour_key(h), 0, 0, 0, 0, {})
        for r in rows:
            acc = hours.setdefault(r.hour, [0, 0, 0])
            acc[0] += r.n
            acc[1] += int(r.ab)
            acc[2] += int(r.fr)
            p = periods[r.hour - r.hour % step]
            p.queues[r.queue] = p.queues.get(r.queue, 0) + r.n
            periods[r.hour - r.hour % step] = Period(
                p.key, p.messages + r.n, p.abusive + int(r.ab), p.frustrated + int(r.fr),
                p.escalations + int(r.esc), p.queues)
        hourly = tuple(Bucket(_hour_key(h), *hours.get(h, (0, 0, 0)))
                       for h in range(first, last + 1))
        return Stats(
            since=since, until=until, messages=total.n, abusive=int(total.ab),
            frustrated=int(total.fr), escalations={r.queue: r.n for r in esc},
            channels=tuple(Bucket(r.channel, r.n, int(r.ab), int(r.fr)) for r in chans),
            hourly=hourly, series=tuple(periods.values()),
        )

    def offenders(self, tenant: str, since: datetime, until: datetime, limit: int
                  ) -> list[Offender]:
        m = messages.c
        window = (m.tenant == tenant, m.role == "customer", m.received_at >= since,
                  m.received_at < until)
        ab = _count(m.category == "abusive", "ab")
        with self._tx() as conn:
            rows = conn.execute(
                select(m.sender_id, ab, func.count().label("n"),
                       func.count(func.distinct(m.conversation_id)).label("convs"))
                .where(*window).group_by(m.sender_id)
                .having(func.sum(case((m.category == "abusive", 1), else_=0)) > 0)
                .order_by(ab.desc(), m.sender_id).limit(limit)).all()
        return [Offender(r.sender_id, int(r.ab), r.n, r.convs) for r in rows]
