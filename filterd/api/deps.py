"""What route handlers receive, as ``Annotated[..., Depends()]`` aliases.

Everything lives in one :class:`Services` built by ``create_app`` and kept on
``app.state``; handlers never read the environment or module globals.

Access: every route names the one permission it needs (``require(...)`` below); who has
which permission is the role matrix in :mod:`filterd.api.access`. A caller presents its key
as ``Authorization: Bearer <key>``, ``X-API-Key: <key>`` or, from the browser pages, the
``filterd_key`` cookie set by ``POST /login``. A request authenticated by the cookie that
changes something (not GET/HEAD/OPTIONS) must also carry ``X-Requested-With: filterd``: a
page of another site can make a browser send the cookie, but not that header (CSRF).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from filterd.api.access import (
    ACCESS,
    ANONYMOUS,
    KeyRing,
    Permission,
    Principal,
    Role,
)
from filterd.config import Settings
from filterd.errors import AuthError, ForbiddenError
from filterd.events import Broadcaster
from filterd.ingest import Ingestor
from filterd.metrics import Metrics
from filterd.originals import Sealer
from filterd.outbox import Deliverer
from filterd.pipeline import Filter
from filterd.store.base import Store

__all__ = ["ANONYMOUS", "Principal", "Role", "Services", "authenticate", "require"]

COOKIE = "filterd_key"  # HttpOnly, SameSite=Strict; set by POST /login
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "filterd"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    filter: Filter
    store: Store
    ingestor: Ingestor
    metrics: Metrics
    deliverer: Deliverer
    sealer: Sealer | None = None  # FILTERD_ORIGINALS_KEY set
    events: Broadcaster = field(default_factory=Broadcaster)  # stored messages, for /v1/events
    keys: KeyRing | None = None  # None: one on ``store`` with the settings' cache and mode

    def __post_init__(self) -> None:
        if self.keys is None:
            s = self.settings
            object.__setattr__(self, "keys", KeyRing(
                self.store, ttl_seconds=s.key_cache_seconds, require_keys=s.require_keys))

    @property
    def keyring(self) -> KeyRing:
        assert self.keys is not None  # set in __post_init__
        return self.keys


async def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(s: ServicesDep) -> Settings:
    return s.settings


async def get_store(s: ServicesDep) -> Store:
    return s.store


async def get_ingestor(s: ServicesDep) -> Ingestor:
    return s.ingestor


async def get_metrics(s: ServicesDep) -> Metrics:
    return s.metrics


async def get_deliverer(s: ServicesDep) -> Deliverer:
    return s.deliverer


def presented_key(request: Request) -> tuple[str | None, bool]:
    """The key the request carries, and whether it came from the cookie (headers win)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), False
    header = request.headers.get("x-api-key", "").strip()
    if header:
        return header, False
    cookie = request.cookies.get(COOKIE, "").strip()
    return (cookie, True) if cookie else (None, False)


def authenticate(request: Request, services: Services) -> Principal:
    """The caller; AuthError (401) without a valid key, unless the service is open."""
    ring = services.keyring
    if ring.is_open():
        return ANONYMOUS
    token, from_cookie = presented_key(request)
    if token is None:
        raise AuthError("This service needs an API key: send 'Authorization: Bearer <key>' "
                        "or 'X-API-Key: <key>', or sign in at /login. An admin makes keys "
                        "with `filterd keys create --role ...`.")
    principal = ring.resolve(token)
    if (from_cookie and request.method not in _SAFE_METHODS
            and request.headers.get(CSRF_HEADER, "").lower() != CSRF_VALUE):
        raise ForbiddenError(f"A request signed in by cookie that changes something must carry "
                             f"the header 'X-Requested-With: {CSRF_VALUE}' (CSRF defence).")
    return principal


async def current_principal(request: Request, s: ServicesDep) -> Principal:
    """The caller, whatever its role (routes use ``require(...)`` for their permission).

    Answered on the event loop when the key ring's cache can answer (all but about one
    request per key and TTL); only a store lookup goes to a worker thread. A sync dependency
    would cost every request a thread-pool round trip (speed, issue 5: these dependencies
    were four such hops per message)."""
    if s.keyring.answers_from_cache(presented_key(request)[0]):
        return authenticate(request, s)
    return await run_in_threadpool(authenticate, request, s)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def check(principal: Principal, permission: Permission, what: str) -> Principal:
    """``principal`` if its role has ``permission``; else ForbiddenError naming the roles."""
    if not principal.may(permission):
        roles = sorted(r for r in ACCESS[permission] if r != "anonymous")
        raise ForbiddenError(f"{what} needs an API key with role {' or '.join(roles)}; this "
                             f"key's role is {principal.role!r}.")
    return principal


def require(permission: Permission, what: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, if its role has ``permission`` (403 otherwise)."""

    async def dependency(principal: PrincipalDep) -> Principal:  # no I/O: on the loop
        return check(principal, permission, what)

    dependency.__name__ = f"require_{permission}"
    return dependency


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
IngestorDep = Annotated[Ingestor, Depends(get_ingestor)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
DelivererDep = Annotated[Deliverer, Depends(get_deliverer)]
# One alias per permission of the role matrix (filterd.api.access.ACCESS).
MePrincipalDep = Annotated[Principal, Depends(require("me", "This"))]
IngestPrincipalDep = Annotated[Principal, Depends(require("ingest", "Sending messages"))]
ConsolePrincipalDep = Annotated[Principal, Depends(require(
    "console", "Reading conversations (the agent console)"))]
FeedbackPrincipalDep = Annotated[Principal, Depends(require("feedback", "Correcting a verdict"))]
DashboardPrincipalDep = Annotated[Principal, Depends(require(
    "dashboard", "The dashboard and its figures"))]
AuditPrincipalDep = Annotated[Principal, Depends(require("audit", "The audit log"))]
DeliveriesPrincipalDep = Annotated[Principal, Depends(require(
    "deliveries", "Listing dead letters"))]
RetryPrincipalDep = Annotated[Principal, Depends(require("retry", "Retrying a delivery"))]
KeysPrincipalDep = Annotated[Principal, Depends(require("keys", "Managing API keys"))]
