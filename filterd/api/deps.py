"""What route handlers receive, as ``Annotated[..., Depends()]`` aliases.

Everything lives in one :class:`Services` built by ``create_app`` and kept on
``app.state``; handlers never read the environment or module globals.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Annotated, Literal, cast

from fastapi import Depends, Request

from filterd.config import Settings
from filterd.errors import AuthError, ForbiddenError
from filterd.events import Broadcaster
from filterd.ingest import Ingestor
from filterd.metrics import Metrics
from filterd.originals import Sealer
from filterd.outbox import Deliverer
from filterd.pipeline import Filter
from filterd.store.base import Store

Role = Literal["anonymous", "ingest", "agent", "supervisor", "admin"]
SUPERVISORS: frozenset[Role] = frozenset({"supervisor", "admin"})  # may read originals, audit
# The browser pages' data. "anonymous" only exists when no keys are configured (open service).
CONSOLE_ROLES: frozenset[Role] = frozenset({"anonymous", "agent", "supervisor", "admin"})
DASHBOARD_ROLES: frozenset[Role] = frozenset({"anonymous", "supervisor", "admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``id`` names the key (a fingerprint, never the key), ``role`` its role."""

    id: str = "anonymous"
    role: Role = "anonymous"

    @property
    def is_supervisor(self) -> bool:
        return self.role in SUPERVISORS

    @property
    def may_use_console(self) -> bool:
        return self.role in CONSOLE_ROLES

    @property
    def may_use_dashboard(self) -> bool:
        return self.role in DASHBOARD_ROLES


ANONYMOUS = Principal()


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


def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(s: ServicesDep) -> Settings:
    return s.settings


def get_store(s: ServicesDep) -> Store:
    return s.store


def get_ingestor(s: ServicesDep) -> Ingestor:
    return s.ingestor


def get_metrics(s: ServicesDep) -> Metrics:
    return s.metrics


def get_deliverer(s: ServicesDep) -> Deliverer:
    return s.deliverer


def _presented_key(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def current_principal(request: Request, s: ServicesDep) -> Principal:
    """The caller, from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

    Interim check, to be replaced by hashed API keys: ``FILTERD_API_KEYS`` maps each key to
    a role. With no keys configured the service is open and every caller is anonymous.
    """
    keys = s.settings.api_keys
    if not keys:
        return ANONYMOUS
    presented = _presented_key(request)
    if presented is None:
        raise AuthError("This service needs an API key: send 'Authorization: Bearer <key>' "
                        "or 'X-API-Key: <key>' (FILTERD_API_KEYS lists the keys).")
    given = presented.encode()
    found: str | None = None
    for key in keys:  # compare with every key, in constant time per key
        if hmac.compare_digest(given, key.encode()):
            found = key
    if found is None:
        raise AuthError("The API key is not valid. Check it against FILTERD_API_KEYS.")
    return Principal(id="key-" + hashlib.sha256(given).hexdigest()[:12], role=keys[found])


def console_principal(principal: Annotated[Principal, Depends(current_principal)]
                      ) -> Principal:
    """The caller, if its role may use the agent console (agent, supervisor, admin)."""
    if not principal.may_use_console:
        raise ForbiddenError(f"The agent console needs an agent, supervisor or admin API key; "
                             f"this key's role is {principal.role!r}.")
    return principal


def dashboard_principal(principal: Annotated[Principal, Depends(current_principal)]
                        ) -> Principal:
    """The caller, if its role may see the supervisor dashboard (supervisor, admin)."""
    if not principal.may_use_dashboard:
        raise ForbiddenError(f"The dashboard needs a supervisor or admin API key; this key's "
                             f"role is {principal.role!r}.")
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
IngestorDep = Annotated[Ingestor, Depends(get_ingestor)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
DelivererDep = Annotated[Deliverer, Depends(get_deliverer)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
ConsolePrincipalDep = Annotated[Principal, Depends(console_principal)]
DashboardPrincipalDep = Annotated[Principal, Depends(dashboard_principal)]
