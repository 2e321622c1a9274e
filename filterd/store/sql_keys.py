"""The SQL store's API keys (a mixin of :class:`filterd.store.sql.SqlStore`).

Rows hold a key's digest, never the key (see :mod:`filterd.apikeys`). The service reads a key
by its public id on each request that misses its short cache (:mod:`filterd.api.access`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import exists, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from filterd.errors import ConflictError, NotFoundError
from filterd.store.base import ApiKey
from filterd.store.models import api_keys


def _key(r: Row[Any]) -> ApiKey:
    return ApiKey(id=r.id, tenant=r.tenant, role=r.role, name=r.name, digest=r.digest,
                  created_at=r.created_at, revoked_at=r.revoked_at,
                  last_used_at=r.last_used_at)


class KeysMixin:
    """API keys, on the host store's transactions."""

    _tx: Callable[..., AbstractContextManager[Connection]]

    def add_api_key(self, key: ApiKey) -> None:
        try:
            with self._tx(write=True) as conn:
                conn.execute(insert(api_keys).values(
                    id=key.id, tenant=key.tenant, role=key.role, name=key.name,
                    digest=key.digest, created_at=key.created_at, revoked_at=key.revoked_at,
                    last_used_at=key.last_used_at))
        except IntegrityError as e:
            raise ConflictError(f"An API key with id {key.id!r} exists already.") from e

    def api_key(self, key_id: str) -> ApiKey | None:
        with self._tx() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return None if row is None else _key(row)

    def api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        k = api_keys.c
        stmt = select(api_keys).order_by(k.created_at, k.id)
        if tenant is not None:
            stmt = stmt.where(k.tenant == tenant)
        with self._tx() as conn:
            return [_key(r) for r in conn.execute(stmt)]

    def revoke_api_key(self, key_id: str, now: datetime, tenant: str | None = None) -> ApiKey:
        k = api_keys.c
        where = [k.id == key_id] + ([k.tenant == tenant] if tenant is not None else [])
        with self._tx(write=True) as conn:
            conn.execute(update(api_keys).where(*where, k.revoked_at.is_(None))
                         .values(revoked_at=now))
            row = conn.execute(select(api_keys).where(*where)).first()
        if row is None:
            raise NotFoundError("api_key", key_id)
        return _key(row)

    def has_api_keys(self) -> bool:
        with self._tx() as conn:
            return bool(conn.execute(select(exists().select_from(api_keys))).scalar())

    def touch_api_key(self, key_id: str, now: datetime) -> None:
        with self._tx(write=True) as conn:
            conn.execute(update(api_keys).where(api_keys.c.id == key_id)
                         .values(last_used_at=now))
