"""Who may do what: the role matrix, and resolving a presented API key to a caller.

Keys live in the store (``filterd keys create``), hashed (:mod:`filterd.apikeys`). Every key
has a role and a tenant; the tenant scopes every piece of data the caller reads or writes.

Open mode: while the store holds no key at all (and ``FILTERD_REQUIRE_KEYS`` is off) the
service is open as it was before keys existed: every caller is ``anonymous`` in the tenant
``default``, and anonymous may never read originals, the audit log or manage keys. Once any
key has been created the service stays closed, even if every key is later revoked (revoking
the last key must not open the service to everyone).

Cache: a key's row is read once and then trusted for ``FILTERD_KEY_CACHE_SECONDS`` (10 s by
default) in each process, so requests do not all hit the database. A revoke therefore takes
effect everywhere within that time (at once in the process that revoked it through the API);
likewise a first key created with the CLI closes an open service within that time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from filterd import apikeys
from filterd.errors import AuthError
from filterd.store.base import DEFAULT_TENANT, ApiKey, Store, utcnow

log = logging.getLogger("filterd.access")

Role = Literal["anonymous", "ingest", "agent", "supervisor", "admin", "metrics"]
Permission = Literal["me", "ingest", "console", "feedback", "dashboard", "originals", "audit",
                     "deliveries", "retry", "keys", "metrics", "erase"]


def _roles(*roles: Role) -> frozenset[Role]:
    return frozenset(roles)


# The role matrix: permission -> the roles that have it (README "Access" shows the same table).
# Every route names one permission (``require`` in deps.py); tests/test_access.py checks every
# route of the app against its own copy of this table.
ACCESS: dict[Permission, frozenset[Role]] = {
    # GET /v1/me: who am I (every valid key)
    "me": _roles("anonymous", "ingest", "agent", "supervisor", "admin", "metrics"),
    # POST /v1/messages, POST /v1/messages:batch
    "ingest": _roles("anonymous", "ingest", "admin"),
    # GET /console, /v1/conversations, /v1/conversations/{id}, /v1/events (masked text only)
    "console": _roles("anonymous", "agent", "supervisor", "admin"),
    # POST /v1/messages/{cid}/{mid}/feedback
    "feedback": _roles("anonymous", "agent", "supervisor", "admin"),
    # GET /dashboard, /v1/dashboard, /v1/stats (names customers by sender id)
    "dashboard": _roles("anonymous", "supervisor", "admin"),
    # GET /v1/messages/{cid}/{mid}/original (every attempt audited)
    "originals": _roles("supervisor", "admin"),
    # GET /v1/audit
    "audit": _roles("supervisor", "admin"),
    # GET /v1/deliveries/dead
    "deliveries": _roles("anonymous", "supervisor", "admin"),
    # POST /v1/deliveries/{id}/retry
    "retry": _roles("anonymous", "admin"),
    # GET /v1/keys, POST /v1/keys, POST /v1/keys/{id}/revoke (own tenant)
    "keys": _roles("admin"),
    # GET /metrics, when FILTERD_METRICS_REQUIRE_KEY (service-wide figures: no supervisor)
    "metrics": _roles("anonymous", "metrics", "admin"),
    # DELETE /v1/customers/{customer_id}: right to erasure, own tenant, audited (privacy)
    "erase": _roles("admin"),
}


def permissions_of(role: Role) -> frozenset[Permission]:
    return frozenset(p for p, roles in ACCESS.items() if role in roles)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``id`` names the key (``key-<id>``, never the secret), ``role`` its
    role and ``tenant`` whose data it sees."""

    id: str = "anonymous"
    role: Role = "anonymous"
    tenant: str = DEFAULT_TENANT  # whose data this caller sees (its key's tenant)

    def may(self, permission: Permission) -> bool:
        return self.role in ACCESS[permission]

    @property
    def is_supervisor(self) -> bool:
        """May read originals and the audit log."""
        return self.may("originals")

    @property
    def may_use_console(self) -> bool:
        return self.may("console")

    @property
    def may_use_dashboard(self) -> bool:
        return self.may("dashboard")


ANONYMOUS = Principal()
_MAX_CACHED = 10_000
_TOUCH_EVERY_SECONDS = 600.0  # last_used_at is written at most this often per key


class KeyRing:
    """Resolves presented keys against the store, through a small per-process TTL cache."""

    def __init__(self, store: Store, *, ttl_seconds: float = 10.0, require_keys: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl = ttl_seconds
        self.require_keys = require_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[float, ApiKey | None]] = {}  # id -> (expires, row)
        self._open: tuple[float, bool] | None = None  # (expires, open?)
        self._touched: dict[str, float] = {}

    def is_open(self) -> bool:
        """Open mode: no key was ever created and FILTERD_REQUIRE_KEYS is off."""
        if self.require_keys:
            return False
        now = self.clock()
        with self._lock:
            cached = self._open
        if cached is not None and cached[0] > now:
            return cached[1]
        is_open = not self.store.has_api_keys()
        with self._lock:
            self._open = (now + self.ttl, is_open)
        return is_open

    def warn_if_open(self) -> None:
        if self.is_open():
            log.warning("no API keys in the store: the API is open to any caller as tenant "
                        "%r (originals, the audit log and key management stay closed). "
                        "Create keys with `filterd keys create --role ...`, or set "
                        "FILTERD_REQUIRE_KEYS=true.", DEFAULT_TENANT)

    def answers_from_cache(self, token: str | None) -> bool:
        """Whether authenticating ``token`` now needs no store read or write (so it may run
        on the event loop): the open/closed answer and the key's row are cached and its
        ``last_used_at`` is not due."""
        now = self.clock()
        with self._lock:
            if not self.require_keys:
                if self._open is None or self._open[0] <= now:
                    return False
                if self._open[1]:
                    return True  # open mode: anonymous, no key read
            if token is None:
                return True  # 401 at once
            key_id = apikeys.key_id_of(token)
            if key_id is None:
                return True  # malformed: 401 at once
            cached = self._keys.get(key_id)
            if cached is None or cached[0] <= now:
                return False
            if cached[1] is None:
                return True  # unknown key, cached as such
            last = self._touched.get(cached[1].id)
            return last is not None and now - last < _TOUCH_EVERY_SECONDS

    def resolve(self, token: str) -> Principal:
        """The caller a token stands for; AuthError if it is malformed, unknown or revoked."""
        key_id = apikeys.key_id_of(token)
        if key_id is None:
            raise AuthError("The API key is not valid: filterd keys look like fd_<id>_<secret> "
                            "(make one with `filterd keys create --role ...`).")
        key = self._lookup(key_id)
        if key is None or not apikeys.matches(token, key.digest):
            raise AuthError("The API key is not valid. Check it, or ask an admin for a new one.")
        if not key.active:
            raise AuthError(f"The API key key-{key.id} was revoked. Ask an admin for a new one.")
        self._touch(key.id)
        return Principal(id=f"key-{key.id}", role=key.role, tenant=key.tenant)

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (after revoking it here)."""
        with self._lock:
            self._keys.pop(key_id, None)
            self._open = None

    def _lookup(self, key_id: str) -> ApiKey | None:
        now = self.clock()
        with self._lock:
            cached = self._keys.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        key = self.store.api_key(key_id)  # unknown ids are cached too (as None)
        with self._lock:
            if len(self._keys) >= _MAX_CACHED:
                self._keys = {k: v for k, v in self._keys.items() if v[0] > now}
                if len(self._keys) >= _MAX_CACHED:
                    self._keys.clear()
            self._keys[key_id] = (now + self.ttl, key)
        return key

    def _touch(self, key_id: str) -> None:
        """Record use in ``last_used_at``, at most every ten minutes per key and process."""
        now = self.clock()
        with self._lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < _TOUCH_EVERY_SECONDS:
                return
            self._touched[key_id] = now
        try:
            self.store.touch_api_key(key_id, utcnow())
        except Exception as e:  # bookkeeping only: never fail a request over it
            log.warning("could not record the use of key-%s (%s)", key_id, type(e).__name__)
